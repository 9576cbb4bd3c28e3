"""Response to G-CSF (``rules/tables/timing.toml`` [gcsf_response]).

For the first G-CSF course after infusion: responded when ANC rises above the response level
within the window (ANC > 500/uL when started at ANC <= 500; > 1500/uL when started for a biphasic
drop above 500), refractory when ANC never did although the whole window was observed, and
"too early" / "no ANC" otherwise. The review: "A complete lack of responsiveness to G-CSF may
prompt bone marrow biopsy".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from cart_cytopenia.domain.catalogues import DrugClass
from cart_cytopenia.domain.frames import drug_class_expr
from cart_cytopenia.grading.daily import DailyGrid
from cart_cytopenia.rules.tables import TimingTable

I32 = NDArray[np.int32]
Obj = NDArray[np.object_]
F = NDArray[np.float64]

RESPONDED, REFRACTORY, TOO_EARLY, NO_ANC = (
    "responded",
    "refractory",
    "too early to tell",
    "no ANC after start",
)


@dataclass(frozen=True)
class GcsfResponse:
    first_day: I32  # first G-CSF start day >= 0 (-1: none)
    days_given: I32  # days on G-CSF up to as_of (courses summed; open courses run to as_of)
    response: Obj  # one of the constants above, or None when no G-CSF
    anc_at_start: F


def gcsf_courses(events: pl.DataFrame) -> pl.DataFrame:
    """The G-CSF courses started on or after day 0 among ``events`` (the event table's rows)."""
    # (medications from day 0 first: the drug-class test lowercases every drug name it reads)
    meds = events.filter((pl.col("type") == "medication") & (pl.col("start_day") >= 0))
    return meds.filter(drug_class_expr(DrugClass.GCSF))


def grid_series(interp: DailyGrid) -> Callable[[int, int, int], F]:
    """Values of patient ``i`` for days ``lo..hi`` from a grid (NaN outside it)."""

    def get(i: int, lo: int, hi: int) -> F:
        out = np.full(hi - lo + 1, np.nan)
        a, b = max(lo, interp.first_day), min(hi, interp.last_day)
        if b >= a:
            out[a - lo : b - lo + 1] = interp.values[i, interp.col(a) : interp.col(b) + 1]
        return out

    return get


def response(
    starts: tuple[NDArray[np.integer], NDArray[np.integer], NDArray[np.integer]],
    interp: DailyGrid,
    as_of: I32,
    table: TimingTable,
    series: Callable[[int, int, int], F] | None = None,
    grid_exact_to: int | None = None,
) -> GcsfResponse:
    """``starts``: the G-CSF courses (``gcsf_courses``) as (patient position, start day, end
    day; an open course ends on day 10**6). ``series(i, lo, hi)`` gives patient ``i``'s interpolated ANC for days lo..hi; by default it
    is read from ``interp``. The engine passes one that also reaches beyond a shortened grid,
    with ``grid_exact_to``: the last day whose windows the grid itself holds exactly (its values
    need no later rows); windows ending after it are read through ``series``."""
    n = as_of.size
    first = np.full(n, -1, np.int32)
    days_given = np.zeros(n, np.int32)
    idx = starts[0].astype(np.intp, copy=False)
    if idx.size:
        s = starts[1].astype(np.int64, copy=False)
        e = starts[2].astype(np.int64, copy=False)
        ok = s <= as_of[idx]
        f = np.full(n, np.iinfo(np.int64).max)
        np.minimum.at(f, idx[ok], s[ok])
        first = np.where(f == np.iinfo(np.int64).max, -1, f).astype(np.int32)
        dur = np.clip(np.minimum(e, as_of[idx]) - s + 1, 0, None)
        days_given = np.bincount(idx[ok], weights=dur[ok], minlength=n).astype(np.int32)
    out = np.full(n, None, dtype=object)
    anc0 = np.full(n, np.nan)
    who = np.flatnonzero(first >= 0)
    if not who.size:
        return GcsfResponse(first, days_given, out, anc0)
    w = table.gcsf_window_days
    s0 = first[who].astype(np.int64)
    # ANC of days s0-3 .. s0+w, one row per treated patient: from the grid where it holds them
    offsets = np.arange(-3, w + 1)
    day = s0[:, None] + offsets[None, :]
    inside = (day >= interp.first_day) & (day <= interp.last_day)
    col = np.clip(day - interp.first_day, 0, max(interp.n_days - 1, 0))
    vals = (
        np.where(inside, interp.values[who[:, None], col], np.nan)
        if interp.n_days
        else (np.full(day.shape, np.nan))
    )
    if series is not None:
        exact_to = interp.last_day if grid_exact_to is None else grid_exact_to
        for k in np.flatnonzero(s0 + w > exact_to):
            vals[k] = series(int(who[k]), int(s0[k]) - 3, int(s0[k]) + w)
    # ANC at the start: that day's value, else the last known value of the 3 days before
    known = ~np.isnan(vals[:, :4])
    last_known = 3 - np.argmax(known[:, ::-1], axis=1)
    start_val = np.where(known.any(axis=1), vals[np.arange(who.size), last_known], np.nan)
    anc0[who] = start_val
    with np.errstate(invalid="ignore"):
        level = np.where(
            start_val > table.gcsf_response_anc,
            table.gcsf_biphasic_target_anc,
            table.gcsf_response_anc,
        )
        # days s0+1 .. min(s0+w, as_of)
        hi = np.minimum(s0 + w, as_of[who].astype(np.int64))
        in_seg = (offsets[None, :] >= 1) & (day <= hi[:, None])
        responded = (in_seg & (vals > level[:, None])).any(axis=1)
    seen = (in_seg & ~np.isnan(vals)).any(axis=1)
    too_early = as_of[who].astype(np.int64) < s0 + w
    res = np.where(
        responded,
        RESPONDED,
        np.where(too_early, TOO_EARLY, np.where(seen, REFRACTORY, NO_ANC)),
    )
    out[who] = res.astype(object)
    return GcsfResponse(first, days_given, out, anc0)
