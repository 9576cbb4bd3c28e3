"""HZ-015-03: the guidance timeline cut short unnoticed. The replay covers the plausible course;
what lies beyond it is listed, on both sides of the one-year silence."""

from __future__ import annotations

from pathlib import Path

from cart_cytopenia.domain.course import Course, parse_course
from cart_cytopenia.guidance import evaluate, replay
from tests.conftest import course_dict


def _course(late_day: int) -> Course:
    return parse_course(course_dict([(d, 300) for d in range(0, 21)] + [(late_day, 200)]))


def test_a_record_after_more_than_a_year_of_silence_is_listed_not_dropped() -> None:
    r = replay(_course(20 + 366))
    assert r.last_day == 20
    assert [(o.day, o.what) for o in r.beyond_plausible] == [(386, "labs[21] (anc)")]
    # its day is still evaluated when asked for
    assert evaluate(_course(20 + 366), 386).day == 386


def test_a_record_a_year_later_is_replayed() -> None:
    r = replay(_course(20 + 365))
    assert r.last_day == 385 and r.beyond_plausible == []


def test_a_default_day_beyond_the_silence_is_noted_by_assess(tmp_path: Path) -> None:
    import json

    from tests.cli.invoke import invoke

    course = tmp_path / "late.json"
    course.write_text(json.dumps(course_dict([(d, 300) for d in range(0, 21)] + [(386, 200)])))
    r = invoke("assess", str(course))
    assert r.code == 0 and "labs[21] (anc) on day 386" in r.stderr and "day 20" in r.stderr
