"""HZ-006: a TPO-receptor agonist suggested for (or unremarked in) a child."""

from __future__ import annotations

from cart_cytopenia.guidance import evaluate
from tests.guidance.builders import counts, course, finding, marrow, med, tx

LABS = counts(range(0, 61, 2), anc=2000, plt=12, hb=9.5)
EVENTS = [*tx("platelets", range(28, 61, 7)), marrow(50), finding("high-bleeding-risk", 50)]


def test_not_suggested_for_a_child_and_alerted_when_given() -> None:
    child = evaluate(course(LABS, EVENTS, age=9), 60)
    assert "management.tpo-ra.start" not in child.ids()
    given = evaluate(course(LABS, [*EVENTS, med("eltrombopag", 50)], age=9), 60)
    assert "alert.paediatric-tpo-ra" in given.ids()


def test_suggested_for_an_adult_in_the_same_situation() -> None:
    assert "management.tpo-ra.start" in evaluate(course(LABS, EVENTS, age=40), 60).ids()
