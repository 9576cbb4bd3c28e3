"""The facts about one patient on one day that every topic of ``Context`` reads.

The patient (age, prior transplants, disease), the phase and the counts of each lineage (from
the grading ``Assessment``), other laboratory values in their canonical units, CRS/ICANS,
infections, fevers, clinical findings and marrows as recorded up to the day. Facts that cannot
be told are ``None`` (missing is never normal).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from cart_cytopenia.domain.analytes import resolve_analyte
from cart_cytopenia.domain.course import (
    CRS,
    BoneMarrow,
    ClinicalFinding,
    Course,
    Disease,
    Fever,
    Finding,
    Infection,
    Severity,
    Transfusion,
    TransfusionProduct,
)
from cart_cytopenia.grading.assessment import Assessment, LineageStatus
from cart_cytopenia.guidance.spec import ThresholdTable, thresholds
from cart_cytopenia.rules import tables
from cart_cytopenia.rules.settings import Settings


def fmt(value: float | None, digits: int = 1) -> str:
    """A value as a clinician writes it: 300, 7.1, 12 500 (no trailing .0); '?' when unknown."""
    if value is None:
        return "?"
    if abs(value - round(value)) < 1e-9:
        n = round(value)
        return f"{n:,}".replace(",", " ") if abs(n) >= 10_000 else str(n)
    return f"{value:.{digits}f}"


@dataclass(frozen=True)
class LabValue:
    day: int
    value: float


class ContextBase:
    """The facts every topic reads: the patient, the phase and counts, other laboratory values,
    events and findings, as recorded up to the day (``Context`` adds the topics)."""

    def __init__(self, course: Course, day: int, assessment: Assessment, settings: Settings):
        self.course = course
        self.day = day
        self.a = assessment
        self.settings = settings
        self.t: ThresholdTable = thresholds()
        self.timing = tables.timing()
        self._missing: list[str] = []

    # ------------------------------------------------------------------ bookkeeping

    def missing(self, text: str) -> None:
        """Record something missing and what it prevents (shown once in the guidance)."""
        if text not in self._missing:
            self._missing.append(text)

    @property
    def missing_notes(self) -> list[str]:
        return list(self._missing)

    # ------------------------------------------------------------------ patient

    @cached_property
    def age_years(self) -> float | None:
        p = self.course.patient
        if p.age_years is not None:
            return p.age_years
        if p.birth_date is not None:
            return (self.course.infusion_date - p.birth_date).days / 365.25
        return None

    @cached_property
    def paediatric(self) -> bool | None:
        age = self.age_years
        return None if age is None else age < self.t.num("paediatric_below_years")

    @cached_property
    def infant(self) -> bool | None:
        age = self.age_years
        return None if age is None else age < self.t.num("infant_below_years")

    @cached_property
    def older_adult(self) -> bool | None:
        age = self.age_years
        return None if age is None else age >= self.t.num("older_adult_from_years")

    @property
    def prior_allo(self) -> bool:
        return self.course.patient.prior_allo_hct

    @property
    def prior_auto(self) -> bool:
        return self.course.patient.prior_auto_hct

    @property
    def disease(self) -> Disease:
        return self.course.patient.disease

    def has_genetics(self, term: str) -> bool:
        return any(term.lower() in g.lower() for g in self.course.patient.genetics)

    @property
    def kmt2a(self) -> bool:
        return self.has_genetics("KMT2A") or self.has_genetics("MLL")

    @property
    def target(self) -> str | None:
        return self.course.product.resolved_target

    @property
    def regimen(self) -> str:
        ld = self.course.lymphodepletion
        return ld.regimen if ld else "not recorded; flu-cy assumed"

    # ------------------------------------------------------------------ phase and counts

    @property
    def phase(self) -> str | None:
        return self.a.phase

    @property
    def prolonged_or_late(self) -> bool:
        return self.phase in ("prolonged", "late")

    @property
    def late(self) -> bool:
        return self.phase == "late"

    def lineage(self, name: str) -> LineageStatus:
        return next(x for x in self.a.lineages if x.lineage == name)

    @property
    def neutrophils(self) -> LineageStatus:
        return self.lineage("neutrophils")

    @property
    def platelets(self) -> LineageStatus:
        return self.lineage("platelets")

    @property
    def red_cells(self) -> LineageStatus:
        return self.lineage("red_cells")

    @property
    def anc(self) -> float | None:
        return self.neutrophils.last_value

    @property
    def anc_day(self) -> int | None:
        return self.neutrophils.last_value_day

    @property
    def plt(self) -> float | None:
        return self.platelets.last_value

    @property
    def plt_day(self) -> int | None:
        return self.platelets.last_value_day

    @property
    def hb(self) -> float | None:
        return self.red_cells.last_value

    @property
    def hb_day(self) -> int | None:
        return self.red_cells.last_value_day

    @property
    def severe_anc(self) -> float:
        """ANC at or below this is severe neutropenia (timing table: 500/uL)."""
        return self.timing.lineage("neutrophils").severe_le

    @property
    def severe_platelets(self) -> float:
        return self.timing.lineage("platelets").severe_le

    @property
    def severe_hb(self) -> float:
        return self.timing.lineage("red_cells").severe_le

    @property
    def anc_severe(self) -> bool:
        return self.anc is not None and self.anc <= self.severe_anc

    @property
    def rbc_td(self) -> bool:
        tx = self.red_cells.transfusion
        return bool(tx and tx.dependent)

    @property
    def plt_td(self) -> bool:
        tx = self.platelets.transfusion
        return bool(tx and tx.dependent)

    @property
    def anaemia_grade_2_or_dependent(self) -> bool:
        """Anaemia worth a haemolysis work-up: CTCAE grade >= 2 (Hb < 10 g/dL) or RBC-dependent."""
        grade = self.red_cells.ctcae_grade
        return self.rbc_td or (grade is not None and grade >= 2)

    def cytopenic(self, lineage: str) -> bool:
        """Below the lineage's CTCAE grade-3 cut-point on the last value, or transfusion-dependent."""
        lin = self.lineage(lineage)
        return lin.significant or bool(lin.transfusion and lin.transfusion.dependent)

    @cached_property
    def cytopenic_lineages(self) -> list[str]:
        return [x.lineage for x in self.a.lineages if self.cytopenic(x.lineage)]

    @property
    def any_cytopenia(self) -> bool:
        return bool(self.cytopenic_lineages)

    @property
    def counts_known(self) -> bool:
        return any(x.last_value is not None for x in self.a.lineages)

    def describe_cytopenias(self) -> str:
        parts = []
        for name in self.cytopenic_lineages:
            lin = self.lineage(name)
            label = {"neutrophils": "ANC", "platelets": "platelets", "red_cells": "Hb"}[name]
            unit = {"neutrophils": "/uL", "platelets": " x10^9/L", "red_cells": " g/dL"}[name]
            text = f"{label} {fmt(lin.last_value)}{unit}"
            if lin.last_value_day is not None:
                text += f" (day {lin.last_value_day})"
            if lin.transfusion and lin.transfusion.dependent:
                text += f", transfusion-dependent: {lin.transfusion.basis}"
            parts.append(text)
        return "; ".join(parts) if parts else "no cytopenia on the last counts"

    def transfusions(self, product: TransfusionProduct, first: int, last: int) -> int:
        return sum(
            1
            for t in self.course.events_of(Transfusion)
            if t.product == product and t.day is not None and first <= t.day <= last
        )

    @property
    def first_recovery_day(self) -> int | None:
        return self.a.phenotype.first_recovery_day

    @property
    def neutropenia_ever_severe(self) -> bool:
        nadir = self.neutrophils.nadir
        return nadir is not None and nadir <= self.severe_anc

    def stale(self, value_day: int | None) -> bool:
        return value_day is not None and self.day - value_day > self.t.num("stale_lab_days")

    # ------------------------------------------------------------------ other laboratory values

    @cached_property
    def _labs_by_code(self) -> dict[str, list[LabValue]]:
        out: dict[str, list[LabValue]] = {}
        # each (analyte, unit) text resolved once per course, not once per value
        # (= ``lab.canonical_value()``; measured: _labs_by_code 168 -> 100 us per course)
        resolved: dict[tuple[str, str], tuple[list[LabValue], float]] = {}
        for lab in self.course.labs:
            if lab.day is None or lab.day > self.day:
                continue
            key = (lab.analyte, lab.unit)
            if key not in resolved:
                code = resolve_analyte(lab.analyte).code
                resolved[key] = (out.setdefault(code, []), lab.canonical_factor())
            values, factor = resolved[key]
            values.append(LabValue(lab.day, lab.value * factor))
        for values in out.values():
            values.sort(key=lambda v: v.day)
        return out

    def series(self, code: str) -> list[LabValue]:
        """Values of one analyte after infusion up to the day, in its canonical unit, by day."""
        return self._labs_by_code.get(code, [])

    def latest(self, code: str, within_days: int | None = None) -> LabValue | None:
        s = self.series(code)
        if not s:
            return None
        last = s[-1]
        if within_days is not None and self.day - last.day > within_days:
            return None
        return last

    # ------------------------------------------------------------------ events

    @property
    def crs_active(self) -> bool:
        return self.a.inflammation.crs_active

    @property
    def icans_active(self) -> bool:
        return self.a.inflammation.icans_active

    @property
    def crs_recorded(self) -> bool:
        return bool(self.course.events_of(CRS))

    @property
    def crs_resolved_day(self) -> int | None:
        return self.a.inflammation.crs_resolved_day

    @property
    def active_crs_start(self) -> int | None:
        starts = [c.start for c in self.course.events_of(CRS) if c.active_on(self.day)]
        return min(starts) if starts else None

    @cached_property
    def infections_active(self) -> list[Infection]:
        return [i for i in self.course.events_of(Infection) if i.active_on(self.day)]

    @property
    def uncontrolled_infections(self) -> list[Infection]:
        """Active infections not recorded as controlled (not recorded is not 'controlled')."""
        return [i for i in self.infections_active if i.controlled is not True]

    def infection_hold(self) -> str | None:
        """Why a boost, immunosuppression or transplant waits (an uncontrolled infection), or None."""
        unc = self.uncontrolled_infections
        if not unc:
            return None
        return f"active infection not recorded as controlled ({self.describe_infections(unc)})"

    @property
    def severe_infection_active(self) -> bool:
        return any(
            i.severity in (Severity.SEVERE, Severity.LIFE_THREATENING)
            for i in self.infections_active
        )

    def describe_infections(self, infections: list[Infection]) -> str:
        parts = []
        for i in infections:
            what = i.organism or i.category.value
            if i.site:
                what += f" {i.site}"
            if i.severity:
                what += f", {i.severity.value}"
            parts.append(f"{what} from day {i.start}")
        return "; ".join(parts)

    @cached_property
    def recent_fevers(self) -> list[Fever]:
        window = self.t.num("recent_fever_days")
        return [
            f
            for f in self.course.events_of(Fever)
            if f.day is not None
            and 0 <= self.day - f.day <= window
            and f.max_temp_c >= self.t.num("fever_c")
        ]

    def findings(
        self, kind: Finding, within_days: float | None = None, *, present: bool = True
    ) -> list[ClinicalFinding]:
        """Findings of ``kind`` recorded up to the day (``present=False``: recorded as absent)."""
        out = []
        for f in self.course.events_of(ClinicalFinding):
            if f.finding != kind or f.present != present or f.day is None or f.day > self.day:
                continue
            if within_days is not None and self.day - f.day > within_days:
                continue
            out.append(f)
        return out

    def recently_absent(self, kind: Finding) -> ClinicalFinding | None:
        """The latest record that ``kind`` was looked for and absent, if newer than any positive."""
        window = self.t.num("recent_finding_days")
        absent = self.findings(kind, window, present=False)
        if not absent:
            return None
        positive = self.findings(kind, window)
        if positive and (positive[-1].day or 0) > (absent[-1].day or 0):
            return None
        return absent[-1]

    def recent_finding(self, kind: Finding) -> ClinicalFinding | None:
        """The latest positive record of ``kind`` in the window, unless a later one says absent."""
        found = self.findings(kind, self.t.num("recent_finding_days"))
        if not found or self.recently_absent(kind) is not None:
            return None
        return found[-1]

    @property
    def bleeding_recent(self) -> bool:
        return bool(self.findings(Finding.BLEEDING, self.t.num("bleeding_recent_days")))

    @property
    def high_bleeding_risk(self) -> bool | None:
        if self.findings(Finding.HIGH_BLEEDING_RISK) or self.bleeding_recent:
            return True
        return None  # not recorded: cannot tell

    @property
    def relapse_day(self) -> int | None:
        return self.course.relapse_day

    @cached_property
    def marrows(self) -> list[BoneMarrow]:
        return sorted(
            (m for m in self.course.events_of(BoneMarrow) if m.day is not None),
            key=lambda m: m.day or 0,
        )
