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
  ANC known beyond day 28, and never with ANC <= 1000 after day 21 or a refractory G-CSF
  response; judged to the end of the late window);
- CAR-HEMATOTOX (last pre-lymphodepletion value within 30 days; points; high risk >= 2);
- transfusion episodes (red cells, platelets) day 0-30 and 31-100; CRS and ICANS maximum grade;
- the day of each nadir (first day at the lowest value); the phase (early day 0-29, prolonged
  30-90, late >= 91; timing.toml) of the last day with significant cytopenia (ANC < 1000/uL,
  platelets < 50 x10^9/L, Hb < 8 g/dL); the day of the last ANC value;
- the recovery phenotype's first recovery day (first day of the 3-day streak that closed the
  first run), second-dip day (first day after day 21 and at least 3 days after that recovery with
  ANC <= 1000) and sustained recovery day (recovery day of the last run when it closed);
- the late window's end day and what set it (day 100, relapse/progression, next therapy, last
  follow-up, death; the first of these on a tie) and the number of days with an ANC value in it;
- CAR-HEMATOTOX points counted (markers present), missing markers, and which warnings apply
  (drawn after lymphodepletion; disease outside LBCL, MCL/MM being published extensions; LBCL
  product other than axi-cel/tisa-cel; a value not used, per marker);
- G-CSF: the first start of a G-CSF course on or after day 0 (drugs of the G-CSF class in the
  drug catalogue) and the response: ANC at start (that day's interpolated value, else the last
  one of the 3 days before), responded when the interpolated ANC exceeds 500/uL (1500/uL when
  started above 500) on one of the 7 days after the start, else "no ANC after start" when none
  of those days has a value, else refractory (the course being complete, never "too early");
- provisional flags: the reference grades retrospectively (every course complete), so nothing
  is provisional; reason texts are compared only for presence (a reason exactly when there is
  no grade / no phenotype).
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
from cart_cytopenia.domain.catalogues import DrugClass, drugs
from cart_cytopenia.domain.units import resolve_unit

EARLY = (0, 30)
LATE_START, LATE_END = 31, 100
MAX_GAP = 7
RECOVERED_DAYS = 3
ONSET_BY = 3
MAX_DAY = 730
LLN = {"anc": 2000.0, "platelets": 150.0, "wbc": 4.0, "alc": 1000.0}
HB_LLN = {"female": 12.0, "male": 13.5}
SIGNIFICANT = {"anc": 1000.0, "platelets": 50.0, "hb": 8.0}  # below: significant cytopenia
PHASES = ((0, 29, "early"), (30, 90, "prolonged"), (91, 10**6, "late"))
SECOND_DIP_AFTER, SECOND_DIP_ANC, APLASTIC_DAYS, FOLLOWUP_DAY = 21, 1000.0, 14, 28
NOT_QUICK_AFTER, NOT_QUICK_ANC = 21, 1000.0
GCSF_WINDOW, GCSF_ANC, GCSF_BIPHASIC_ANC = 7, 500.0, 1500.0
HEMATOTOX_VALIDATED, HEMATOTOX_EXTENDED = ("LBCL",), ("MCL", "MM")
HEMATOTOX_PRODUCTS = ("axi-cel", "tisa-cel")
CTCAE_VERSION = "5.0"  # the cut-points below are CTCAE v5.0
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
    disease: str = "unknown"
    product: str = "unknown"
    events: list[tuple[str, int, int | None, str | None]] = field(default_factory=list)


@dataclass
class Result:
    early: int | None = None
    late: int | None = None
    days500: int | None = 0
    days100: int | None = 0
    never: bool | None = False
    late1: float | None = None
    late2: float | None = None
    ctcae: dict[str, int | None] = field(default_factory=dict)
    nadir: dict[str, float | None] = field(default_factory=dict)
    anc_le_500_d0_60: int | None = 0
    plt_lt_50_d0_60: int | None = 0
    phenotype: str | None = None
    hematotox: int | None = None
    hematotox_risk: str | None = None
    rbc_d0_30: int | None = 0
    plt_tx_d0_30: int | None = 0
    crs: int | None = 0
    icans: int | None = 0
    provisional_early: bool = False
    provisional_late: bool = False
    late_n: int = 0
    late_end: int = LATE_END
    late_end_reason: str = f"day {LATE_END}"
    nadir_day: dict[str, int | None] = field(default_factory=dict)
    latest_phase: dict[str, str | None] = field(default_factory=dict)
    first_recovery: int | None = None
    second_dip: int | None = None
    sustained_recovery: int | None = None
    hematotox_counted: int = 0
    hematotox_missing: list[str] = field(default_factory=list)
    hematotox_warnings: list[str] = field(default_factory=list)
    rbc_d31_100: int | None = 0
    plt_tx_d31_100: int | None = 0
    gcsf_first: int | None = None
    gcsf_response: str | None = None
    last_anc_day: int | None = None


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
                r.get("disease") or "unknown",
                r.get("product") or "unknown",
            )
    return out


def read_events(path: Path, patients: dict[str, Patient]) -> None:
    with path.open(newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            p = patients[r["patient_id"]]
            start = int(r["start_day"])
            grade = int(r["grade"]) if r.get("grade") else None
            p.events.append((r["type"], start, grade, r.get("product") or r.get("drug") or None))


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


def _hematotox(
    base: dict[str, tuple[float, bool] | None],
) -> tuple[int | None, str | None, int, list[str], bool]:
    """(score or None, risk, points counted, missing markers, a value drawn after LD start)."""
    counted = 0
    missing = []
    after_ld = False
    for code, found in base.items():
        if found is None:
            missing.append(code)
            continue
        value, pre_ld = found
        after_ld = after_ld or not pre_ld
        if code == "platelets":
            counted += 2 if value < 75 else 1 if value <= 175 else 0
        elif code == "anc":
            counted += 1 if value <= 1200 else 0
        elif code == "hb":
            counted += 1 if value <= 9.0 else 0
        elif code == "crp":
            counted += 0 if value < 3.0 else 1
        else:
            counted += 0 if value < 650 else 1 if value <= 2000 else 2
    risk = "high" if counted >= 2 else (None if missing else "low")
    return (None if missing else counted), risk, counted, missing, after_ld


def _phase(day: int) -> str | None:
    for first, last, name in PHASES:
        if first <= day <= last:
            return name
    return None


@cache
def _gcsf_names() -> frozenset[str]:
    return frozenset(
        name
        for d in drugs().values()
        if DrugClass.GCSF in d.classes
        for name in (d.id.lower(), *d.aliases)
    )


def _late_window(p: Patient) -> tuple[int, str]:
    """Last day of the late window and what set it (the first listed on a tie)."""
    ends: list[tuple[int, str]] = [(LATE_END, f"day {LATE_END}")]
    if p.progression is not None:
        ends.append((p.progression - 1, "relapse/progression"))
    if p.next_therapy is not None:
        ends.append((p.next_therapy - 1, "next therapy"))
    if p.last_followup is not None:
        ends.append((p.last_followup, "last follow-up"))
    if p.death is not None:
        ends.append((p.death, "death"))
    best = ends[0]
    for e in ends[1:]:
        if e[0] < best[0]:
            best = e
    return best


def grade(rows: list[tuple[int, str, float]], p: Patient, events_given: bool = True) -> Result:
    """The patient's row; counts and durations whose data are missing are None, never 0."""
    res = _grade(rows, p)

    def seen(code: str, lo: int, hi: int) -> bool:
        return any(c == code and lo <= d <= hi for d, c, _ in rows)

    if not seen("anc", *EARLY):
        res.days500 = res.days100 = res.never = None
    if not seen("anc", 0, 60):
        res.anc_le_500_d0_60 = None
    if not seen("platelets", 0, 60):
        res.plt_lt_50_d0_60 = None
    counts_seen = any(code in ("anc", "platelets", "hb", "wbc", "alc") for _, code, _ in rows)
    if not events_given or not (counts_seen or p.events):
        res.rbc_d0_30 = res.rbc_d31_100 = res.plt_tx_d0_30 = res.plt_tx_d31_100 = None
        res.crs = res.icans = None
    return res


def _grade(rows: list[tuple[int, str, float]], p: Patient) -> Result:
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
        if code in SIGNIFICANT:
            res.nadir[code] = low
            res.nadir_day[code] = (
                None if low is None else min(d for d, v in values.items() if v == low)
            )
            below = [d for d, v in values.items() if v < SIGNIFICANT[code]]
            res.latest_phase[code] = _phase(max(below)) if below else None
    # CAR-HEMATOTOX: the last value on or before the LD start (within 30 days), else after it
    base: dict[str, tuple[float, bool] | None] = {}
    for code in ("platelets", "anc", "hb", "crp", "ferritin"):
        cand = [
            (day <= p.ld_start, day, -v) for day, v in pre.get(code, []) if day >= p.ld_start - 30
        ]
        best = max(cand) if cand else None
        base[code] = None if best is None else (-best[2], best[0])
    (
        res.hematotox,
        res.hematotox_risk,
        res.hematotox_counted,
        res.hematotox_missing,
        after_ld,
    ) = _hematotox(base)
    if after_ld:
        res.hematotox_warnings.append("drawn after lymphodepletion")
    if p.disease not in HEMATOTOX_VALIDATED:
        res.hematotox_warnings.append(
            "extended disease" if p.disease in HEMATOTOX_EXTENDED else "unvalidated disease"
        )
    elif p.product not in HEMATOTOX_PRODUCTS:
        res.hematotox_warnings.append("unvalidated product")
    # values not used are named: drawn after LD start while a pre-LD value was used, or drawn
    # before the 30-day window while the marker has no value
    for code in ("platelets", "anc", "hb", "crp", "ferritin"):
        found, days = base[code], [day for day, _ in pre.get(code, [])]
        if (found is not None and found[1] and any(d > p.ld_start for d in days)) or (
            found is None and any(d < p.ld_start - 30 for d in days)
        ):
            res.hematotox_warnings.append("ignored value")
    gcsf = _gcsf_names()
    for kind, start, g, what in p.events:
        if kind == "transfusion":
            late_tx = LATE_START <= start <= LATE_END
            if 0 <= start <= 30 or late_tx:
                if what == "rbc":
                    res.rbc_d0_30 += not late_tx
                    res.rbc_d31_100 += late_tx
                elif what == "platelets":
                    res.plt_tx_d0_30 += not late_tx
                    res.plt_tx_d31_100 += late_tx
        elif kind == "crs" and g is not None:
            res.crs = max(res.crs, g)
        elif kind == "icans" and g is not None:
            res.icans = max(res.icans, g)
        elif kind == "medication" and start >= 0 and what and what.lower() in gcsf:
            res.gcsf_first = start if res.gcsf_first is None else min(res.gcsf_first, start)
    plt_series = _interpolated(daily.get("platelets", {}))
    res.plt_lt_50_d0_60 = sum(1 for d, v in plt_series.items() if 0 <= d <= 60 and v < 50)
    end, res.late_end_reason = _late_window(p)
    res.late_end = end

    anc = daily.get("anc", {})
    if not anc:
        if res.gcsf_first is not None:
            res.gcsf_response = "no ANC after start"
        return res
    series = _interpolated(anc)
    last = max(anc)
    res.last_anc_day = last
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
    if end >= LATE_START:
        vals = sorted(v for d, v in anc.items() if LATE_START <= d <= end)
        res.late_n = len(vals)
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
    res.first_recovery = first_rec
    if runs and runs[-1][2] is not None:
        res.sustained_recovery = runs[-1][2]
    if first_rec is not None:
        dips = [
            d
            for d, v in series.items()
            if SECOND_DIP_AFTER < d <= horizon
            and d >= first_rec + RECOVERED_DAYS
            and v <= SECOND_DIP_ANC
        ]
        res.second_dip = min(dips) if dips else None
    dip = res.second_dip is not None
    last_known = min(last, horizon)
    # G-CSF response of the first course (retrospective: the whole window counts as observed)
    if res.gcsf_first is not None:
        s0 = res.gcsf_first
        at_start = series.get(s0)
        for d in range(s0 - 1, s0 - 4, -1):
            if at_start is not None:
                break
            at_start = series.get(d)
        level = GCSF_BIPHASIC_ANC if at_start is not None and at_start > GCSF_ANC else GCSF_ANC
        after = [series[d] for d in range(s0 + 1, s0 + GCSF_WINDOW + 1) if d in series]
        if any(v > level for v in after):
            res.gcsf_response = "responded"
        elif not after:
            res.gcsf_response = "no ANC after start"
        else:
            res.gcsf_response = "refractory"
    # never quick: ANC <= 1000 after day 21 (to the horizon), or G-CSF refractory by the horizon
    persisting = any(
        NOT_QUICK_AFTER < d <= horizon and v <= NOT_QUICK_ANC for d, v in series.items()
    )
    refractory = res.gcsf_response == "refractory" and (res.gcsf_first or 0) <= horizon
    if longest_all >= APLASTIC_DAYS:
        res.phenotype = "aplastic"
    elif first_rec is not None and dip:
        res.phenotype = "intermittent"
    elif (
        not dip
        and (first_rec is not None or not runs)
        and last_known > FOLLOWUP_DAY
        and not (persisting or refractory)
    ):
        res.phenotype = "quick"
    return res


def grade_files(labs: Path, patients: Path, events: Path | None = None) -> dict[str, Result]:
    """Grade every patient of a CSV cohort, one patient at a time."""
    pats = read_patients(patients)
    if events is not None:
        read_events(events, pats)
    given = events is not None
    out = {pid: grade([], p, given) for pid, p in pats.items()}
    for pid, rows in lab_rows(labs):
        out[pid] = grade(rows, pats[pid], given)
    return out
