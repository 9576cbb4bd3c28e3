"""The patient course after CAR-T infusion: a typed, validated model (pydantic v2).

Day 0 is the CAR-T infusion. Every timed item (lab, event) carries either an ISO ``date`` or a
``day`` relative to infusion (or both, which must agree); after validation every item has its
``day`` filled in. Spans (CRS, ICANS, a medication) have ``start``/``end`` in the same way
(``start_date``/``start_day``, ``end_date``/``end_day``); an open end means "ongoing".

Validation collects every problem in the document, names where it is (patient, list index,
field), and raises one ``SchemaError`` / ``ImplausibleValueError`` / ``TimelineError``: nothing
is half-loaded. The JSON Schema is published by ``cart-cytopenia schema patient``.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cart_cytopenia.domain.analytes import implausibility, resolve_analyte
from cart_cytopenia.domain.catalogues import (
    Cover,
    DrugClass,
    Product,
    resolve_drug,
    resolve_product,
)
from cart_cytopenia.domain.units import resolve_unit
from cart_cytopenia.errors import (
    ImplausibleValueError,
    InputError,
    Location,
    ParseError,
    Problem,
    SchemaError,
    TimelineError,
    UnitError,
    UnknownAnalyteError,
)

SCHEMA_VERSION = "1.0"
SUPPORTED_SCHEMA_VERSIONS = (SCHEMA_VERSION,)


def _not_true_or_false(value: Any) -> Any:
    """A number is a number: JSON ``true``/``false`` is refused (pydantic would read true as 1,
    an ANC of 1/uL that changes the ICAHT grade)."""
    if isinstance(value, bool):
        raise ValueError("a number is needed, not true/false")
    return value


# every number of a course: true/false refused; NaN and infinity refused (never plausible)
Number = Annotated[float, BeforeValidator(_not_true_or_false), Field(allow_inf_nan=False)]
Whole = Annotated[int, BeforeValidator(_not_true_or_false)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=False, validate_assignment=False)


# --------------------------------------------------------------------------- vocabulary


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class Disease(StrEnum):
    LBCL = "LBCL"
    FL = "FL"
    MCL = "MCL"
    B_ALL = "B-ALL"
    MM = "MM"
    CLL = "CLL"
    OTHER = "other"


class DiseaseStatus(StrEnum):
    COMPLETE_RESPONSE = "CR"
    PARTIAL_RESPONSE = "PR"
    STABLE = "SD"
    PROGRESSIVE = "PD"
    RELAPSED = "relapsed"
    REFRACTORY = "refractory"
    UNKNOWN = "unknown"


class HCTKind(StrEnum):
    AUTOLOGOUS = "autologous"
    ALLOGENEIC = "allogeneic"


class DonorType(StrEnum):
    MATCHED_RELATED = "matched-related"
    MATCHED_UNRELATED = "matched-unrelated"
    MISMATCHED_UNRELATED = "mismatched-unrelated"
    HAPLOIDENTICAL = "haploidentical"
    CORD = "cord"
    UNKNOWN = "unknown"


class InfectionCategory(StrEnum):
    BACTERIAL = "bacterial"
    VIRAL = "viral"
    FUNGAL = "fungal"
    PARASITIC = "parasitic"
    UNKNOWN = "unknown"


class Severity(StrEnum):
    MILD = "mild"
    MODERATE = "moderate"
    SEVERE = "severe"
    LIFE_THREATENING = "life-threatening"


class TransfusionProduct(StrEnum):
    RBC = "rbc"
    PLATELETS = "platelets"
    PLASMA = "plasma"
    GRANULOCYTES = "granulocytes"


class Cellularity(StrEnum):
    HYPOCELLULAR = "hypocellular"
    NORMOCELLULAR = "normocellular"
    HYPERCELLULAR = "hypercellular"
    APLASTIC = "aplastic"


class Finding(StrEnum):
    HYPERTENSION = "hypertension"
    ANTIHYPERTENSIVE_NEEDED = "antihypertensive-needed"
    SPLENOMEGALY = "splenomegaly"
    HEPATOMEGALY = "hepatomegaly"
    SCHISTOCYTES = "schistocytes"
    BLEEDING = "bleeding"
    HIGH_BLEEDING_RISK = "high-bleeding-risk"
    COAGULOPATHY = "coagulopathy"
    ORGAN_DYSFUNCTION = "organ-dysfunction"
    LARGE_GRANULAR_LYMPHOCYTOSIS = "large-granular-lymphocytosis"
    LINEAGE_SWITCH = "lineage-switch"
    DRUG_ALLERGY_SULFONAMIDE = "sulfonamide-allergy"
    INFECTION_EXCLUDED = "infection-excluded"
    OTHER = "other"


# --------------------------------------------------------------------------- timing


class Dated(_Model):
    """Something that happened on one day: give ``date`` (ISO) or ``day`` (0 = infusion)."""

    date: dt.date | None = Field(default=None, description="Calendar date (ISO 8601).")
    day: Whole | None = Field(default=None, description="Days since CAR-T infusion (day 0).")


class Span(_Model):
    """Something with a start and (optionally) an end; no end means ongoing."""

    start_date: dt.date | None = None
    start_day: Whole | None = None
    end_date: dt.date | None = None
    end_day: Whole | None = None

    @property
    def start(self) -> int:
        assert self.start_day is not None, "course not resolved"
        return self.start_day

    @property
    def end(self) -> int | None:
        return self.end_day

    def active_on(self, day: int) -> bool:
        return self.start <= day and (self.end_day is None or day <= self.end_day)


# --------------------------------------------------------------------------- labs


class Comparator(StrEnum):
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


@lru_cache(maxsize=4096)  # (analyte, unit) texts of a store: a few dozen pairs
def _factor(analyte_text: str, unit_text: str) -> float:
    """The factor from ``unit_text`` to the canonical unit of ``analyte_text``."""
    return resolve_analyte(analyte_text).factor_from(resolve_unit(unit_text))


class LabObservation(Dated):
    """One laboratory result: analyte (code, name or LOINC), value and its unit."""

    analyte: str = Field(
        description="Catalogue code (anc, platelets, hb ...), common name or LOINC code."
    )
    value: Number
    unit: str = Field(description="UCUM unit or a documented alias, e.g. '/uL', '10*9/L', 'g/dL'.")
    comparator: Comparator | None = Field(
        default=None,
        description="For censored results such as '<0.1': the value is then a bound and is graded as if equal to it.",
    )

    @property
    def analyte_code(self) -> str:
        return resolve_analyte(self.analyte).code

    def canonical_factor(self) -> float:
        """The factor from this value's unit to its analyte's canonical unit."""
        return _factor(self.analyte, self.unit)

    def canonical_value(self) -> float:
        return self.value * _factor(self.analyte, self.unit)


# --------------------------------------------------------------------------- patient


class PriorHCT(_Model):
    kind: HCTKind
    date: dt.date | None = None
    day: Whole | None = Field(
        default=None, description="Relative to CAR-T infusion (negative: before)."
    )
    donor_type: DonorType | None = None


class StoredCells(_Model):
    autologous: bool | None = Field(
        default=None, description="Cryopreserved autologous stem cells available for a boost."
    )
    allogeneic_donor: bool | None = Field(
        default=None,
        description="Original donor available, or leftover (T-cell depleted CD34+) donor cells stored.",
    )
    notes: str | None = None


class Patient(_Model):
    id: str = Field(min_length=1, description="Local pseudonymous identifier (not an MRN).")
    age_years: Number | None = Field(default=None, ge=0, le=120, description="Age at infusion.")
    birth_date: dt.date | None = None
    sex: Sex = Sex.UNKNOWN
    weight_kg: Number | None = Field(default=None, gt=0, le=400)
    disease: Disease
    disease_status: DiseaseStatus = DiseaseStatus.UNKNOWN
    marrow_involvement_pct: Number | None = Field(default=None, ge=0, le=100)
    prior_hct: list[PriorHCT] = Field(default_factory=list)
    stored_cells: StoredCells = Field(default_factory=StoredCells)
    chip: bool | None = Field(default=None, description="Known clonal haematopoiesis (CHIP).")
    chip_genes: list[str] = Field(default_factory=list)
    pre_existing_dysplasia: bool | None = None
    pre_existing_fibrosis: bool | None = None
    genetics: list[str] = Field(
        default_factory=list, description="Disease genetics, e.g. 'KMT2A-rearranged'."
    )

    @property
    def prior_allo_hct(self) -> bool:
        return any(h.kind == HCTKind.ALLOGENEIC for h in self.prior_hct)

    @property
    def prior_auto_hct(self) -> bool:
        return any(h.kind == HCTKind.AUTOLOGOUS for h in self.prior_hct)


class ProductRef(_Model):
    """A catalogue product by id/name, or a custom product with its target and costimulation."""

    name: str = Field(description="Catalogue id (axi-cel ...), generic or brand name, or 'custom'.")
    target: str | None = None
    costimulatory: str | None = None
    donor_derived: bool | None = Field(
        default=None,
        description="CAR T cells made from an allogeneic donor's T cells (e.g. collected after allo-HCT).",
    )

    def catalogue_entry(self) -> Product | None:
        return resolve_product(self.name)

    @property
    def resolved_target(self) -> str | None:
        p = self.catalogue_entry()
        return p.target if p else self.target

    @property
    def resolved_costimulatory(self) -> str | None:
        p = self.catalogue_entry()
        return p.costimulatory if p else self.costimulatory

    @property
    def id(self) -> str:
        p = self.catalogue_entry()
        return p.id if p else self.name


class Lymphodepletion(_Model):
    regimen: str = Field(default="flu-cy", description="e.g. flu-cy, bendamustine.")
    start_date: dt.date | None = None
    start_day: Whole | None = Field(default=None, description="Usually -5 (flu/cy days -5 to -3).")


class Leukapheresis(_Model):
    """The collection of T cells for manufacture (irradiated blood products start 7 days before)."""

    date: dt.date | None = None
    day: int | None = Field(default=None, description="Days from infusion (negative).")


# --------------------------------------------------------------------------- events


class CRS(Span):
    type: Literal["crs"] = "crs"
    max_grade: Whole = Field(ge=1, le=4, description="ASTCT consensus grade (Lee 2019).")


class ICANS(Span):
    type: Literal["icans"] = "icans"
    max_grade: Whole = Field(ge=1, le=4, description="ASTCT consensus grade (Lee 2019).")


class IECHS(Span):
    type: Literal["iec_hs"] = "iec_hs"
    grade: Whole | None = Field(
        default=None, ge=1, le=5, description="ASTCT IEC-HS grade (Hines 2023)."
    )


class Medication(Span):
    type: Literal["medication"] = "medication"
    drug: str
    dose: Number | None = Field(default=None, ge=0)
    dose_unit: str | None = None
    frequency: str | None = Field(default=None, description="e.g. daily, weekly, once")
    route: str | None = None
    purpose: Literal["prophylaxis", "treatment"] | None = None

    @property
    def classes(self) -> frozenset[DrugClass]:
        d = resolve_drug(self.drug)
        return d.classes if d else frozenset()

    @property
    def covers(self) -> frozenset[Cover]:
        d = resolve_drug(self.drug)
        return d.covers if d else frozenset()

    @property
    def drug_id(self) -> str:
        d = resolve_drug(self.drug)
        return d.id if d else self.drug


class Infection(Span):
    type: Literal["infection"] = "infection"
    category: InfectionCategory = InfectionCategory.UNKNOWN
    organism: str | None = None
    site: str | None = None
    severity: Severity | None = None
    reactivation: bool = Field(
        default=False, description="Viral reactivation (HHV-6, CMV, EBV ...)."
    )
    controlled: bool | None = Field(
        default=None,
        description=(
            "The treating team judges the infection controlled. Not recorded (None) is read as "
            "not known to be controlled: a stem cell boost or immunosuppression is held back."
        ),
    )


class Fever(Dated):
    type: Literal["fever"] = "fever"
    max_temp_c: Number = Field(ge=30, le=45)


class Transfusion(Dated):
    type: Literal["transfusion"] = "transfusion"
    product: TransfusionProduct
    units: Whole = Field(default=1, ge=1, le=20)


class BoneMarrow(Dated):
    type: Literal["bone_marrow"] = "bone_marrow"
    cellularity: Cellularity | None = None
    cellularity_pct: Number | None = Field(default=None, ge=0, le=100)
    dysplasia: bool | None = None
    fibrosis: bool | None = None
    disease_present: bool | None = None
    disease_pct: Number | None = Field(default=None, ge=0, le=100)
    blasts_pct: Number | None = Field(default=None, ge=0, le=100)
    haemophagocytosis: bool | None = None
    myeloid_neoplasm: bool | None = Field(
        default=None,
        description="MDS or AML diagnosed on this marrow (True), excluded (False), not stated (None).",
    )
    cytogenetics: str | None = None
    fish: str | None = None
    ngs: str | None = None
    mrd: str | None = None
    notes: str | None = None


class StemCellBoost(Dated):
    type: Literal["stem_cell_boost"] = "stem_cell_boost"
    source: HCTKind
    cd34_dose_per_kg: Number | None = Field(default=None, ge=0, description="x10^6 CD34+ cells/kg")
    manipulation: Literal["cd34-selected", "unmanipulated", "tcr-ab-depleted"] | None = None


class HCT(Dated):
    type: Literal["hct"] = "hct"
    kind: HCTKind
    donor_type: DonorType | None = None


class Relapse(Dated):
    type: Literal["relapse"] = "relapse"
    site: str | None = None
    notes: str | None = None


class NextTherapy(Dated):
    type: Literal["next_therapy"] = "next_therapy"
    description: str | None = None


class Death(Dated):
    type: Literal["death"] = "death"
    cause: str | None = None


class GVHD(Span):
    type: Literal["gvhd"] = "gvhd"
    organ: str | None = None
    grade: Whole | None = Field(default=None, ge=1, le=4)


class ClinicalFinding(Dated):
    type: Literal["finding"] = "finding"
    finding: Finding
    present: bool = Field(
        default=True,
        description=(
            "False records a negative finding (no schistocytes on the smear, no splenomegaly); "
            "the rules use it as 'looked for and absent', never as 'not looked for'."
        ),
    )
    detail: str | None = None


Event = Annotated[
    CRS
    | ICANS
    | IECHS
    | Medication
    | Infection
    | Fever
    | Transfusion
    | BoneMarrow
    | StemCellBoost
    | HCT
    | Relapse
    | NextTherapy
    | Death
    | GVHD
    | ClinicalFinding,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- course


class Course(_Model):
    """Everything cart-cytopenia reasons about for one patient after one CAR-T infusion."""

    schema_version: str = Field(
        default=SCHEMA_VERSION,
        description=f"Version of this document format; read: {', '.join(SUPPORTED_SCHEMA_VERSIONS)}.",
    )
    description: str | None = Field(
        default=None, description="Free text about where the course comes from (no identifiers)."
    )
    patient: Patient
    product: ProductRef
    lymphodepletion: Lymphodepletion | None = None
    leukapheresis: Leukapheresis | None = None
    infusion_date: dt.date = Field(description="Day 0: the CAR-T infusion.")
    baseline_labs: list[LabObservation] = Field(
        default_factory=list,
        description=(
            "Pre-lymphodepletion labs (for CAR-HEMATOTOX). Without date/day they are taken as "
            "drawn on the day before lymphodepletion."
        ),
    )
    labs: list[LabObservation] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)
    last_followup_date: dt.date | None = None
    last_followup_day: Whole | None = None

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, v: str) -> str:
        if v not in SUPPORTED_SCHEMA_VERSIONS:
            raise ValueError(
                f"schema_version {v!r} is not one this version reads "
                f"({', '.join(SUPPORTED_SCHEMA_VERSIONS)}); convert the document or upgrade"
            )
        return v

    # --- derived views (after resolution every item has its day) ---

    def events_of(self, cls: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]

    @property
    def ld_start_day(self) -> int:
        """Day lymphodepletion started; -5 by convention when not recorded."""
        if self.lymphodepletion and self.lymphodepletion.start_day is not None:
            return self.lymphodepletion.start_day
        return -5

    def first_day_of(self, cls: type[Any]) -> int | None:
        days: list[int] = []
        for e in self.events_of(cls):
            d = e.day if isinstance(e, Dated) else e.start_day
            if d is not None:
                days.append(int(d))
        return min(days) if days else None

    @property
    def death_day(self) -> int | None:
        return self.first_day_of(Death)

    @property
    def relapse_day(self) -> int | None:
        return self.first_day_of(Relapse)

    @property
    def next_therapy_day(self) -> int | None:
        return self.first_day_of(NextTherapy)

    @property
    def last_lab_day(self) -> int | None:
        days = [lab.day for lab in self.labs if lab.day is not None]
        return max(days) if days else None

    def as_of(self, day: int) -> Course:
        """The course as it was known on ``day``: later labs and events left out.

        Spans that started by ``day`` are kept with their recorded end (check ``active_on``);
        death or follow-up after ``day`` are not yet known and are removed. The view shares the
        (validated, never modified) items of the course: it is a shallow copy.
        """
        labs = [lab for lab in self.labs if lab.day is not None and lab.day <= day]
        kept: list[Any] = []
        for e in self.events:
            start = e.day if isinstance(e, Dated) else e.start_day
            if start is not None and start <= day:
                kept.append(e)
        update: dict[str, Any] = {"labs": labs, "events": kept}
        if self.last_followup_day is not None and self.last_followup_day > day:
            update |= {"last_followup_day": None, "last_followup_date": None}
        return self.model_copy(update=update)

    @property
    def last_data_day(self) -> int | None:
        """The last day anything was recorded (lab, event start or end, follow-up)."""
        days = [lab.day for lab in self.labs if lab.day is not None]
        for e in self.events:
            if isinstance(e, Dated):
                if e.day is not None:
                    days.append(e.day)
            else:
                days += [d for d in (e.start_day, e.end_day) if d is not None]
        if self.last_followup_day is not None:
            days.append(self.last_followup_day)
        return max(days) if days else None

    def medications_with(self, cls: DrugClass) -> list[Medication]:
        return [m for m in self.events_of(Medication) if cls in m.classes]

    @model_validator(mode="after")
    def _resolve(self) -> Course:
        """Every date turned into a day since infusion (and checked against the day given), and
        the timeline checked; all problems found are raised together."""
        t = _DayResolver(self.patient.id, self.infusion_date, self.patient.birth_date)
        if t.birth is not None and t.infusion < t.birth:
            t.timeline_error("infusion date is before birth", "infusion_date")
        self._resolve_before_infusion(t)
        self._resolve_labs(t)
        self._resolve_events(t)
        self.last_followup_day = t.to_day(
            self.last_followup_date, self.last_followup_day, "last_followup"
        )
        self._check_death(t)
        t.raise_problems()
        return self

    def _resolve_before_infusion(self, t: _DayResolver) -> None:
        """Lymphodepletion, leukapheresis and prior transplants: on their days, before day 0."""
        if self.lymphodepletion is not None:
            ld = self.lymphodepletion
            ld.start_day = t.to_day(ld.start_date, ld.start_day, "lymphodepletion.start")
            if ld.start_day is not None and ld.start_day > 0:
                t.timeline_error(
                    f"lymphodepletion starts on day {ld.start_day}, after the infusion",
                    "lymphodepletion.start_day",
                )
        if self.leukapheresis is not None:
            lk = self.leukapheresis
            lk.day = t.to_day(lk.date, lk.day, "leukapheresis")
            if lk.day is not None and lk.day >= 0:
                t.timeline_error(
                    f"leukapheresis on day {lk.day}: it must be before the infusion",
                    "leukapheresis.day",
                )
        for i, h in enumerate(self.patient.prior_hct):
            h.day = t.to_day(h.date, h.day, f"patient.prior_hct[{i}]")
            if h.day is not None and h.day > 0:
                t.timeline_error(
                    "a prior HCT must be before the CAR-T infusion (record a later one as an 'hct' event)",
                    f"patient.prior_hct[{i}]",
                )

    def _resolve_labs(self, t: _DayResolver) -> None:
        """Each lab's day (a baseline lab without one: the day before lymphodepletion), unit and
        value checked."""
        for list_name, labs in (("baseline_labs", self.baseline_labs), ("labs", self.labs)):
            for i, lab in enumerate(labs):
                where = f"{list_name}[{i}]"
                if lab.date is None and lab.day is None:
                    if list_name == "baseline_labs":
                        lab.day = self.ld_start_day - 1
                    else:
                        t.problem("a lab needs a date or a day", where)
                        continue
                else:
                    day = t.to_day(lab.date, lab.day, where)
                    if day != lab.day:  # pydantic's __setattr__ only for a new day
                        lab.day = day
                t.check_birth(lab.date, lab.day, where)
                t.problems.extend(_check_lab(lab, t.pid, where))

    def _resolve_events(self, t: _DayResolver) -> None:
        """Each event's day (a span: its start and end, the end not before the start)."""
        for i, ev in enumerate(self.events):
            where = f"events[{i}] ({ev.type})"
            if isinstance(ev, Dated):
                if ev.date is None and ev.day is None:
                    t.problem("an event needs a date or a day", where)
                    continue
                ev.day = t.to_day(ev.date, ev.day, where)
                t.check_birth(ev.date, ev.day, where)
                continue
            span: Span = ev
            if span.start_date is None and span.start_day is None:
                t.problem("an event needs a start_date or a start_day", where)
                continue
            span.start_day = t.to_day(span.start_date, span.start_day, where + ".start")
            span.end_day = t.to_day(span.end_date, span.end_day, where + ".end")
            t.check_birth(span.start_date, span.start_day, where)
            if (
                span.end_day is not None
                and span.start_day is not None
                and span.end_day < span.start_day
            ):
                t.timeline_error(
                    f"ends (day {span.end_day}) before it starts (day {span.start_day})", where
                )

    def _check_death(self, t: _DayResolver) -> None:
        """At most one death, and no lab after it."""
        deaths = self.events_of(Death)
        if len(deaths) > 1:
            t.problems.append(Problem("more than one death event", Location(patient_id=t.pid)))
        if deaths and deaths[0].day is not None:
            dday = deaths[0].day
            for i, lab in enumerate(self.labs):
                if lab.day is not None and lab.day > dday:
                    t.timeline_error(
                        f"lab on day {lab.day} is after death (day {dday})", f"labs[{i}]"
                    )


# no day since an infusion can be further from it than this and still be a date (years 1-9999)
MAX_CALENDAR_DAYS = dt.date.max.toordinal() - dt.date.min.toordinal()


def is_calendar_day(infusion: dt.date, day: int) -> bool:
    """Whether day ``day`` after the infusion is a date (years 1 to 9999)."""
    return dt.date.min.toordinal() <= infusion.toordinal() + day <= dt.date.max.toordinal()


def event_types() -> list[str]:
    """The ``type`` of every kind of course event (crs, icans, medication ...)."""
    (union, *_) = get_args(Event)
    return [cls.model_fields["type"].default for cls in get_args(union)]


def _tag(problem: Problem, kind: type[InputError]) -> Problem:
    problem.kind = kind.__name__
    return problem


_ERROR_CLASSES: dict[str, type[InputError]] = {
    c.__name__: c
    for c in (SchemaError, ImplausibleValueError, TimelineError, UnitError, UnknownAnalyteError)
}


class _DayResolver:
    """Turns a course's dates into days since infusion, collecting the problems found."""

    def __init__(self, pid: str, infusion: dt.date, birth: dt.date | None) -> None:
        self.pid, self.infusion, self.birth = pid, infusion, birth
        self.problems: list[Problem] = []

    def problem(self, text: str, where: str) -> None:
        self.problems.append(Problem(text, Location(patient_id=self.pid, field=where)))

    def timeline_error(self, text: str, where: str) -> None:
        self.problems.append(
            _tag(Problem(text, Location(patient_id=self.pid, field=where)), TimelineError)
        )

    def to_day(self, date: dt.date | None, day: int | None, where: str) -> int | None:
        """The day of ``date`` (checked against ``day`` when both are given), else ``day``."""
        if date is None and day is not None and not is_calendar_day(self.infusion, day):
            self.problem(
                f"day {day} is not a calendar date (infusion {self.infusion} + {day} days)", where
            )
            return None
        if date is not None:
            d = (date - self.infusion).days
            if day is not None and day != d:
                self.problem(f"date {date} is day {d}, but day {day} was given", where)
            return d
        return day

    def check_birth(self, date: dt.date | None, day: int | None, where: str) -> None:
        """A problem when the date (or the day) falls before birth."""
        birth = self.birth
        if birth is None:
            return
        when = date if date is not None else (self.infusion + dt.timedelta(days=day or 0))
        if (date is not None or day is not None) and when < birth:
            self.timeline_error(f"{when} is before birth ({birth})", where)

    def raise_problems(self) -> None:
        """All problems found, as the most specific error class that covers them."""
        if self.problems:
            kinds = {p.kind for p in self.problems}
            cls = _ERROR_CLASSES.get(kinds.pop(), SchemaError) if len(kinds) == 1 else SchemaError
            raise cls(
                f"course of patient {self.pid} is invalid ({len(self.problems)} problem(s))",
                self.problems,
            )


def _check_lab(lab: LabObservation, pid: str, where: str) -> list[Problem]:
    try:
        a = resolve_analyte(lab.analyte)
        unit = resolve_unit(lab.unit)
        _factor(lab.analyte, lab.unit)
    except InputError as exc:
        return [_tag(Problem(exc.message, Location(patient_id=pid, field=where)), type(exc))]
    why = implausibility(a, lab.value, unit)
    if why is not None:
        loc = Location(patient_id=pid, field=where)
        return [
            _tag(Problem(f"implausible {a.label} ({a.code}): {why}", loc), ImplausibleValueError)
        ]
    return []


def lab_problems(lab: dict[str, Any], location: Location) -> list[Problem]:
    """What is wrong with one lab result in the course JSON form, on its own (field types, the
    date, analyte, unit and plausibility; a lab's place in the course, e.g. after death, is
    checked with the course): the checks of ``parse_course``, so that a table of many rows can
    list every bad row at once."""
    try:
        obs = LabObservation.model_validate(lab)
    except ValidationError as exc:
        return [
            Problem(
                err["msg"].removeprefix("Value error, "),
                Location(
                    patient_id=location.patient_id,
                    row=location.row,
                    field=".".join(str(x) for x in err["loc"]) or location.field,
                    source=location.source,
                ),
            )
            for err in exc.errors()
        ]
    problems = _check_lab(obs, location.patient_id or "", location.field or "")
    fields = {UnitError.__name__: "unit", UnknownAnalyteError.__name__: "analyte"}
    for p in problems:
        p.location = Location(
            patient_id=location.patient_id,
            row=location.row,
            field=fields.get(p.kind, location.field),
            source=location.source,
        )
    return problems


def parse_course(data: dict[str, Any] | str | bytes, source: str | None = None) -> Course:
    """Validate a course from a dict or JSON text; raise an InputError listing every problem."""
    try:
        if isinstance(data, (str, bytes)):
            return Course.model_validate_json(data)
        return Course.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            if err["type"] == "json_invalid":
                raise ParseError(
                    f"{source or 'document'} is not valid JSON: {err['msg']}"
                ) from None
            field = ".".join(str(p) for p in err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            problems.append(Problem(message, Location(field=field, source=source)))
        pid = None
        if isinstance(data, dict) and isinstance(data.get("patient"), dict):
            pid = data["patient"].get("id")
        label = f"course of patient {pid}" if pid else (source or "course")
        raise SchemaError(f"{label} is invalid ({len(problems)} problem(s))", problems) from None
    except InputError as exc:
        if source:
            for p in exc.problems:
                p.location = Location(
                    patient_id=p.location.patient_id, field=p.location.field, source=source
                )
            exc.args = (exc._render(),)  # (the message names the file too)
        raise
