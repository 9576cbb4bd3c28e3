"""CAR-HEMATOTOX baseline score (Rejeski et al., Blood 2021), vectorised.

Five markers drawn before lymphodepletion: platelets, ANC, haemoglobin, CRP, ferritin; 0-7
points; low risk 0-1, high risk >= 2 (``rules/tables/hematotox.toml``). Baseline value of a
marker: the last one on or before the day lymphodepletion starts and within the table's baseline
window; when only post-lymphodepletion pre-infusion values exist they are used and the score is
flagged "not pre-lymphodepletion". With markers missing the score cannot be completed, but when
the points already counted reach the high-risk cut-off the patient is high risk regardless.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from cart_cytopenia.rules.tables import HematotoxTable

I8 = NDArray[np.int8]
F = NDArray[np.float64]
B = NDArray[np.bool_]
Obj = NDArray[np.object_]


@dataclass(frozen=True)
class Hematotox:
    score: I8  # -1 when it cannot be completed
    points_counted: I8  # points from the markers present
    high_risk: NDArray[np.int8]  # 1 high, 0 low, -1 cannot tell
    values: dict[str, F]  # baseline value per marker (canonical units)
    value_days: dict[str, NDArray[np.int32]]
    points: dict[str, I8]
    missing: Obj  # tuple of missing markers per patient (table order)
    not_pre_ld: B
    warnings: Obj  # tuple of warnings per patient


def baseline_values(
    labs: pl.DataFrame,
    index: pl.DataFrame,
    ld_start_day: pl.DataFrame,
    analytes: list[str],
    window_days: int,
) -> tuple[dict[str, F], dict[str, NDArray[np.int32]], dict[str, B], int]:
    """Last value per patient and analyte on or before LD start (within ``window_days``),
    else the last before infusion (flagged)."""
    n = index.height
    values: dict[str, F] = {a: np.full(n, np.nan) for a in analytes}
    days: dict[str, NDArray[np.int32]] = {a: np.full(n, -10_000, np.int32) for a in analytes}
    pre: dict[str, B] = {a: np.zeros(n, bool) for a in analytes}
    dtype = labs.schema["analyte"]
    marker = (  # the analyte's position in ``analytes`` (-1: not a marker), from its text
        pl.col("analyte")
        .cast(pl.String)
        .replace_strict({a: i for i, a in enumerate(analytes)}, default=-1)
        .cast(pl.Int16)
        .alias("m")
    )
    if "idx" in labs.columns and isinstance(dtype, pl.Enum):  # the engine's chunks
        # rows already carry the patient's position; markers found from the Enum's codes
        cats = dtype.categories.to_list()
        marker_of = np.array([analytes.index(c) if c in analytes else -1 for c in cats], np.int16)
        sub = labs.select(
            "idx",
            "day",
            "value",
            pl.Series("m", marker_of[labs["analyte"].to_physical().to_numpy()]),
        )
        ld_all = ld_start_day["ld_start_day"].to_numpy().astype(np.int64)
    elif "idx" in labs.columns:  # rows already carry the patient's position
        sub = labs.select(
            "idx",
            "day",
            "value",
            marker,
        )
        ld_all = ld_start_day["ld_start_day"].to_numpy().astype(np.int64)
    else:
        sub = labs.join(index, on="patient_id", how="inner").select(
            "idx",
            "day",
            "value",
            marker,
        )
        ld_all = (
            index.join(ld_start_day, on="patient_id", how="left")["ld_start_day"]
            .fill_null(-5)
            .to_numpy()
            .astype(np.int64)
        )
    if not sub.height:
        return values, days, pre, n
    idx = sub["idx"].to_numpy().astype(np.int64)
    day = sub["day"].to_numpy().astype(np.int64)
    val = sub["value"].to_numpy()
    m = sub["m"].to_numpy()
    ld = ld_all[idx]
    keep = (m >= 0) & (day < 0) & (day >= ld - window_days)
    idx, day, val, m, ld = idx[keep], day[keep], val[keep], m[keep], ld[keep]
    pre_ld = day <= ld
    # per patient and marker the last row in the order (on or before LD start, day, -value):
    # the last value on or before LD start (lowest of its day), else the last one after it
    order = np.lexsort((-val, day, pre_ld, m, idx))
    idx, day, val, m, pre_ld = idx[order], day[order], val[order], m[order], pre_ld[order]
    last = np.r_[(idx[1:] != idx[:-1]) | (m[1:] != m[:-1]), True]
    for i, a in enumerate(analytes):
        sel = last & (m == i)
        values[a][idx[sel]] = val[sel]
        days[a][idx[sel]] = day[sel]
        pre[a][idx[sel]] = pre_ld[sel]
    return values, days, pre, n


def score(
    labs: pl.DataFrame,
    index: pl.DataFrame,
    ld_start_day: pl.DataFrame,
    disease: Obj,
    product: Obj,
    table: HematotoxTable,
) -> Hematotox:
    analytes = [m.analyte for m in table.markers]
    values, days, pre, n = baseline_values(
        labs, index, ld_start_day, analytes, table.baseline_window_days
    )
    points: dict[str, I8] = {}
    total = np.zeros(n, np.int16)
    absent_bits = np.zeros(n, np.int64)  # bit j: marker j missing
    not_pre = np.zeros(n, bool)
    for j, m in enumerate(table.markers):
        pts = m.bands.evaluate(values[m.analyte])
        points[m.analyte] = pts
        total += np.where(pts >= 0, pts, 0)
        absent = pts < 0
        absent_bits |= absent.astype(np.int64) << j
        not_pre |= ~absent & ~pre[m.analyte]
    # the list of missing markers (in table order) for each pattern of absent markers: one
    # shared, immutable tuple per pattern
    patterns = np.empty(1 << len(table.markers), dtype=object)
    for bits in range(patterns.size):
        patterns[bits] = tuple(m.analyte for j, m in enumerate(table.markers) if bits >> j & 1)
    missing = patterns[absent_bits]
    any_missing = absent_bits != 0
    score_arr = np.where(any_missing, -1, total).astype(np.int8)
    high = np.where(total >= table.high_min_score, 1, np.where(any_missing, -1, 0)).astype(np.int8)
    warnings = np.empty(n, dtype=object)
    known: dict[tuple[bool, object, object], tuple[str, ...]] = {}
    for i, key in enumerate(zip(not_pre.tolist(), disease.tolist(), product.tolist(), strict=True)):
        w = known.get(key)
        if w is None:
            w = known[key] = _warnings(*key, table)
        warnings[i] = w
    return Hematotox(
        score_arr, total.astype(np.int8), high, values, days, points, missing, not_pre, warnings
    )


def _warnings(not_pre_ld: bool, d: object, p: object, table: HematotoxTable) -> tuple[str, ...]:
    w = []
    if not_pre_ld:
        w.append(
            "some baseline labs were drawn after lymphodepletion started: the score was validated "
            "on pre-lymphodepletion values"
        )
    if d not in table.validated_diseases:
        if d in table.extended_diseases:
            w.append(
                f"CAR-HEMATOTOX was validated in LBCL; its use in {d} rests on later, smaller studies"
            )
        else:
            w.append(f"CAR-HEMATOTOX was not validated in {d}; interpret with caution")
    elif p not in table.validated_products:
        w.append(f"CAR-HEMATOTOX was validated with axi-cel and tisa-cel, not {p}")
    return tuple(w)
