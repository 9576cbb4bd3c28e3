"""CTCAE grades of a course: current (last value on or before the day) and worst since day 0."""

from __future__ import annotations

from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.grading.assessment import assess
from cart_cytopenia.rules.settings import settings_from_dict
from tests.conftest import course_dict


def _course():  # type: ignore[no-untyped-def]
    d = course_dict()
    d["labs"] = [
        {"day": 2, "analyte": "wbc", "value": 0.8, "unit": "10^9/L"},
        {"day": 2, "analyte": "wbc", "value": 1.1, "unit": "10^9/L"},
        {"day": 9, "analyte": "wbc", "value": 3.5, "unit": "10^9/L"},
        {"day": 3, "analyte": "lymphocytes", "value": 150, "unit": "cells/uL"},
        {"day": 20, "analyte": "alc", "value": 0.6, "unit": "10^9/L"},
        {"day": 5, "analyte": "hb", "value": 7.4, "unit": "g/dL"},
        {"day": 12, "analyte": "hb", "value": 130, "unit": "g/L"},
    ]
    return parse_course(d)


def test_current_and_worst_grades_for_every_lineage() -> None:
    a = assess(_course(), day=25)
    by = {c.analyte: c for c in a.ctcae}
    assert (by["wbc"].worst.grade, by["wbc"].current.grade, by["wbc"].last_value_day) == (4, 1, 9)
    assert (by["alc"].worst.grade, by["alc"].current.grade) == (4, 2)
    assert (by["hb"].worst.grade, by["hb"].current.grade) == (
        3,
        0,
    )  # 13.0 g/dL >= 12.0 (female LLN)
    assert by["anc"].current.status == "cannot_grade"


def test_as_of_day_hides_later_values() -> None:
    a = assess(_course(), day=4)
    by = {c.analyte: c for c in a.ctcae}
    assert by["wbc"].current.grade == 4 and by["wbc"].last_value == 0.8  # lowest of day 2
    assert by["alc"].current.grade == 4
    assert by["hb"].current.status == "cannot_grade"


def test_ctcae_v6_is_selectable_and_reported() -> None:
    a = assess(_course(), day=25, settings=settings_from_dict({"ctcae_version": "6.0"}))
    assert a.ctcae_version == "6.0"
    assert any(r.startswith("ctcae-v6") for r in a.based_on.rule_tables)


def test_lymphocytes_are_not_graded_under_ctcae_v6() -> None:
    a = assess(_course(), day=25, settings=settings_from_dict({"ctcae_version": "6.0"}))
    alc = next(c for c in a.ctcae if c.analyte == "alc")
    assert alc.worst.status == "cannot_grade"
    assert alc.worst.reason == "not a CTCAE v6.0 term"
    wbc = next(c for c in a.ctcae if c.analyte == "wbc")
    assert wbc.worst.grade == 4  # WBC bands unchanged in v6
