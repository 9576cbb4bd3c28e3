"""IEC-HS by the ASTCT criteria, carHLH and the HScore, vectorised (``rules/tables/iec_hs.toml``).

Two steps, both over arrays of patients (one implementation for one patient and a cohort):

1. ``lab_features`` reads what the lab and event tables hold: the ferritin criterion (above 2x
   the ULN, or the baseline when that is above the ULN, AND rising), its onset day relative to
   the CRS record, the principal manifestations that are laboratory values (transaminases,
   fibrinogen, new or worsening cytopenia), the carHLH laboratory criteria and the HScore's
   laboratory items.
2. ``classify`` adds what only the course holds (marrow haemophagocytosis, temperatures,
   organomegaly, known immunosuppression; ``Clinical``, unknown in a cohort table) and decides
   the three read-outs.

Every criterion is three-valued (1 present, 0 absent, -1 unknown): a missing input is listed as
missing, never taken as normal. No IEC-HS grade is computed: the paper's grading table was not
read (the table's ``not_read``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cart_cytopenia.domain.course import BoneMarrow, ClinicalFinding, Course, Fever, Finding
from cart_cytopenia.grading import ferritin_trend
from cart_cytopenia.grading.ferritin_trend import NO_LIMIT, Trend
from cart_cytopenia.grading.hematotox import MarkerRows
from cart_cytopenia.rules.settings import ReferenceRanges
from cart_cytopenia.rules.tables import IecHsTable, PointBands

F = NDArray[np.float64]
I8 = NDArray[np.int8]
I32 = NDArray[np.int32]
I64 = NDArray[np.int64]
Obj = NDArray[np.object_]
Rows = tuple[I64, I64, F]  # (patient position, day, value), sorted by position then day

# the order of the lab rows' ``marker`` (their analyte's position here; -1: other)
ANALYTES = (
    "ferritin",
    "ast",
    "alt",
    "fibrinogen",
    "triglycerides",
    "ldh",
    "bilirubin",
    "creatinine",
)
COUNTS = ("anc", "platelets", "hb", "wbc")  # day rows from the engine's count grids
OPEN_END = 10**6  # a CRS without an end day

# ASTCT status codes (grade-table text in STATUS)
NOT_ASSESSABLE, NOT_MET, SUSPECTED, MET = 0, 1, 2, 3
STATUS = ("not assessable", "not met", "suspected", "met")  # (see ``classify``)
# onset relative to CRS (the reason behind the timing criterion)
TIMING = {
    0: "no ferritin onset",
    1: "after CRS resolved",
    2: "during CRS (resolving or worsening after improvement cannot be told from the record)",
    3: "CRS end day not recorded",
    4: "no CRS recorded",
    5: "before CRS",
    6: "no event table (CRS unknown)",
}
# what the ASTCT status could not read (bit positions)
ASTCT_MISSING = (
    "ferritin after infusion",
    "ferritin trend (an earlier value within the rise window, or a rise at its rate in the look-back)",
    "CRS record with start and end days (onset relative to CRS)",
    "marrow morphology (haemophagocytosis)",
    "AST/ALT",
    "fibrinogen",
    "blood counts before and after onset (new or worsening cytopenia)",
)
HSCORE_ITEMS = (
    "known immunosuppression",
    "temperature",
    "organomegaly",
    "cytopenias",
    "ferritin",
    "triglycerides",
    "fibrinogen",
    "AST",
    "marrow haemophagocytosis",
)
CARHLH_MISSING = (
    "ferritin during CRS",
    "liver (bilirubin, AST/ALT)",
    "kidney (creatinine)",
    "lung (grade >= 3 pulmonary oedema: not in the course model)",
    "marrow morphology (haemophagocytosis)",
)


def _take(obj: Any, i: int) -> Any:
    """The same dataclass with every array cut to element ``i`` (one patient)."""
    return type(obj)(
        **{
            f.name: (v[i : i + 1] if isinstance(v := getattr(obj, f.name), np.ndarray) else v)
            for f in fields(obj)
        }
    )


def joined(bits: I64, names: tuple[str, ...]) -> Obj:
    """Per patient the names of the set bits, "; "-joined (None: none); one text per pattern."""
    out = np.full(bits.size, None, dtype=object)
    for b in np.unique(bits):
        if b:
            out[bits == b] = "; ".join(x for j, x in enumerate(names) if int(b) >> j & 1)
    return out


def _window(rows: Rows, lo: I64, hi: I64, fn: Any, n: int) -> F:
    """Per patient ``fn`` (np.fmax / np.fmin) of the rows with lo <= day <= hi (NaN: none)."""
    idx, day, val = rows
    out = np.full(n, np.nan)
    if idx.size:
        sel = (day >= lo[idx]) & (day <= hi[idx])
        fn.at(out, idx[sel], val[sel])
    return out


def _ints(rows: tuple[NDArray[Any], ...]) -> Rows:
    """(position, day, value-or-int) rows with int64 positions and days."""
    return rows[0].astype(np.int64), rows[1].astype(np.int64), rows[2]


def times(multiple: float, limit: float) -> float:
    """``multiple`` x ``limit`` as written (3 x 1.2 is 3.6, not 3.5999999999999996): a value
    equal to the written limit is not above it."""
    return round(multiple * limit, 9)


def _tri(flag: NDArray[np.bool_], known: NDArray[np.bool_]) -> I8:
    """1 where ``flag``, else 0 where ``known``, else -1."""
    return np.where(flag, 1, np.where(known, 0, -1)).astype(np.int8)


# --------------------------------------------------------------------------- step 1: laboratory


@dataclass(frozen=True)
class LabFeatures:
    as_of: I32
    ferritin_ref: F  # the reference the ferritin is compared with (ULN or a higher baseline)
    baseline_ferritin: F
    ferritin_state: I8  # 1 elevated and rising, -1 elevated with no earlier value, 0 not, -2 none
    onset_day: I32  # the ferritin criterion's day (-1: none)
    onset_value: F
    onset_ref_value: F  # the earlier ferritin its trend was read against (ferritin_trend)
    onset_ref_day: I32  # that value's day (-1: none in the look-back)
    onset_ref_fold: F  # the fold a rise against it needs
    timing: I8  # onset relative to CRS: 1 criterion met, 0 not met, -1 unknown
    timing_reason: I8  # key of TIMING
    crs_end: I32  # -1: no CRS or no end day
    transaminases: I8
    ast_max: F
    alt_max: F
    fibrinogen: I8
    fibrinogen_min: F
    cytopenia: I8
    cytopenic: Obj  # the lineages that are new or worse (text), None
    ldh_max: F
    triglycerides_max: F
    bilirubin_max: F
    carhlh_ferritin: I8  # peak during CRS above the cut-off (-1: no value during CRS)
    carhlh_ferritin_peak: F
    carhlh_liver: I8
    carhlh_kidney: I8
    carhlh_crs: I8  # 1 CRS recorded, 0 none recorded, -1 unknown (no event table)
    hscore_anchor: I32  # the day the HScore window is centred on
    h_ferritin: F
    h_triglycerides: F
    h_fibrinogen: F
    h_ast: F
    h_counts: dict[str, F]  # lowest hb, wbc, platelets in the HScore window

    def take(self, i: int) -> LabFeatures:
        out: LabFeatures = _take(self, i)
        object.__setattr__(out, "h_counts", {k: v[i : i + 1] for k, v in self.h_counts.items()})
        return out


def _split(idx: I64, day: I64, val: F, marker: NDArray[np.integer]) -> dict[str, Rows]:
    """The lab rows per analyte of ``ANALYTES`` (sorted by patient, then day)."""
    out = {}
    for j, a in enumerate(ANALYTES):
        sel = marker == j
        i, d, v = idx[sel], day[sel], val[sel]
        step_i, step_d = np.diff(i), np.diff(d)
        if not ((step_i > 0) | ((step_i == 0) & (step_d >= 0))).all():  # (they mostly are)
            order = np.lexsort((d, i))
            i, d, v = i[order], d[order], v[order]
        out[a] = (i, d, v)
    return out


def _ferritin_rows(
    fer: Rows, ref: F, crs_end: I64, t: IecHsTable, as_of: I32
) -> tuple[Rows, NDArray[np.bool_], NDArray[np.bool_], Trend]:
    """Ferritin after infusion up to ``as_of``: rows, elevated-and-rising, elevated with the
    trend unknown, and each row's trend (``ferritin_trend``: the one convention of "rising").
    For a value drawn on or after a recorded CRS end the earlier values are those from that end
    day on: the rise must follow the CRS, not be the CRS's own (``crs_end``: -1 none, OPEN_END
    unknown). The earlier values may lie before infusion (the baseline)."""
    idx, day, val = fer
    end = crs_end[idx]
    since = np.where((end >= 0) & (end < OPEN_END) & (day >= end), end, NO_LIMIT)
    keep = (day > 0) & (day <= as_of[idx])
    tr = ferritin_trend.trend(idx, day, val, since, t)
    elevated = val > np.round(t.ferritin_multiple * ref[idx], 9)
    rising = elevated & (tr.state == ferritin_trend.RISING)
    unknown = elevated & (tr.state == ferritin_trend.UNKNOWN)
    kept = Trend(tr.state[keep], tr.ref_value[keep], tr.ref_day[keep], tr.ref_fold[keep])
    return (idx[keep], day[keep], val[keep]), rising[keep], unknown[keep], kept


def _timing(day: I64, start: I64, end: I64, recorded: bool) -> tuple[I8, I8]:
    """Each onset candidate's timing criterion (1/0/-1) and its reason (key of TIMING)."""
    reason = np.select(
        [start < 0, day < start, end >= OPEN_END, day >= end],
        [4, 5, 3, 1],
        2,
    ).astype(np.int8)
    if not recorded:
        reason[:] = 6
    crit = np.select([reason == 1, reason == 5], [1, 0], -1).astype(np.int8)
    return crit, reason


def _crs(crs: tuple[NDArray[Any], ...], n: int) -> tuple[I64, I64]:
    """Per patient the first CRS start and the last CRS end (OPEN_END: an end not recorded)."""
    idx, start, end = (x.astype(np.int64) for x in crs)
    s = np.full(n, np.iinfo(np.int64).max)
    e = np.full(n, -1, np.int64)
    if idx.size:
        np.minimum.at(s, idx, start)
        np.maximum.at(e, idx, end)
    s[s == np.iinfo(np.int64).max] = -1
    return s, e


def _onset(
    fer: Rows,
    rising: NDArray[np.bool_],
    unknown: NDArray[np.bool_],
    crs: tuple[I64, I64],
    n: int,
    recorded: bool,
) -> tuple[I8, I64, I64, I8, I8]:
    """Per patient the onset row (position in ``fer``, -1 none), the ferritin state, the timing
    criterion and its reason. Preference (then the earliest day): after CRS resolved rising, then
    with the trend unknown; timing unknown (during CRS, no end, no record) rising, then with the
    trend unknown; rising before CRS."""
    idx, day, _ = fer
    start, end = crs
    crit, reason = _timing(day, start[idx], end[idx], recorded)
    rank = np.select(
        [
            rising & (crit == 1),
            unknown & (crit == 1),
            rising & (crit == -1),
            unknown & (crit == -1),
            rising,
        ],
        [0, 1, 2, 3, 4],
        9,
    )
    order = np.lexsort((day, rank, idx))
    first = order[np.r_[True, idx[order][1:] != idx[order][:-1]]] if idx.size else order
    first = first[rank[first] < 9]
    has = np.zeros(n, bool)
    has[idx[first]] = True
    pos = np.full(n, -1, np.int64)
    pos[idx[first]] = first
    state = np.full(n, -2, np.int8)
    if idx.size:
        state[np.unique(idx)] = 0
    pick = pos[has]
    state[has] = np.where(rising[pick], 1, -1)
    t_crit = np.full(n, -1, np.int8)
    t_reason = np.zeros(n, np.int8)
    t_crit[has], t_reason[has] = crit[pick], reason[pick]
    onset = np.full(n, -1, np.int64)
    onset[has] = day[pick]
    return state, pos, onset, t_crit, t_reason


def _cytopenia(counts: dict[str, Rows], lo: I64, hi: I64, t: IecHsTable, n: int) -> tuple[I8, Obj]:
    """New or worsening cytopenia: a lineage's lowest value in [lo, hi] below its limit and
    below its lowest value in the window before (or none then)."""
    before = t.window_before_days
    present = np.zeros(n, np.int64)
    known_all = np.ones(n, bool)
    for j, a in enumerate(("anc", "platelets", "hb")):
        now = _window(counts[a], lo, hi, np.fmin, n)
        then = _window(counts[a], lo - before, lo - 1, np.fmin, n)
        worse = (now < t.cytopenia_below[a]) & (np.isnan(then) | (now < then))
        present |= worse.astype(np.int64) << j
        known_all &= ~np.isnan(now)
    names = ("neutrophils", "platelets", "red cells")
    return _tri(present > 0, known_all), joined(present, names)


def _carhlh_labs(
    labs: dict[str, Rows], crs: tuple[I64, I64], hi: I64, t: IecHsTable, ranges: ReferenceRanges
) -> tuple[F, I8, I8]:
    """carHLH's laboratory half: the peak ferritin during CRS and, from the CRS start on, the
    liver and kidney criteria (1/0/-1)."""
    n = hi.size
    start, end = crs
    c_lo = np.where(start >= 0, start, hi + 1)
    c_hi = np.minimum(np.where(end >= OPEN_END, hi, end), hi)
    peak = _window(labs["ferritin"], c_lo, c_hi, np.fmax, n)
    bili = _window(labs["bilirubin"], c_lo, hi, np.fmax, n)
    c_ast = _window(labs["ast"], c_lo, hi, np.fmax, n)
    c_alt = _window(labs["alt"], c_lo, hi, np.fmax, n)
    crea = _window(labs["creatinine"], c_lo, hi, np.fmax, n)
    ct = t.carhlh_transaminase_uln_multiple
    liver = (
        (bili > times(t.carhlh_bilirubin_uln_multiple, ranges.bilirubin_uln_mg_dl))
        | (c_ast > times(ct, ranges.ast_uln_u_l))
        | (c_alt > times(ct, ranges.alt_uln_u_l))
    )
    liver_known = ~np.isnan(bili) & ~(np.isnan(c_ast) & np.isnan(c_alt))
    kidney = crea > times(t.carhlh_creatinine_uln_multiple, ranges.creatinine_uln_mg_dl)
    return peak, _tri(liver, liver_known), _tri(kidney, ~np.isnan(crea))


def _hscore_window(
    labs: dict[str, Rows], counts: dict[str, Rows], onset: I64, hi: I64, t: IecHsTable
) -> tuple[I64, I64, I64]:
    """The HScore's day and window: around the onset day, else before the patient's last value
    up to the day of assessment (a retrospective table is "as of" all data)."""
    last_seen = np.full(hi.size, -1, np.int64)
    for i, d, _ in (*labs.values(), *counts.values()):
        np.maximum.at(last_seen, i[d <= hi[i]], d[d <= hi[i]])
    anchor = np.where(onset >= 0, onset, np.where(last_seen >= 0, last_seen, np.minimum(hi, 0)))
    return anchor, anchor - t.hscore_window_days, np.minimum(anchor + t.hscore_window_days, hi)


def _baseline(rows: Rows, window_days: int, n: int) -> F:
    """The last value on or before day 0 within the window (rows are in day order)."""
    i, d, v = rows
    pre = (d <= 0) & (d >= -window_days)
    out = np.full(n, np.nan)
    bi, bv = i[pre], v[pre]
    last = np.r_[bi[1:] != bi[:-1], True] if bi.size else np.zeros(0, bool)
    out[bi[last]] = bv[last]
    return out


def lab_features(
    lab: MarkerRows,
    counts: dict[str, tuple[NDArray[Any], ...]],
    crs: tuple[NDArray[Any], ...],
    events_recorded: bool,
    as_of: I32,
    t: IecHsTable,
    ranges: ReferenceRanges,
) -> LabFeatures:
    """Step 1 for every patient. ``lab``: rows (position, day, value, analyte position in
    ``ANALYTES`` or -1) from the ferritin baseline window on; ``counts``: day rows (position,
    day, value) of ``COUNTS`` up to ``as_of``; ``crs``: CRS rows (position, start, end with
    OPEN_END when not recorded)."""
    n = as_of.size
    labs = _split(
        lab.idx.astype(np.int64), lab.day.astype(np.int64), lab.value, np.asarray(lab.marker)
    )
    counts_i = {a: _ints(counts[a]) for a in COUNTS}
    hi = as_of.astype(np.int64)
    base = _baseline(labs["ferritin"], t.ferritin_baseline_window_days, n)
    uln = ranges.ferritin_uln_ng_ml
    ref = np.where(base > uln, base, uln)
    crs_se = _crs(crs, n)
    fer, rising, unknown, tr = _ferritin_rows(labs["ferritin"], ref, crs_se[1], t, as_of)
    state, pos, onset, t_crit, t_reason = _onset(fer, rising, unknown, crs_se, n, events_recorded)
    has, pick = pos >= 0, pos[pos >= 0]
    onset_value, ref_value, ref_fold = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    ref_day = np.full(n, -1, np.int32)
    onset_value[has], ref_value[has] = fer[2][pick], tr.ref_value[pick]
    ref_day[has], ref_fold[has] = tr.ref_day[pick], tr.ref_fold[pick]
    lo = np.where(onset >= 0, onset - t.window_before_days, 1)
    ast = _window(labs["ast"], lo, hi, np.fmax, n)
    alt = _window(labs["alt"], lo, hi, np.fmax, n)
    m = t.transaminase_uln_multiple
    high_t = (ast > times(m, ranges.ast_uln_u_l)) | (alt > times(m, ranges.alt_uln_u_l))
    fib = _window(labs["fibrinogen"], lo, hi, np.fmin, n)
    # cytopenia: from the onset day on against the days before it (else the whole course)
    cyt, cytopenic = _cytopenia(counts_i, np.where(onset >= 0, onset, 1), hi, t, n)
    peak, liver, kidney = _carhlh_labs(labs, crs_se, hi, t, ranges)
    in_crs = crs_se[0] >= 0
    end = crs_se[1]
    anchor, h_lo, h_hi = _hscore_window(labs, counts_i, onset, hi, t)
    return LabFeatures(
        as_of=as_of,
        ferritin_ref=ref,
        baseline_ferritin=base,
        ferritin_state=state,
        onset_day=onset.astype(np.int32),
        onset_value=onset_value,
        onset_ref_value=ref_value,
        onset_ref_day=ref_day,
        onset_ref_fold=ref_fold,
        timing=t_crit,
        timing_reason=t_reason,
        crs_end=np.where((end >= 0) & (end < OPEN_END), end, -1).astype(np.int32),
        transaminases=_tri(high_t, ~(np.isnan(ast) & np.isnan(alt))),
        ast_max=ast,
        alt_max=alt,
        fibrinogen=_tri(fib < t.fibrinogen_below, ~np.isnan(fib)),
        fibrinogen_min=fib,
        cytopenia=cyt,
        cytopenic=cytopenic,
        ldh_max=_window(labs["ldh"], lo, hi, np.fmax, n),
        triglycerides_max=_window(labs["triglycerides"], lo, hi, np.fmax, n),
        bilirubin_max=_window(labs["bilirubin"], lo, hi, np.fmax, n),
        carhlh_ferritin=_tri(peak > t.carhlh_ferritin_above, ~np.isnan(peak)),
        carhlh_ferritin_peak=peak,
        carhlh_liver=liver,
        carhlh_kidney=kidney,
        carhlh_crs=np.full(n, -1, np.int8) if not events_recorded else in_crs.astype(np.int8),
        hscore_anchor=anchor.astype(np.int32),
        h_ferritin=_window(labs["ferritin"], h_lo, h_hi, np.fmax, n),
        h_triglycerides=_window(labs["triglycerides"], h_lo, h_hi, np.fmax, n),
        h_fibrinogen=_window(labs["fibrinogen"], h_lo, h_hi, np.fmin, n),
        h_ast=_window(labs["ast"], h_lo, h_hi, np.fmax, n),
        h_counts={
            a: _window(counts_i[a], h_lo, h_hi, np.fmin, n) for a in ("hb", "wbc", "platelets")
        },
    )


# --------------------------------------------------------------------------- step 2: read-outs


@dataclass(frozen=True)
class Clinical:
    """What only the course holds, per patient (1 present, 0 recorded absent, -1 unknown)."""

    haemophagocytosis: I8  # on a marrow after infusion
    immunosuppression: I8  # known underlying immunosuppression (HScore; not in the course model)
    temperature: F  # the highest recorded temperature (Cel) in the HScore window; NaN: none
    hepatomegaly: I8
    splenomegaly: I8
    coagulopathy: I8
    organ_dysfunction: I8

    @classmethod
    def unknown(cls, n: int) -> Clinical:
        """A cohort table carries none of these: every one unknown."""
        u = np.full(n, -1, np.int8)
        return cls(u, u, np.full(n, np.nan), u, u, u, u)

    def take(self, i: int) -> Clinical:
        out: Clinical = _take(self, i)
        return out


def clinical_of_courses(
    rows: Sequence[tuple[Course, int]], lf: LabFeatures, t: IecHsTable
) -> Clinical:
    """``Clinical`` of many courses, each as known on its day (row ``i``: ``rows[i]``, whose
    lab features are row ``i`` of ``lf``), to classify them in one vectorised pass."""
    found = [
        _clinical_row(course, day, int(anchor), t)
        for (course, day), anchor in zip(rows, lf.hscore_anchor, strict=True)
    ]
    haemo, temp, hepato, spleno, coag, organ = zip(*found, strict=True) if found else ([],) * 6

    def col(xs: Sequence[int]) -> I8:
        return np.array(xs, np.int8)

    return Clinical(
        haemophagocytosis=col(haemo),
        immunosuppression=np.full(len(found), -1, np.int8),
        temperature=np.array(temp, np.float64),
        hepatomegaly=col(hepato),
        splenomegaly=col(spleno),
        coagulopathy=col(coag),
        organ_dysfunction=col(organ),
    )


def _clinical_row(
    course: Course, day: int, anchor: int, t: IecHsTable
) -> tuple[int, float, int, int, int, int]:
    """One course's haemophagocytosis, highest temperature in the HScore window around
    ``anchor`` (NaN: none) and its four findings (1 present, 0 recorded absent, -1 unknown)."""
    marrows = [m for m in course.events_of(BoneMarrow) if (m.day or 0) >= 0 and (m.day or 0) <= day]
    seen = [m.haemophagocytosis for m in marrows if m.haemophagocytosis is not None]
    haemo = 1 if any(seen) else (0 if seen else -1)
    lo, hi = anchor - t.hscore_window_days, min(anchor + t.hscore_window_days, day)
    temps = [
        f.max_temp_c for f in course.events_of(Fever) if f.day is not None and lo <= f.day <= hi
    ]
    findings = course.events_of(ClinicalFinding)

    def finding(kind: Finding) -> int:
        found = [
            f.present
            for f in findings
            if f.finding == kind and f.day is not None and 0 <= f.day <= day
        ]
        return -1 if not found else int(found[-1])  # the latest record holds

    return (
        haemo,
        max(temps) if temps else np.nan,
        finding(Finding.HEPATOMEGALY),
        finding(Finding.SPLENOMEGALY),
        finding(Finding.COAGULOPATHY),
        finding(Finding.ORGAN_DYSFUNCTION),
    )


@dataclass(frozen=True)
class IecHs:
    status: I8  # index into STATUS
    onset_day: I32  # -1: none
    missing: I64  # bits of ASTCT_MISSING (listed when suspected or not assessable)
    principal: I8  # any principal manifestation: 1 / 0 all absent / -1 none present, some unknown
    carhlh: I8  # 1 met, 0 not met, -1 incomplete
    carhlh_organs: I8  # organ criteria present
    carhlh_missing: I64  # bits of CARHLH_MISSING (when incomplete)
    hscore: I32  # points of the items that exist (a lower bound when items are missing)
    hscore_max: I32  # the most the missing items could add up to
    hscore_items: I8  # items scored, of 9
    hscore_missing: I64  # bits of HSCORE_ITEMS
    hscore_at_cutoff: (
        I8  # >= cut-off: 1 yes (even with items missing), 0 no (cannot reach), -1 unknown
    )

    def take(self, i: int) -> IecHs:
        out: IecHs = _take(self, i)
        return out


def _band(v: F, b: PointBands) -> tuple[I64, I64]:
    """(fewest, most) points of a three-band item; a missing value spans all bands."""
    p = np.where(v < b.below, b.points[0], np.where(v <= b.upto, b.points[1], b.points[2]))
    p = p.astype(np.int64)
    nan = np.isnan(v)
    return np.where(nan, min(b.points), p), np.where(nan, max(b.points), p)


def _flag_points(x: I8, points: int) -> tuple[I64, I64]:
    return np.where(x == 1, points, 0).astype(np.int64), np.where(x == 0, 0, points).astype(
        np.int64
    )


def _counted(present: I64, unknown: I64, table: tuple[int, ...]) -> tuple[I64, I64]:
    pts = np.array(table, np.int64)
    return pts[np.minimum(present, len(pts) - 1)], pts[np.minimum(present + unknown, len(pts) - 1)]


def _hscore(lf: LabFeatures, c: Clinical, t: IecHsTable) -> tuple[I64, I64, I64]:
    """Per patient the fewest and most HScore points, and the bits of the items not scored."""
    hep, spl = c.hepatomegaly, c.splenomegaly
    organs = _counted(
        (hep == 1).astype(np.int64) + (spl == 1),
        (hep == -1).astype(np.int64) + (spl == -1),
        t.hscore_organomegaly,
    )
    cyt_known = np.zeros(lf.as_of.size, np.int64)
    cyt_unknown = np.zeros(lf.as_of.size, np.int64)
    for a, limit in t.hscore_cytopenia_at_or_below.items():
        v = lf.h_counts[a]
        cyt_known += v <= limit
        cyt_unknown += np.isnan(v)
    fib_limit, fib_points = t.hscore_fibrinogen
    ast_limit, ast_points = t.hscore_ast
    fib = _tri(lf.h_fibrinogen <= fib_limit, ~np.isnan(lf.h_fibrinogen))
    ast = _tri(lf.h_ast >= ast_limit, ~np.isnan(lf.h_ast))
    items = (
        _flag_points(c.immunosuppression, t.hscore_immunosuppression),
        _band(c.temperature, t.hscore_temperature),
        organs,
        _counted(cyt_known, cyt_unknown, t.hscore_cytopenia),
        _band(lf.h_ferritin, t.hscore_ferritin),
        _band(lf.h_triglycerides, t.hscore_triglycerides),
        _flag_points(fib, fib_points),
        _flag_points(ast, ast_points),
        _flag_points(c.haemophagocytosis, t.hscore_haemophagocytosis),
    )
    unscored = (
        c.immunosuppression == -1,
        np.isnan(c.temperature),
        (hep == -1) | (spl == -1),
        cyt_unknown > 0,
        np.isnan(lf.h_ferritin),
        np.isnan(lf.h_triglycerides),
        fib == -1,
        ast == -1,
        c.haemophagocytosis == -1,
    )
    low = np.sum([lo for lo, _ in items], axis=0)
    high = np.sum([hi for _, hi in items], axis=0)
    bits = np.sum([u.astype(np.int64) << j for j, u in enumerate(unscored)], axis=0)
    return low, high, bits


def _carhlh(lf: LabFeatures, c: Clinical, t: IecHsTable) -> tuple[I8, I8, I64]:
    organs = (
        lf.carhlh_liver,
        lf.carhlh_kidney,
        np.full_like(lf.carhlh_liver, -1),
        c.haemophagocytosis,
    )
    present = np.sum([o == 1 for o in organs], axis=0)
    unknown = np.sum([o == -1 for o in organs], axis=0)
    f = lf.carhlh_ferritin
    met = (lf.carhlh_crs == 1) & (f == 1) & (present >= t.carhlh_min_organ)
    not_met = (lf.carhlh_crs == 0) | (f == 0) | (present + unknown < t.carhlh_min_organ)
    status = np.where(met, 1, np.where(not_met, 0, -1)).astype(np.int8)
    gaps = (f == -1, *(o == -1 for o in organs))
    bits = np.sum([g.astype(np.int64) << j for j, g in enumerate(gaps)], axis=0)
    return status, present.astype(np.int8), np.where(status == -1, bits, 0)


def classify(lf: LabFeatures, c: Clinical, t: IecHsTable) -> IecHs:
    """Step 2: the ASTCT status, carHLH and the HScore for every patient."""
    principal = (c.haemophagocytosis, lf.transaminases, lf.fibrinogen, lf.cytopenia)
    m = np.where(
        np.any([p == 1 for p in principal], axis=0),
        1,
        np.where(np.all([p == 0 for p in principal], axis=0), 0, -1),
    ).astype(np.int8)
    f, timing = lf.ferritin_state, lf.timing
    # met: every criterion present; not met: one absent; suspected: undecided with positive
    # evidence beyond an elevated ferritin (it also rises, or haemophagocytosis, transaminases or
    # fibrinogen are present: a cytopenia alone is not, as cytopenias invariably follow CAR-T
    # early, the review); not assessable: no ferritin, or an elevated one with the rest unknown
    specific = np.any([p == 1 for p in principal[:3]], axis=0)
    status = np.select(
        [
            f == -2,
            (f == 0) | (timing == 0) | (m == 0),
            (f == 1) & (timing == 1) & (m == 1),
            (f == 1) | specific,
        ],
        [NOT_ASSESSABLE, NOT_MET, MET, SUSPECTED],
        NOT_ASSESSABLE,
    ).astype(np.int8)
    gaps = (
        f == -2,
        f == -1,
        (timing == -1) & (f != -2) & (f != 0),
        c.haemophagocytosis == -1,
        lf.transaminases == -1,
        lf.fibrinogen == -1,
        lf.cytopenia == -1,
    )
    bits = np.sum([g.astype(np.int64) << j for j, g in enumerate(gaps)], axis=0)
    listed = (status == SUSPECTED) | (status == NOT_ASSESSABLE)
    carhlh, organs, c_bits = _carhlh(lf, c, t)
    low, high, h_bits = _hscore(lf, c, t)
    at = np.where(low >= t.hscore_cutoff, 1, np.where(high < t.hscore_cutoff, 0, -1))
    n_items = len(HSCORE_ITEMS) - np.sum([(h_bits >> j) & 1 for j in range(len(HSCORE_ITEMS))], 0)
    return IecHs(
        status=status,
        onset_day=lf.onset_day,
        missing=np.where(listed, bits, 0),
        principal=m,
        carhlh=carhlh,
        carhlh_organs=organs,
        carhlh_missing=c_bits,
        hscore=low.astype(np.int32),
        hscore_max=high.astype(np.int32),
        hscore_items=n_items.astype(np.int8),
        hscore_missing=h_bits,
        hscore_at_cutoff=at.astype(np.int8),
    )


# --------------------------------------------------------------------------- one patient's text


def names(bits: int, table: tuple[str, ...]) -> list[str]:
    return [x for j, x in enumerate(table) if bits >> j & 1]


def _v(x: float, unit: str) -> str:
    return f"{x:,.0f} {unit}".replace(",", " ") if x >= 100 else f"{x:g} {unit}"


def _trend_text(lf: LabFeatures, t: IecHsTable) -> str:
    """The onset value's trend as ``ferritin_trend`` read it, with the value it was read
    against, the days between and the fold needed."""
    v, day = float(lf.onset_value[0]), int(lf.onset_day[0])
    low, low_day, need = float(lf.onset_ref_value[0]), int(lf.onset_ref_day[0]), lf.onset_ref_fold
    rate = f"{t.ferritin_rise_fold:g}x per {t.ferritin_rise_window_days} days"
    against = (
        f"{v / low:.3g}x the value of day {low_day} ({_v(low, 'ng/mL')}) in "
        f"{day - low_day} days (needed: {float(need[0]):.3g}x, at least {rate})"
        if low_day >= 0
        else ""
    )
    if int(lf.ferritin_state[0]) == 1:
        return f"rising: {against}"
    older = f"; {against}" if low_day >= 0 else ""
    return (
        f"no earlier value within {t.ferritin_rise_window_days} days and no rise of {rate} "
        f"within {t.ferritin_rise_lookback_days} days{older}: trend unknown"
    )


def evidence(lf: LabFeatures, c: Clinical, t: IecHsTable, ranges: ReferenceRanges) -> list[str]:
    """What patient 0 of ``lf``/``c`` shows, criterion by criterion, with values and days."""
    out: list[str] = []
    onset = int(lf.onset_day[0])
    ref, base = float(lf.ferritin_ref[0]), float(lf.baseline_ferritin[0])
    basis = "baseline" if not np.isnan(base) and base > ranges.ferritin_uln_ng_ml else "ULN"
    if onset >= 0:
        v = float(lf.onset_value[0])
        trend = _trend_text(lf, t)
        out.append(
            f"ferritin {_v(v, 'ng/mL')} on day {onset} > {t.ferritin_multiple:g}x the {basis} "
            f"({_v(ref, 'ng/mL')}), {trend}"
        )
        out.append(f"onset day {onset}: {TIMING[int(lf.timing_reason[0])]}")
    elif int(lf.ferritin_state[0]) == 0:
        out.append(
            f"no ferritin above {t.ferritin_multiple:g}x the {basis} ({_v(ref, 'ng/mL')}) and rising"
        )
    if c.haemophagocytosis[0] == 1:
        out.append("haemophagocytosis on a marrow after infusion")
    m = t.transaminase_uln_multiple
    for name, x, uln in (
        ("AST", lf.ast_max[0], ranges.ast_uln_u_l),
        ("ALT", lf.alt_max[0], ranges.alt_uln_u_l),
    ):
        if x > times(m, uln):
            out.append(f"{name} {_v(float(x), 'U/L')} > {m:g}x ULN ({uln:g})")
    if lf.fibrinogen[0] == 1:
        out.append(
            f"fibrinogen {_v(float(lf.fibrinogen_min[0]), 'mg/dL')} < {t.fibrinogen_below:g}"
        )
    if lf.cytopenia[0] == 1:
        out.append(f"new or worsening cytopenia: {lf.cytopenic[0]}")
    further = (
        (lf.ldh_max[0] > ranges.ldh_uln_u_l, f"LDH {_v(float(lf.ldh_max[0]), 'U/L')} > ULN"),
        (
            lf.triglycerides_max[0] > t.triglycerides_above,
            f"triglycerides {_v(float(lf.triglycerides_max[0]), 'mg/dL')} > {t.triglycerides_above:g}",
        ),
        (
            lf.bilirubin_max[0] > ranges.bilirubin_uln_mg_dl,
            f"bilirubin {_v(float(lf.bilirubin_max[0]), 'mg/dL')} > ULN",
        ),
        (c.coagulopathy[0] == 1, "coagulopathy"),
        (c.splenomegaly[0] == 1, "splenomegaly"),
        (c.organ_dysfunction[0] == 1, "organ dysfunction"),
    )
    out.extend(f"further feature: {text}" for ok, text in further if ok)
    return out
