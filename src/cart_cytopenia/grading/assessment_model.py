"""The typed result of assessing one course on one day (``assessment.assess``).

Each result is a grade, "normal", or "cannot grade" with the reason (``GradeResult``); results on
windows still open on the day are marked provisional; ``BasedOn`` lists the data, rule tables and
settings used. The models are frozen: an assessment is a record of what was known that day.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cart_cytopenia.grading.tatma_result import TatmaResult


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class GradeStatus(StrEnum):
    GRADED = "graded"
    NORMAL = "normal"
    CANNOT_GRADE = "cannot_grade"


class GradeResult(_Out):
    status: GradeStatus
    grade: int | None = None
    reason: str | None = None
    provisional: bool = False
    rule: str = Field(description="Rule table id and version the grade comes from.")

    @classmethod
    def of(
        cls, grade: int, rule: str, reason: str | None = None, provisional: bool = False
    ) -> GradeResult:
        if grade < 0:
            return cls(status=GradeStatus.CANNOT_GRADE, reason=reason or "no value", rule=rule)
        status = GradeStatus.NORMAL if grade == 0 else GradeStatus.GRADED
        return cls(status=status, grade=grade, provisional=provisional, rule=rule)

    def label(self) -> str:
        if self.status == GradeStatus.CANNOT_GRADE:
            return f"cannot grade ({self.reason})"
        text = "normal (grade 0)" if self.status == GradeStatus.NORMAL else f"grade {self.grade}"
        return text + (" (provisional)" if self.provisional else "")


class CtcaeItem(_Out):
    analyte: str
    term: str
    unit: str
    last_value: float | None
    last_value_day: int | None
    current: GradeResult
    worst: GradeResult


class EarlyIcahtResult(_Out):
    result: GradeResult
    window: tuple[int, int]
    days_anc_le_500: int
    days_anc_le_100: int
    never_recovered: bool
    unknown_days_in_runs: int


class LateIcahtResult(_Out):
    result: GradeResult
    window_start: int
    window_end: int
    window_end_reason: str
    anc_1: float | None
    anc_2: float | None
    n_values: int


class TicahtResult(_Out):
    """T-ICAHT (Rejeski et al., Blood 2025): thrombocytopenia graded early and late."""

    early: GradeResult
    early_window: tuple[int, int]
    early_days_plt_lt_50: int = Field(description="Cumulative days < 50 x10^9/L, day 0-30")
    early_days_plt_lt_20: int = Field(description="Cumulative days < 20 x10^9/L, day 0-30")
    late: GradeResult
    late_window_start: int
    late_window_end: int
    late_plt_1: float | None = Field(description="Lowest count in the late window (10^9/L)")
    late_plt_2: float | None = Field(description="Second-lowest count (another day)")
    late_days_plt_lt_20: int
    recovery_day: int | None = Field(
        description="First of 3 days >= 20 x10^9/L, 7 days after the last platelet transfusion"
    )
    not_recovered: bool = Field(description="A run < 20 x10^9/L is still open")
    post_transfusion_counts: int = Field(
        description="Counts at or above a cut-point within 2 days of a platelet transfusion, "
        "not used as evidence of recovery"
    )


class HematotoxMarkerResult(_Out):
    analyte: str
    value: float | None
    unit: str
    day: int | None
    points: int | None
    band: str | None


class HematotoxIgnoredValue(_Out):
    """A baseline value the score does not use, and why (also named among the warnings)."""

    analyte: str
    value: float
    unit: str
    day: int
    reason: str


class HematotoxResult(_Out):
    score: int | None
    points_counted: int
    max_score: int
    risk: str | None = Field(description="'high', 'low', or None when it cannot be told")
    markers: list[HematotoxMarkerResult]
    missing: list[str]
    warnings: list[str]
    ignored: list[HematotoxIgnoredValue] = Field(
        default_factory=list, description="Baseline values not used, with the reason"
    )
    rule: str


class EasixResult(_Out):
    """EASIX and m-EASIX (LDH x creatinine or CRP / platelets) beside CAR-HEMATOTOX."""

    easix_baseline: float | None = Field(description="Before lymphodepletion; None: not computed")
    m_easix_baseline: float | None
    missing_easix: list[str] = Field(description="Baseline analytes missing for EASIX")
    missing_m_easix: list[str]
    baseline_after_ld_start: bool = Field(
        description="A value used was drawn after lymphodepletion started (none before it)"
    )
    above_cutoff: bool | None = Field(
        description="EASIX before lymphodepletion above the published cut-off; None: unknown"
    )
    cutoff: float
    cutoff_outcome: str
    cutoff_source: str
    easix_d0_3: float | None = Field(description="Highest EASIX of a day 0-3 with all values")
    easix_d0_3_day: int | None
    m_easix_d0_3: float | None
    m_easix_d0_3_day: int | None
    rule: str


class IechsResult(_Out):
    """IEC-HS by the ASTCT criteria (Hines 2023), with carHLH and the HScore as read-outs."""

    status: str = Field(description="met, suspected, not met, not assessable (no ferritin)")
    grade: int | None = Field(description="Always None: the paper's grading table was not read")
    grade_note: str
    onset_day: int | None = Field(description="Day the ferritin criterion was first met")
    onset_relative_to_crs: str | None
    evidence: list[str]
    missing: list[str] = Field(description="Inputs whose absence keeps it at suspected")
    carhlh: str = Field(description="met, not met, incomplete")
    carhlh_organ_criteria: int
    carhlh_missing: list[str]
    hscore: int = Field(description="Points of the items present (a lower bound if incomplete)")
    hscore_max: int = Field(description="The most it could be with the missing items")
    hscore_items: int = Field(description="Items scored, of 9")
    hscore_at_cutoff: bool | None = Field(description=">= cut-off; None: the missing items decide")
    hscore_cutoff: int
    hscore_missing: list[str]
    guidance_level: str | None = Field(
        description="The guidance IEC-HS level this status raises to (never lowers)"
    )
    summary: str = Field(description="Status, grade, carHLH and HScore in one sentence")
    rule: str


class PhenotypeResult(_Out):
    phenotype: str | None
    reason: str | None
    first_recovery_day: int | None
    second_dip_day: int | None
    sustained_recovery_day: int | None
    longest_severe_run_days: int
    rule: str


class TransfusionStatus(_Out):
    product: str
    in_window: int
    window_days: int
    dependent: bool
    last_day: int | None
    units_in_long_window: int | None = Field(
        default=None,
        description="Units in the regular-transfusion window (None: no such rule for the product)",
    )
    episodes_in_long_window: int | None = None
    long_window_days: int | None = None
    dependent_by: Literal["short-window", "regular"] | None = Field(
        default=None,
        description="Which definition made the lineage dependent (the 28-day one is checked first)",
    )
    basis: str | None = Field(
        default=None, description="The definition of dependence met, with the counts behind it"
    )


class LineageStatus(_Out):
    lineage: str
    analyte: str
    unit: str
    last_value: float | None
    last_value_day: int | None
    ctcae_grade: int | None
    significant: bool = Field(
        description="Below the lineage's CTCAE grade-3 cut-point on the last value"
    )
    significant_below: float
    phase: str | None = Field(
        description="Phase of the current episode's day (early/prolonged/late)"
    )
    episode_start_day: int | None
    nadir: float | None
    nadir_day: int | None
    days_significant_d0_60: int
    days_severe_d0_60: int
    transfusion: TransfusionStatus | None


class GcsfStatus(_Out):
    first_day: int | None
    days_given: int
    response: str | None
    anc_at_start: float | None
    active_on_day: bool


class InflammationStatus(_Out):
    crs_max_grade: int
    icans_max_grade: int
    crs_active: bool = Field(description="CRS known to be ongoing on the day")
    icans_active: bool = Field(description="ICANS known to be ongoing on the day")
    crs_resolved_day: int | None
    crs_end_unknown: bool = Field(
        False,
        description=(
            "A CRS recorded without an end day, started longer ago than the timing table's "
            "crs_record.open_read_as_ongoing_days: neither known ongoing nor known resolved"
        ),
    )
    crs_end_unknown_since_day: int | None = None


class BasedOn(_Out):
    software: str
    as_of_day: int
    retrospective: bool
    n_labs: int
    n_events: int
    lab_days: tuple[int, int] | None
    rule_tables: list[str]
    settings: dict[str, Any]
    settings_changed: dict[str, Any]
    drugs_not_reasoned_about: list[str]


class Assessment(_Out):
    patient_id: str
    day: int
    phase: str | None
    ctcae_version: str
    ctcae: list[CtcaeItem]
    lineages: list[LineageStatus]
    early_icaht: EarlyIcahtResult
    late_icaht: LateIcahtResult
    ticaht: TicahtResult
    hematotox: HematotoxResult
    easix: EasixResult
    tatma: TatmaResult
    iechs: IechsResult
    phenotype: PhenotypeResult
    gcsf: GcsfStatus
    inflammation: InflammationStatus
    notes: list[str] = Field(description="What the data could not support, and other caveats")
    based_on: BasedOn
