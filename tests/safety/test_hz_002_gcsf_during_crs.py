"""HZ-002: G-CSF suggested during ongoing CRS without severe infection."""

from __future__ import annotations

from cart_cytopenia.guidance import evaluate
from tests.guidance.builders import counts, course, crs, infection, med

LABS = counts(range(0, 11), anc=300)


def test_ongoing_crs_withholds_gcsf() -> None:
    g = evaluate(course(LABS, [crs(2, 12)]), 9)
    assert "management.gcsf.start" not in g.ids()
    assert "management.gcsf.withhold-during-crs" in g.ids()
    running = evaluate(course(LABS, [crs(2, 12), med("filgrastim", 8)]), 9)
    assert running.item("alert.gcsf-during-crs").urgency == "warning"


def test_severe_infection_during_crs_allows_gcsf() -> None:
    sick = [crs(2, 12), infection(7, category="bacterial", severity="severe")]
    item = evaluate(course(LABS, sick), 9).item("management.gcsf.start")
    assert item is not None and "despite ongoing CRS" in item.summary
