"""HZ-012-12: two IEC-HS levels in one output; the ASTCT status feeds the one guidance level."""

from __future__ import annotations

from cart_cytopenia.guidance.context import IECHS_LEVELS, raised_level
from cart_cytopenia.guidance.engine import evaluate
from tests.grading.test_iec_hs import ONSET, course


def test_met_raises_the_one_level_to_high_and_items_cite_it() -> None:
    c = course([*ONSET, (10, "fibrinogen", 100.0), (10, "platelets", 40.0)])
    g = evaluate(c, 10)
    items = [i for i in g.items() if "iec-hs" in i.id]
    assert items, "IEC-HS items expected"
    for item in items:
        assert "ASTCT IEC-HS criteria (Hines 2023): met" in item.rationale
        assert "grade not computed" in item.rationale and "HScore" in item.rationale
    treat = next(i for i in items if i.id == "management.iec-hs.treat")
    assert treat.inputs["iec_hs_level"] == "high"
    assert treat.inputs["iec_hs_astct"] == "met"


def test_the_astct_status_never_lowers_the_level() -> None:
    for level in (None, *IECHS_LEVELS):
        assert raised_level(level, None) == level
        assert raised_level(level, "possible") in ("possible", "suspected", "high")
    assert raised_level("high", "possible") == "high"
    assert raised_level(None, "high") == "high"
