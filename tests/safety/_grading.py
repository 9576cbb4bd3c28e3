"""Helpers of the grading-side safety tests (issue 11 findings 1, 12, 13, 14): a course is
assessed (``assess``, one patient) and graded as a cohort (``grade_cohort``), which must agree."""

from __future__ import annotations

from typing import Any

import polars as pl

from cart_cytopenia.domain.course import Course, parse_course
from cart_cytopenia.domain.frames import course_to_frames
from cart_cytopenia.grading.assessment import Assessment, assess
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.rules.settings import Settings
from tests.conftest import course_dict


def daily(a: int, b: int, v: float) -> list[tuple[int, float]]:
    """ANC ``v`` cells/uL on every day ``a``..``b``."""
    return [(d, v) for d in range(a, b + 1)]


def course(labs: list[tuple[int, float]] | None = None, **over: Any) -> Course:
    return parse_course(course_dict(labs=labs, **over))


def both(c: Course, day: int | None = None) -> tuple[Assessment, dict[str, Any]]:
    """The course assessed as one patient and its row of the cohort grade table."""
    settings = Settings()
    a = assess(c, day=day, settings=settings)
    table: pl.DataFrame = grade_cohort(course_to_frames(c), settings, as_of=day, workers=1)
    return a, table.row(0, named=True)
