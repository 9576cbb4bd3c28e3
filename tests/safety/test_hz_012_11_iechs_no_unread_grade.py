"""HZ-012-11: an IEC-HS grade from a grading table nobody read."""

from __future__ import annotations

from cart_cytopenia.domain.frames import course_to_frames
from cart_cytopenia.grading.assessment import assess
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.io.fhir import assessment_to_resources
from cart_cytopenia.rules import tables
from cart_cytopenia.rules.settings import Settings
from tests.grading.test_iec_hs import ONSET, course


def test_a_met_syndrome_carries_no_computed_grade_anywhere() -> None:
    c = course([*ONSET, (10, "fibrinogen", 100.0), (10, "ast", 900.0)])
    a = assess(c, 10)
    assert a.iechs.status == "met"
    assert a.iechs.grade is None and "not read" in a.iechs.grade_note
    row = grade_cohort(course_to_frames(c), Settings(), as_of=10, workers=1).row(0, named=True)
    assert row["iechs_astct_grade"] is None
    obs = {o["code"]["coding"][0]["code"]: o for o in assessment_to_resources(c, a, "Patient/p")}
    assert not any(
        "grade" in str(comp).lower() for comp in obs["iec-hs-astct"].get("component", [])
    )


def test_the_table_says_the_grading_table_was_not_read() -> None:
    meta = tables.iec_hs().meta
    assert "grading table" in meta.extra["not_read"] and "NOT read" in meta.extra["not_read"]
