"""HZ-011-04: TPO-RA offered before other causes are excluded or without a high bleeding risk."""

from __future__ import annotations

from cart_cytopenia.guidance import evaluate
from tests.guidance.builders import counts, course, finding, marrow, tx

LABS = counts(range(0, 61, 2), anc=2000, plt=12, hb=9.5)
WEEKLY = tx("platelets", range(28, 61, 7))


def _tpo(events: list[dict[str, object]]):
    return evaluate(course(LABS, [*WEEKLY, *events]), 60).item("management.tpo-ra.start")


def test_waits_for_the_marrow_when_relapse_and_mds_are_not_excluded() -> None:
    item = _tpo([finding("high-bleeding-risk", 50)])
    assert item is not None and "marrow must first exclude" in item.summary
    assert item.urgency == "info" and "no other cause recorded" not in item.rationale
    unstated = _tpo([finding("high-bleeding-risk", 50), marrow(50, dysplasia=None)])
    assert unstated is not None and "marrow must first exclude" in unstated.summary


def test_without_recorded_bleeding_risk_it_is_conditional() -> None:
    item = _tpo([marrow(50)])
    assert item is not None and "if bleeding risk is high" in item.summary


def test_plain_consideration_once_marrow_and_bleeding_risk_are_recorded() -> None:
    item = _tpo([marrow(50), finding("high-bleeding-risk", 50)])
    assert item is not None and item.summary.startswith("Consider TPO-RA: eltrombopag")


def test_not_offered_when_the_marrow_shows_a_myeloid_neoplasm() -> None:
    assert _tpo([marrow(50, cytogenetics="45,XY,-7[12]"), finding("bleeding", 55)]) is None
