"""``evaluate`` (one day) and ``replay`` (every day) of the guidance.

evaluate: grade the course as of the day (``grading.assessment.assess``), build the ``Context``,
run every recommendation's rule in catalogue order, rank the differential, add the calendar and
the missing-data notes. Pure and deterministic: the same course, day and settings always give
the same guidance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cart_cytopenia.domain.course import Course, Dated
from cart_cytopenia.errors import RuleTableError
from cart_cytopenia.grading.assessment import (
    Assessment,
    assess,
    assess_days,
    assess_many,
    default_day,
)
from cart_cytopenia.guidance import recommendations as _triggers  # noqa: F401 - registers the triggers
from cart_cytopenia.guidance.calendar import build_calendar
from cart_cytopenia.guidance.context import Context
from cart_cytopenia.guidance.missing import general_gaps
from cart_cytopenia.guidance.model import (
    URGENCIES,
    Guidance,
    GuidanceItem,
    RecommendationSpec,
    Replay,
    ReplayDay,
    ReplayEpisode,
    ReplayItem,
    ReplayOutlier,
)
from cart_cytopenia.guidance.plausible import plausible_range
from cart_cytopenia.guidance.registry import TRIGGERS, Trigger, Triggered
from cart_cytopenia.guidance.spec import recommendations, thresholds
from cart_cytopenia.rules.settings import Settings

SUMMARY_MAX = 139  # CDS Hooks card summary: < 140 characters


def catalogue() -> list[RecommendationSpec]:
    """Every recommendation the engine encodes (id, kind, title, evidence, citation, quote ...)."""
    return list(recommendations().specs)


def _checked_triggers() -> list[tuple[RecommendationSpec, Trigger]]:
    specs = recommendations().specs
    ids = {s.id for s in specs}
    no_trigger = sorted(ids - set(TRIGGERS))
    no_spec = sorted(set(TRIGGERS) - ids)
    if no_trigger or no_spec:
        raise RuleTableError(
            "guidance triggers and recommendations.toml disagree: "
            + (f"no trigger for {', '.join(no_trigger)}; " if no_trigger else "")
            + (f"no recommendation for trigger(s) {', '.join(no_spec)}" if no_spec else "")
        )
    return [(s, TRIGGERS[s.id]) for s in specs]


def _summary(spec: RecommendationSpec, hit: Triggered) -> str:
    try:
        template = spec.summaries[hit.variant]
    except KeyError:
        raise RuleTableError(f"{spec.id}: no summary template {hit.variant!r}") from None
    try:
        text = template.format(**hit.values)
    except (KeyError, IndexError, ValueError) as exc:
        raise RuleTableError(f"{spec.id}: summary template {hit.variant!r} needs {exc}") from None
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"


def _item(spec: RecommendationSpec, hit: Triggered) -> GuidanceItem:
    return GuidanceItem(
        id=spec.id,
        kind=spec.kind,
        summary=_summary(spec, hit),
        rationale=hit.rationale[:1].upper() + hit.rationale[1:],
        inputs=_jsonable(hit.inputs),
        evidence=spec.evidence,
        citation=spec.citation,
        speculative=spec.speculative,
        urgency=hit.urgency or spec.urgency,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set) else items
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def settings_in_force(settings: Settings) -> dict[str, Any]:
    out = settings.in_force()
    out["guidance.recommendations"] = recommendations().meta.label
    out["guidance.thresholds"] = thresholds().meta.label
    return out


def evaluate(course: Course, day: int | None = None, settings: Settings | None = None) -> Guidance:
    """The guidance for ``course`` as known on ``day`` (default: the last day with data)."""
    settings = settings or Settings()
    as_of = default_day(course) if day is None else day
    assessment = assess(course, as_of, settings)
    return evaluate_assessed(_known_on(course, as_of), as_of, assessment, settings)


def evaluate_many(
    pairs: Sequence[tuple[Course, int]], settings: Settings | None = None
) -> list[Guidance]:
    """``evaluate(course, day)`` for many courses, graded together (``assess_many``): the same
    guidance as course by course, at a fraction of the grading cost."""
    settings = settings or Settings()
    assessments = assess_many(pairs, settings)
    return [
        evaluate_assessed(_known_on(course, day), day, a, settings)
        for (course, day), a in zip(pairs, assessments, strict=True)
    ]


def _known_on(course: Course, day: int) -> Course:
    """``Course.as_of(day)`` without the deep copy (the triggers never modify the course)."""
    labs = [lab for lab in course.labs if lab.day is not None and lab.day <= day]
    events = [e for e in course.events if (start := _start(e)) is not None and start <= day]
    update: dict[str, Any] = {"labs": labs, "events": events}
    if course.last_followup_day is not None and course.last_followup_day > day:
        update |= {"last_followup_day": None, "last_followup_date": None}
    return course.model_copy(update=update)


def _start(event: Any) -> int | None:
    start = event.day if isinstance(event, Dated) else event.start_day
    return None if start is None else int(start)


def evaluate_assessed(
    view: Course, day: int, assessment: Assessment, settings: Settings
) -> Guidance:
    """``evaluate`` for a course already cut to ``day`` and graded (used by replay and services)."""
    ctx = Context(view, day, assessment, settings)
    by_kind: dict[str, list[tuple[int, int, GuidanceItem]]] = {
        k: [] for k in ("differential", "workup", "management", "prophylaxis", "alert")
    }
    for order, (spec, fn) in enumerate(_checked_triggers()):
        hit = fn(ctx)
        if hit is None:
            continue
        item = _item(spec, hit)
        if spec.kind == "differential":
            if hit.weight is None:
                raise RuleTableError(f"{spec.id}: a differential rule must give a weight")
            key = -hit.weight
        else:
            key = -URGENCIES.index(item.urgency)
        by_kind[spec.kind].append((key, order, item))
    ranked = [
        item.model_copy(update={"rank": i + 1})
        for i, (_, _, item) in enumerate(sorted(by_kind["differential"], key=lambda x: x[:2]))
    ]

    def ordered(kind: str) -> list[GuidanceItem]:
        return [item for _, _, item in sorted(by_kind[kind], key=lambda x: x[:2])]

    calendar = build_calendar(ctx)
    gaps = general_gaps(ctx)
    missing = gaps + [m for m in ctx.missing_notes if m not in gaps]
    return Guidance(
        patient_id=view.patient.id,
        day=day,
        phase=assessment.phase,
        assessment=assessment,
        differential=ranked,
        workup=ordered("workup"),
        management=ordered("management"),
        prophylaxis=ordered("prophylaxis"),
        alerts=ordered("alert"),
        calendar=calendar,
        missing_data=missing,
        settings_in_force=settings_in_force(settings),
    )


def replay(course: Course, settings: Settings | None = None) -> Replay:
    """Guidance on every day from 0 to the last day of the plausible course (a day recorded
    after more than a year without data is reported, not replayed: guidance/plausible.py):
    when each item appeared and cleared."""
    settings = settings or Settings()
    last_day, outliers = plausible_range(course)
    titles = {s.id: s for s in recommendations().specs}
    days: list[ReplayDay] = []
    open_: dict[str, tuple[int, str]] = {}
    episodes: dict[str, list[ReplayEpisode]] = {}
    order: list[str] = []
    day_list = list(range(0, last_day + 1))
    assessments = assess_days(course, day_list, settings)  # one engine pass for all days
    for d, assessment in zip(day_list, assessments, strict=True):
        g = evaluate_assessed(_known_on(course, d), d, assessment, settings)
        present = {i.id: i for i in g.items()}
        days.append(ReplayDay(day=d, phase=g.phase, item_ids=[i.id for i in g.items()]))
        for item_id, item in present.items():
            if item_id not in open_:
                open_[item_id] = (d, item.summary)
                if item_id not in episodes:
                    episodes[item_id] = []
                    order.append(item_id)
        for item_id in [k for k in open_ if k not in present]:
            start, summary = open_.pop(item_id)
            episodes[item_id].append(
                ReplayEpisode(appeared_day=start, cleared_day=d, first_summary=summary)
            )
    for item_id, (start, summary) in open_.items():
        episodes[item_id].append(
            ReplayEpisode(appeared_day=start, cleared_day=None, first_summary=summary)
        )
    items = [
        ReplayItem(
            id=item_id,
            kind=titles[item_id].kind,
            title=titles[item_id].title,
            episodes=sorted(episodes[item_id], key=lambda e: e.appeared_day),
        )
        for item_id in order
    ]
    return Replay(
        patient_id=course.patient.id,
        first_day=0,
        last_day=last_day,
        beyond_plausible=[ReplayOutlier(day=o.day, what=o.what) for o in outliers],
        items=items,
        days=days,
        settings_in_force=settings_in_force(settings),
    )
