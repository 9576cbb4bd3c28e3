"""HZ-012-02: no platelet count in a T-ICAHT window read as "no thrombocytopenia"."""

from __future__ import annotations

from cart_cytopenia.grading.assessment import GradeStatus, assess
from cart_cytopenia.io.fhir import assessment_to_resources
from tests.guidance.builders import course, series


def test_no_count_in_the_window_cannot_be_graded_and_says_why() -> None:
    # ANC only: the platelet count was never measured
    c = course(series("anc", range(0, 61, 3), 300))
    t = assess(c, 60).ticaht
    for r in (t.early, t.late):
        assert r.status == GradeStatus.CANNOT_GRADE and r.grade is None
        assert "no platelet count" in (r.reason or "")
    obs = assessment_to_resources(c, assess(c, 60), "Patient/p")
    early = next(o for o in obs if o["code"]["coding"][0]["code"] == "ticaht-early-grade")
    assert "valueInteger" not in early and "dataAbsentReason" in early


def test_one_count_in_the_window_is_graded() -> None:
    c = course(series("platelets", [3], 45) + series("anc", range(0, 61, 3), 300))
    t = assess(c, 60).ticaht
    assert t.early.grade == 1  # < 50 on day 3 only: 1 day
