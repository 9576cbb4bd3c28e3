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
    episode_start: I32  # first day of the current significant stretch ending at the last value (-1)
    days_significant: (
        I32  # days below the significant cut-point in the duration window (interpolated)
    )
    days_severe: I32  # days at or below the severe cut-point in the duration window (interpolated)


def lineage_timing(
    raw: DailyGrid, interp: DailyGrid, lineage: Lineage, as_of: I32, table: TimingTable
) -> LineageTiming:
    n = raw.values.shape[0]
    # only the days up to the latest assessment day matter; mask per patient only when needed
    hi = (
        raw.n_days
        if not as_of.size
        else int(min(raw.n_days, max(0, int(as_of.max()) - raw.first_day + 1)))
    )
    days = raw.days()[:hi]
    v = raw.values[:, :hi]
    iv = interp.values[:, :hi]
    if hi and int(as_of.min()) < int(days[-1]):
        late = days[None, :] > as_of[:, None]
        v = np.where(late, np.nan, v)
        iv = np.where(late, np.nan, iv)
    obs = ~np.isnan(v)
    has = obs.any(axis=1) if v.shape[1] else np.zeros(n, bool)
    safe = np.where(obs, v, np.inf)
    col = np.argmin(safe, axis=1) if v.shape[1] else np.zeros(n, np.int64)
    nadir = np.where(has, safe[np.arange(n), col] if v.shape[1] else np.nan, np.nan)
    nadir_day = np.where(has, days[col] if v.shape[1] else -1, -1).astype(np.int32)

    with np.errstate(invalid="ignore"):
        sig = v < lineage.significant_below
    any_sig = sig.any(axis=1)
    last_sig_col = (
        v.shape[1] - 1 - np.argmax(sig[:, ::-1], axis=1) if v.shape[1] else np.zeros(n, np.int64)
    )
    last_sig = np.where(any_sig, days[last_sig_col] if v.shape[1] else -1, -1).astype(np.int32)
    latest_phase = phase_of_days(last_sig, table)
    latest_phase[~any_sig] = None

    # current episode: the stretch of significant cytopenia (interpolated) containing the last value
    with np.errstate(invalid="ignore"):
        isig = iv < lineage.significant_below
        not_sig = iv >= lineage.significant_below
    last_obs_col = (
        v.shape[1] - 1 - np.argmax(obs[:, ::-1], axis=1) if v.shape[1] else np.zeros(n, np.int64)
    )
    current_sig = has & isig[np.arange(n), last_obs_col] if v.shape[1] else np.zeros(n, bool)
    # last non-significant day before the last observation
    cols = np.arange(v.shape[1])[None, :]
    before = not_sig & (cols < last_obs_col[:, None])
    any_before = before.any(axis=1)
    last_ok = (
        v.shape[1] - 1 - np.argmax(before[:, ::-1], axis=1) if v.shape[1] else np.zeros(n, np.int64)
    )
    first_sig_col = np.where(any_before, last_ok + 1, np.argmax(isig, axis=1) if v.shape[1] else 0)
    episode_start = np.where(
        current_sig, days[np.minimum(first_sig_col, v.shape[1] - 1)] if v.shape[1] else -1, -1
    ).astype(np.int32)

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
