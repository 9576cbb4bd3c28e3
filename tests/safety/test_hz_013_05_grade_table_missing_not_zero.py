"""Safety (HZ-013-05): a patient without results is "no data", never "no cytopenia" (issue 13, defect 5).

Hazard: a grade table that writes 0 days of neutropenia, CRS grade 0 and 0 transfusions for a
patient whose results never arrived reads as a patient who did well; a registry analysis or a
follow-up list would then count him among the unaffected. The counts stay empty and
``missing_data`` says which data were missing.
"""

from __future__ import annotations

from pathlib import Path

from cart_cytopenia.grading.grade_table import EMPTIED_BY
from tests.grading.test_grade_table import EVENT_COLUMNS, _cohort, _grade


def test_a_patient_without_results_gets_empty_counts_and_the_reason(tmp_path: Path) -> None:
    """Issue 13 defect 5: no results is "no data", not "no cytopenia"."""
    t = _grade(_cohort(tmp_path, with_events=True), with_events=True)
    a, b = t.row(0, named=True), t.row(1, named=True)
    assert a["days_anc_le_500_d0_60"] >= 1 and a["early_days_anc_le_500"] >= 1
    assert a["crs_max_grade"] == 1 and a["rbc_transfusions_d0_30"] == 0  # recorded: none
    assert a["missing_data"] is None
    for col in (*(c for cols in EMPTIED_BY.values() for c in cols),):
        assert b[col] is None, col
    assert b["missing_data"] == (
        "no ANC value day 0-30; no ANC value day 0-60; no platelet value day 0-60; no event data"
    )


def test_without_an_event_table_transfusions_and_crs_are_unknown(tmp_path: Path) -> None:
    t = _grade(_cohort(tmp_path, with_events=False), with_events=False)
    a = t.row(0, named=True)
    assert all(a[c] is None for c in EVENT_COLUMNS)
    assert a["missing_data"] == "no event data"
    assert a["days_platelets_lt_50_d0_60"] is not None
