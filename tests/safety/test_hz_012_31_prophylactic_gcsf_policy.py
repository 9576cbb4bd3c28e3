"""HZ-012-31: prophylactic G-CSF given to patients the centre's policy does not cover (setting
off, CAR-HEMATOTOX low, or not scorable read as either)."""

from __future__ import annotations

from cart_cytopenia.guidance import evaluate
from tests.guidance.test_risk_adapted import GCSF, ON, with_risk


def test_off_by_default_even_for_high_risk() -> None:
    for day in range(0, 7):
        assert GCSF not in evaluate(with_risk("high"), day).ids()


def test_low_risk_never() -> None:
    for day in range(0, 7):
        assert GCSF not in evaluate(with_risk("low"), day, ON).ids()


def test_unscored_is_neither_low_nor_high_but_named_missing() -> None:
    g = evaluate(with_risk(None), 4, ON)
    assert GCSF not in g.ids()
    assert any("not low risk" in m for m in g.missing_data)
    assert not any("prophylactic G-CSF" in m for m in evaluate(with_risk(None), 4).missing_data)


def test_both_positions_are_named_whichever_is_in_force() -> None:
    on = evaluate(with_risk("high"), 3, ON).item(GCSF)
    assert (
        on is not None and "Policy EHA/EBMT" in on.rationale and "the review waits" in on.rationale
    )
    off = evaluate(with_risk("high"), 8).item("management.gcsf.start")
    assert off is not None and "Policy: the review" in off.rationale and "EHA/EBMT" in off.rationale
    assert evaluate(with_risk("high"), 3, ON).settings_in_force["gcsf.prophylactic_high_risk"]
