"""TA-TMA harmonised criteria over a course, vectorised (``rules/tables/tatma.toml``).

Schoettler et al., Transplant Cell Ther 2023: TA-TMA is diagnosed clinically when >= 4 of 7
criteria (anaemia, thrombocytopenia, LDH > ULN, schistocytes, hypertension, sC5b-9 >= ULN,
proteinuria rUPCR >= 1 mg/mg) are met within 14 days at two consecutive time points.

One implementation for one patient and a cohort. A *time point* is a day from day 0 with a value
any criterion reads; on it each criterion reads its latest value within the table's carry-forward
days. A criterion without such a value is *not assessable* (never "not met"): each time point has
a count of criteria met and of criteria assessable. The criteria are met when two consecutive time
points, within the window, both reach the required count. Status: "meets", "not met" (even every
criterion not assessable counted as met could not reach the count on any time point), or, when
neither is decided, "work-up incomplete" (at least one of the table's TA-TMA-specific criteria -
schistocytes, hypertension, sC5b-9, proteinuria - was assessable on some time point) or "not
evaluated" (none ever was: no TA-TMA work-up). Conventions: docs/conventions.md ("TA-TMA").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from cart_cytopenia.domain.catalogues import DrugClass
from cart_cytopenia.domain.frames import drug_class_expr
from cart_cytopenia.grading.hematotox import MarkerRows, baseline_values
from cart_cytopenia.rules import tables
from cart_cytopenia.rules.settings import ReferenceRanges
from cart_cytopenia.rules.tables import TATMA_CRITERIA, TATMA_HIGH_RISK, TatmaTable

F = NDArray[np.float64]
I32 = NDArray[np.int32]
I64 = NDArray[np.int64]
B = NDArray[np.bool_]
Obj = NDArray[np.object_]

# the analytes read, in the order of ``MarkerRows.marker`` (-1: other)
ANALYTES = ("hb", "platelets", "ldh", "schistocytes", "sbp", "dbp", "sc5b9", "upcr")
LOWEST_OF_DAY = frozenset({"hb", "platelets"})  # the day's worst value; the highest otherwise
# findings read (course ``finding`` events): position in ``Findings.kind``
FINDINGS = ("hypertension", "antihypertensive-needed", "schistocytes", "organ-dysfunction")
MEETS, NOT_MET = "meets", "not met"
INCOMPLETE, NOT_EVALUATED = "work-up incomplete", "not evaluated"  # neither met nor excluded
UNDECIDED = frozenset({INCOMPLETE, NOT_EVALUATED})
SHIFT = 1024  # days before day 0 still read (transfusions, treatment started before infusion)


@dataclass(frozen=True)
class Findings:
    idx: NDArray[np.integer]
    day: NDArray[np.integer]
    kind: NDArray[np.integer]  # position in ``FINDINGS`` (-1: other)
    present: B


@dataclass(frozen=True)
class Spans:
    """Events with a start and an end (``end`` < 0 or missing: still ongoing)."""

    idx: NDArray[np.integer]
    start: NDArray[np.integer]
    end: NDArray[np.integer]


@dataclass(frozen=True)
class TatmaInputs:
    rows: MarkerRows  # lab rows of ``ANALYTES`` (before infusion too: the baselines)
    findings: Findings
    rbc_tx: tuple[NDArray[np.integer], NDArray[np.integer]]  # (patient, day)
    plt_tx: tuple[NDArray[np.integer], NDArray[np.integer]]
    antihypertensive: Spans
    gvhd: Spans  # acute GVHD of at least the table's high-risk grade
    infection: Spans  # bacterial or viral infections
    age: F  # NaN: unknown
    ld_start: NDArray[np.integer]
    as_of: I32
    events_recorded: bool


@dataclass(frozen=True)
class Tatma:
    status: Obj  # MEETS, NOT_MET, INCOMPLETE, NOT_EVALUATED
    met: NDArray[np.int8]  # criteria met at the reference time point (-1: no time point)
    assessable: NDArray[np.int8]  # criteria assessable there
    reference_day: I32  # the reference time point: the first day the criteria were met,
    # else the time point with the most criteria met (the latest of equals); -1: none
    prior_day: I32  # the time point before it (-1: none)
    prior_met: NDArray[np.int8]  # criteria met at the prior time point (-1: none)
    first_met_day: I32  # -1: never met
    criterion_met: dict[str, B]  # at the reference time point
    criterion_known: dict[str, B]
    evidence_day: dict[str, I32]  # the day of the value a criterion read (-1: none)
    evidence_value: dict[str, F]  # that value (NaN: none, or a transfusion / treatment)
    evidence_how: dict[str, Obj]  # how the criterion was met or not ("" when not assessable)
    high_risk: dict[str, B]  # features present at the reference time point (when met)
    high_risk_known: dict[str, B]
    n_time_points: I32


@dataclass(frozen=True)
class _Points:
    """Every patient's time points, sorted by patient and day; ``key`` = patient * width + day
    + SHIFT (one sorted integer per point, searched against the keys of other rows)."""

    idx: I64
    day: I64
    key: I64
    width: int
    start: I64 = field(init=False)  # the first key of each point's patient (idx * width)

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", self.idx * self.width)

    def keys(self, idx: NDArray[np.integer], day: NDArray[np.integer]) -> I64:
        out: I64 = idx.astype(np.int64) * self.width + (day.astype(np.int64) + SHIFT)
        return out

    def latest(self, key: I64, within: int) -> tuple[NDArray[np.intp], B]:
        """For each point, the position in sorted ``key`` of the last key of its patient on or
        before the point and at most ``within`` days before it, and whether there is one. (That
        key is at most the point's own: it is its patient's when not below the patient's first
        key, which spares a division per point.)"""
        pos = self._last_at_or_before(key)
        ok = pos >= 0
        p = np.where(ok, pos, 0)
        if key.size:
            found = key[p]
            ok &= (found >= self.start) & (self.key - found <= within)
        else:
            ok[:] = False
        return p, ok

    def _last_at_or_before(self, key: I64) -> NDArray[np.intp]:
        """For each point, the position of the last of the sorted ``key`` at or before it (-1:
        none). The keys of rows and findings are points themselves: each is marked at its point
        and carried forward (one pass over the points instead of a binary search per point)."""
        at = np.searchsorted(self.key, key)
        n = self.key.size
        if not n or not key.size or at[-1] >= n or not (self.key[at] == key).all():
            out: NDArray[np.intp] = np.searchsorted(key, self.key, side="right") - 1
            return out
        last = np.r_[key[1:] != key[:-1], True]  # (of equal keys, the last)
        mark = np.full(n, -1, np.intp)
        mark[at[last]] = np.flatnonzero(last)
        out = np.maximum.accumulate(mark)
        return out

    def day_of(self, key: I64, pos: NDArray[np.intp], ok: B) -> I64:
        """The day of ``key[pos]`` where ``ok`` (a key of the point's own patient), else -1."""
        if not key.size:
            return np.full(self.key.size, -1, np.int64)
        out: I64 = np.where(ok, key[pos] - self.start - SHIFT, -1)
        return out

    def covered(self, spans: Spans, as_of: I32) -> B:
        """Points inside a span of their patient (open spans run to the grading day)."""
        out = np.zeros(self.key.size + 1, np.int64)
        if spans.idx.size and self.key.size:
            i = spans.idx.astype(np.int64)
            end = np.where(spans.end < 0, as_of[i], spans.end).astype(np.int64)
            start = np.maximum(spans.start.astype(np.int64), -SHIFT)
            end = np.minimum(end, self.width - SHIFT - 1)
            ok = end >= start
            lo = np.searchsorted(self.key, self.keys(i[ok], start[ok]), side="left")
            hi = np.searchsorted(self.key, self.keys(i[ok], end[ok]), side="right")
            np.add.at(out, lo, 1)
            np.add.at(out, hi, -1)
        covered: B = np.cumsum(out[:-1]) > 0
        return covered

    def recent(self, idx: NDArray[np.integer], day: NDArray[np.integer], within: int) -> B:
        """Points with a row of their patient on the point or up to ``within`` days before."""
        inside = (day >= -SHIFT) & (day <= self.width - SHIFT - 1)  # (a key stays its patient's)
        key = np.sort(self.keys(idx[inside], day[inside]))
        hi = np.searchsorted(key, self.key, side="right")
        lo = np.searchsorted(key, np.maximum(self.key - within, self.idx * self.width), "left")
        out: B = hi > lo
        return out


def _points(inp: TatmaInputs, post: B, f_post: B) -> _Points:
    r, f = inp.rows, inp.findings
    top = max(
        int(r.day[post].max()) if post.any() else 0, int(f.day[f_post].max()) if f_post.any() else 0
    )
    width = top + 2 * SHIFT + 2
    none = np.empty(0, np.int64)
    probe = _Points(none, none, none, width)
    key = np.concatenate(
        [probe.keys(r.idx[post], r.day[post]), probe.keys(f.idx[f_post], f.day[f_post])]
    )
    # (a radix sort: the rows come mostly in patient and day order; a hash-based np.unique was
    # most of the cost at 100,000 patients)
    key.sort(kind="stable")
    key = key[np.r_[True, key[1:] != key[:-1]]] if key.size else key
    idx = key // width
    return _Points(idx, key - idx * width - SHIFT, key, width)


def _day_values(post: tuple[I64, NDArray[np.integer], F], j: int, lowest: bool) -> tuple[I64, F]:
    """One analyte's values after infusion: one per patient and day (the day's worst), as
    (sorted point keys, values). ``post``: the rows after infusion as (point key, marker,
    value), keyed once for every analyte."""
    keys, marker, value = post
    sel = marker == j
    key, val = keys[sel], value[sel]
    if key.size < 2 or (key[1:] > key[:-1]).all():  # (the counts come one a day, in order)
        return key, val
    if (key[1:] >= key[:-1]).all():  # in order with repeat draws: each day's worst, unsorted
        first = np.flatnonzero(key[1:] != key[:-1]) + 1
        first = np.r_[0, first]
        worst: F = (np.minimum if lowest else np.maximum).reduceat(val, first)
        return key[first], worst
    order = np.lexsort((val if lowest else -val, key))
    key, val = key[order], val[order]
    keep = np.r_[True, key[1:] != key[:-1]]
    return key[keep], val[keep]


@dataclass(frozen=True)
class _Read:
    """Each analyte's value read at each point (NaN: none within the carry-forward days)."""

    value: dict[str, F]
    day: dict[str, I64]

    def has(self, a: str) -> B:
        out: B = ~np.isnan(self.value[a])
        return out


def _read_values(inp: TatmaInputs, post: B, pts: _Points, carry: int) -> _Read:
    value, day = {}, {}
    r = inp.rows
    rows = (pts.keys(r.idx[post], r.day[post]), r.marker[post], r.value[post])
    for j, a in enumerate(ANALYTES):
        key, val = _day_values(rows, j, a in LOWEST_OF_DAY)
        pos, ok = pts.latest(key, carry)
        value[a] = np.where(ok, val[pos] if val.size else np.nan, np.nan)
        day[a] = pts.day_of(key, pos, ok)
    return _Read(value, day)


def _finding(
    inp: TatmaInputs, f_post: B, pts: _Points, kinds: tuple[str, ...], carry: int
) -> tuple[B, B, I64]:
    """Per point: a finding of ``kinds`` recorded present / absent (latest within ``carry``)."""
    f = inp.findings
    sel = f_post & np.isin(f.kind, [FINDINGS.index(k) for k in kinds])
    key = pts.keys(f.idx[sel], f.day[sel])
    order = np.lexsort((f.present[sel], key))  # (present last on a day: present wins)
    key, present = key[order], f.present[sel][order]
    pos, ok = pts.latest(key, carry)
    is_present: B = ok & (present[pos] if present.size else np.zeros(ok.size, bool))
    return (
        is_present,
        ok & ~is_present,
        pts.day_of(key, pos, ok),
    )


@dataclass
class _State:
    met: dict[str, B]
    known: dict[str, B]
    how: dict[str, _Labels]
    evidence_day: dict[str, I64]
    evidence_value: dict[str, F]


@dataclass(frozen=True)
class _Labels:
    """Per point which case holds (0: none), and each case's text: the texts are made only for
    the reference points (``text_at``), not for every point."""

    code: NDArray[np.int8]
    texts: tuple[str, ...]

    def text_at(self, ref: I64) -> Obj:
        table = np.array(["", *self.texts], dtype=object)
        out: Obj = table[_at(self.code, ref, 0)]
        return out


def _labelled(n: int, *cases: tuple[B, str]) -> _Labels:
    code = np.zeros(n, np.int8)
    for k in range(len(cases), 0, -1):  # the first case that holds wins
        code[cases[k - 1][0]] = k
    return _Labels(code, tuple(text for _, text in cases))


def _blood_criteria(
    inp: TatmaInputs, pts: _Points, rd: _Read, base: dict[str, F], t: TatmaTable, st: _State
) -> None:
    """Anaemia and thrombocytopenia: a fall from baseline or a low count, or transfusion need."""
    n = pts.key.size
    idx = pts.idx
    lookback = t.transfusion_lookback_days
    for cid, a, tx in (
        ("anaemia", "hb", inp.rbc_tx),
        ("thrombocytopenia", "platelets", inp.plt_tx),
    ):
        v, b = rd.value[a], base[a][idx] if idx.size else np.empty(0)
        has, has_base = rd.has(a), ~np.isnan(b)
        if cid == "anaemia":
            low = has & has_base & (v <= b - t.cut["hb_decline_g_dl"])
            rule = "Hb fell >= 1 g/dL from baseline"
            low_abs = np.zeros(n, bool)
        else:
            low = has & has_base & (v <= b * t.cut["platelets_fraction_of_baseline"])
            rule = "platelets <= 50% of baseline"
            low_abs = has & (v < t.cut["platelets_below"])
        transfused = pts.recent(tx[0], tx[1], lookback) if tx[0].size else np.zeros(n, bool)
        met = low | low_abs | transfused
        known = met | (has & has_base & inp.events_recorded)
        st.met[cid], st.known[cid] = met, known
        st.how[cid] = _labelled(
            n,
            (low_abs, "platelets < 50 x10^9/L"),
            (low, rule),
            (transfused, f"transfused in the {lookback} days before"),
            (known & ~met, "no fall from baseline, no transfusion"),
        )
        st.evidence_day[cid], st.evidence_value[cid] = rd.day[a], v


def _lab_criteria(
    pts: _Points, rd: _Read, refs: ReferenceRanges, t: TatmaTable, st: _State
) -> None:
    n = pts.key.size
    for cid, a, limit, strict, unit in (
        ("ldh", "ldh", refs.ldh_uln_u_l * t.cut["ldh_above_uln"], True, "U/L (ULN)"),
        (
            "sc5b9",
            "sc5b9",
            refs.sc5b9_uln_ng_ml * t.cut["sc5b9_at_least_uln"],
            False,
            "ng/mL (ULN)",
        ),
        ("proteinuria", "upcr", t.cut["upcr_mg_mg"], False, "mg/mg"),
    ):
        v, has = rd.value[a], rd.has(a)
        met = has & ((v > limit) if strict else (v >= limit))
        st.met[cid], st.known[cid] = met, has
        sign = ">" if strict else ">="
        st.how[cid] = _labelled(
            n, (met, f"{sign} {limit:g} {unit}"), (has & ~met, f"not {sign} {limit:g} {unit}")
        )
        st.evidence_day[cid], st.evidence_value[cid] = rd.day[a], v


def _smear_and_pressure(
    inp: TatmaInputs, f_post: B, pts: _Points, rd: _Read, t: TatmaTable, st: _State
) -> None:
    n, carry = pts.key.size, t.carry_forward_days
    seen, absent, f_day = _finding(inp, f_post, pts, ("schistocytes",), carry)
    lab = rd.value["schistocytes"]
    met = (rd.has("schistocytes") & (lab >= 1)) | seen
    known = met | rd.has("schistocytes") | absent
    st.met["schistocytes"], st.known["schistocytes"] = met, known
    st.how["schistocytes"] = _labelled(n, (met, "present"), (known & ~met, "looked for, absent"))
    st.evidence_day["schistocytes"] = np.where(
        rd.has("schistocytes"), rd.day["schistocytes"], f_day
    )
    st.evidence_value["schistocytes"] = lab

    age = inp.age[pts.idx] if pts.idx.size else np.empty(0)
    adult = age >= t.cut["adult_age_years"]
    sbp, dbp = rd.value["sbp"], rd.value["dbp"]
    high = (sbp >= t.cut["sbp_mm_hg"]) | (dbp >= t.cut["dbp_mm_hg"])
    reading = ~(age < t.cut["adult_age_years"]) & high  # (unknown age: a high adult reading counts)
    normal = adult & rd.has("sbp") & rd.has("dbp") & ~high
    treated = pts.covered(inp.antihypertensive, inp.as_of)
    noted, noted_absent, _ = _finding(
        inp, f_post, pts, ("hypertension", "antihypertensive-needed"), carry
    )
    met = reading | treated | noted
    known = met | ((normal | noted_absent) & inp.events_recorded)
    st.met["hypertension"], st.known["hypertension"] = met, known
    st.how["hypertension"] = _labelled(
        n,
        (reading, f"BP >= {t.cut['sbp_mm_hg']:g}/{t.cut['dbp_mm_hg']:g} mmHg"),
        (treated, "on antihypertensive treatment"),
        (noted, "hypertension recorded"),
        (known & ~met, "BP below the cut-offs, no antihypertensive"),
    )
    use_dbp = ~(sbp >= t.cut["sbp_mm_hg"]) & (dbp >= t.cut["dbp_mm_hg"])
    st.evidence_day["hypertension"] = np.where(use_dbp, rd.day["dbp"], rd.day["sbp"])
    st.evidence_value["hypertension"] = np.where(use_dbp, dbp, sbp)


def _high_risk(
    inp: TatmaInputs,
    f_post: B,
    pts: _Points,
    rd: _Read,
    refs: ReferenceRanges,
    t: TatmaTable,
    st: _State,
) -> tuple[dict[str, B], dict[str, B]]:
    """The high-risk features at every point (present, assessable)."""
    ldh_2x = rd.value["ldh"] >= refs.ldh_uln_u_l * t.high_risk_ldh_uln
    organ, organ_absent, _ = _finding(
        inp, f_post, pts, ("organ-dysfunction",), t.carry_forward_days
    )
    present = {
        "sc5b9": st.met["sc5b9"],
        "proteinuria": st.met["proteinuria"],
        "ldh_2x_uln": ldh_2x,
        "gvhd": pts.covered(inp.gvhd, inp.as_of),
        "infection": pts.covered(inp.infection, inp.as_of),
        "organ_dysfunction": organ,
    }
    events = np.full(pts.key.size, inp.events_recorded)
    known = {
        "sc5b9": st.known["sc5b9"],
        "proteinuria": st.known["proteinuria"],
        "ldh_2x_uln": rd.has("ldh"),
        "gvhd": present["gvhd"] | events,
        "infection": present["infection"] | events,
        "organ_dysfunction": organ | organ_absent,
    }
    return present, known


def _reference(pts: _Points, met_n: NDArray[np.int64], meets: B, n: int) -> tuple[I64, I64]:
    """Per patient the reference point (the first meeting the criteria, else the most criteria
    met, the latest of equals) and the first point meeting them; -1: none."""
    ref = np.full(n, -1, np.int64)
    first = np.full(n, -1, np.int64)
    if not pts.key.size:
        return ref, first
    at = np.arange(pts.key.size)
    order = np.lexsort((at, met_n, pts.idx))  # per patient, the last is the most met, latest
    last = np.r_[pts.idx[order][1:] != pts.idx[order][:-1], True]
    ref[pts.idx[order][last]] = order[last]
    m = np.flatnonzero(meets)
    if m.size:
        firsts = m[np.r_[True, pts.idx[m][1:] != pts.idx[m][:-1]]]
        first[pts.idx[firsts]] = firsts
        ref[pts.idx[firsts]] = firsts
    return ref, first


def _open(pts: _Points, could: B, paired: B) -> B:
    """Points that could still make the criteria met, had the missing values been taken: they
    could reach the count (every criterion not assessable counted as met) and either their
    consecutive neighbour within the window could too, or no next time point was taken within
    the window (the second time point is missing). ``paired``: the point and the one before it
    are of one patient and within the window."""
    nxt = np.r_[paired[1:], False]  # the next point is of the patient and within the window
    with_prev = could & paired & np.r_[False, could[:-1]]
    with_next = could & nxt & np.r_[could[1:], False]
    out: B = (could & ~nxt) | with_prev | with_next
    return out


def _worked_up(pts: _Points, known: dict[str, B], t: TatmaTable, n: int) -> B:
    """Per patient: a TA-TMA-specific criterion (the table's ``workup_criteria``) was assessable
    on at least one time point."""
    any_known = np.zeros(pts.idx.size, bool)
    for c in t.workup_criteria:
        any_known |= known[c]
    out: B = np.bincount(pts.idx[any_known], minlength=n)[:n] > 0
    return out


def _count(flags: dict[str, B]) -> I64:
    out = np.zeros(next(iter(flags.values())).size, np.int64)
    for c in TATMA_CRITERIA:
        out += flags[c]
    return out


def _at(values: NDArray[Any], ref: I64, missing: object) -> NDArray[Any]:
    out = np.full(ref.size, missing, dtype=values.dtype)
    ok = ref >= 0
    out[ok] = values[ref[ok]]
    return out


def evaluate(inp: TatmaInputs, refs: ReferenceRanges, t: TatmaTable) -> Tatma:
    """The criteria at every time point of every patient, reduced to one result per patient."""
    n = inp.as_of.size
    r, f = inp.rows, inp.findings
    post = (r.marker >= 0) & (r.day >= 0) & (r.day <= inp.as_of[r.idx])
    f_post = (f.kind >= 0) & (f.day >= 0) & (f.day <= inp.as_of[f.idx])
    pts = _points(inp, post, f_post)
    base, _days, _pre, _, _ignored = baseline_values(
        r, inp.ld_start, list(ANALYTES), t.baseline_window_days
    )
    rd = _read_values(inp, post, pts, t.carry_forward_days)
    st = _State({}, {}, {}, {}, {})
    _blood_criteria(inp, pts, rd, base, t, st)
    _lab_criteria(pts, rd, refs, t, st)
    _smear_and_pressure(inp, f_post, pts, rd, t, st)
    met_n = _count(st.met)
    known_n = _count(st.known)
    reach = met_n >= t.required
    same = np.r_[False, pts.idx[1:] == pts.idx[:-1]]
    close = np.r_[False, pts.day[1:] - pts.day[:-1] <= t.window_days - 1]
    meets = reach & same & close & np.r_[False, reach[:-1]]
    ref, first = _reference(pts, met_n, meets, n)
    prior = np.where((ref > 0) & _at(same, ref, False).astype(bool), ref - 1, -1)
    open_points = _open(pts, met_n + (len(TATMA_CRITERIA) - known_n) >= t.required, same & close)
    undecided = np.zeros(n, bool)
    undecided[pts.idx[open_points]] = True
    n_points = np.bincount(pts.idx, minlength=n).astype(np.int32)
    status = np.full(n, NOT_EVALUATED, dtype=object)
    status[_worked_up(pts, st.known, t, n)] = INCOMPLETE
    status[(n_points > 0) & ~undecided] = NOT_MET
    status[first >= 0] = MEETS
    present, known = _high_risk(inp, f_post, pts, rd, refs, t, st)
    return Tatma(
        status=status,
        met=_at(met_n, ref, -1).astype(np.int8),
        assessable=_at(known_n, ref, -1).astype(np.int8),
        reference_day=_at(pts.day, ref, -1).astype(np.int32),
        prior_day=_at(pts.day, prior, -1).astype(np.int32),
        prior_met=_at(met_n, prior, -1).astype(np.int8),
        first_met_day=_at(pts.day, first, -1).astype(np.int32),
        criterion_met={c: _at(st.met[c], ref, False).astype(bool) for c in TATMA_CRITERIA},
        criterion_known={c: _at(st.known[c], ref, False).astype(bool) for c in TATMA_CRITERIA},
        evidence_day={c: _at(st.evidence_day[c], ref, -1).astype(np.int32) for c in TATMA_CRITERIA},
        evidence_value={
            c: _at(st.evidence_value[c], ref, np.nan).astype(np.float64) for c in TATMA_CRITERIA
        },
        evidence_how={c: st.how[c].text_at(ref) for c in TATMA_CRITERIA},
        high_risk={h: _at(present[h], ref, False).astype(bool) for h in TATMA_HIGH_RISK},
        high_risk_known={h: _at(known[h], ref, False).astype(bool) for h in TATMA_HIGH_RISK},
        n_time_points=n_points,
    )


def high_risk_flag(z: Tatma) -> NDArray[np.int8]:
    """1: the criteria are met with a high-risk feature; 0: met and every feature assessed and
    absent; -1: not met, or met with a feature not assessed."""
    out = np.full(z.status.size, -1, np.int8)
    meets = z.status == MEETS
    anyf = np.zeros(out.size, bool)
    allk = np.ones(out.size, bool)
    for h in TATMA_HIGH_RISK:
        anyf |= z.high_risk[h]
        allk &= z.high_risk_known[h]
    out[meets & anyf] = 1
    out[meets & ~anyf & allk] = 0
    return out


def joined(flags: dict[str, B], which: B | None = None) -> Obj:
    """Per patient the names whose flag holds, ";"-joined (None: none); one text per pattern."""
    names = list(flags)
    n = flags[names[0]].size
    bits = np.zeros(n, np.int64)
    for j, k in enumerate(names):
        bits |= flags[k].astype(np.int64) << j
    out = np.full(n, None, dtype=object)
    for b in np.unique(bits):
        if b:
            sel = bits == b if which is None else (bits == b) & which
            out[sel] = ";".join(k for j, k in enumerate(names) if b >> j & 1)
    return out


def event_tables(
    events: pl.DataFrame, t: TatmaTable
) -> dict[str, tuple[pl.DataFrame, tuple[pl.Expr, ...]]]:
    """The events TA-TMA reads, each as (rows, the columns to take): findings (day, kind, present),
    antihypertensive treatment, acute GVHD of the high-risk grade and bacterial or viral
    infections (start, end; -1: ongoing)."""
    start = pl.col("start_day").cast(pl.Int64)
    end = pl.col("end_day").fill_null(-1).cast(pl.Int64)
    kinds = {k: i for i, k in enumerate(FINDINGS)}
    has_start = pl.col("start_day").is_not_null()
    return {
        "findings": (
            events.filter((pl.col("type") == "finding") & has_start),
            (
                start,
                pl.col("product")
                .replace_strict(kinds, default=-1, return_dtype=pl.Int64)
                .fill_null(-1),
                pl.col("grade").fill_null(1) != 0,
            ),
        ),
        "antihypertensive": (
            events.filter(drug_class_expr(DrugClass.ANTIHYPERTENSIVE) & has_start),
            (start, end),
        ),
        "gvhd": (
            events.filter(
                (pl.col("type") == "gvhd") & has_start & (pl.col("grade") >= t.high_risk_gvhd_grade)
            ),
            (start, end),
        ),
        "infection": (
            events.filter(
                (pl.col("type") == "infection")
                & has_start
                & pl.col("product").is_in(list(t.high_risk_infections))
            ),
            (start, end),
        ),
    }


Cols = tuple[NDArray[Any], ...]
Counts = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]


def from_chunk(
    other: MarkerRows,
    counts: tuple[Counts, Counts],
    events: tuple[dict[str, Cols], dict[str, Cols]],
    people: tuple[F, NDArray[np.integer], I32],
    refs: ReferenceRanges,
    events_recorded: bool,
) -> Tatma:
    """TA-TMA of a chunk of the grading engine: ``other`` the lab rows of ``ANALYTES`` except the
    counts after infusion, which come from the graded rows (``counts``: Hb, platelets, one a
    day, the lowest); ``events``: the chunk's rows of ``event_tables`` and its transfusions;
    ``people``: age, lymphodepletion start day and the grading day per patient."""
    parts = [(other.idx, other.day, other.value, other.marker)]
    for a, (idx, day, value) in zip(("hb", "platelets"), counts, strict=True):
        parts.append((idx, day, value, np.full(idx.size, ANALYTES.index(a), np.int64)))
    idx, day, value, marker = (np.concatenate([p[k] for p in parts]) for k in range(4))
    ev, tx = events
    f_idx, f_day, f_kind, f_present = ev["findings"]
    age, ld_start, as_of = people
    return evaluate(
        TatmaInputs(
            rows=MarkerRows(idx.astype(np.int64), day.astype(np.int64), value, marker),
            findings=Findings(f_idx, f_day, f_kind, f_present.astype(bool)),
            rbc_tx=(tx["rbc"][0], tx["rbc"][1]),
            plt_tx=(tx["platelets"][0], tx["platelets"][1]),
            antihypertensive=Spans(*ev["antihypertensive"]),
            gvhd=Spans(*ev["gvhd"]),
            infection=Spans(*ev["infection"]),
            age=age,
            ld_start=ld_start,
            as_of=as_of,
            events_recorded=events_recorded,
        ),
        refs,
        tables.tatma(),
    )
