"""Load and validate the versioned, cited rule tables in ``rules/tables/*.toml``.

Every table opens with a ``[meta]`` header (id, title, version, source, transcribed date). Numbers
are stored with their unit and converted here, once, to the analyte's canonical unit; bands are
checked for order, gaps and overlaps (``BandTable``). No code strings are evaluated: tables hold
numbers and comparators only. ``docs/rule-reference.md`` is generated from these objects.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from cart_cytopenia.domain.analytes import analyte
from cart_cytopenia.domain.units import resolve_unit
from cart_cytopenia.errors import RuleTableError, UnitError
from cart_cytopenia.rules.bands import Band, BandTable


@dataclass(frozen=True)
class RuleMeta:
    id: str
    title: str
    version: str
    source: str
    transcribed: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.id} v{self.version}"


def read_table(package: str, name: str) -> dict[str, Any]:
    """Parse ``tables/<name>`` shipped in ``package`` (a rule table of any layer)."""
    try:
        text = resources.files(package).joinpath(f"tables/{name}").read_text()
        return tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RuleTableError(f"rule table {name} cannot be read: {exc}") from exc


def _read(name: str) -> dict[str, Any]:
    return read_table("cart_cytopenia.rules", name)


def parse_meta(raw: dict[str, Any], name: str) -> RuleMeta:
    """The ``[meta]`` header every rule table opens with (id, title, version, source, transcribed)."""
    m = raw.get("meta")
    if not isinstance(m, dict):
        raise RuleTableError(f"rule table {name} has no [meta] header")
    try:
        extra = {
            k: v
            for k, v in m.items()
            if k not in {"id", "title", "version", "source", "transcribed"}
        }
        return RuleMeta(
            m["id"], m["title"], str(m["version"]), m["source"], str(m["transcribed"]), extra
        )
    except KeyError as exc:
        raise RuleTableError(f"rule table {name}: [meta] lacks {exc}") from exc


_meta = parse_meta


def _factor(analyte_code: str, unit: str, where: str) -> float:
    try:
        return analyte(analyte_code).factor_from(resolve_unit(unit))
    except (UnitError, KeyError) as exc:
        raise RuleTableError(f"{where}: {exc}") from exc


def _num(x: Any, factor: float, default: float) -> float:
    if x is None:
        return default
    return float(x) * factor


def _bands(
    raw_bands: list[dict[str, Any]],
    factor: float,
    where: str,
    value_key: str,
    lln: float | None = None,
) -> BandTable:
    """Bands in the canonical unit. Each band states whether its upper bound is included; the
    next band's lower bound is then excluded (and vice versa), so the table has no gap."""

    def bound(x: Any, default: float) -> float:
        if x == "LLN":
            if lln is None:
                raise RuleTableError(f"{where}: 'LLN' bound needs a reference range")
            return lln
        return _num(x, factor, default)

    ordered = sorted(
        raw_bands, key=lambda b: (bound(b.get("min"), -math.inf), bound(b.get("max"), math.inf))
    )
    bands: list[Band] = []
    for b in ordered:
        bands.append(
            Band(
                value=int(b[value_key]),
                min=bound(b.get("min"), -math.inf),
                max=bound(b.get("max"), math.inf),
                min_inclusive=not bands[-1].max_inclusive if bands else True,
                max_inclusive=bool(b.get("max_inclusive", False)),
                text=str(b.get("text", "")),
            )
        )
    return BandTable(where, tuple(bands), "")


# --------------------------------------------------------------------------- CTCAE


@dataclass(frozen=True)
class CtcaeCriterion:
    id: str
    term: str
    analyte: str
    unit: str
    lln_key: str | None  # None: grade 1 does not refer to the LLN (e.g. CTCAE v6 neutrophils)
    comment: str
    raw_bands: tuple[dict[str, Any], ...]
    factor: float  # table unit -> canonical

    def table(self, lln_canonical: float) -> BandTable:
        """Bands in the canonical unit for a given LLN (canonical unit), plus grade 0 >= LLN
        (or, for criteria without an LLN, grade 0 from the grade-1 upper cut-point)."""
        if self.lln_key is None:
            top = max(float(b["max"]) for b in self.raw_bands)
            raw_fixed = [*self.raw_bands, {"grade": 0, "min": top, "text": f">= {top:g} (normal)"}]
            return _bands(raw_fixed, self.factor, self.id, "grade")
        lln_table = lln_canonical / self.factor
        raw = []
        for b in self.raw_bands:
            if b.get("max") == "LLN" and float(b.get("min", -math.inf)) >= lln_table:
                # the laboratory's LLN is at or below this band's lower cut-point: no grade-1 range
                lln_table = float(b.get("min", -math.inf))
                continue
            raw.append(b)
        raw.append({"grade": 0, "min": lln_table, "text": ">= LLN"})
        return _bands(raw, self.factor, self.id, "grade", lln=lln_table * self.factor)


@dataclass(frozen=True)
class CtcaeTable:
    meta: RuleMeta
    criteria: dict[str, CtcaeCriterion]  # by analyte code


@cache
def ctcae(version: str = "5.0") -> CtcaeTable:
    name = {"5.0": "ctcae_v5.toml", "6.0": "ctcae_v6.toml"}.get(version)
    if name is None:
        raise RuleTableError(f"CTCAE version {version!r} is not available (5.0 or 6.0)")
    raw = _read(name)
    meta = _meta(raw, name)
    criteria = {}
    for c in raw["criterion"]:
        factor = _factor(c["analyte"], c["unit"], c["id"])
        crit = CtcaeCriterion(
            c["id"],
            c["term"],
            c["analyte"],
            c["unit"],
            c.get("lln"),
            c.get("comment", ""),
            tuple(c["bands"]),
            factor,
        )
        crit.table(lln_canonical=1e12)  # validate order/gaps with a placeholder LLN
        criteria[c["analyte"]] = crit
    return CtcaeTable(meta, criteria)


# --------------------------------------------------------------------------- ICAHT


@dataclass(frozen=True)
class GradeCondition:
    measure: str
    min: float
    max: float


@dataclass(frozen=True)
class EarlyGrade:
    grade: int
    text: str
    any: tuple[GradeCondition, ...]


@dataclass(frozen=True)
class IcahtConventions:
    max_interpolation_gap_days: int
    join_min_recovered_days: int
    never_recovered_onset_by_day: int
    late_end_event_day_included: bool


@dataclass(frozen=True)
class IcahtTable:
    meta: RuleMeta
    early_window: tuple[int, int]
    severe_threshold: float  # canonical (/uL)
    profound_threshold: float
    early_grades: tuple[EarlyGrade, ...]
    late_window_start: int
    late_window_end: int
    late_bands: BandTable
    late_text: str
    confirm_threshold: float
    conventions: IcahtConventions


_EARLY_MEASURES = {"days_le_severe", "days_le_profound", "never_recovered"}


def _grade_conditions(
    raw: list[dict[str, Any]], measures: set[str], where: str
) -> tuple[EarlyGrade, ...]:
    """Grades that hold when any of their conditions (a measure within min..max) holds, listed
    in increasing order (the highest grade that holds is reported)."""
    grades = []
    for g in raw:
        conds = []
        for c in g["any"]:
            if c["measure"] not in measures:
                raise RuleTableError(f"{where} grade {g['grade']}: unknown measure {c['measure']}")
            conds.append(
                GradeCondition(
                    c["measure"], float(c.get("min", -math.inf)), float(c.get("max", math.inf))
                )
            )
        grades.append(EarlyGrade(int(g["grade"]), g["text"], tuple(conds)))
    if [g.grade for g in grades] != sorted(g.grade for g in grades):
        raise RuleTableError(f"{where} grades must be listed in increasing order")
    return tuple(grades)


@cache
def icaht() -> IcahtTable:
    raw = _read("icaht.toml")
    meta = _meta(raw, "icaht.toml")
    e, late, conv = raw["early"], raw["late"], raw["conventions"]
    f_e = _factor("anc", e["unit"], "icaht.early")
    f_l = _factor("anc", late["unit"], "icaht.late")
    grades = _grade_conditions(e["grade"], _EARLY_MEASURES, "icaht early")
    if conv.get("daily_aggregate") != "min":
        raise RuleTableError("icaht: only daily_aggregate = 'min' is implemented")
    return IcahtTable(
        meta=meta,
        early_window=(int(e["window"][0]), int(e["window"][1])),
        severe_threshold=float(e["severe_threshold"]) * f_e,
        profound_threshold=float(e["profound_threshold"]) * f_e,
        early_grades=grades,
        late_window_start=int(late["window_start"]),
        late_window_end=int(late["window_end"]),
        late_bands=_bands(late["bands"], f_l, "icaht.late", "grade"),
        late_text=late["text"],
        confirm_threshold=float(late["confirm_threshold"]) * f_l,
        conventions=IcahtConventions(
            max_interpolation_gap_days=int(conv["max_interpolation_gap_days"]),
            join_min_recovered_days=int(conv["join_min_recovered_days"]),
            never_recovered_onset_by_day=int(conv["never_recovered_onset_by_day"]),
            late_end_event_day_included=bool(conv["late_end_event_day_included"]),
        ),
    )


# --------------------------------------------------------------------------- T-ICAHT


@dataclass(frozen=True)
class TicahtConventions:
    max_interpolation_gap_days: int
    join_min_recovered_days: int
    post_transfusion_days: int
    recovery_no_transfusion_days: int
    late_end_event_day_included: bool


@dataclass(frozen=True)
class TicahtTable:
    meta: RuleMeta
    early_window: tuple[int, int]
    moderate_threshold: float  # canonical (10*3/uL = 10*9/L); "<" comparisons
    severe_threshold: float
    early_grades: tuple[EarlyGrade, ...]
    late_window_start: int
    late_window_end: int
    late_bands: BandTable  # depth grade of the lowest count
    late_text: str
    confirm_threshold: float
    late_severe_threshold: float
    late_grades: tuple[EarlyGrade, ...]  # duration grades (days below the severe threshold)
    conventions: TicahtConventions


@cache
def ticaht() -> TicahtTable:
    raw = _read("ticaht.toml")
    meta = _meta(raw, "ticaht.toml")
    e, late, conv = raw["early"], raw["late"], raw["conventions"]
    f_e = _factor("platelets", e["unit"], "ticaht.early")
    f_l = _factor("platelets", late["unit"], "ticaht.late")
    if conv.get("daily_aggregate") != "min":
        raise RuleTableError("ticaht: only daily_aggregate = 'min' is implemented")
    measures = {"days_lt_moderate", "days_lt_severe"}
    ic = icaht()
    # the late window is censored by the same events and ends on the same day as late ICAHT
    # (the engine computes it once for both)
    if (int(late["window_end"]), bool(conv["late_end_event_day_included"])) != (
        ic.late_window_end,
        ic.conventions.late_end_event_day_included,
    ):
        raise RuleTableError("ticaht: the late window must end as late ICAHT's does")
    if float(late["severe_threshold"]) * f_l != float(e["severe_threshold"]) * f_e:
        # the run scans read one series for both windows (grading/ticaht.py)
        raise RuleTableError("ticaht: the late severe cut-point must be the early one")
    return TicahtTable(
        meta=meta,
        early_window=(int(e["window"][0]), int(e["window"][1])),
        moderate_threshold=float(e["moderate_threshold"]) * f_e,
        severe_threshold=float(e["severe_threshold"]) * f_e,
        early_grades=_grade_conditions(e["grade"], measures, "ticaht early"),
        late_window_start=int(late["window_start"]),
        late_window_end=int(late["window_end"]),
        late_bands=_bands(late["bands"], f_l, "ticaht.late", "grade"),
        late_text=late["text"],
        confirm_threshold=float(late["confirm_threshold"]) * f_l,
        late_severe_threshold=float(late["severe_threshold"]) * f_l,
        late_grades=_grade_conditions(late["grade"], {"days_lt_severe"}, "ticaht late"),
        conventions=TicahtConventions(
            max_interpolation_gap_days=int(conv["max_interpolation_gap_days"]),
            join_min_recovered_days=int(conv["join_min_recovered_days"]),
            post_transfusion_days=int(conv["post_transfusion_days"]),
            recovery_no_transfusion_days=int(conv["recovery_no_transfusion_days"]),
            late_end_event_day_included=bool(conv["late_end_event_day_included"]),
        ),
    )


# --------------------------------------------------------------------------- EASIX


@dataclass(frozen=True)
class EasixTable:
    meta: RuleMeta
    baseline_window_days: int
    early_days: tuple[int, int]
    baseline_cutoff: float  # EASIX before lymphodepletion: "above" is at risk
    cutoff_outcome: str
    cutoff_source: str


@cache
def easix() -> EasixTable:
    raw = _read("easix.toml")
    meta = _meta(raw, "easix.toml")
    f = raw["formula"]
    for a in ("ldh", "creatinine", "crp", "platelets"):
        # the scores are computed from canonical values: the formula's units must be them
        if _factor(a, f[f"{a}_unit"], "easix.formula") != 1.0:
            raise RuleTableError(f"easix: {a} must be in its canonical unit in the formula")
    cuts = raw["cutoff"]
    if len(cuts) != 1 or (cuts[0]["score"], cuts[0]["timepoint"]) != ("easix", "baseline"):
        raise RuleTableError("easix: one cut-off is implemented: EASIX before lymphodepletion")
    c = cuts[0]
    d0, d1 = raw["early"]["days"]
    return EasixTable(
        meta=meta,
        baseline_window_days=int(raw["baseline"]["window_days"]),
        early_days=(int(d0), int(d1)),
        baseline_cutoff=float(c["above"]),
        cutoff_outcome=str(c["outcome"]),
        cutoff_source=str(c["source"]),
    )


# --------------------------------------------------------------------------- TA-TMA

TATMA_CRITERIA = (
    "anaemia",
    "thrombocytopenia",
    "ldh",
    "schistocytes",
    "hypertension",
    "sc5b9",
    "proteinuria",
)
TATMA_HIGH_RISK = ("sc5b9", "proteinuria", "ldh_2x_uln", "gvhd", "infection", "organ_dysfunction")


@dataclass(frozen=True)
class TatmaCriterion:
    id: str
    label: str
    text: str


@dataclass(frozen=True)
class TatmaTable:
    meta: RuleMeta
    criteria: tuple[TatmaCriterion, ...]  # in ``TATMA_CRITERIA`` order
    required: int  # criteria met on each of the time points
    window_days: int  # the two time points lie within this many days
    cut: dict[str, float]  # [cutpoints], canonical units (Hb g/dL, platelets 10*3/uL)
    high_risk_ldh_uln: float
    high_risk_gvhd_grade: int
    high_risk_infections: tuple[str, ...]
    carry_forward_days: int
    transfusion_lookback_days: int
    baseline_window_days: int
    workup_criteria: tuple[str, ...]  # TA-TMA-specific: none assessable -> "not evaluated"

    def criterion(self, cid: str) -> TatmaCriterion:
        return self.criteria[TATMA_CRITERIA.index(cid)]


@cache
def tatma() -> TatmaTable:
    raw = _read("tatma.toml")
    meta = _meta(raw, "tatma.toml")
    d, c, hr, conv = raw["diagnosis"], raw["cutpoints"], raw["high_risk"], raw["conventions"]
    crit = tuple(TatmaCriterion(x["id"], x["label"], x["text"]) for x in raw["criterion"])
    if tuple(x.id for x in crit) != TATMA_CRITERIA or int(d["criteria_total"]) != len(crit):
        raise RuleTableError(f"tatma: the criteria must be, in order, {', '.join(TATMA_CRITERIA)}")
    if tuple(hr["features"]) != TATMA_HIGH_RISK:
        raise RuleTableError(f"tatma: high-risk features must be {', '.join(TATMA_HIGH_RISK)}")
    if int(d["time_points"]) != 2:
        raise RuleTableError("tatma: two time points are implemented")
    required = int(d["criteria_required"])
    if not 1 <= required <= len(crit):
        raise RuleTableError("tatma: criteria_required must be 1..7")
    cut = {k: float(v) for k, v in c.items()}
    # (platelets are compared in the canonical unit; the table gives 10^9/L)
    cut["platelets_below"] = cut.pop("platelets_below_10e9_l") * _factor(
        "platelets", "10*9/L", "tatma.cutpoints"
    )
    for k in ("carry_forward_days", "transfusion_lookback_days", "baseline_window_days"):
        if int(conv[k]) < 0:
            raise RuleTableError(f"tatma: {k} must not be negative")
    workup = tuple(conv["workup_criteria"])
    if not workup or not set(workup) <= set(TATMA_CRITERIA):
        raise RuleTableError(f"tatma: workup_criteria must be among {', '.join(TATMA_CRITERIA)}")
    return TatmaTable(
        meta=meta,
        criteria=crit,
        required=required,
        window_days=int(d["window_days"]),
        cut=cut,
        high_risk_ldh_uln=float(hr["ldh_at_least_uln"]),
        high_risk_gvhd_grade=int(hr["gvhd_min_grade"]),
        high_risk_infections=tuple(hr["infection_categories"]),
        carry_forward_days=int(conv["carry_forward_days"]),
        transfusion_lookback_days=int(conv["transfusion_lookback_days"]),
        baseline_window_days=int(conv["baseline_window_days"]),
        workup_criteria=workup,
    )


# --------------------------------------------------------------------------- IEC-HS


@dataclass(frozen=True)
class PointBands:
    """An HScore item scored in three bands: ``points[0]`` below ``below``, ``points[1]`` from
    ``below`` up to and including ``upto``, ``points[2]`` above ``upto``."""

    below: float
    upto: float
    points: tuple[int, int, int]


@dataclass(frozen=True)
class IecHsTable:
    meta: RuleMeta
    ferritin_multiple: float
    ferritin_baseline_window_days: int
    ferritin_rise_fold: float
    ferritin_rise_window_days: int
    ferritin_rise_lookback_days: int
    ferritin_rise_source: str
    window_before_days: int
    transaminase_uln_multiple: float
    fibrinogen_below: float
    cytopenia_below: dict[str, float]  # "anc", "platelets", "hb": canonical units
    triglycerides_above: float
    guidance_level: dict[str, str]  # ASTCT status -> the guidance level it raises to
    carhlh_ferritin_above: float
    carhlh_min_organ: int
    carhlh_bilirubin_uln_multiple: float
    carhlh_transaminase_uln_multiple: float
    carhlh_creatinine_uln_multiple: float
    hscore_cutoff: int
    hscore_window_days: int
    hscore_immunosuppression: int
    hscore_temperature: PointBands
    hscore_organomegaly: tuple[int, int, int]
    hscore_cytopenia: tuple[int, int, int, int]
    hscore_cytopenia_at_or_below: dict[str, float]  # "hb", "wbc", "platelets"
    hscore_ferritin: PointBands
    hscore_triglycerides: PointBands
    hscore_fibrinogen: tuple[float, int]  # at or below, points
    hscore_ast: tuple[float, int]  # at or above, points
    hscore_haemophagocytosis: int


def _point_bands(x: dict[str, Any], code: str | None, where: str) -> PointBands:
    f = 1.0 if code is None else _factor(code, x["unit"], where)
    p = [int(v) for v in x["points"]]
    if len(p) != 3 or not float(x["below"]) <= float(x["upto"]):
        raise RuleTableError(f"{where}: three points and below <= upto are required")
    return PointBands(float(x["below"]) * f, float(x["upto"]) * f, (p[0], p[1], p[2]))


@cache
def iec_hs() -> IecHsTable:
    raw = _read("iec_hs.toml")
    meta = _meta(raw, "iec_hs.toml")
    fe, a, c, h = raw["ferritin"], raw["astct"], raw["carhlh"], raw["hscore"]
    if _factor("ferritin", fe["unit"], "iec_hs.ferritin") != 1.0:
        raise RuleTableError("iec_hs: ferritin must be in its canonical unit (ng/mL)")
    if not (
        float(fe["rise_fold"]) > 1.0
        and 0 < int(fe["rise_window_days"]) <= int(fe["rise_lookback_days"])
    ):
        raise RuleTableError("iec_hs: rise_fold > 1 and 0 < rise_window_days <= lookback needed")
    levels = {str(k): str(v) for k, v in a["guidance_level"].items()}
    if set(levels) - {"met", "suspected"} or set(levels.values()) - {
        "possible",
        "suspected",
        "high",
    }:
        raise RuleTableError("iec_hs: guidance_level maps met/suspected to possible/suspected/high")
    org, cyt = [int(v) for v in h["organomegaly_points"]], [int(v) for v in h["cytopenia_points"]]
    if len(org) != 3 or len(cyt) != 4:
        raise RuleTableError("iec_hs: organomegaly needs 3 points, cytopenia 4 (0-3 lineages)")
    fib, ast = h["fibrinogen"], h["ast"]
    return IecHsTable(
        meta=meta,
        ferritin_multiple=float(fe["multiple"]),
        ferritin_baseline_window_days=int(fe["baseline_window_days"]),
        ferritin_rise_fold=float(fe["rise_fold"]),
        ferritin_rise_window_days=int(fe["rise_window_days"]),
        ferritin_rise_lookback_days=int(fe["rise_lookback_days"]),
        ferritin_rise_source=str(fe["rise_source"]),
        window_before_days=int(a["window_before_days"]),
        transaminase_uln_multiple=float(a["transaminase_uln_multiple"]),
        fibrinogen_below=float(a["fibrinogen_below"])
        * _factor("fibrinogen", a["fibrinogen_unit"], "iec_hs.astct"),
        cytopenia_below={
            "anc": float(a["anc_below"]),
            "platelets": float(a["platelets_below"]),
            "hb": float(a["hb_below"]),
        },
        triglycerides_above=float(a["triglycerides_above"]),
        guidance_level=levels,
        carhlh_ferritin_above=float(c["ferritin_above"]),
        carhlh_min_organ=int(c["min_organ_criteria"]),
        carhlh_bilirubin_uln_multiple=float(c["bilirubin_uln_multiple"]),
        carhlh_transaminase_uln_multiple=float(c["transaminase_uln_multiple"]),
        carhlh_creatinine_uln_multiple=float(c["creatinine_uln_multiple"]),
        hscore_cutoff=int(h["cutoff"]),
        hscore_window_days=int(h["window_days"]),
        hscore_immunosuppression=int(h["immunosuppression_points"]),
        hscore_temperature=_point_bands(h["temperature"], None, "iec_hs.hscore.temperature"),
        hscore_organomegaly=(org[0], org[1], org[2]),
        hscore_cytopenia=(cyt[0], cyt[1], cyt[2], cyt[3]),
        hscore_cytopenia_at_or_below={
            "hb": float(h["cytopenia_hb_at_or_below"]),
            "wbc": float(h["cytopenia_wbc_at_or_below"]),
            "platelets": float(h["cytopenia_platelets_at_or_below"]),
        },
        hscore_ferritin=_point_bands(h["ferritin"], "ferritin", "iec_hs.hscore.ferritin"),
        hscore_triglycerides=_point_bands(h["triglycerides"], "triglycerides", "iec_hs.hscore.tg"),
        hscore_fibrinogen=(
            float(fib["at_or_below"]) * _factor("fibrinogen", fib["unit"], "iec_hs.hscore"),
            int(fib["points"]),
        ),
        hscore_ast=(
            float(ast["at_or_above"]) * _factor("ast", ast["unit"], "iec_hs.hscore"),
            int(ast["points"]),
        ),
        hscore_haemophagocytosis=int(h["haemophagocytosis_points"]),
    )


# --------------------------------------------------------------------------- CAR-HEMATOTOX


@dataclass(frozen=True)
class HematotoxMarker:
    analyte: str
    unit: str
    bands: BandTable  # canonical unit


@dataclass(frozen=True)
class HematotoxTable:
    meta: RuleMeta
    markers: tuple[HematotoxMarker, ...]
    high_min_score: int
    baseline_window_days: int
    validated_diseases: tuple[str, ...]
    validated_products: tuple[str, ...]
    extended_diseases: tuple[str, ...]

    @property
    def max_score(self) -> int:
        return sum(max(b.value for b in m.bands.bands) for m in self.markers)


@cache
def hematotox() -> HematotoxTable:
    raw = _read("hematotox.toml")
    meta = _meta(raw, "hematotox.toml")
    markers = []
    for m in raw["marker"]:
        f = _factor(m["analyte"], m["unit"], f"hematotox.{m['analyte']}")
        markers.append(
            HematotoxMarker(
                m["analyte"],
                m["unit"],
                _bands(m["bands"], f, f"hematotox.{m['analyte']}", "points"),
            )
        )
    x = meta.extra
    return HematotoxTable(
        meta=meta,
        markers=tuple(markers),
        high_min_score=int(raw["risk"]["high_min_score"]),
        baseline_window_days=int(x.get("baseline_window_days", 30)),
        validated_diseases=tuple(x.get("validated_diseases", [])),
        validated_products=tuple(x.get("validated_products", [])),
        extended_diseases=tuple(x.get("extended_diseases", [])),
    )


# --------------------------------------------------------------------------- phenotype


@dataclass(frozen=True)
class PhenotypeTable:
    meta: RuleMeta
    recovery_threshold: float
    recovery_min_days: int
    second_dip_threshold: float
    second_dip_after_day: int
    aplastic_threshold: float
    aplastic_min_days: int
    min_followup_day: int
    not_quick_anc_le: float  # canonical
    not_quick_after_day: int
    not_quick_if_gcsf_refractory: bool
    not_quick_source: str


@cache
def recovery_phenotype() -> PhenotypeTable:
    raw_all = _read("recovery_phenotype.toml")
    raw = raw_all["thresholds"]
    f = _factor("anc", raw["unit"], "recovery_phenotype")
    nq = raw_all["not_quick"]
    fq = _factor("anc", nq["unit"], "recovery_phenotype.not_quick")
    return PhenotypeTable(
        meta=_meta(raw_all, "recovery_phenotype.toml"),
        recovery_threshold=float(raw["recovery_threshold"]) * f,
        recovery_min_days=int(raw["recovery_min_days"]),
        second_dip_threshold=float(raw["second_dip_threshold"]) * f,
        second_dip_after_day=int(raw["second_dip_after_day"]),
        aplastic_threshold=float(raw["aplastic_threshold"]) * f,
        aplastic_min_days=int(raw["aplastic_min_days"]),
        min_followup_day=int(raw["min_followup_day"]),
        not_quick_anc_le=float(nq["anc_le"]) * fq,
        not_quick_after_day=int(nq["after_day"]),
        not_quick_if_gcsf_refractory=bool(nq["gcsf_refractory"]),
        not_quick_source=str(nq["source"]),
    )


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Phase:
    id: str
    text: str
    first_day: int
    last_day: float  # inf for the open-ended last phase


@dataclass(frozen=True)
class Lineage:
    id: str
    analyte: str
    significant_below: float  # canonical
    severe_le: float  # canonical
    source: str


@dataclass(frozen=True)
class RegularTransfusions:
    """Dependence from regular transfusions over a long window (units and episodes)."""

    products: tuple[str, ...]
    window_days: int
    min_units: int
    min_episodes: int
    independent_after_days: int  # no longer dependent once the last transfusion is this old
    label: str
    source: str


@dataclass(frozen=True)
class TimingTable:
    meta: RuleMeta
    phases: tuple[Phase, ...]
    lineages: tuple[Lineage, ...]
    duration_window: tuple[int, int]
    td_window_days: int
    td_min_transfusions: int
    td_source: str
    regular: RegularTransfusions
    gcsf_window_days: int
    gcsf_response_anc: float
    gcsf_biphasic_target_anc: float
    gcsf_source: str
    crs_open_read_as_ongoing_days: int = 10
    crs_record_source: str = ""

    def phase_of(self, day: int) -> Phase | None:
        for p in self.phases:
            if p.first_day <= day <= p.last_day:
                return p
        return None

    def lineage(self, lineage_id: str) -> Lineage:
        for lin in self.lineages:
            if lin.id == lineage_id:
                return lin
        raise KeyError(lineage_id)


@cache
def timing() -> TimingTable:
    raw = _read("timing.toml")
    phases = tuple(
        Phase(p["id"], p["text"], int(p["first_day"]), float(p.get("last_day", math.inf)))
        for p in raw["phase"]
    )
    for a, b in itertools.pairwise(phases):
        if b.first_day != a.last_day + 1:
            raise RuleTableError(f"timing: phases {a.id} and {b.id} leave a gap or overlap")
    lineages = []
    for lin in raw["lineage"]:
        f = _factor(lin["analyte"], lin["unit"], f"timing.{lin['id']}")
        lineages.append(
            Lineage(
                lin["id"],
                lin["analyte"],
                float(lin["significant_below"]) * f,
                float(lin["severe_le"]) * f,
                lin["source"],
            )
        )
    td, gc = raw["transfusion_dependence"], raw["gcsf_response"]
    fa = _factor("anc", "/uL", "timing.gcsf")
    return TimingTable(
        meta=_meta(raw, "timing.toml"),
        phases=phases,
        lineages=tuple(lineages),
        duration_window=(int(raw["duration"]["window"][0]), int(raw["duration"]["window"][1])),
        td_window_days=int(td["window_days"]),
        td_min_transfusions=int(td["min_transfusions"]),
        td_source=td["source"],
        regular=_regular_transfusions(td["regular"]),
        gcsf_window_days=int(gc["window_days"]),
        gcsf_response_anc=float(gc["response_anc"]) * fa,
        gcsf_biphasic_target_anc=float(gc["biphasic_target_anc"]) * fa,
        gcsf_source=gc["source"],
        crs_open_read_as_ongoing_days=int(raw["crs_record"]["open_read_as_ongoing_days"]),
        crs_record_source=raw["crs_record"]["source"],
    )


def _regular_transfusions(raw: dict[str, Any]) -> RegularTransfusions:
    products = tuple(str(p) for p in raw["products"])
    unknown = set(products) - {"rbc", "platelets"}
    if unknown:
        raise RuleTableError(f"timing: regular transfusions for unknown products {sorted(unknown)}")
    out = RegularTransfusions(
        products,
        int(raw["window_days"]),
        int(raw["min_units"]),
        int(raw["min_episodes"]),
        int(raw["independent_after_days"]),
        str(raw["label"]),
        str(raw["source"]),
    )
    if min(out.window_days, out.min_units, out.min_episodes, out.independent_after_days) < 1:
        raise RuleTableError("timing: regular transfusions need every number >= 1")
    return out


def all_tables() -> list[RuleMeta]:
    """Headers of every rule table (validates them all on the way)."""
    return [
        ctcae("5.0").meta,
        ctcae("6.0").meta,
        icaht().meta,
        ticaht().meta,
        hematotox().meta,
        easix().meta,
        tatma().meta,
        iec_hs().meta,
        recovery_phenotype().meta,
        timing().meta,
    ]
