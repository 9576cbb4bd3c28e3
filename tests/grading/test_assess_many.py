"""``assess_many`` (the courses graded together, each on its own day) equals ``assess`` course
by course: the worklist and the bulk load compute their rows with it."""

from __future__ import annotations

import datetime as dt

from cart_cytopenia.cli.serve_cmd import demo_courses
from cart_cytopenia.grading.assessment import assess, assess_many
from cart_cytopenia.guidance import evaluate, evaluate_many
from cart_cytopenia.rules.settings import Settings

TODAY = dt.date(2024, 6, 1)


def test_many_courses_graded_together_equal_one_by_one() -> None:
    courses = demo_courses(40, 11, TODAY)
    # each on its day, one twice on another day, one before its infusion's first week
    pairs = [(c, max(0, (TODAY - c.infusion_date).days)) for c in courses]
    pairs += [(courses[5], 3), (courses[0], 0)]
    settings = Settings()
    together = assess_many(pairs, settings)
    assert len(together) == len(pairs)
    for (course, day), got in zip(pairs, together, strict=True):
        assert got.model_dump() == assess(course, day, settings).model_dump(), course.patient.id
    guided = evaluate_many(pairs[:12], settings)
    for (course, day), got in zip(pairs[:12], guided, strict=True):
        assert got.model_dump() == evaluate(course, day, settings).model_dump()


def test_no_courses_no_work() -> None:
    assert assess_many([]) == []
    assert evaluate_many([]) == []
