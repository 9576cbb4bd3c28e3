"""What the triggers may ask about a patient on a day: named predicates over the course and assessment.

A ``Context`` is built once per evaluation from the course as known on the day
(``Course.as_of(day)``), the grading ``Assessment`` of that day and the settings. Rules read
facts through its properties (``ctx.anc``, ``ctx.crs_active``, ``ctx.paediatric`` ...) instead of
digging in the course, so that each rule reads like its recommendation and every fact is defined
once. Nothing here grades: grades, phases, transfusion dependence and G-CSF response come from
``cart_cytopenia.grading``. Facts that cannot be told are ``None`` (missing is never normal) and
triggers say so through ``ctx.missing(...)``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from cart_cytopenia.domain.analytes import resolve_analyte
from cart_cytopenia.domain.catalogues import Cover, DrugClass, resolve_drug
from cart_cytopenia.domain.course import (
    CRS,
    GVHD,
    IECHS,
    BoneMarrow,
    Cellularity,
    ClinicalFinding,
    Course,
    Disease,
    Fever,
    Finding,
    Infection,
    InfectionCategory,
    Medication,
    Severity,
    Transfusion,
    TransfusionProduct,
)
from cart_cytopenia.grading.assessment import Assessment, LineageStatus
from cart_cytopenia.grading.ctcae import grade_values
from cart_cytopenia.guidance.spec import ThresholdTable, thresholds
from cart_cytopenia.rules import tables
from cart_cytopenia.rules.settings import Settings

_NEGATION = re.compile(
    r"\b(no|not|without|negative|neg|wild[- ]?type|wt|absent|normal)\b", re.IGNORECASE
)

VIRAL_REACTIVATION_NAMES = (
    "hhv-6",
    "hhv6",
    "human herpesvirus 6",
    "human herpes virus 6",
    "cmv",
    "cytomegalovirus",
    "ebv",
    "epstein-barr",
    "epstein barr",
)


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


IECHS_LEVELS = ("possible", "suspected", "high")


@dataclass(frozen=True)
class IechsSignals:
    """The IEC-HS picture, feature by feature (None: not measured), and ONE suspicion level.

    ``level`` is decided once (``Context.iechs``) and every item that speaks of IEC-HS uses it,
    so an output never says "possible" in one place and "high" in another.
    """

    crs_state: str  # "none" recorded, "active" (known ongoing), "resolved", "end-unknown"
    crs_recorded: bool
    ferritin: LabValue | None
    ferritin_high: bool
    ferritin_very_high: bool
    ferritin_rising: bool
    recurrent_fever: bool
    new_cytopenia: bool
    supportive: tuple[str, ...]
    haemophagocytosis: bool
    recorded_active: bool
    recorded_any: bool
    level: str | None  # None, "possible", "suspected", "high" (IECHS_LEVELS)
    onset_day: int | None = None  # earliest day of the current features (ferritin, fever, record)

    @property
    def after_crs(self) -> bool:
        """CRS resolved, its end unknown, or none recorded (IEC-HS follows or outlasts CRS)."""
        return self.crs_state != "active"

    @property
    def ferritin_signal(self) -> bool:
        return self.ferritin_high or self.ferritin_rising

    @property
    def possible(self) -> bool:
        """Enough to ask for the IEC-HS laboratory work-up."""
        return self.level is not None

    @property
    def suspected(self) -> bool:
        return self.level in ("suspected", "high")

    @property
    def high(self) -> bool:
        return self.level == "high"

    def features(self) -> list[str]:
        out: list[str] = []
        if self.recorded_active:
            out.append("IEC-HS recorded")
        if self.ferritin is not None and (self.ferritin_high or self.ferritin_rising):
            what = "rising" if self.ferritin_rising else "high"
            out.append(f"ferritin {fmt(self.ferritin.value)} ng/mL {what}")
        if self.recurrent_fever:
            out.append("fever after CRS" if self.crs_recorded else "fever")
        if self.new_cytopenia:
            out.append("new cytopenia")
        if self.haemophagocytosis:
            out.append("haemophagocytosis in marrow (supports IEC-HS)")
        out.extend(self.supportive)
        return out

    def headline(self, n: int = 3) -> str:
        """The first ``n`` features, for a one-line summary (the rationale lists them all)."""
        feats = self.features()
        return ", ".join(feats[:n]) + (f" +{len(feats) - n}" if len(feats) > n else "")

    def level_text(self) -> str:
        return {"possible": "possible", "suspected": "suspected", "high": "high suspicion"}.get(
            self.level or "", "not suspected"
        )

    def as_inputs(self) -> dict[str, Any]:
        return {
            "iec_hs_level": self.level,
            "crs_state": self.crs_state,
            "crs_recorded": self.crs_recorded,
            "after_crs": self.after_crs,
            "ferritin_ng_ml": self.ferritin.value if self.ferritin else None,
            "ferritin_day": self.ferritin.day if self.ferritin else None,
            "ferritin_high": self.ferritin_high,
            "ferritin_rising": self.ferritin_rising,
            "recurrent_fever": self.recurrent_fever,
            "new_cytopenia": self.new_cytopenia,
            "haemophagocytosis": self.haemophagocytosis,
            "supportive": list(self.supportive),
            "iec_hs_recorded_active": self.recorded_active,
        }


def iechs_level(
    crs_state: str,
    *,
    recorded_active: bool,
    ferritin_high: bool,
    ferritin_signal: bool,
    fever: bool,
    new_cytopenia: bool,
    haemophagocytosis: bool,
    n_supportive: int,
    min_supportive: int,
) -> str | None:
    """One suspicion level from the features (docs/guidance.md, IEC-HS).

    While CRS is known to be ongoing its own fever and ferritin are expected, so only marrow
    haemophagocytosis, or high ferritin with two supportive features (carHLH-like), raise it.
    """
    if recorded_active:
        return "high"
    if crs_state == "active":
        if ferritin_signal and haemophagocytosis:
            return "high"
        return "possible" if ferritin_high and n_supportive >= 2 else None
    core = ferritin_signal and (fever or new_cytopenia)
    if core and (haemophagocytosis or (ferritin_high and n_supportive >= min_supportive)):
        return "high"
    if core:
        return "suspected"
    if ferritin_signal or (fever and new_cytopenia) or haemophagocytosis:
        return "possible"
    return None


@dataclass(frozen=True)
class TpoCourse:
    drug: str
    start: int
    weeks: int
    platelets_at_start: LabValue | None
    transfusions_before: int  # platelet transfusions in the 28 days before the start
    transfusions_last_28: int


class Context:
    """Named facts about one patient on one day (see the module docstring)."""

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
        for lab in self.course.labs:
            if lab.day is None or lab.day > self.day:
                continue
            out.setdefault(resolve_analyte(lab.analyte).code, []).append(
                LabValue(lab.day, lab.canonical_value())
            )
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

    # ------------------------------------------------------------------ medications

    def meds_active(self, cls: DrugClass) -> list[Medication]:
        return [m for m in self.course.medications_with(cls) if m.active_on(self.day)]

    def meds_covering(self, cover: Cover) -> list[Medication]:
        """Anti-infectives active on the day that prevent ``cover`` (the catalogue's 'covers')."""
        return [
            m
            for m in self.course.events_of(Medication)
            if cover in m.covers and m.active_on(self.day)
        ]

    def meds_recent(self, cls: DrugClass, lookback_days: int) -> list[Medication]:
        """Active on the day, or stopped within ``lookback_days``."""
        out = []
        for m in self.course.medications_with(cls):
            if m.active_on(self.day) or (
                m.end_day is not None and 0 <= self.day - m.end_day <= lookback_days
            ):
                out.append(m)
        return out

    def med_names(self, meds: list[Medication]) -> str:
        return ", ".join(sorted({m.drug_id for m in meds}))

    @cached_property
    def myelosuppressive_active(self) -> list[Medication]:
        return self.meds_active(DrugClass.MYELOSUPPRESSIVE)

    @property
    def gcsf_active(self) -> bool:
        return bool(self.meds_active(DrugClass.GCSF))

    @property
    def gcsf_refractory(self) -> bool:
        return self.a.gcsf.response == "refractory"

    @cached_property
    def tpo_course(self) -> TpoCourse | None:
        active = self.meds_active(DrugClass.TPO_RA)
        if not active:
            return None
        med = min(active, key=lambda m: m.start)
        start = med.start
        before = [v for v in self.series("platelets") if v.day <= start]
        plt0 = before[-1] if before and start - before[-1].day <= 7 else None
        return TpoCourse(
            drug=med.drug_id,
            start=start,
            weeks=(self.day - start) // 7,
            platelets_at_start=plt0,
            transfusions_before=self.transfusions(
                TransfusionProduct.PLATELETS, start - 28, start - 1
            ),
            transfusions_last_28=self.transfusions(
                TransfusionProduct.PLATELETS, self.day - 27, self.day
            ),
        )

    def tpo_response(self) -> bool | None:
        """Platelets doubled from the start, or platelet transfusions halved (None: cannot tell)."""
        c = self.tpo_course
        if c is None:
            return None
        fold = self.t.num("tpo_ra_response_fold")
        frac = self.t.num("tpo_ra_response_transfusion_fraction")
        count_response = (
            c.platelets_at_start is not None
            and self.plt is not None
            and self.plt_day is not None
            and self.plt_day > c.start
            and self.plt >= fold * max(c.platelets_at_start.value, 1.0)
        )
        tx_response = (
            c.transfusions_before > 0 and c.transfusions_last_28 <= frac * c.transfusions_before
        )
        if count_response or tx_response:
            return True
        if c.platelets_at_start is None and c.transfusions_before == 0:
            return None
        return False

    @property
    def tpo_failed(self) -> bool:
        """On a TPO-RA long enough to judge (settings: 4 weeks) and no response."""
        c = self.tpo_course
        return (
            c is not None
            and c.weeks >= self.settings.tpo_ra.no_response_consider_stop_weeks
            and self.tpo_response() is False
        )

    @property
    def platelets_recovered(self) -> bool:
        return (
            self.plt is not None
            and self.plt >= self.t.num("tpo_ra_recovered_platelets")
            and not self.plt_td
        )

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

    @property
    def marrow_after_infusion(self) -> BoneMarrow | None:
        after = [m for m in self.marrows if (m.day or 0) >= 0]
        return after[-1] if after else None

    def marrow_excludes_relapse_and_neoplasm(self, m: BoneMarrow) -> bool:
        """No disease and no dysplasia reported (both must be stated: missing is not normal), and
        no MDS/AML or high-risk myeloid lesion recorded on it."""
        return m.disease_present is False and m.dysplasia is False and not self.myeloid_findings(m)

    @staticmethod
    def marrow_hypocellular(m: BoneMarrow) -> bool:
        return m.cellularity in (Cellularity.HYPOCELLULAR, Cellularity.APLASTIC) or (
            m.cellularity_pct is not None and m.cellularity_pct < 30
        )

    def marrow_aplastic(self, m: BoneMarrow) -> bool:
        return m.cellularity == Cellularity.APLASTIC or (
            m.cellularity_pct is not None
            and m.cellularity_pct <= self.t.num("aplasia_cellularity_pct_max")
        )

    def myeloid_findings(self, m: BoneMarrow) -> list[str]:
        """What in a marrow points to a secondary myeloid neoplasm: MDS/AML diagnosed, or a
        high-risk lesion (thresholds.toml [myeloid_lesions]) named in its cytogenetics, FISH or
        NGS text; a segment that negates it ('TP53 wild-type', 'no -7') does not count."""
        out = ["MDS/AML diagnosed"] if m.myeloid_neoplasm else []
        for label, text in (("cytogenetics", m.cytogenetics), ("FISH", m.fish), ("NGS", m.ngs)):
            for segment in re.split(r"[;,\n]", text or ""):
                if _NEGATION.search(segment):
                    continue
                if any(re.search(p, segment, re.IGNORECASE) for p in self.t.myeloid_lesions):
                    out.append(f"{label}: {segment.strip()}")
        return out

    @cached_property
    def myeloid_neoplasm_marrow(self) -> tuple[BoneMarrow, list[str]] | None:
        """The latest marrow after infusion with a secondary myeloid neoplasm finding."""
        for m in reversed(self.marrows):
            if (m.day or 0) >= 0 and (found := self.myeloid_findings(m)):
                return m, found
        return None

    @property
    def other_cause_recorded(self) -> list[str]:
        """Causes other than CAR-T recorded in the course (relapse, marrow disease, dysplasia,
        a secondary myeloid neoplasm)."""
        out = []
        if self.relapse_day is not None:
            out.append(f"relapse recorded on day {self.relapse_day}")
        for m in self.marrows:
            if m.disease_present:
                out.append(f"disease in the marrow on day {m.day}")
            if m.dysplasia and (m.day or 0) >= 0:
                out.append(f"dysplasia in the marrow on day {m.day}")
        if self.myeloid_neoplasm_marrow is not None:
            m, found = self.myeloid_neoplasm_marrow
            out.append(f"secondary myeloid neoplasm finding on day {m.day} ({'; '.join(found)})")
        return out

    @cached_property
    def late_new_drops(self) -> list[tuple[str, int]]:
        """(text, day of the drop) for late-phase lineages that recovered (CTCAE grade < 2 after infusion) and have dropped
        again to grade >= 2 on the last value ('worsening cytopenia', thresholds.toml)."""
        if not self.late:
            return []
        min_grade = self.t.whole("late_worsening_min_ctcae_grade")
        table = tables.ctcae(self.settings.ctcae_version)
        sex = self.course.patient.sex.value
        prolonged_from = next(p.first_day for p in self.timing.phases if p.id == "prolonged")
        out = []
        for code, label in (("anc", "ANC"), ("platelets", "platelets"), ("hb", "Hb")):
            s = [v for v in self.series(code) if v.day >= 0]
            if len(s) < 2:
                continue
            values = np.array([v.value for v in s], dtype=np.float64)
            sexes = np.array([sex] * len(s), dtype=object) if code == "hb" else None
            grades = grade_values(values, code, table, self.settings.reference_ranges, sexes)
            below = np.flatnonzero(grades < min_grade)
            if grades[-1] < min_grade or below.size == 0:
                continue
            drop = s[int(below[-1]) + 1]  # first value of the current run at grade >= min_grade
            if drop.day >= prolonged_from:  # not the early cytopenia continuing
                text = (
                    f"{label} {fmt(s[-1].value)} on day {s[-1].day} (CTCAE grade {grades[-1]}; "
                    f"recovered, then dropped again from day {drop.day})"
                )
                out.append((text, drop.day))
        return out

    @property
    def gvhd_active(self) -> list[GVHD]:
        return [g for g in self.course.events_of(GVHD) if g.active_on(self.day)]

    @cached_property
    def viral_reactivations(self) -> list[Infection]:
        out = []
        for i in self.course.events_of(Infection):
            name = (i.organism or "").lower()
            named = any(v in name for v in VIRAL_REACTIVATION_NAMES)
            viral = i.category in (InfectionCategory.VIRAL, InfectionCategory.UNKNOWN)
            current = i.active_on(self.day) or (
                i.end_day is not None and self.day - i.end_day <= 30
            )
            if (i.reactivation or named) and viral and current:
                out.append(i)
        return out

    # ------------------------------------------------------------------ IEC-HS

    @property
    def crs_state(self) -> str:
        """'active' (known ongoing), 'end-unknown', 'resolved', or 'none' recorded."""
        inf = self.a.inflammation
        if inf.crs_active:
            return "active"
        if inf.crs_end_unknown:
            return "end-unknown"
        return "resolved" if inf.crs_resolved_day is not None else "none"

    @property
    def crs_end_unknown_since(self) -> int | None:
        return self.a.inflammation.crs_end_unknown_since_day

    @property
    def _iechs_reference_day(self) -> int | None:
        """The day after which features count as 'after CRS' (None: no CRS recorded)."""
        state = self.crs_state
        if state == "resolved":
            return self.crs_resolved_day
        if state == "end-unknown" and self.crs_end_unknown_since is not None:
            # when it ended is not known: every feature after its start counts (the 7-day
            # windows keep the CRS's own early fever out), so IEC-HS is never missed for it
            return self.crs_end_unknown_since
        if state == "active":
            return self.day
        return None

    def _iechs_ferritin(self, since: int | None) -> tuple[LabValue | None, bool, bool, bool]:
        """(last ferritin in the window, high, very high, rising); a value drawn before the CRS
        ended belongs to the CRS (one drawn on its end day is used)."""
        t = self.t
        window = t.whole("iechs_ferritin_rise_window_days")
        ferritin = self.series("ferritin")
        last = ferritin[-1] if ferritin and self.day - ferritin[-1].day <= window else None
        if last is None or (since is not None and self.crs_state != "active" and last.day < since):
            return None, False, False, False
        earlier = [v.value for v in ferritin if last.day - window <= v.day < last.day]
        rising = bool(earlier) and last.value >= t.num("iechs_ferritin_rise_fold") * min(earlier)
        return (
            last,
            last.value > t.num("iechs_ferritin_high"),
            last.value > t.num("iechs_ferritin_very_high"),
            rising,
        )

    def _iechs_new_cytopenia(self, ref: int | None) -> bool:
        if ref is not None and self.crs_state != "active":
            return any(
                lin.significant
                and lin.episode_start_day is not None
                and lin.episode_start_day > ref
                for lin in self.a.lineages
            )
        return ref is None and self.a.phenotype.second_dip_day is not None

    def _iechs_supportive(self) -> list[str]:
        t = self.t
        window = t.whole("iechs_ferritin_rise_window_days")
        rs = self.settings.reference_ranges
        out: list[str] = []
        for code, uln in (("ast", rs.ast_uln_u_l), ("alt", rs.alt_uln_u_l)):
            v = self.latest(code, window)
            if v is not None and v.value > t.num("iechs_transaminase_uln_multiple") * uln:
                out.append(f"{code.upper()} {fmt(v.value)} U/L")
        tg = self.latest("triglycerides", window)
        if tg is not None and tg.value > t.num("iechs_triglycerides_above"):
            out.append(f"triglycerides {fmt(tg.value)} mg/dL")
        fib = self.latest("fibrinogen", window)
        if fib is not None and fib.value < t.num("iechs_fibrinogen_below"):
            out.append(f"fibrinogen {fmt(fib.value)} mg/dL")
        ldh = self.latest("ldh", window)
        if ldh is not None and ldh.value > rs.ldh_uln_u_l:
            out.append(f"LDH {fmt(ldh.value)} U/L")
        for kind, label in (
            (Finding.COAGULOPATHY, "coagulopathy"),
            (Finding.SPLENOMEGALY, "splenomegaly"),
            (Finding.ORGAN_DYSFUNCTION, "organ dysfunction"),
        ):
            if self.findings(kind, window):
                out.append(label)
        return out

    @cached_property
    def iechs(self) -> IechsSignals:
        """IEC-HS features evaluated whatever the CRS record says (Hines 2023: it can begin
        while CRS resolves or after it first improves), with one suspicion level."""
        t = self.t
        recorded = self.course.events_of(IECHS)
        recorded_active = any(e.active_on(self.day) for e in recorded)
        ref = self._iechs_reference_day
        last, high, very_high, rising = self._iechs_ferritin(ref)
        window = t.whole("iechs_ferritin_rise_window_days")
        fever_after = [
            f
            for f in self.course.events_of(Fever)
            if f.day is not None
            and f.day > (ref if ref is not None else 0)
            and self.day - f.day <= window
            and f.max_temp_c >= t.num("fever_c")
        ]
        new_cytopenia = self._iechs_new_cytopenia(ref)
        supportive = self._iechs_supportive()
        hlh = any(m.haemophagocytosis for m in self.marrows if (m.day or 0) >= 0)
        onsets = [e.start for e in recorded if e.active_on(self.day)]
        onsets += [f.day for f in fever_after if f.day is not None]
        if last is not None and (high or rising):
            onsets.append(last.day)
        level = iechs_level(
            self.crs_state,
            recorded_active=recorded_active,
            ferritin_high=high,
            ferritin_signal=high or rising,
            fever=bool(fever_after),
            new_cytopenia=new_cytopenia,
            haemophagocytosis=hlh,
            n_supportive=len(supportive),
            min_supportive=t.whole("iechs_min_supportive"),
        )
        return IechsSignals(
            crs_state=self.crs_state,
            crs_recorded=self.crs_recorded,
            ferritin=last,
            ferritin_high=high,
            ferritin_very_high=very_high,
            ferritin_rising=rising,
            recurrent_fever=bool(fever_after),
            new_cytopenia=new_cytopenia,
            supportive=tuple(supportive),
            haemophagocytosis=hlh,
            recorded_active=recorded_active,
            recorded_any=bool(recorded),
            level=level,
            onset_day=min(onsets) if onsets else None,
        )

    def describe_crs(self) -> str:
        """The CRS record as the IEC-HS and G-CSF items name it."""
        state = self.crs_state
        if state == "resolved":
            return f"CRS resolved on day {self.crs_resolved_day}"
        if state == "end-unknown":
            return (
                f"CRS from day {self.crs_end_unknown_since} has no end day (end unknown, "
                "read as not ongoing after "
                f"{self.timing.crs_open_read_as_ongoing_days} days)"
            )
        if state == "active":
            return f"CRS ongoing since day {self.active_crs_start}"
        return "no CRS recorded"

    # ------------------------------------------------------------------ TA-TMA and haemolysis

    @cached_property
    def dat(self) -> LabValue | None:
        """The latest direct antiglobulin test in the finding window (1 positive, 0 negative)."""
        return self.latest("dat", int(self.t.num("recent_finding_days")))

    @cached_property
    def haemolysis_markers(self) -> list[str]:
        rs = self.settings.reference_ranges
        window = int(self.t.num("recent_finding_days"))
        out = []
        if self.dat is not None and self.dat.value >= 1:
            out.append(f"DAT positive (day {self.dat.day})")
        bili = self.latest("bilirubin", window)
        if bili is not None and bili.value > rs.bilirubin_uln_mg_dl:
            out.append(f"bilirubin {fmt(bili.value)} mg/dL")
        hp = self.latest("haptoglobin", window)
        if hp is not None and hp.value < rs.haptoglobin_lln_mg_dl:
            out.append(f"haptoglobin {fmt(hp.value)} mg/dL")
        ldh = self.latest("ldh", window)
        if ldh is not None and ldh.value > rs.ldh_uln_u_l:
            out.append(f"LDH {fmt(ldh.value)} U/L")
        if self.recent_finding(Finding.SCHISTOCYTES):
            out.append("schistocytes")
        rt = self.latest("retic_pct", window)
        if rt is not None and rt.value > rs.retic_pct_uln:
            out.append(f"reticulocytes {fmt(rt.value)}%")
        return out

    @cached_property
    def tma_markers(self) -> list[str]:
        rs = self.settings.reference_ranges
        window = int(self.t.num("recent_finding_days"))
        out = list(self.haemolysis_markers)
        ipf = self.latest("ipf", window)
        if ipf is not None and ipf.value > rs.ipf_pct_uln:
            out.append(f"IPF {fmt(ipf.value)}%")
        up = self.latest("urine_protein", window)
        if up is not None and up.value >= self.t.num("tatma_proteinuria_mg_dl"):
            out.append(f"urine protein {fmt(up.value)} mg/dL")
        upcr = self.latest("upcr", window)
        if upcr is not None and upcr.value >= self.t.num("tatma_upcr_mg_mg"):
            out.append(f"UPCR {fmt(upcr.value)} mg/mg")
        if self.recent_finding(Finding.HYPERTENSION) or self.recent_finding(
            Finding.ANTIHYPERTENSIVE_NEEDED
        ):
            out.append("hypertension")
        return out

    @property
    def haemolysis_negatives(self) -> list[str]:
        """What was looked for and found absent (used, never read as 'not looked for')."""
        out = []
        if self.dat is not None and self.dat.value < 1:
            out.append(f"DAT negative (day {self.dat.day})")
        absent = self.recently_absent(Finding.SCHISTOCYTES)
        if absent is not None:
            out.append(f"no schistocytes (day {absent.day})")
        return out

    @property
    def infection_excluded(self) -> ClinicalFinding | None:
        """A recent record that infection was looked for and excluded (and no infection since)."""
        found = self.findings(Finding.INFECTION_EXCLUDED, self.t.num("recent_finding_days"))
        if not found or self.infections_active:
            return None
        return found[-1]

    @property
    def tma_pattern(self) -> bool:
        """Transfusion-dependent anaemia and thrombocytopenia but neutrophil recovery."""
        thrombocytopenia = self.plt_td or (self.plt is not None and self.platelets.significant)
        return (
            self.rbc_td
            and thrombocytopenia
            and self.anc is not None
            and self.anc > self.t.num("tatma_anc_recovered_above")
        )

    @property
    def tma_suspected(self) -> bool:
        """Prior allo-HCT with the review's TA-TMA pattern, or two TMA markers, during cytopenia."""
        return (
            self.prior_allo
            and self.any_cytopenia
            and (self.tma_pattern or len(self.tma_markers) >= 2)
        )

    # ------------------------------------------------------------------ prophylaxis

    @property
    def antiviral_start_day(self) -> int:
        """From lymphodepletion when its start is recorded (EHA/EBMT), else from infusion (review)."""
        ld = self.course.lymphodepletion
        return ld.start_day if ld is not None and ld.start_day is not None else 0

    @property
    def antiviral_end_day(self) -> int:
        return round(self.settings.prophylaxis.antiviral_months * 30.4375)

    @property
    def follow_up_end_day(self) -> int:
        return round(self.settings.prophylaxis.follow_up_years * 365.25)

    @cached_property
    def cd4(self) -> LabValue | None:
        """The latest CD4 count drawn after infusion (a count from before it says nothing about
        recovery after CAR-T and lymphodepletion); docs/conventions.md."""
        after = [v for v in self.series("cd4") if v.day >= self.t.whole("cd4_counts_from_day")]
        return after[-1] if after else None

    @property
    def cd4_above_stop(self) -> bool:
        """The latest post-infusion CD4 is above the stop level (one value decides everywhere)."""
        stop = self.settings.prophylaxis.cd4_stop_above_per_ul
        return self.cd4 is not None and self.cd4.value > stop

    @property
    def sulfonamide_allergy(self) -> bool:
        return bool(self.findings(Finding.DRUG_ALLERGY_SULFONAMIDE))

    @property
    def infusion_date(self) -> dt.date:
        return self.course.infusion_date


def describe_marrow(m: BoneMarrow) -> str:
    """A marrow result in a few words (what was reported; unreported items are left out)."""
    parts = []
    if m.cellularity:
        parts.append(m.cellularity.value)
    if m.cellularity_pct is not None:
        parts.append(f"{fmt(m.cellularity_pct)}% cellular")
    for flag, label in (
        (m.disease_present, "disease"),
        (m.dysplasia, "dysplasia"),
        (m.fibrosis, "fibrosis"),
    ):
        if flag is True:
            parts.append(label)
        elif flag is False:
            parts.append(f"no {label}")
    if m.mrd:
        parts.append(f"MRD {m.mrd}")
    return ", ".join(parts) if parts else "no result recorded"


def drug_alternative(med: Medication) -> str | None:
    d = resolve_drug(med.drug)
    return d.alternative if d else None
