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


def gcsf_starts(events: pl.DataFrame, index: pl.DataFrame) -> pl.DataFrame:
    return (
        events.filter(drug_class_expr(DrugClass.GCSF) & (pl.col("start_day") >= 0))
        .join(index, on="patient_id", how="inner")
        .select("idx", "start_day", "end_day")
    )


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
    events: pl.DataFrame,
    index: pl.DataFrame,
    interp: DailyGrid,
    as_of: I32,
    table: TimingTable,
    series: Callable[[int, int, int], F] | None = None,
) -> GcsfResponse:
    """``series(i, lo, hi)`` gives patient ``i``'s interpolated ANC for days lo..hi; by default it
    is read from ``interp`` (the engine passes one that also reaches beyond a shortened grid)."""
    get = series or grid_series(interp)
    n = index.height
    starts = gcsf_starts(events, index)
    first = np.full(n, -1, np.int32)
    days_given = np.zeros(n, np.int32)
    if starts.height:
        idx = starts["idx"].to_numpy()
        s = starts["start_day"].to_numpy().astype(np.int64)
        e = starts["end_day"].fill_null(10**6).to_numpy().astype(np.int64)
        ok = s <= as_of[idx]
        f = np.full(n, np.iinfo(np.int64).max)
        np.minimum.at(f, idx[ok], s[ok])
        first = np.where(f == np.iinfo(np.int64).max, -1, f).astype(np.int32)
        dur = np.clip(np.minimum(e, as_of[idx]) - s + 1, 0, None)
        days_given = np.bincount(idx[ok], weights=dur[ok], minlength=n).astype(np.int32)
    out = np.full(n, None, dtype=object)
    anc0 = np.full(n, np.nan)
    has = first >= 0
    for i in np.nonzero(has)[0]:
        s0 = int(first[i])
        w = table.gcsf_window_days
        vals = get(int(i), s0 - 3, s0 + w)  # days s0-3 .. s0+w
        start_val = vals[3]
        if np.isnan(start_val):  # last known value in the 3 days before
            prev = vals[:4]
            known = prev[~np.isnan(prev)]
            start_val = known[-1] if known.size else np.nan
        anc0[i] = start_val
        level = (
            table.gcsf_biphasic_target_anc
            if start_val > table.gcsf_response_anc
            else table.gcsf_response_anc
        )
        hi = min(s0 + w, int(as_of[i]))
        seg = vals[4 : hi - s0 + 4] if hi > s0 else np.array([])
        if seg.size and np.nanmax(np.where(np.isnan(seg), -np.inf, seg)) > level:
            out[i] = RESPONDED
        elif int(as_of[i]) < s0 + w:
            out[i] = TOO_EARLY
        elif not np.any(~np.isnan(seg)):
            out[i] = NO_ANC
        else:
            out[i] = REFRACTORY
    return GcsfResponse(first, days_given, out, anc0)
