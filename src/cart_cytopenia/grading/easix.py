"""EASIX and m-EASIX around CAR T-cell infusion, vectorised (``rules/tables/easix.toml``).

EASIX = LDH (U/L) x creatinine (mg/dL) / platelets (10^9/L); m-EASIX uses CRP (mg/dL) in place of
creatinine (Pennisi et al., Blood Adv 2021). Two time points: before lymphodepletion (each value
the last on or before the day lymphodepletion starts, within the table's window, as for
CAR-HEMATOTOX) and day 0-3 (the highest score of a day that has all its values; the day's worst
value of each analyte: the highest LDH, creatinine and CRP, the lowest platelet count). A score
with a value missing is not computed (NaN) and the missing analytes are named. A cut-off is
applied only where the table gives a published one (EASIX before lymphodepletion, Korell 2022).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cart_cytopenia.grading.hematotox import MarkerRows, baseline_values
from cart_cytopenia.rules.tables import EasixTable

F = NDArray[np.float64]
I8 = NDArray[np.int8]
I32 = NDArray[np.int32]
B = NDArray[np.bool_]
Obj = NDArray[np.object_]

ANALYTES = ("ldh", "creatinine", "crp", "platelets")  # the order of ``MarkerRows.marker``
PARTS = {"easix": ("ldh", "creatinine", "platelets"), "m_easix": ("ldh", "crp", "platelets")}


@dataclass(frozen=True)
class Easix:
    baseline: dict[str, F]  # "easix", "m_easix": before lymphodepletion, NaN when not computed
    baseline_missing: dict[str, Obj]  # per score: the analytes missing, ";"-joined (None: none)
    baseline_not_pre_ld: B  # a value used was drawn after lymphodepletion started
    early: dict[str, F]  # highest of day 0-3
    early_day: dict[str, I32]  # its day (-1: none)
    above_cutoff: I8  # EASIX before lymphodepletion above the table's cut-off: 1, 0, -1 unknown


def _score(values: dict[str, F], name: str) -> F:
    ldh, other, plt = (values[a] for a in PARTS[name])
    with np.errstate(divide="ignore", invalid="ignore"):
        out: F = np.where(plt > 0, ldh * other / plt, np.nan)
    return out


def _early(
    rows: MarkerRows, as_of: I32, days: tuple[int, int]
) -> tuple[dict[str, F], dict[str, I32]]:
    n = as_of.size
    d0, d1 = days
    width = d1 - d0 + 1
    idx = rows.idx.astype(np.int64, copy=False)
    day = rows.day.astype(np.int64, copy=False)
    keep = (rows.marker >= 0) & (day >= d0) & (day <= d1) & (day <= as_of[idx])
    grids = {a: np.full((n, width), np.nan) for a in ANALYTES}
    for j, a in enumerate(ANALYTES):
        sel = keep & (rows.marker == j)
        worst = np.fmin if a == "platelets" else np.fmax  # the day's worst value
        worst.at(grids[a], (idx[sel], day[sel] - d0), rows.value[sel])
    out, out_day = {}, {}
    for name in PARTS:
        s = _score(grids, name)
        has = ~np.isnan(s).all(axis=1)
        best = np.argmax(np.where(np.isnan(s), -np.inf, s), axis=1)
        out[name] = np.where(has, s[np.arange(n), best], np.nan)
        out_day[name] = np.where(has, best + d0, -1).astype(np.int32)
    return out, out_day


def _missing(values: dict[str, F], parts: tuple[str, ...]) -> Obj:
    """Per patient the analytes of ``parts`` without a value, ";"-joined (None: none missing);
    one text per pattern."""
    n = values[parts[0]].size
    bits = np.zeros(n, np.int64)
    for j, a in enumerate(parts):
        bits |= np.isnan(values[a]).astype(np.int64) << j
    out = np.full(n, None, dtype=object)
    for b in np.unique(bits):
        if b:
            out[bits == b] = ";".join(a for j, a in enumerate(parts) if b >> j & 1)
    return out


def score(
    rows: MarkerRows, ld_start_day: NDArray[np.integer], as_of: I32, table: EasixTable
) -> Easix:
    """Both scores at both time points for every patient. ``rows``: lab rows up to the last
    day of the early window, ``marker`` the analyte's position in ``ANALYTES`` (-1: other);
    ``as_of``: the last day each patient may be read."""
    n = ld_start_day.size
    values, _days, pre, _, _ignored = baseline_values(
        rows, ld_start_day, list(ANALYTES), table.baseline_window_days
    )
    baseline = {name: _score(values, name) for name in PARTS}
    missing = {name: _missing(values, parts) for name, parts in PARTS.items()}
    after_ld = np.zeros(n, bool)
    for a in ANALYTES:
        after_ld |= ~np.isnan(values[a]) & ~pre[a]
    early, early_day = _early(rows, as_of, table.early_days)
    above = np.full(n, -1, np.int8)
    e = baseline["easix"]
    known = ~np.isnan(e)
    above[known] = (e[known] > table.baseline_cutoff).astype(np.int8)
    return Easix(baseline, missing, after_ld, early, early_day, above)
