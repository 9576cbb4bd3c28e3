"""CAR-HEMATOTOX baseline score (Rejeski et al., Blood 2021), vectorised.

Five markers drawn before lymphodepletion: platelets, ANC, haemoglobin, CRP, ferritin; 0-7
points; low risk 0-1, high risk >= 2 (``rules/tables/hematotox.toml``). Baseline value of a
marker: the last one on or before the day lymphodepletion starts and within the table's baseline
window; when only post-lymphodepletion pre-infusion values exist they are used and the score is
flagged "not pre-lymphodepletion". With markers missing the score cannot be completed, but when
the points already counted reach the high-risk cut-off the patient is high risk regardless.

A value that is not used is named, never dropped silently (``Hematotox.ignored``, also among the
warnings): one drawn after lymphodepletion began when a pre-lymphodepletion value of the marker
was used, and one drawn before the baseline window when the marker has no value in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from cart_cytopenia.domain.analytes import analyte
from cart_cytopenia.rules.tables import HematotoxTable

I8 = NDArray[np.int8]
F = NDArray[np.float64]
B = NDArray[np.bool_]
Obj = NDArray[np.object_]


IGNORED_TOO_OLD, IGNORED_AFTER_LD = 0, 1


@dataclass(frozen=True)
class IgnoredRows:
    """Baseline values not used, the latest per patient, marker and reason: patient position,
    marker position, day, value (canonical unit), reason (``IGNORED_*``), and the day of the value
    used instead (-10000: none)."""

    idx: NDArray[np.int64]
    marker: NDArray[np.integer]
    day: NDArray[np.int64]
    value: F
    why: NDArray[np.int8]
    used_day: NDArray[np.int64]


@dataclass(frozen=True)
class IgnoredValues:
    """``IgnoredRows`` with each row's reason and the text naming it (columns ``reason`` and
    ``text`` of ``named``, in the rows' order; read per patient, so kept in polars)."""

    rows: IgnoredRows
    named: pl.DataFrame

    def of(self, i: int) -> list[int]:
        """Positions of patient ``i``'s rows."""
        return np.flatnonzero(self.rows.idx == i).tolist()

    def reason(self, k: int) -> str:
        return str(self.named["reason"][k])

    def text(self, k: int) -> str:
        return str(self.named["text"][k])


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
    # the same as the grade table writes them: markers joined by ";", warnings by " | ", None
    # for none (one shared text per distinct pattern)
    missing_text: Obj
    warnings_text: Obj
    ignored: IgnoredValues  # values not used (also named in ``warnings_text``, not ``warnings``)


def baseline_values(
    rows: MarkerRows,
    ld_start_day: NDArray[np.integer],
    analytes: list[str],
    window_days: int,
) -> tuple[dict[str, F], dict[str, NDArray[np.int32]], dict[str, B], int, IgnoredRows]:
    """Last value per patient and analyte on or before LD start (within ``window_days``),
    else the last before infusion (flagged), and the values not used (``IgnoredRows``).
    ``rows``: lab rows (patient position, day, value, position of the analyte in ``analytes`` or
    -1); ``ld_start_day`` per patient."""
    n = ld_start_day.size
    values: dict[str, F] = {a: np.full(n, np.nan) for a in analytes}
    days: dict[str, NDArray[np.int32]] = {a: np.full(n, -10_000, np.int32) for a in analytes}
    pre: dict[str, B] = {a: np.zeros(n, bool) for a in analytes}
    idx = rows.idx.astype(np.int64, copy=False)
    if not idx.size:
        return values, days, pre, n, _ignored(rows, ld_start_day, window_days, values, days, pre)
    day = rows.day.astype(np.int64, copy=False)
    val = rows.value
    m = rows.marker
    ld = ld_start_day.astype(np.int64, copy=False)[idx]
    keep = (m >= 0) & (day < 0) & (day >= ld - window_days)
    idx, day, val, m, ld = idx[keep], day[keep], val[keep], m[keep], ld[keep]
    pre_ld = day <= ld
    # per patient and marker the last row in the order (on or before LD start, day, -value):
    # the last value on or before LD start (lowest of its day), else the last one after it.
    # One sort on a key that holds the first four (days before infusion fit in 20 bits), with
    # the value as a second key
    span = int(-day.min()) + 1 if day.size else 1
    if span < 1 << 20 and len(analytes) < 1 << 4 and n < 1 << 38:
        key = ((idx * len(analytes) + m) * 2 + pre_ld) * span + (day + span - 1)
        order = np.lexsort((-val, key))
    else:
        order = np.lexsort((-val, day, pre_ld, m, idx))
    idx, day, val, m, pre_ld = idx[order], day[order], val[order], m[order], pre_ld[order]
    last = np.r_[(idx[1:] != idx[:-1]) | (m[1:] != m[:-1]), True]
    for i, a in enumerate(analytes):
        sel = last & (m == i)
        values[a][idx[sel]] = val[sel]
        days[a][idx[sel]] = day[sel]
        pre[a][idx[sel]] = pre_ld[sel]
    return values, days, pre, n, _ignored(rows, ld_start_day, window_days, values, days, pre)


def _ignored(
    rows: MarkerRows,
    ld_start_day: NDArray[np.integer],
    window_days: int,
    values: dict[str, F],
    days: dict[str, NDArray[np.int32]],
    pre: dict[str, B],
) -> IgnoredRows:
    """The latest value per patient, marker and reason that the score does not use: drawn after
    LD start when a pre-LD value was used, or before the window when the marker has no value."""
    idx = rows.idx.astype(np.int64, copy=False)
    day = rows.day.astype(np.int64, copy=False)
    m = rows.marker.astype(np.int64, copy=False)
    ok = (m >= 0) & (day < 0)
    idx, day, m, val = idx[ok], day[ok], m[ok], rows.value[ok]
    ld = ld_start_day.astype(np.int64, copy=False)[idx]
    # per row: whether the patient's marker has a value used, its day, and whether it is pre-LD
    has_used = ~np.isnan(np.stack(list(values.values()))[m, idx])
    used_pre = np.stack(list(pre.values()))[m, idx]
    too_old = (day < ld - window_days) & ~has_used
    after_ld = (day > ld) & has_used & used_pre
    take = too_old | after_ld
    if not take.any():
        empty = np.zeros(0, np.int64)
        return IgnoredRows(empty, empty, empty, np.zeros(0), np.zeros(0, np.int8), empty)
    why = np.where(after_ld, IGNORED_AFTER_LD, IGNORED_TOO_OLD).astype(np.int8)
    idx, day, m, val, why = idx[take], day[take], m[take], val[take], why[take]
    # the latest row per (patient, marker, reason); on one day the lowest value
    order = np.lexsort((-val, day, why, m, idx))
    idx, day, m, val, why = idx[order], day[order], m[order], val[order], why[order]
    last = np.r_[(idx[1:] != idx[:-1]) | (m[1:] != m[:-1]) | (why[1:] != why[:-1]), True]
    idx, day, m, val, why = idx[last], day[last], m[last], val[last], why[last]
    used_day = np.stack(list(days.values()))[m, idx].astype(np.int64)
    replaced = np.where(why == IGNORED_AFTER_LD, used_day, -10_000)
    return IgnoredRows(idx, m, day, val, why, replaced)


@dataclass(frozen=True)
class MarkerRows:
    """Lab rows before infusion: patient position, day, value (canonical unit) and the position
    of the row's analyte among the table's markers (-1: not a marker)."""

    idx: NDArray[np.integer]
    day: NDArray[np.integer]
    value: F
    marker: NDArray[np.integer]


def score(
    rows: MarkerRows,
    ld_start_day: NDArray[np.integer],
    disease: Obj,
    product: Obj,
    table: HematotoxTable,
    disease_product: NDArray[np.int64],
) -> Hematotox:
    """Score every patient (``ld_start_day``, ``disease``, ``product``: one per patient) from
    ``rows`` (``MarkerRows``, markers numbered in the table's order). ``disease_product``: a
    number per patient that is the same exactly when disease and product are."""
    analytes = [m.analyte for m in table.markers]
    values, days, pre, n, ignored_rows = baseline_values(
        rows, ld_start_day, analytes, table.baseline_window_days
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
    pattern_texts = np.array([";".join(p) or None for p in patterns], dtype=object)
    any_missing = absent_bits != 0
    score_arr = np.where(any_missing, -1, total).astype(np.int8)
    high = np.where(total >= table.high_min_score, 1, np.where(any_missing, -1, 0)).astype(np.int8)
    # the warnings depend on (not pre-LD, disease, product) only: made once per distinct
    # combination and shared (immutable tuples)
    warnings = np.empty(n, dtype=object)
    warnings_text = np.full(n, None, dtype=object)
    if n:
        combo = disease_product.astype(np.int64) * 2 + not_pre
        # one patient of each combination (``first``) and each patient's combination (``which``)
        _, first, which = np.unique(combo, return_index=True, return_inverse=True)
        made = np.empty(first.size, dtype=object)
        for k, i in enumerate(first.tolist()):
            made[k] = _warnings(bool(not_pre[i]), disease[i], product[i], table)
        warnings[:] = made[which]
        warnings_text[:] = np.array([" | ".join(w) or None for w in made], dtype=object)[which]
    ignored = _name_ignored(ignored_rows, analytes, ld_start_day, table, warnings_text)
    return Hematotox(
        score_arr,
        total.astype(np.int8),
        high,
        values,
        days,
        points,
        missing,
        not_pre,
        warnings,
        pattern_texts[absent_bits],
        warnings_text,
        ignored,
    )


def _name_ignored(
    rows: IgnoredRows,
    analytes: list[str],
    ld_start_day: NDArray[np.integer],
    table: HematotoxTable,
    warnings_text: Obj,
) -> IgnoredValues:
    """The values not used, each with its reason and a text naming it; the texts are added to
    the patients' grade-table warnings (``warnings_text``, in place). Vectorised (polars): a
    cohort may have one for most patients (a count drawn after LD start beside a pre-LD one)."""
    if not rows.idx.size:
        return IgnoredValues(rows, pl.DataFrame(schema={"reason": pl.String, "text": pl.String}))
    codes = list(range(len(analytes)))
    labels = [analyte(a).label for a in analytes]
    units = [analyte(a).canonical_unit.ucum for a in analytes]
    df = pl.LazyFrame(
        {
            "idx": rows.idx,
            "marker": rows.marker.astype(np.int64),
            "day": rows.day,
            "value": rows.value,
            "after_ld": rows.why == IGNORED_AFTER_LD,
            "used": rows.used_day,
            "ld": ld_start_day.astype(np.int64)[rows.idx],
        }
    )
    value = pl.col("value").round(4).cast(pl.String).str.replace(r"\.0$", "")
    reason = (
        pl.when(pl.col("after_ld"))
        .then(
            pl.format(
                "drawn after lymphodepletion began (day {}); the pre-lymphodepletion value of "
                "day {} was used",
                "ld",
                "used",
            )
        )
        .otherwise(
            pl.format(
                f"drawn more than {table.baseline_window_days} days before lymphodepletion "
                "(day {}), outside the baseline window",
                "ld",
            )
        )
        .alias("reason")
    )
    named = df.with_columns(reason).with_columns(
        pl.format(
            "{} {} {} of day {} not used for CAR-HEMATOTOX: {}",
            pl.col("marker").replace_strict(codes, labels, return_dtype=pl.String),
            value,
            pl.col("marker").replace_strict(codes, units, return_dtype=pl.String),
            "day",
            "reason",
        ).alias("text")
    )
    per = named.group_by("idx", maintain_order=True).agg(pl.col("text").str.join(" | "))
    # (one collect for both: each costs a round trip to polars' thread pool)
    named_df, per_df = pl.collect_all([named.select("reason", "text"), per])
    who = per_df["idx"].to_numpy()
    warnings_text[who] = [
        t if w is None else f"{w} | {t}"
        for w, t in zip(warnings_text[who].tolist(), per_df["text"].to_list(), strict=True)
    ]
    return IgnoredValues(rows, named_df)


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
