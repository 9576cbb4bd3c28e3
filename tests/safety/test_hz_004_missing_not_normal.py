"""HZ-004: missing data read as normal (no counts -> 'no cytopenia', no CD4 -> stop PJP)."""

from __future__ import annotations

from cart_cytopenia.guidance import evaluate
from tests.guidance.builders import counts, course, series


def test_no_counts_is_said_and_nothing_is_graded_as_normal() -> None:
    g = evaluate(course([], []), 20)
    assert any("No blood counts after infusion" in m for m in g.missing_data)
    assert not g.differential  # nothing claimed either way
    assert all(lin.last_value is None and lin.ctcae_grade is None for lin in g.assessment.lineages)


def test_a_lineage_never_measured_is_named_with_what_it_prevents() -> None:
    labs = series("platelets", range(0, 21, 2), 30) + series("hb", range(0, 21, 2), 9.0)
    g = evaluate(course(labs), 20)
    assert any(m.startswith("No ANC up to day 20") for m in g.missing_data)
    assert "management.gcsf.start" not in g.ids()
    measured = evaluate(course(counts(range(0, 21, 2), anc=300)), 20)
    assert not any(m.startswith("No ANC") for m in measured.missing_data)
