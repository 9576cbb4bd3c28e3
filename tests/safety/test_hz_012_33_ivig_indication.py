"""HZ-012-33: IVIG suggested without infections, or a missing IgG read as normal."""

from __future__ import annotations

from cart_cytopenia.guidance import evaluate
from tests.guidance.test_risk_adapted import IVIG, igg_course


def test_very_low_igg_without_infections_gives_no_ivig() -> None:
    g = evaluate(igg_course(50, infections=0), 60)
    assert IVIG not in g.ids()


def test_one_mild_infection_is_not_recurrent() -> None:
    assert IVIG not in evaluate(igg_course(200, infections=1), 60).ids()
    assert IVIG in evaluate(igg_course(200, infections=2), 60).ids()


def test_no_igg_with_recurrent_infections_is_not_measured_never_normal() -> None:
    g = evaluate(igg_course(None, infections=3), 60)
    assert IVIG not in g.ids()
    assert "workup.igg" in g.ids()
    assert any("not measured, not normal" in m for m in g.missing_data)
