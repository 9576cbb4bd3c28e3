"""The timeline figure (service/timeline.py): valid SVG, log scales, bands, markers, as-of day."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.rules.settings import settings_from_dict
from cart_cytopenia.service.timeline import timeline_svg
from tests.conftest import EXAMPLES, course_dict

NS = "{http://www.w3.org/2000/svg}"


def _titles(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return [t.text or "" for t in root.iter(NS + "title")]


def test_review_case_timeline_has_every_layer() -> None:
    course = parse_course((EXAMPLES / "review-case-1.json").read_text())
    svg = timeline_svg(course, 60)
    titles = _titles(svg)
    assert any(t.startswith("CRS grade 2") for t in titles)
    assert any(t.startswith("ICANS grade 3") for t in titles)
    assert any("Bone marrow biopsy" in t for t in titles)
    n_platelet_tx = sum(
        1
        for e in course.as_of(60).events
        if e.type == "transfusion" and e.product.value == "platelets"
    )
    assert sum("platelet transfusion" in t for t in titles) == n_platelet_tx > 0
    assert any(t.startswith("filgrastim") or "G-CSF" in t or "filgrastim" in t for t in titles)
    assert "log scale" in svg
    assert "day 60" in svg


def test_points_are_daily_minimum_up_to_the_day() -> None:
    course = parse_course(course_dict([(1, 900.0), (5, 120.0), (5, 80.0), (20, 1500.0)]))
    titles = _titles(timeline_svg(course, 10))
    anc = [t for t in titles if t.startswith("Day") and "ANC" in t]
    assert anc == ["Day 1: ANC 900 /µL", "Day 5: ANC 80 /µL"]  # day 20 not yet known on day 10


def test_missing_counts_are_said_to_be_unknown() -> None:
    svg = timeline_svg(parse_course(course_dict([])), 5)
    assert "no Platelets value recorded — unknown, not normal" in svg


def test_transfusion_threshold_lines_follow_the_settings() -> None:
    settings = settings_from_dict({"transfusion": {"rbc_hb_below_g_dl": 8.0}})
    course = parse_course(course_dict([(1, 900.0)]))
    default_svg = timeline_svg(course, 5)
    custom_svg = timeline_svg(course, 5, settings)
    assert default_svg != custom_svg


def test_a_course_of_many_years_has_whole_year_ticks() -> None:
    """Past seven years no step of 180 days or less gave at most 14 ticks: the figure failed
    (found by the contract test on a stored course: timeline.svg?day=3284 answered 500)."""
    course = parse_course(course_dict([(1, 900.0), (20, 1500.0)]))
    for day in (2520, 2600, 3284, 3650, 20_000):
        svg = timeline_svg(course, day)
        assert f"day {day}" in svg
    ET.fromstring(timeline_svg(course, 3650))
