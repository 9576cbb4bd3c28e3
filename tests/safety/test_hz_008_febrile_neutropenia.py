"""HZ-008: febrile neutropenia not flagged as critical."""

from __future__ import annotations

from cart_cytopenia.guidance import evaluate
from tests.guidance.builders import counts, course, fever


def test_fever_with_anc_below_1000_is_critical() -> None:
    item = evaluate(course(counts(range(0, 11), anc=400), [fever(10, 38.9)]), 10).item(
        "workup.infection"
    )
    assert item is not None and item.urgency == "critical"


def test_fever_with_recovered_anc_is_an_action_not_critical() -> None:
    item = evaluate(course(counts(range(0, 11), anc=2500), [fever(10, 38.9)]), 10).item(
        "workup.infection"
    )
    assert item is not None and item.urgency == "action"
