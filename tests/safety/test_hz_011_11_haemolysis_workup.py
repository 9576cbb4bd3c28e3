"""HZ-011-11: haemolysis in the differential without a work-up; negative findings ignored."""

from __future__ import annotations

from cart_cytopenia.guidance import evaluate
from tests.guidance.builders import counts, course, finding, series


def _anaemia(extra_labs: list[dict[str, object]], events: list[dict[str, object]] | None = None):
    labs = counts(range(0, 41, 5), anc=2500, plt=150, hb=7.8) + extra_labs
    return evaluate(course(labs, events or []), 40)


def test_haemolysis_markers_bring_the_work_up() -> None:
    g = _anaemia(series("ldh", [38], 600) + series("haptoglobin", [38], 10))
    item = g.item("workup.haemolysis")
    assert item is not None
    for test in ("DAT", "bilirubin", "reticulocytes", "blood smear"):
        assert test in item.summary
    assert "differential.haemolysis" in g.ids()


def test_no_work_up_without_a_marker() -> None:
    assert "workup.haemolysis" not in _anaemia(series("ldh", [38], 180)).ids()


def test_negative_findings_are_recorded_and_used() -> None:
    labs = series("ldh", [38], 600) + series("haptoglobin", [38], 10) + series("dat", [38], 0)
    no_schisto = {**finding("schistocytes", 38), "present": False}
    g = _anaemia(labs, [no_schisto])
    item = g.item("workup.haemolysis")
    assert item is not None and "DAT" not in item.summary and "smear" not in item.summary
    assert "DAT negative" in item.rationale and "no schistocytes" in item.rationale
    assert "Against: DAT negative" in g.item("differential.haemolysis").rationale


def test_infection_excluded_stops_the_occult_infection_work_up() -> None:
    base = counts(range(0, 61, 5), anc=300)
    assert "workup.infection" in evaluate(course(base), 60).ids()
    excluded = evaluate(course(base, [finding("infection-excluded", 55)]), 60)
    assert "workup.infection" not in excluded.ids()
