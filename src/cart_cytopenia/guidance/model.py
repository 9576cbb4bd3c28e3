"""The guidance engine's output: items, the day's guidance, the calendar and the replay.

These names are part of the public interface (CDS Hooks cards, the API, reports): ``id`` values
are stable, ``summary`` fits a CDS Hooks card (< 140 characters), ``rationale`` names the patient
data behind the item and ``citation`` names the review passage or standard it comes from.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cart_cytopenia.grading.assessment import Assessment

Kind = Literal["differential", "workup", "management", "prophylaxis", "alert"]
Urgency = Literal["info", "consider", "action", "warning", "critical"]

KINDS: tuple[Kind, ...] = ("differential", "workup", "management", "prophylaxis", "alert")
URGENCIES: tuple[Urgency, ...] = ("info", "consider", "action", "warning", "critical")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RecommendationSpec(_Frozen):
    """One recommendation of the review as the engine encodes it (``tables/recommendations.toml``)."""

    id: str
    kind: Kind
    title: str
    quote: str = Field(description="The review's own words this recommendation encodes.")
    evidence: str = Field(description="Strength of evidence as the review states it.")
    citation: str = Field(description="Review passage and reference numbers, or the standard.")
    speculative: bool = False
    urgency: Urgency = Field(description="Default urgency when it fires.")
    summaries: dict[str, str] = Field(
        description="Summary templates by variant ('default' always present); {names} are filled in."
    )
    trigger: str = Field(description="When it fires, in words (the rule's named predicates).")


class GuidanceItem(_Frozen):
    id: str
    kind: Kind
    summary: str = Field(description="One line, < 140 characters (CDS Hooks card summary).")
    rationale: str = Field(description="The patient data that triggered it (values, days).")
    inputs: dict[str, Any] = Field(description="The data it was based on.")
    evidence: str
    citation: str
    speculative: bool
    urgency: Urgency
    rank: int | None = Field(default=None, description="Differential items: 1 = most likely.")


class CalendarEntry(_Frozen):
    """A dated step of the prophylaxis and monitoring plan."""

    item_id: str
    text: str
    start_day: int
    end_day: int | None = None
    condition: str | None = Field(
        default=None, description="When it ends or applies, when not a fixed day."
    )
    status: Literal["past", "current", "upcoming"]


class Guidance(_Frozen):
    patient_id: str
    day: int
    phase: str | None
    assessment: Assessment
    differential: list[GuidanceItem]
    workup: list[GuidanceItem]
    management: list[GuidanceItem]
    prophylaxis: list[GuidanceItem]
    alerts: list[GuidanceItem]
    calendar: list[CalendarEntry]
    missing_data: list[str] = Field(description="What is missing and what it prevents.")
    settings_in_force: dict[str, Any]

    def items(self) -> list[GuidanceItem]:
        """Every item, alerts first, then differential, work-up, management, prophylaxis."""
        return [
            *self.alerts,
            *self.differential,
            *self.workup,
            *self.management,
            *self.prophylaxis,
        ]

    def item(self, item_id: str) -> GuidanceItem | None:
        return next((i for i in self.items() if i.id == item_id), None)

    def ids(self) -> set[str]:
        return {i.id for i in self.items()}


class ReplayEpisode(_Frozen):
    appeared_day: int
    cleared_day: int | None = Field(
        description="First day it was no longer given; None when still present on the last day."
    )
    first_summary: str


class ReplayItem(_Frozen):
    id: str
    kind: Kind
    title: str
    episodes: list[ReplayEpisode]

    @property
    def first_appeared(self) -> int:
        return self.episodes[0].appeared_day

    @property
    def cleared(self) -> int | None:
        return self.episodes[-1].cleared_day


class ReplayDay(_Frozen):
    day: int
    phase: str | None
    item_ids: list[str]


class ReplayOutlier(_Frozen):
    """Something recorded on a day beyond the plausible course (not replayed; check its date)."""

    day: int
    what: str = Field(description="Where in the course, e.g. 'labs[5] (anc)'.")


class Replay(_Frozen):
    """Guidance evaluated on every day from 0 to the last day of the plausible course."""

    patient_id: str
    first_day: int
    last_day: int
    beyond_plausible: list[ReplayOutlier] = Field(
        default_factory=list,
        description=(
            "Items recorded after a silence of more than a year (guidance/plausible.py): not "
            "replayed, most likely a mistyped date or day."
        ),
    )
    items: list[ReplayItem] = Field(description="In order of first appearance.")
    days: list[ReplayDay]
    settings_in_force: dict[str, Any]

    def ids_on(self, day: int) -> set[str]:
        for d in self.days:
            if d.day == day:
                return set(d.item_ids)
        raise KeyError(f"day {day} is outside the replay (days {self.first_day}-{self.last_day})")

    def item(self, item_id: str) -> ReplayItem | None:
        return next((i for i in self.items if i.id == item_id), None)

    def days_with(self, item_id: str) -> list[int]:
        return [d.day for d in self.days if item_id in d.item_ids]
