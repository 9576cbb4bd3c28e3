"""What the pages and the API show for a stored course on a day: grades, guidance, state.

``CourseSnapshot`` bundles the validated ``Course``, its ``Assessment`` (grading) and
``Guidance`` (the review's approach) for the assessment day, computed once per
(course, version, day, settings) and cached in memory (a course's version changes with every
edit, so the cache never serves stale data). Acknowledgements are read fresh each time.

An acknowledgement or dismissal covers a guidance item while the item still says the same thing
(same summary) at the same or lower urgency; when the data change what the item says, or it
becomes more urgent, it is open again.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cart_cytopenia.domain.course import (
    CRS,
    HCT,
    ICANS,
    IECHS,
    BoneMarrow,
    Course,
    Infection,
    Medication,
    StemCellBoost,
)
from cart_cytopenia.grading.assessment import Assessment, GradeResult
from cart_cytopenia.guidance import Guidance, GuidanceItem, evaluate, evaluate_many
from cart_cytopenia.guidance.context import describe_marrow
from cart_cytopenia.guidance.plausible import recorded_days
from cart_cytopenia.rules.settings import Settings
from cart_cytopenia.store.courses import load_course
from cart_cytopenia.store.models import CourseRecord, GuidanceAction

URGENCY_ORDER = ("critical", "warning", "action", "consider", "info")
URGENCY_RANK = {u: len(URGENCY_ORDER) - i for i, u in enumerate(URGENCY_ORDER)}
# open items at these urgencies need action; "consider" items ask for a decision, "info" informs
NEEDS_ACTION = frozenset({"critical", "warning", "action"})
TO_DECIDE = NEEDS_ACTION | {"consider"}
SECTIONS = ("alerts", "management", "workup", "prophylaxis", "differential")
SECTION_TITLES = {
    "alerts": "Alerts",
    "management": "Management to consider",
    "workup": "Work-up",
    "differential": "Differential diagnosis",
    "prophylaxis": "Infection prophylaxis",
}
COUNT_ANALYTES = ("anc", "platelets", "hb")


def assessment_day(rec: CourseRecord, today: dt.date) -> int:
    """The day shown: today's day since infusion (not before day 0)."""
    return max(0, (today - rec.infusion_date).days)


@dataclass(frozen=True)
class ItemState:
    item: GuidanceItem
    section: str
    action: GuidanceAction | None

    @property
    def handled(self) -> bool:
        return self.action is not None

    @property
    def urgency_rank(self) -> int:
        return URGENCY_RANK.get(self.item.urgency, 0)


@dataclass(frozen=True)
class CountCell:
    analyte: str
    value: float | None
    unit: str
    day: int | None
    grade: int | None
    stale_days: int | None


@dataclass
class CourseSnapshot:
    record_id: int
    patient_id: int
    pseudonym: str
    version: int
    status: str
    day: int
    today_day: int
    course: Course
    assessment: Assessment
    guidance: Guidance
    items: list[ItemState] = field(default_factory=list)

    # --- derived, for the worklist ---
    @property
    def product(self) -> str:
        return self.course.product.id

    @property
    def open_items(self) -> list[ItemState]:
        return sorted(
            (s for s in self.items if not s.handled),
            key=lambda s: (-s.urgency_rank, s.item.rank or 0),
        )

    @property
    def open_decisions(self) -> list[ItemState]:
        """Open items that ask for a decision (urgency consider or above), most urgent first."""
        return [s for s in self.open_items if s.item.urgency in TO_DECIDE]

    @property
    def open_info(self) -> int:
        return sum(1 for s in self.open_items if s.item.urgency not in TO_DECIDE)

    def open_by_urgency(self) -> dict[str, int]:
        """Open items per urgency, most urgent first (zero counts left out)."""
        out = dict.fromkeys(URGENCY_ORDER, 0)
        for s in self.open_items:
            out[s.item.urgency] = out.get(s.item.urgency, 0) + 1
        return {u: n for u, n in out.items() if n}

    @property
    def needs_action(self) -> bool:
        return any(s.item.urgency in NEEDS_ACTION for s in self.open_items)

    @property
    def top_urgency_rank(self) -> int:
        return max((s.urgency_rank for s in self.open_items), default=0)

    @property
    def last_count_day(self) -> int | None:
        """The day of the newest ANC / platelet / Hb value."""
        days = [c.day for c in self.counts().values() if c.day is not None]
        return max(days) if days else None

    @property
    def counts_age(self) -> int | None:
        """Days since the newest blood count when more than two, else None."""
        last = self.last_count_day
        return self.day - last if last is not None and self.day - last > 2 else None

    def counts(self) -> dict[str, CountCell]:
        out = {}
        by = {c.analyte: c for c in self.assessment.ctcae}
        for a in COUNT_ANALYTES:
            c = by.get(a)
            if c is None:
                continue
            grade = c.current.grade if c.current.status != "cannot_grade" else None
            stale = None  # older than the other counts of the row
            newest = max(
                (x.last_value_day for x in self.assessment.ctcae
                 if x.analyte in COUNT_ANALYTES and x.last_value_day is not None),
                default=None,
            )  # fmt: skip
            if (
                c.last_value_day is not None
                and newest is not None
                and newest - c.last_value_day > 2
            ):
                stale = newest - c.last_value_day
            out[a] = CountCell(a, c.last_value, c.unit, c.last_value_day, grade, stale)
        return out

    @property
    def icaht_label(self) -> str:
        a = self.assessment
        return _window_label(a.early_icaht.result, a.late_icaht.result, self.day)

    @property
    def icaht_rank(self) -> int:
        a = self.assessment
        return _window_rank(a.early_icaht.result, a.late_icaht.result, self.day)

    @property
    def ticaht_label(self) -> str:
        """T-ICAHT (platelets) as the worklist shows it, like ``icaht_label``."""
        t = self.assessment.ticaht
        return _window_label(t.early, t.late, self.day)

    @property
    def ticaht_rank(self) -> int:
        t = self.assessment.ticaht
        return _window_rank(t.early, t.late, self.day)

    @property
    def phenotype(self) -> str | None:
        return self.assessment.phenotype.phenotype

    @property
    def phase(self) -> str | None:
        return self.guidance.phase or self.assessment.phase

    def section(self, name: str) -> list[ItemState]:
        return [s for s in self.items if s.section == name]

    @property
    def dated_after_today(self) -> list[str]:
        """What the course records after today (a result cannot come from the future: most
        often a mistyped date), which today's grades and guidance do not count yet."""
        return [
            f"{what} on day {day}"
            for day, what in sorted(recorded_days(self.course))
            if day > self.today_day
        ]


class SnapshotCache:
    """LRU cache of (course, assessment, guidance) per (course id, version, day, settings)."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._data: OrderedDict[tuple[Any, ...], tuple[Course, Assessment, Guidance]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def get(
        self, rec: CourseRecord, day: int, settings: Settings
    ) -> tuple[Course, Assessment, Guidance]:
        key = (rec.id, rec.version, day, id(settings))
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
                return hit
        course = load_course(rec)
        guidance = evaluate(course, day, settings)  # grades the course once: guidance.assessment
        value = (course, guidance.assessment, guidance)
        with self._lock:
            self._data[key] = value
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return value


def _sections(g: Guidance) -> Iterable[tuple[str, GuidanceItem]]:
    for name in SECTIONS:
        for item in getattr(g, name, []) or []:
            yield name, item


def covering_action(item: GuidanceItem, actions: Sequence[GuidanceAction]) -> GuidanceAction | None:
    """The latest acknowledgement/dismissal that still covers ``item`` (see module doc)."""
    latest = None
    for a in actions:
        if a.item_id == item.id and (latest is None or a.id > latest.id):
            latest = a
    if latest is None:
        return None
    if latest.summary != item.summary[:255]:
        return None
    if URGENCY_RANK.get(item.urgency, 0) > URGENCY_RANK.get(latest.urgency, 0):
        return None
    return latest


@dataclass(frozen=True)
class StoredCourse:
    """What a snapshot needs of a stored course besides its content (a course being loaded in
    bulk has no ids yet: 0)."""

    record_id: int
    patient_id: int
    pseudonym: str
    version: int
    status: str
    infusion_date: dt.date
    actions: Sequence[GuidanceAction] = ()

    @classmethod
    def of(cls, rec: CourseRecord, actions: Sequence[GuidanceAction] | None = None) -> StoredCourse:
        acts = list(rec.guidance_actions) if actions is None else list(actions)
        return cls(rec.id, rec.patient_id, rec.patient.pseudonym, rec.version, rec.status,
                   rec.infusion_date, acts)  # fmt: skip


def _snapshot_of(
    stored: StoredCourse, today: dt.date, day: int, course: Course, guidance: Guidance
) -> CourseSnapshot:
    items = [
        ItemState(item, section, covering_action(item, stored.actions))
        for section, item in _sections(guidance)
    ]
    return CourseSnapshot(
        record_id=stored.record_id,
        patient_id=stored.patient_id,
        pseudonym=stored.pseudonym,
        version=stored.version,
        status=stored.status,
        day=day,
        today_day=(today - stored.infusion_date).days,
        course=course,
        assessment=guidance.assessment,
        guidance=guidance,
        items=items,
    )


def snapshot(
    rec: CourseRecord,
    today: dt.date,
    settings: Settings,
    cache: SnapshotCache,
    day: int | None = None,
    actions: Sequence[GuidanceAction] | None = None,
) -> CourseSnapshot:
    d = assessment_day(rec, today) if day is None else day
    course, _, guidance = cache.get(rec, d, settings)
    return _snapshot_of(StoredCourse.of(rec, actions), today, d, course, guidance)


def snapshots(
    stored: Sequence[tuple[StoredCourse, Course]], today: dt.date, settings: Settings
) -> list[CourseSnapshot]:
    """The snapshots of many courses on today's day of each, graded together
    (``evaluate_many``): what the worklist stores, one course or a bulk load's batch."""
    days = [max(0, (today - s.infusion_date).days) for s, _ in stored]
    found = evaluate_many([(c, d) for (_, c), d in zip(stored, days, strict=True)], settings)
    return [
        _snapshot_of(s, today, d, c, g) for (s, c), d, g in zip(stored, days, found, strict=True)
    ]


def unsaved_snapshot(
    course: Course, today: dt.date, settings: Settings, day: int | None = None
) -> CourseSnapshot:
    """The snapshot of a course that is not in the store (read from the EHR at a SMART
    launch): no record, nothing acknowledged; the day shown is today's unless ``day``."""
    today_day = (today - course.infusion_date).days
    guidance = evaluate(course, max(0, today_day) if day is None else day, settings)
    items = [ItemState(item, section, None) for section, item in _sections(guidance)]
    return CourseSnapshot(
        0, 0, course.patient.id, 0, "active", guidance.day, today_day, course,
        guidance.assessment, guidance, items,
    )  # fmt: skip


def _window_label(early: GradeResult, late: GradeResult, day: int) -> str:
    """An early/late grade pair (ICAHT, T-ICAHT) as the worklist shows it: the late grade after
    day 30, else the early one; * while the window is open."""
    if day > 30 and late.status == "graded":
        return f"late {late.grade}"
    if early.status == "graded":
        return f"early {early.grade}" + ("*" if early.provisional else "")
    if early.status == "normal":
        return "none" + ("*" if early.provisional else "")
    return "—"


def _window_rank(early: GradeResult, late: GradeResult, day: int) -> int:
    g = late.grade if day > 30 else None
    g = g if g is not None else early.grade
    return -1 if g is None else g


def _span_days(start: int, end: int | None, day: int) -> str:
    if end is None or end > day:
        return f"from day {start}, ongoing"
    return f"day {start}" if end == start else f"days {start}-{end}"


def course_story(snap: CourseSnapshot) -> list[str]:
    """What happened to this patient up to the day, in short lines (for the patient header)."""
    a, day = snap.assessment, snap.day
    view = snap.course.as_of(day)
    lines: list[str] = []
    counts = []
    for lin in a.lineages:
        if lin.last_value is None:
            counts.append(
                f"no {lin.analyte.upper() if lin.analyte == 'anc' else lin.analyte} value"
            )
            continue
        v = f"{lin.last_value:.1f}" if lin.analyte == "hb" else f"{lin.last_value:,.0f}"
        unit = {"/uL": "/µL", "10*3/uL": "×10³/µL"}.get(lin.unit, lin.unit)
        name = {"anc": "ANC", "platelets": "platelets", "hb": "Hb"}.get(lin.analyte, lin.analyte)
        bits = [f"G{lin.ctcae_grade}" if lin.ctcae_grade is not None else "not graded"]
        if lin.transfusion is not None and lin.transfusion.dependent:
            bits.append("transfusion-dependent")
        if lin.nadir is not None and lin.nadir_day is not None:
            nadir = f"{lin.nadir:.1f}" if lin.analyte == "hb" else f"{lin.nadir:,.0f}"
            bits.append(f"nadir {nadir} day {lin.nadir_day}")
        counts.append(f"{name} {v} {unit} (day {lin.last_value_day}; {', '.join(bits)})")
    lines.append("Counts: " + "; ".join(counts) + ".")
    icaht = f"Early ICAHT {a.early_icaht.result.label()}"
    if day > 30:
        icaht += f"; late ICAHT {a.late_icaht.result.label()}"
    icaht += f"; early T-ICAHT {a.ticaht.early.label()}"
    if day > 30:
        icaht += f"; late T-ICAHT {a.ticaht.late.label()}"
    pheno = a.phenotype.phenotype
    lines.append(icaht + (f"; {pheno} neutrophil recovery." if pheno else "."))
    infl = []
    for ev in view.events_of(CRS):
        infl.append(f"CRS grade {ev.max_grade} ({_span_days(ev.start, ev.end, day)})")
    for ev in view.events_of(ICANS):
        infl.append(f"ICANS grade {ev.max_grade} ({_span_days(ev.start, ev.end, day)})")
    for ev in view.events_of(IECHS):
        infl.append(f"IEC-HS ({_span_days(ev.start, ev.end, day)})")
    for ev in view.events_of(Infection):
        what = ev.organism or ev.category.value
        infl.append(f"infection: {what} ({_span_days(ev.start, ev.end, day)})")
    if infl:
        lines.append("Inflammation and infection: " + "; ".join(infl) + ".")
    tx = []
    g = a.gcsf
    if g.first_day is not None:
        resp = f", response: {g.response}" if g.response else ""
        tx.append(f"G-CSF from day {g.first_day} ({g.days_given} d{resp})")
    for m in view.events_of(Medication):
        classes = {c.value for c in m.classes}
        if "tpo_ra" in classes or "gmcsf" in classes:
            tx.append(f"{m.drug} ({_span_days(m.start, m.end, day)})")
    for b in view.events_of(StemCellBoost):
        tx.append(f"{b.source.value} stem cell boost day {b.day}")
    for h in view.events_of(HCT):
        tx.append(f"{h.kind.value} HCT day {h.day}")
    if tx:
        lines.append("Treatment: " + "; ".join(tx) + ".")
    marrows = [
        f"day {m.day}: {describe_marrow(m)}"
        for m in view.events_of(BoneMarrow)
        if m.day is not None
    ]
    if marrows:
        lines.append("Marrow: " + "; ".join(marrows) + ".")
    if view.relapse_day is not None:
        lines.append(f"Relapse / progression on day {view.relapse_day}.")
    return lines


def find_item(snap: CourseSnapshot, item_id: str) -> ItemState | None:
    return next((s for s in snap.items if s.item.id == item_id), None)
