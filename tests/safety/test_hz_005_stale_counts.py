"""HZ-005: a transfusion or G-CSF decision made on an old count without saying so."""

from __future__ import annotations

from cart_cytopenia.guidance import evaluate
from tests.guidance.builders import counts, course


def test_old_value_is_named_in_the_rationale_and_missing_data() -> None:
    g = evaluate(course(counts(range(0, 9), hb=6.5)), 20)
    item = g.item("management.transfusion.rbc")
    assert item is not None and "12 days old: recheck before transfusing" in item.rationale
    assert any("12 days old" in m for m in g.missing_data)


def test_fresh_value_carries_no_recheck_note() -> None:
    item = evaluate(course(counts(range(0, 21), hb=6.5)), 20).item("management.transfusion.rbc")
    assert item is not None and "recheck" not in item.rationale
