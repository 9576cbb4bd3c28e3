"""A plain per-patient reference of the grading definitions, for the benchmark only.

Written straight from the definitions (clinical-definitions.md; the conventions of
docs/conventions.md and the rule tables), sharing no code with the package's vectorised engine:
a Python loop over each patient's rows of the CSV form of a cohort (sorted by patient and day),
one patient at a time. Unit conversion and the plausibility rule reuse the package's analyte and
unit catalogue (input handling, not grading). It computes what ``cart-cytopenia grade`` reports
for the core definitions, so that the per-patient speed comparison is like for like:

- EHA/EBMT ICAHT, early (day 0-30): daily lowest ANC; days between two values interpolated
  linearly when at most 7 days are missing; runs of ANC <= 500 (<= 100) joined unless ANC stays
  above the threshold on 3 consecutive days; unknown days neither extend nor end a run and
  restart a recovery streak; the longest run's days within day 0-30 grade it (<= 500: 1-6 d
  grade 1, 7-13 d grade 2, >= 14 d grade 3; <= 100: 7-13 d grade 3, >= 14 d grade 4); a first run
  that starts by day 3 and lasts through day 30, or never recovers before the last value (when
  that value is <= 500), is grade 4;
- late ICAHT: raw daily lowest values from day 31 to the earliest of day 100, the day before
  relapse/progression or next therapy, last follow-up and death; grade from the lowest value
  (<= 100: 4, <= 500: 3, <= 1000: 2, <= 1500: 1, else 0) unless a second value is > 1500;
- CTCAE v5.0 worst grade from day 0 for neutrophils, platelets, anaemia (LLN by sex), WBC,
  lymphocytes ("<" comparisons, default LLNs);
- nadirs of ANC, platelets and haemoglobin; days with ANC <= 500/uL and with platelets
  < 50 x10^9/L in days 0-60 (interpolated series);
- neutrophil recovery phenotype (aplastic: a joined run <= 500 of >= 14 days; intermittent:
  recovery then <= 1000 after day 21; quick: recovery, or never <= 500, without such a dip, with
  ANC known beyond day 28; judged to the end of the late window);
- CAR-HEMATOTOX (last pre-lymphodepletion value within 30 days; points; high risk >= 2);
- transfusion episodes (red cells, platelets) day 0-30 and 31-100; CRS and ICANS maximum grade.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from cart_cytopenia.domain.analytes import resolve_analyte
from cart_cytopenia.domain.units import resolve_unit

EARLY = (0, 30)
LATE_START, LATE_END = 31, 100
MAX_GAP = 7
RECOVERED_DAYS = 3
ONSET_BY = 3
MAX_DAY = 730
LLN = {"anc": 2000.0, "platelets": 150.0, "wbc": 4.0, "alc": 1000.0}
HB_LLN = {"female": 12.0, "male": 13.5}
CTCAE = {  # grade: value < cut (canonical units), checked from the most severe
    "anc": [(4, 500.0), (3, 1000.0), (2, 1500.0)],
    "platelets": [(4, 25.0), (3, 50.0), (2, 75.0)],
    "hb": [(3, 8.0), (2, 10.0)],
    "wbc": [(4, 1.0), (3, 2.0), (2, 3.0)],
    "alc": [(4, 200.0), (3, 500.0), (2, 800.0)],
}


@dataclass
class Patient:
    infusion: dt.date
    progression: int | None
    next_therapy: int | None
    last_followup: int | None
    death: int | None
    ld_start: int
    sex: str
    events: list[tuple[str, int, int | None, str | None]] = field(default_factory=list)


@dataclass
class Result:
    early: int | None = None
    late: int | None = None
    days500: int = 0
    days100: int = 0
    never: bool = False
    late1: float | None = None
    late2: float | None = None
    ctcae: dict[str, int | None] = field(default_factory=dict)
    nadir: dict[str, float | None] = field(default_factory=dict)
    anc_le_500_d0_60: int = 0
    plt_lt_50_d0_60: int = 0
    phenotype: str | None = None
    hematotox: int | None = None
    hematotox_risk: str | None = None
    rbc_d0_30: int = 0
    plt_tx_d0_30: int = 0
    crs: int = 0
    icans: int = 0


class BadRow(ValueError):
    pass


@cache
def conversion(analyte: str, unit: str) -> tuple[str, float, float, float, bool]:
    """(code, factor to canonical, plausible low, high, value must be whole)."""
    a = resolve_analyte(analyte)
    u = resolve_unit(unit)
    whole = u.ucum == "/uL" and a.canonical_unit.ucum in ("/uL", "10*3/uL")
    return a.code, a.factor_from(u), a.plausible_low, a.plausible_high, whole


def _day(value: str | None, infusion: dt.date) -> int | None:
    if not value:
        return None
    return (dt.date.fromisoformat(value[:10]) - infusion).days


def read_patients(path: Path) -> dict[str, Patient]:
    out = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            inf = dt.date.fromisoformat(r["infusion_date"])
            ld = _day(r.get("ld_start_date"), inf)
            out[r["patient_id"]] = Patient(
                inf,
                _day(r.get("progression_date"), inf),
                _day(r.get("next_therapy_date"), inf),
                _day(r.get("last_followup_date"), inf),
                _day(r.get("death_date"), inf),
                -5 if ld is None else ld,
                r.get("sex") or "unknown",
            )
    return out


def read_events(path: Path, patients: dict[str, Patient]) -> None:
    with path.open(newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            p = patients[r["patient_id"]]
            start = int(r["start_day"])
            grade = int(r["grade"]) if r.get("grade") else None
            p.events.append((r["type"], start, grade, r.get("product") or None))


def lab_rows(path: Path) -> Iterator[tuple[str, list[tuple[int, str, float]]]]:
    """(patient_id, [(day, analyte code, canonical value), ...]) per patient, in file order."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        col = {name: i for i, name in enumerate(next(reader))}
        ip, ia, iv, iu, iday = (
            col["patient_id"],
            col["analyte"],
            col["value"],
            col["unit"],
            col["day"],
        )
        row_no = 1
        for pid, rows in itertools.groupby(reader, key=lambda r: r[ip]):
            out = []
            for r in rows:
                row_no += 1
                code, f, lo, hi, whole = conversion(r[ia], r[iu])
                raw = float(r[iv])
                v = raw * f
                if not lo <= v <= hi or (whole and raw % 1):
                    raise BadRow(f"row {row_no}: implausible {code} {raw} {r[iu]}")
                out.append((int(r[iday]), code, v))
            yield pid, out


def _runs(
    series: dict[int, float], last: int, threshold: float, stop: int | None = None
) -> list[tuple[int, int, int | None]]:
    """Joined runs (start, last day at/below, recovery day or None if still open)."""
    runs: list[tuple[int, int, int | None]] = []
    in_run = False
    start = below = streak = 0
    end = last if stop is None else min(last, stop)
    for d in range(0, end + 1):
        v = series.get(d)
        if v is None:
            if in_run:
                streak = 0  # an unknown day restarts the recovery streak
            continue
        if v <= threshold:
            if not in_run:
                in_run, start = True, d
            below, streak = d, 0
        elif in_run:
            streak += 1
            if streak >= RECOVERED_DAYS:
                runs.append((start, below, d - streak + 1))
                in_run, streak = False, 0
    if in_run:
        runs.append((start, below, None))
    return runs


def _interpolated(daily: dict[int, float]) -> dict[int, float]:
    days = sorted(daily)
    series = dict(daily)
    for a, b in itertools.pairwise(days):
        if 1 <= b - a - 1 <= MAX_GAP:
            for d in range(a + 1, b):
                series[d] = daily[a] + (daily[b] - daily[a]) * (d - a) / (b - a)
    return series


def _ctcae(code: str, value: float | None, sex: str) -> int | None:
    if value is None:
        return None
    for g, cut in CTCAE[code]:
        if value < cut:
            return g
    lln = HB_LLN.get(sex, min(HB_LLN.values())) if code == "hb" else LLN[code]
    return 1 if value < lln else 0


def _hematotox(base: dict[str, float | None]) -> tuple[int | None, str | None]:
    pts = []
    for code, value in base.items():
        if value is None:
            pts.append(None)
        elif code == "platelets":
            pts.append(2 if value < 75 else 1 if value <= 175 else 0)
        elif code == "anc":
            pts.append(1 if value < 1200 else 0)
        elif code == "hb":
            pts.append(1 if value < 9.0 else 0)
        elif code == "crp":
            pts.append(0 if value < 3.0 else 1)
        else:
            pts.append(0 if value < 650 else 1 if value <= 2000 else 2)
    total = sum(p for p in pts if p is not None)
    complete = all(p is not None for p in pts)
    risk = "high" if total >= 2 else ("low" if complete else None)
    return (total if complete else None), risk


def grade(rows: list[tuple[int, str, float]], p: Patient) -> Result:
    res = Result()
    daily: dict[str, dict[int, float]] = defaultdict(dict)
    pre: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for day, code, v in rows:
        if day < 0:
            pre[code].append((day, v))
        elif day <= MAX_DAY:
            d = daily[code]
            d[day] = min(v, d.get(day, v))
    for code in ("anc", "platelets", "hb", "wbc", "alc"):
        values = daily.get(code, {})
        low = min(values.values()) if values else None
        res.ctcae[code] = _ctcae(code, low, p.sex)
        if code in ("anc", "platelets", "hb"):
            res.nadir[code] = low
    # CAR-HEMATOTOX: the last value on or before the LD start (within 30 days), else after it
    base: dict[str, float | None] = {}
    for code in ("platelets", "anc", "hb", "crp", "ferritin"):
        cand = [
            (day <= p.ld_start, day, -v) for day, v in pre.get(code, []) if day >= p.ld_start - 30
        ]
        base[code] = -max(cand)[2] if cand else None
    res.hematotox, res.hematotox_risk = _hematotox(base)
    for kind, start, g, prod in p.events:
        if kind == "transfusion" and 0 <= start <= 30:
            if prod == "rbc":
                res.rbc_d0_30 += 1
            elif prod == "platelets":
                res.plt_tx_d0_30 += 1
        elif kind == "crs" and g is not None:
            res.crs = max(res.crs, g)
        elif kind == "icans" and g is not None:
            res.icans = max(res.icans, g)
    plt_series = _interpolated(daily.get("platelets", {}))
    res.plt_lt_50_d0_60 = sum(1 for d, v in plt_series.items() if 0 <= d <= 60 and v < 50)

    anc = daily.get("anc", {})
    if not anc:
        return res
    series = _interpolated(anc)
    last = max(anc)
    res.anc_le_500_d0_60 = sum(1 for d, v in series.items() if 0 <= d <= 60 and v <= 500)

    def longest(threshold: float) -> tuple[int, list[tuple[int, int, int | None]]]:
        runs = _runs(series, last, threshold)
        best = max((max(0, min(e, EARLY[1]) - max(s, EARLY[0]) + 1) for s, e, _ in runs), default=0)
        return best, runs

    res.days500, runs500 = longest(500)
    res.days100, _ = longest(100)
    if runs500:
        s, e, rec = runs500[0]
        res.never = s <= ONSET_BY and (e >= EARLY[1] or (rec is None and anc[last] <= 500))
    if any(EARLY[0] <= d <= EARLY[1] for d in anc):
        early = 0
        if 1 <= res.days500 <= 6:
            early = 1
        elif 7 <= res.days500 <= 13:
            early = 2
        elif res.days500 >= 14:
            early = 3
        if 7 <= res.days100 <= 13:
            early = max(early, 3)
        if res.days100 >= 14 or res.never:
            early = 4
        res.early = early
    ends = [LATE_END]
    ends += [e - 1 for e in (p.progression, p.next_therapy) if e is not None]
    ends += [e for e in (p.last_followup, p.death) if e is not None]
    end = min(ends)
    if end >= LATE_START:
        vals = sorted(v for d, v in anc.items() if LATE_START <= d <= end)
        if vals:
            v1 = vals[0]
            v2 = vals[1] if len(vals) > 1 else None
            late = (
                4 if v1 <= 100 else 3 if v1 <= 500 else 2 if v1 <= 1000 else 1 if v1 <= 1500 else 0
            )
            res.late = 0 if v2 is not None and v2 > 1500 else late
            res.late1, res.late2 = v1, v2
    # recovery phenotype, judged to the end of the late window (not before day 0)
    horizon = max(end, 0)
    runs = _runs(series, last, 500, stop=horizon)
    longest_all = max((e - s + 1 for s, e, _ in runs), default=0)
    first_rec = runs[0][2] if runs and runs[0][2] is not None else None
    dip = first_rec is not None and any(
        d > 21 and d >= first_rec + RECOVERED_DAYS and d <= horizon and v <= 1000
        for d, v in series.items()
    )
    last_known = min(last, horizon)
    if longest_all >= 14:
        res.phenotype = "aplastic"
    elif first_rec is not None and dip:
        res.phenotype = "intermittent"
    elif not dip and (first_rec is not None or not runs) and last_known > 28:
        res.phenotype = "quick"
    return res


def grade_files(labs: Path, patients: Path, events: Path | None = None) -> dict[str, Result]:
    """Grade every patient of a CSV cohort, one patient at a time."""
    pats = read_patients(patients)
    if events is not None:
        read_events(events, pats)
    out = {pid: grade([], p) for pid, p in pats.items()}
    for pid, rows in lab_rows(labs):
        out[pid] = grade(rows, pats[pid])
    return out
