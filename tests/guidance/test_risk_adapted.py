"""Issue #12 item 5: risk-adapted G-CSF (EHA/EBMT, Rejeski et al., Blood 2023, Table 3) and IgG
replacement for hypogammaglobulinaemia with recurrent or serious infections.

Recipe for the G-CSF half, from the consensus table: "Prophylactic G-CSF: on day +2 in patients
with a high-risk profile for ICAHT (eg, high CAR-HEMATOTOX score ...)"; "Dosing: 5 ug/kg once
daily"; "In patients at low risk for ICAHT, G-CSF probably not necessary". The review waits: "If
the ANC has not recovered to >500/mm3 by day 7 to 10, we consider ... G-CSF". The setting
gcsf.prophylactic_high_risk chooses (default off).
"""

from __future__ import annotations

from typing import Any

import pytest

from cart_cytopenia.domain.course import Course, parse_course
from cart_cytopenia.guidance import evaluate
from cart_cytopenia.rules.settings import Settings, settings_from_dict
from tests.guidance.builders import (
    counts,
    course,
    crs,
    hematotox_baseline,
    infection,
    med,
    series,
)

ON = settings_from_dict({"gcsf": {"prophylactic_high_risk": True}})
GCSF = "management.gcsf.prophylactic-high-risk"
IVIG = "management.ivig"


def with_risk(
    risk: str | None, events: list[dict[str, Any]] | None = None, anc: float = 300, **kw: Any
) -> Course:
    c = course(counts(range(0, 11), anc=anc), events, **kw)
    return parse_course(c.model_dump(mode="json") | {"baseline_labs": hematotox_baseline(risk)})


# ---------------------------------------------------------------- prophylactic G-CSF


def test_default_off_follows_the_review_and_names_eha_ebmt() -> None:
    c = with_risk("high")
    assert GCSF not in evaluate(c, 3).ids()
    assert all(e.item_id != GCSF for e in evaluate(c, 3).calendar)
    start = evaluate(c, 8).item("management.gcsf.start")
    assert start is not None
    assert "gcsf.prophylactic_high_risk off" in start.rationale
    assert "EHA/EBMT (Rejeski 2023, Table 3) considers prophylactic G-CSF" in start.rationale


def test_on_high_risk_from_day_2_until_the_reviews_check() -> None:
    c = with_risk("high")
    assert GCSF not in evaluate(c, 1, ON).ids()  # day +1: not yet (Table 3: day +2)
    item = evaluate(c, 2, ON).item(GCSF)
    assert item is not None and item.urgency == "consider"
    assert "prophylactic G-CSF" in item.summary and "5 ug/kg" in item.summary
    assert "the review waits" in item.rationale and "Never GM-CSF" in item.rationale
    assert "Table 3" in item.citation and "Jain 2023" in item.citation
    assert GCSF in evaluate(c, 6, ON).ids()
    day7 = evaluate(c, 7, ON)  # the review's day 7-10 check takes over
    assert GCSF not in day7.ids() and "management.gcsf.start" in day7.ids()
    assert "gcsf.prophylactic_high_risk on" in day7.item("management.gcsf.start").rationale  # type: ignore[union-attr]


def test_on_the_plan_shows_it_from_day_2() -> None:
    g = evaluate(with_risk("high"), 0, ON)
    entry = next(e for e in g.calendar if e.item_id == GCSF)
    assert (entry.start_day, entry.end_day, entry.status) == (2, 6, "upcoming")
    assert all(e.item_id != GCSF for e in evaluate(with_risk("low"), 0, ON).calendar)


def test_on_low_risk_gets_none() -> None:
    assert GCSF not in evaluate(with_risk("low"), 3, ON).ids()


def test_on_unscored_risk_is_a_missing_note_not_a_suggestion() -> None:
    g = evaluate(with_risk(None), 3, ON)
    assert GCSF not in g.ids()
    assert any("CAR-HEMATOTOX cannot be scored" in m for m in g.missing_data)


def test_not_again_when_already_on_gcsf() -> None:
    assert GCSF not in evaluate(with_risk("high", [med("filgrastim", 2)]), 3, ON).ids()


@pytest.mark.parametrize("event_type", ["crs", "icans"])
def test_held_while_crs_or_icans_is_active(event_type: str) -> None:
    event = {"type": event_type, "start_day": 1, "max_grade": 2}
    item = evaluate(with_risk("high", [event]), 3, ON).item(GCSF)
    assert item is not None and item.urgency == "info"
    assert "held" in item.summary and event_type.upper() in item.summary
    assert "consider prophylactic" not in item.summary
    resolved = evaluate(with_risk("high", [event | {"end_day": 2}]), 3, ON).item(GCSF)
    assert resolved is not None and "held" not in resolved.summary


def test_gmcsf_never_while_prophylactic_gcsf_is_in_question() -> None:
    g = evaluate(with_risk("high", anc=3000), 3, ON)
    assert GCSF in g.ids() and "management.gmcsf.avoid" in g.ids()
    assert "management.gmcsf.avoid" not in evaluate(with_risk("high", anc=3000), 3).ids()


def test_suspected_iechs_turns_it_into_caution() -> None:
    labs = counts(range(0, 7), anc=300) + series(
        "ferritin", [1, 4, 6], lambda d: {1: 1500, 4: 9000}.get(d, 30000)
    )
    c = course(labs, [crs(1, 3), {"type": "fever", "day": 6, "max_temp_c": 39.0}])
    c = parse_course(c.model_dump(mode="json") | {"baseline_labs": hematotox_baseline("high")})
    g = evaluate(c, 6, ON)
    assert g.item("differential.iec-hs") is not None
    item = g.item(GCSF)
    assert item is not None and item.urgency == "warning" and "caution" in item.summary


def test_the_setting_is_in_force_in_every_report() -> None:
    g = evaluate(with_risk("high"), 3, ON)
    assert g.settings_in_force["gcsf.prophylactic_high_risk"] is True
    assert ON.changed_from_defaults() == {"gcsf.prophylactic_high_risk": True}
    assert Settings().in_force()["gcsf.prophylactic_high_risk"] is False


# ---------------------------------------------------------------- IgG replacement


def igg_course(
    igg: float | None, unit: str = "mg/dL", infections: int = 2, severity: str | None = None
) -> Course:
    labs = counts(range(0, 61, 5))
    if igg is not None:
        labs.append({"day": 55, "analyte": "igg", "value": igg, "unit": unit})
    events = [
        infection(20 + 15 * k, 25 + 15 * k, category="bacterial", site="lung")
        | ({"severity": severity} if severity else {})
        for k in range(infections)
    ]
    return course(labs, events)


def test_ivig_below_400_with_recurrent_infections() -> None:
    item = evaluate(igg_course(350), 60).item(IVIG)
    assert item is not None
    assert "IgG 350 mg/dL (day 55) < 400" in item.summary and "2 infections" in item.summary
    assert "AAAAI" in item.citation and "refs 7-10" in item.citation


def test_ivig_boundary_400_is_not_below_399_is() -> None:
    assert IVIG not in evaluate(igg_course(400), 60).ids()
    assert IVIG in evaluate(igg_course(399), 60).ids()


def test_ivig_one_serious_infection_is_enough_one_mild_is_not() -> None:
    assert IVIG in evaluate(igg_course(300, infections=1, severity="severe"), 60).ids()
    assert IVIG not in evaluate(igg_course(300, infections=1, severity="mild"), 60).ids()


def test_low_igg_without_infections_is_not_an_indication() -> None:
    assert IVIG not in evaluate(igg_course(150, infections=0), 60).ids()


def test_igg_in_g_per_litre_is_converted() -> None:
    assert IVIG in evaluate(igg_course(3.5, unit="g/L"), 60).ids()  # 350 mg/dL
    assert IVIG not in evaluate(igg_course(4.5, unit="g/L"), 60).ids()  # 450 mg/dL
    item = evaluate(igg_course(0.35, unit="g/dL"), 60).item(IVIG)
    assert item is not None and "IgG 350 mg/dL" in item.summary


def test_missing_igg_with_infections_asks_for_it_and_is_never_normal() -> None:
    g = evaluate(igg_course(None), 60)
    assert IVIG not in g.ids()
    check = g.item("workup.igg")
    assert check is not None and "no IgG recorded" in check.summary
    assert any("IgG not measured, not normal" in m for m in g.missing_data)


def test_an_old_igg_is_not_used() -> None:
    labs = [*counts(range(0, 121, 5)), {"day": 10, "analyte": "igg", "value": 300, "unit": "mg/dL"}]
    events = [infection(100, 105), infection(110, 115)]
    g = evaluate(course(labs, events), 120)
    assert IVIG not in g.ids() and "workup.igg" in g.ids()


def test_not_while_replacement_is_under_way() -> None:
    c = igg_course(350)
    on = parse_course(
        c.model_dump(mode="json")
        | {"events": [*c.model_dump(mode="json")["events"], med("ivig", 50, 50)]}
    )
    assert IVIG not in evaluate(on, 60).ids()
    assert IVIG in evaluate(on, 80).ids()  # given 30 days ago (> 28): the question returns
