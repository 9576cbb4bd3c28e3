"""The engine itself: incomplete courses, determinism, JSON, settings in force, the calendar."""

from __future__ import annotations

import json

from cart_cytopenia.guidance import Guidance, evaluate, replay
from cart_cytopenia.rules.settings import settings_from_dict
from tests.guidance.builders import counts, course, med


def test_course_without_labs_or_events_still_gives_guidance_and_says_what_is_missing() -> None:
    c = course(age=None)
    g = evaluate(c)
    assert g.day == 0
    # prophylaxis from day 0 does not depend on counts
    assert {
        "prophylaxis.antiviral",
        "prophylaxis.antibacterial",
        "prophylaxis.antifungal",
    } <= g.ids()
    assert g.differential == []
    text = " ".join(g.missing_data)
    assert "No blood counts after infusion" in text
    assert "No events recorded" in text
    assert "Age unknown" in text
    assert g.calendar  # the plan is there
    later = evaluate(c, 40)
    assert {"prophylaxis.pjp", "alert.pjp-missing"} <= later.ids()
    assert any("No CD4 count" in m for m in later.missing_data)


def test_missing_lineage_and_stale_values_are_named() -> None:
    only_anc = course([{"day": 5, "analyte": "anc", "value": 300, "unit": "/uL"}])
    g = evaluate(only_anc, 20)
    text = " ".join(g.missing_data)
    assert "No platelet count up to day 20" in text
    assert "No haemoglobin up to day 20" in text
    assert "The last ANC is from day 5 (15 days old)" in text
    item = g.item("management.gcsf.start")
    assert item is not None and "15 days old" in item.rationale


def test_no_anc_means_gcsf_cannot_be_decided() -> None:
    c = course([{"day": 8, "analyte": "platelets", "value": 40, "unit": "10*3/uL"}])
    g = evaluate(c, 10)
    assert "management.gcsf.start" not in g.ids()
    assert any("whether to start G-CSF cannot be decided" in m for m in g.missing_data)


def test_evaluate_is_deterministic_and_json_serialisable() -> None:
    c = course(counts(range(0, 41, 2), anc=300, plt=20, hb=7.5), [med("filgrastim", 10)])
    a, b = evaluate(c, 40), evaluate(c, 40)
    assert a.model_dump_json() == b.model_dump_json()
    data = json.loads(a.model_dump_json())
    assert Guidance.model_validate(data) == a
    for item in a.items():
        json.dumps(item.inputs)


def test_evaluate_does_not_modify_the_course() -> None:
    c = course(counts(range(0, 41, 2), anc=300), [med("filgrastim", 10)])
    before = c.model_dump_json()
    evaluate(c, 20)
    replay(c)
    assert c.model_dump_json() == before


def test_settings_in_force_are_reported() -> None:
    s = settings_from_dict({"institution": "Test centre", "prophylaxis": {"pjp_start_day": 30}})
    g = evaluate(course(counts(range(0, 31, 2))), 29, s)
    assert g.settings_in_force["prophylaxis.pjp_start_day"] == 30
    assert g.settings_in_force["institution"] == "Test centre"
    assert g.settings_in_force["guidance.recommendations"].startswith("guidance-recommendations v")
    assert "prophylaxis.pjp" not in g.ids()
    assert "prophylaxis.pjp" in evaluate(course(counts(range(0, 31, 2))), 29).ids()


def test_calendar_uses_settings_and_status() -> None:
    s = settings_from_dict({"prophylaxis": {"antiviral_months": 6, "pjp_start_day": 30}})
    g = evaluate(course(counts(range(0, 11))), 10, s)
    by_id = {e.item_id: e for e in g.calendar}
    assert by_id["prophylaxis.antiviral"].end_day == 183
    assert (
        by_id["prophylaxis.pjp"].start_day == 30 and by_id["prophylaxis.pjp"].status == "upcoming"
    )
    assert by_id["management.gcsf.start"].status == "current"
    assert by_id["prophylaxis.pjp"].condition and "CD4" in by_id["prophylaxis.pjp"].condition


def test_replay_covers_day_0_to_last_data() -> None:
    c = course(counts(range(0, 21), anc=lambda d: 200 if d < 12 else 2000))
    r = replay(c)
    assert (r.first_day, r.last_day) == (0, 20)
    assert [d.day for d in r.days] == list(range(21))
    item = r.item("management.gcsf.start")
    assert item is not None
    assert [(e.appeared_day, e.cleared_day) for e in item.episodes] == [(7, 12)]
    assert r.item("prophylaxis.antiviral") is not None
    assert r.item("prophylaxis.antiviral").cleared is None  # type: ignore[union-attr]


def test_items_sorted_by_urgency_within_a_section() -> None:
    c = course(counts(range(0, 11), anc=300, plt=5), [])
    g = evaluate(c, 10)
    order = ["critical", "warning", "action", "consider", "info"]
    for section in (g.workup, g.management, g.prophylaxis):
        ranks = [order.index(i.urgency) for i in section]
        assert ranks == sorted(ranks)


def test_crs_without_end_day_is_named() -> None:
    # Issue #11: an open CRS record is ongoing for 10 days, then its end is "unknown" - G-CSF is
    # no longer withheld for it but carries the caveat, and the missing end day is named.
    from tests.guidance.builders import crs

    c = course(counts(range(0, 31, 2), anc=300), [crs(1, None)])
    assert "management.gcsf.withhold-during-crs" in evaluate(c, 10).ids()
    g = evaluate(c, 30)
    assert "management.gcsf.withhold-during-crs" not in g.ids()
    item = g.item("management.gcsf.start")
    assert item is not None and "confirm CRS has resolved" in item.rationale
    assert any("CRS from day 1 has no end day" in m for m in g.missing_data)
    assert not any("no end day" in m for m in evaluate(c, 10).missing_data)
