"""Prophylaxis facts of ``Context``: when antiviral prophylaxis and follow-up start and end (from
the settings), the latest CD4 count after infusion against the stop level, a sulfonamide
allergy, the infusion date.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property

from cart_cytopenia.domain.course import Finding
from cart_cytopenia.guidance.context_base import ContextBase, LabValue


class ProphylaxisFacts(ContextBase):
    """Anti-infective prophylaxis facts: its start and end days, CD4 recovery, allergy."""

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
