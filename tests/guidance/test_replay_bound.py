"""`assess --replay` covers the plausible course (guidance/plausible.py): one value mistyped as
day 100000 is reported, not replayed day by day for minutes (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.guidance import replay
from cart_cytopenia.guidance.plausible import MAX_GAP_DAYS, plausible_range
from tests.cli.invoke import invoke
from tests.conftest import EXAMPLES, course_dict

CASE = EXAMPLES / "review-case-1.json"


@pytest.mark.parametrize(
    ("gap", "replayed_to"),
    [(MAX_GAP_DAYS, 30 + MAX_GAP_DAYS), (MAX_GAP_DAYS + 1, 30)],
    ids=["a-year-later-is-plausible", "a-year-and-a-day-is-not"],
)
def test_the_gap_boundary(gap: int, replayed_to: int) -> None:
    c = parse_course(course_dict([(d, 300) for d in range(0, 31)] + [(30 + gap, 1800)]))
    last, outliers = plausible_range(c)
    assert last == replayed_to
    assert [o.day for o in outliers] == ([] if replayed_to > 30 else [30 + gap])


def test_every_item_after_the_silence_is_reported() -> None:
    doc = course_dict([(d, 300) for d in range(0, 15)] + [(5000, 900), (5001, 950)])
    doc["events"] = [{"type": "crs", "start_day": 2, "end_day": 4000, "max_grade": 1}]
    doc["last_followup_day"] = 5003
    last, outliers = plausible_range(parse_course(doc))
    assert last == 14
    assert [str(o) for o in outliers] == [
        "events[0] (crs) end on day 4000",
        "labs[15] (anc) on day 5000",
        "labs[16] (anc) on day 5001",
        "last follow-up on day 5003",
    ]


def test_a_course_without_outliers_is_replayed_to_its_last_day() -> None:
    c = parse_course(json.loads(CASE.read_text()))
    r = replay(c)
    assert (r.first_day, r.last_day) == (0, c.last_data_day)
    assert r.beyond_plausible == []


def test_assess_replay_with_a_day_mistyped_as_100000(tmp_path: Path) -> None:
    doc = json.loads(CASE.read_text())
    doc["labs"][5]["day"] = 100_000
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps(doc))
    plain = invoke("assess", str(typo), "--format", "json")
    r = invoke("assess", str(typo), "--replay", "--format", "json")
    assert plain.code == 0 and r.code == 0, r.stderr
    timeline = json.loads(r.stdout)["replay"]
    assert (timeline["first_day"], timeline["last_day"]) == (0, 240)
    assert len(timeline["days"]) == 241
    assert timeline["beyond_plausible"] == [{"day": 100000, "what": "labs[5] (anc)"}]
    # (100,001 days took minutes: the bound is the number of days replayed above, not a timing)
    text = invoke("assess", str(typo), "--replay").stdout
    assert "Not replayed: 1 item(s)" in text and "labs[5] (anc) on day 100000" in text


def test_plain_assess_notes_a_last_day_after_a_year_without_data(tmp_path: Path) -> None:
    doc = json.loads(CASE.read_text())
    doc["labs"][5]["day"] = 100_000
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps(doc))
    for extra in ((), ("--guidance",), ("--format", "json")):
        r = invoke("assess", str(typo), *extra)
        assert r.code == 0, r.stderr
        assert "note: 1 item(s) recorded after more than 365 days without data" in r.stderr
        assert "labs[5] (anc) on day 100000" in r.stderr and "as of day 100000" in r.stderr
    chosen = invoke("assess", str(typo), "--day", "60")  # a day chosen: nothing to note
    assert chosen.code == 0 and "note:" not in chosen.stderr
    normal = invoke("assess", str(CASE))
    assert normal.code == 0 and "note:" not in normal.stderr
