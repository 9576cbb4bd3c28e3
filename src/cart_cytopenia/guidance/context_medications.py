"""Medication facts of ``Context``: drugs active on the day by class or cover, G-CSF, and the
TPO receptor agonist course with its response (platelets doubled or transfusions halved).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from cart_cytopenia.domain.catalogues import Cover, DrugClass, resolve_drug
from cart_cytopenia.domain.course import Medication, TransfusionProduct
from cart_cytopenia.guidance.context_base import ContextBase, LabValue


@dataclass(frozen=True)
class TpoCourse:
    drug: str
    start: int
    weeks: int
    platelets_at_start: LabValue | None
    transfusions_before: int  # platelet transfusions in the 28 days before the start
    transfusions_last_28: int


class MedicationFacts(ContextBase):
    """Medications on the day: by class, by what they cover, G-CSF, and a TPO-RA course with its
    response."""

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


def drug_alternative(med: Medication) -> str | None:
    d = resolve_drug(med.drug)
    return d.alternative if d else None
