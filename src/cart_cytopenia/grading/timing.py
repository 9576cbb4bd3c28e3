"""Timing of cytopenia (early / prolonged / late), nadirs and durations, per lineage, vectorised.

Phases follow the review (early < 30 days, prolonged 30-90, late > 90; ``rules/tables/timing.toml``,
where the day-30 convention is documented). For each lineage (neutrophils, platelets, red cells)
a day is "significantly cytopenic" below the lineage's CTCAE grade-3 cut-point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cart_cytopenia.grading.daily import DailyGrid
from cart_cytopenia.rules.tables import Lineage, TimingTable

I32 = NDArray[np.int32]
F = NDArray[np.float64]
Obj = NDArray[np.object_]


def phase_of_days(days: I32, table: TimingTable) -> Obj:
    out = np.full(days.shape, None, dtype=object)
    for p in table.phases:
        out[(days >= p.first_day) & (days <= p.last_day)] = p.id
    return out


@dataclass(frozen=True)
class LineageTiming:
    nadir: F  # lowest value day 0..as_of (canonical), NaN if none
    nadir_day: I32
    last_significant_day: I32  # last day with a value below the significant cut-point (-1: none)
    latest_phase: Obj  # phase of that day ("early" / "prolonged" / "late") or None
    # first day of the current significant stretch ending at the last value (-1); None when not
    # asked for (``episode=False``)
    episode_start: I32 | None
    # days below the significant / at or below the severe cut-point in the duration window
    # (interpolated); None when no interpolated series was given
    days_significant: I32 | None
    days_severe: I32 | None


def lineage_timing(
    raw: DailyGrid,
    interp: DailyGrid | None,
    lineage: Lineage,
    as_of: I32,
    table: TimingTable,
    rows: tuple[NDArray[np.int64], NDArray[np.int64], F] | None = None,
    episode: bool = True,
) -> LineageTiming:
    """Timing of one lineage for every patient.

    Nadir and the last significant day come from the value rows (``rows``: patient index, day,
    value; all days up to ``as_of``), so they hold however long the follow-up. The current
    episode needs the interpolated daily series: it is given where the grid reaches the
    patient's last value (always for a single course), otherwise -1. Without ``interp`` the
    durations and the episode are not computed (None), nor the episode without ``episode``
    (a cohort's grade table reads neither).
    """
    n = raw.values.shape[0]
    if rows is None:
        r, c = np.nonzero(~np.isnan(raw.values))
        rows = (r.astype(np.int64), (c + raw.first_day).astype(np.int64), raw.values[r, c])
    ridx, rday, rval = rows
    if ridx.size and not (int(rday.min()) >= 0 and int(rday.max()) <= int(as_of.min())):
        keep = (rday >= 0) & (rday <= as_of[ridx])
        ridx, rday, rval = ridx[keep], rday[keep], rval[keep]
    nadir = np.full(n, np.nan)
    nadir_day = np.full(n, -1, np.int32)
    last_sig64 = np.full(n, -1, np.int64)
    last_obs = np.full(n, -1, np.int64)
    if ridx.size:
        if (ridx[1:] < ridx[:-1]).any():  # group the rows by patient (order kept within)
            o = np.argsort(ridx, kind="stable")
            ridx, rday, rval = ridx[o], rday[o], rval[o]
        starts = np.flatnonzero(np.r_[True, ridx[1:] != ridx[:-1]])
        who = ridx[starts]
        low = np.minimum.reduceat(rval, starts)
        big = np.iinfo(np.int64).max
        at_low = rval == np.repeat(low, np.diff(np.r_[starts, ridx.size]))
        nadir[who] = low
        nadir_day[who] = np.minimum.reduceat(np.where(at_low, rday, big), starts)
        sig_rows = rval < lineage.significant_below
        last_sig64[who] = np.maximum.reduceat(np.where(sig_rows, rday, -1), starts)
        last_obs[who] = np.maximum.reduceat(rday, starts)
    has = ~np.isnan(nadir)
    any_sig = last_sig64 >= 0
    last_sig: I32 = last_sig64.astype(np.int32)
    latest_phase = phase_of_days(last_sig, table)
    latest_phase[~any_sig] = None

    if interp is None:
        return LineageTiming(nadir, nadir_day, last_sig, latest_phase, None, None, None)
    episode_start = _episode_start(raw, interp, lineage, as_of, has, last_obs) if episode else None
    d0, d1 = table.duration_window
    w = interp.window(d0, d1)
    wd = np.arange(d0, d0 + w.shape[1])
    wmask = wd[None, :] <= as_of[:, None]
    with np.errstate(invalid="ignore"):
        days_sig = ((w < lineage.significant_below) & wmask).sum(axis=1).astype(np.int32)
        days_sev = ((w <= lineage.severe_le) & wmask).sum(axis=1).astype(np.int32)
    return LineageTiming(
        nadir, nadir_day, last_sig, latest_phase, episode_start, days_sig, days_sev
    )


def _episode_start(
    raw: DailyGrid,
    interp: DailyGrid,
    lineage: Lineage,
    as_of: I32,
    has: NDArray[np.bool_],
    last_obs: NDArray[np.int64],
) -> I32:
    """First day of the current significant stretch (interpolated) containing the last value."""
    n = raw.values.shape[0]
    hi = (
        raw.n_days
        if not as_of.size
        else int(min(raw.n_days, max(0, int(as_of.max()) - raw.first_day + 1)))
    )
    days = raw.days()[:hi]
    iv = interp.values[:, :hi]
    if hi and int(as_of.min()) < int(days[-1]):
        iv = np.where(days[None, :] > as_of[:, None], np.nan, iv)
    covered = has & (last_obs <= raw.last_day)
    last_obs_col = np.clip(last_obs - raw.first_day, 0, max(hi - 1, 0))
    episode_start = np.full(n, -1, np.int32)
    if hi:
        with np.errstate(invalid="ignore"):
            isig = iv < lineage.significant_below
            not_sig = iv >= lineage.significant_below
        current_sig = covered & isig[np.arange(n), last_obs_col]
        cols = np.arange(hi)[None, :]
        before = not_sig & (cols < last_obs_col[:, None])
        any_before = before.any(axis=1)
        last_ok = hi - 1 - np.argmax(before[:, ::-1], axis=1)
        first_sig_col = np.where(any_before, last_ok + 1, np.argmax(isig, axis=1))
        episode_start = np.where(current_sig, days[np.minimum(first_sig_col, hi - 1)], -1).astype(
            np.int32
        )
    return episode_start
