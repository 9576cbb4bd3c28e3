"""HZ-001: GM-CSF suggested or left unremarked after CAR-T (the review never uses it)."""

from __future__ import annotations

from cart_cytopenia.guidance import catalogue, evaluate
from tests.guidance.builders import counts, course, med


def test_gmcsf_given_is_a_warning() -> None:
    g = evaluate(course(counts(range(0, 15), anc=200), [med("sargramostim", 10)]), 14)
    item = g.item("alert.gmcsf-given")
    assert item is not None and item.urgency == "warning"


def test_gcsf_alone_raises_no_gmcsf_alert_and_nothing_suggests_gmcsf() -> None:
    g = evaluate(course(counts(range(0, 15), anc=200), [med("filgrastim", 10)]), 14)
    assert "alert.gmcsf-given" not in g.ids()
    avoid = g.item("management.gmcsf.avoid")
    assert avoid is not None and "not GM-CSF" in avoid.summary
    for spec in catalogue():  # no summary anywhere proposes GM-CSF
        for text in spec.summaries.values():
            low = text.lower()
            assert "consider gm-csf" not in low and "consider sargramostim" not in low
