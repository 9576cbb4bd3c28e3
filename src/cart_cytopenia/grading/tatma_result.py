"""The TA-TMA harmonised criteria of one patient as a typed result (part of ``Assessment``).

Read from the engine's vectorised ``grading.tatma`` arrays: the same numbers as the grade table.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from cart_cytopenia.domain.analytes import analyte
from cart_cytopenia.grading import tatma
from cart_cytopenia.rules import tables
from cart_cytopenia.rules.settings import ReferenceRanges

# the analyte whose value a criterion shows as its evidence (its unit is shown with it)
EVIDENCE_ANALYTE = {
    "anaemia": "hb",
    "thrombocytopenia": "platelets",
    "ldh": "ldh",
    "schistocytes": "schistocytes",
    "hypertension": "sbp",
    "sc5b9": "sc5b9",
    "proteinuria": "upcr",
}
HIGH_RISK_TEXT = {
    "sc5b9": "sC5b-9 >= ULN",
    "proteinuria": "rUPCR >= 1 mg/mg",
    "ldh_2x_uln": "LDH >= 2x ULN",
    "gvhd": "concurrent acute GVHD grade 2-4",
    "infection": "concurrent bacterial or viral infection",
    "organ_dysfunction": "organ dysfunction",
}


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class TatmaCriterionResult(_Out):
    id: str
    label: str
    analyte: str = Field(description="The analyte whose value is shown as evidence")
    met: bool | None = Field(description="None: not assessable (no value within the carry days)")
    how: str = Field(description="How it was met or not; empty when not assessable")
    day: int | None = Field(description="Day of the value read (None: none)")
    value: float | None
    unit: str | None


class TatmaResult(_Out):
    """TA-TMA harmonised criteria (Schoettler et al., Transplant Cell Ther 2023)."""

    status: str = Field(
        description="'meets', 'not met', 'work-up incomplete' (neither decided; a TA-TMA-specific "
        "criterion was assessed) or 'not evaluated' (no TA-TMA-specific work-up after infusion)"
    )
    criteria_met: int | None = Field(description="At the reference time point (of 7)")
    assessable: int | None = Field(description="Criteria assessable there (of 7)")
    required: int
    total: int
    window_days: int
    reference_day: int | None = Field(
        description="The first day the criteria were met, else the time point with most met"
    )
    prior_day: int | None = Field(description="The time point before it")
    prior_criteria_met: int | None
    first_met_day: int | None
    time_points: int
    criteria: list[TatmaCriterionResult]
    high_risk: bool | None = Field(
        description="Met with a high-risk feature; False only when every feature was assessed"
    )
    high_risk_features: list[str]
    high_risk_not_assessed: list[str]
    uln: dict[str, float] = Field(description="The limits used (settings reference_ranges)")
    rule: str

    @property
    def not_assessable(self) -> list[str]:
        """The criteria without a value at the reference time point (their labels)."""
        return [c.label for c in self.criteria if c.met is None]

    @property
    def summary(self) -> str:
        if self.criteria_met is None:
            return "TA-TMA criteria: not evaluated (no time point with a value after infusion)"
        missing = self.total - (self.assessable or 0)
        text = (
            f"TA-TMA harmonised criteria: {self.criteria_met} of {self.total} met, {missing} of "
            f"{self.total} not assessable on day {self.reference_day}"
        )
        if self.status == tatma.MEETS:
            return text + (
                f"; >= {self.required} of {self.total} also on day {self.prior_day}: meets the "
                f"criteria (first met day {self.first_met_day})"
            )
        if self.status == tatma.NOT_MET:
            return text + ": not met"
        if self.status == tatma.NOT_EVALUATED:
            return text + (
                ": not evaluated (no TA-TMA-specific work-up after infusion: schistocytes, "
                "blood pressure, sC5b-9 and urine protein/creatinine ratio never assessed)"
            )
        gaps = []
        if self.criteria_met >= self.required:
            gaps.append(
                f"met on one time point: a second time point within {self.window_days} "
                "days is needed"
            )
        if self.not_assessable:
            gaps.append("not assessable: " + ", ".join(self.not_assessable))
        return text + f": work-up incomplete ({'; '.join(gaps)})"

    @property
    def evidence(self) -> str:
        """The criteria met with their day and value, e.g. 'LDH > ULN (day 30: 612 U/L)'."""
        parts = []
        for c in self.criteria:
            if c.met:
                at = f"; day {c.day}: {c.value:g} {c.unit}" if c.value is not None else ""
                parts.append(f"{c.label} ({c.how}{at})")
        return "; ".join(parts)


def _f(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _d(x: int) -> int | None:
    return None if x < 0 else int(x)


def result(z: tatma.Tatma, i: int, refs: ReferenceRanges) -> TatmaResult:
    t = tables.tatma()
    crits = []
    for c in t.criteria:
        known = bool(z.criterion_known[c.id][i])
        a = analyte(EVIDENCE_ANALYTE[c.id])
        value = _f(z.evidence_value[c.id][i]) if known else None
        if a.canonical_unit.ucum == "{presence}":  # (the result says present / absent)
            value = None
        crits.append(
            TatmaCriterionResult(
                id=c.id,
                label=c.label,
                analyte=a.code,
                met=bool(z.criterion_met[c.id][i]) if known else None,
                how=str(z.evidence_how[c.id][i]),
                day=_d(int(z.evidence_day[c.id][i])) if known else None,
                value=value,
                unit=a.canonical_unit.ucum if value is not None else None,
            )
        )
    flag = int(tatma.high_risk_flag(z)[i : i + 1][0])
    meets = z.status[i] == tatma.MEETS
    return TatmaResult(
        status=str(z.status[i]),
        criteria_met=_d(int(z.met[i])),
        assessable=_d(int(z.assessable[i])),
        required=t.required,
        total=len(t.criteria),
        window_days=t.window_days,
        reference_day=_d(int(z.reference_day[i])),
        prior_day=_d(int(z.prior_day[i])),
        prior_criteria_met=_d(int(z.prior_met[i])),
        first_met_day=_d(int(z.first_met_day[i])),
        time_points=int(z.n_time_points[i]),
        criteria=crits,
        high_risk=None if flag < 0 else bool(flag),
        high_risk_features=[
            HIGH_RISK_TEXT[h] for h in HIGH_RISK_TEXT if meets and z.high_risk[h][i]
        ],
        high_risk_not_assessed=[
            HIGH_RISK_TEXT[h] for h in HIGH_RISK_TEXT if meets and not z.high_risk_known[h][i]
        ],
        uln={"ldh_u_l": refs.ldh_uln_u_l, "sc5b9_ng_ml": refs.sc5b9_uln_ng_ml},
        rule=t.meta.label,
    )
