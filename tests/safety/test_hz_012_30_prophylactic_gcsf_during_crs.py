"""HZ-012-30: prophylactic G-CSF from day +2 (EHA/EBMT) suggested during CRS, ICANS or suspected
IEC-HS, or next to GM-CSF."""

from __future__ import annotations

from cart_cytopenia.guidance import evaluate
from tests.guidance.builders import infection
from tests.guidance.test_risk_adapted import GCSF, ON, with_risk


def test_day_2_during_crs_is_held_not_suggested_even_with_severe_infection() -> None:
    events = [
        {"type": "crs", "start_day": 1, "max_grade": 2},
        infection(2, category="bacterial", severity="severe"),
    ]
    g = evaluate(with_risk("high", events), 2, ON)
    item = g.item(GCSF)
    assert item is not None and item.urgency == "info"
    assert "held" in item.summary and "consider prophylactic" not in item.summary
    assert "no G-CSF while CRS is active" in item.rationale
    # the therapeutic G-CSF item does not start before day 7 either
    assert "management.gcsf.start" not in g.ids()


def test_icans_alone_holds_it() -> None:
    g = evaluate(with_risk("high", [{"type": "icans", "start_day": 2, "max_grade": 1}]), 4, ON)
    item = g.item(GCSF)
    assert item is not None and "held" in item.summary and "ICANS" in item.summary


def test_held_item_and_gmcsf_avoidance_stand_together() -> None:
    g = evaluate(with_risk("high"), 4, ON)
    assert GCSF in g.ids() and "management.gmcsf.avoid" in g.ids()
    assert "GM-CSF" in g.item(GCSF).rationale  # type: ignore[union-attr]
