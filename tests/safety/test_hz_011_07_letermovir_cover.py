"""HZ-011-07: letermovir counted as HSV/VZV prophylaxis (it covers CMV only)."""

from __future__ import annotations

from cart_cytopenia.domain.catalogues import ANTI_INFECTIVE_CLASSES, Cover, drugs
from cart_cytopenia.guidance import evaluate
from tests.guidance.builders import counts, course, med


def _on(drug: str):
    return evaluate(course(counts(range(0, 21)), [med(drug, 0)]), 20).item("prophylaxis.antiviral")


def test_letermovir_does_not_cover_hsv_vzv() -> None:
    item = _on("letermovir")
    assert item is not None and item.urgency == "action"  # still indicated, not 'covered'
    assert "covers CMV only" in item.rationale


def test_acyclovir_covers_hsv_vzv() -> None:
    item = _on("acyclovir")
    assert item is not None and item.urgency == "info" and "acyclovir" in item.summary


def test_every_anti_infective_says_what_it_covers() -> None:
    for d in drugs().values():
        if d.classes & ANTI_INFECTIVE_CLASSES:
            assert d.covers, d.id
    assert drugs()["letermovir"].covers == frozenset({Cover.CMV})
