"""HZ-012-20: a TA-TMA criterion that was never measured counted as "not met": a patient whose
work-up is incomplete is reported as not meeting the criteria."""

from __future__ import annotations

from cart_cytopenia.grading.assessment import assess
from cart_cytopenia.io.fhir import assessment_to_resources
from tests.grading.test_tatma import course


def test_unmeasured_criteria_are_not_assessable_and_the_status_is_not_evaluated() -> None:
    # 3 of 7 met, the other 4 never measured: they could still make 7 of 7
    three = {"hb": 10.5, "platelets": 40, "ldh": 400}
    c = course({10: three, 12: three, 13: three})
    t = assess(c).tatma
    assert (t.criteria_met, t.assessable, t.status) == (3, 3, "not evaluated")
    assert [x.met for x in t.criteria if x.id in ("sc5b9", "proteinuria", "schistocytes")] == [
        None
    ] * 3
    obs = next(
        o
        for o in assessment_to_resources(c, assess(c), "Patient/p")
        if o["code"]["coding"][0]["code"] == "tatma-criteria"
    )
    comp = {x["code"]["coding"][0]["code"]: x for x in obs["component"]}
    assert "valueBoolean" not in comp["tatma-criterion-sc5b9"]
    assert obs["status"] == "preliminary"
    status = comp["tatma-status"]["valueCodeableConcept"]["coding"][0]["code"]
    assert status == "tatma-status-not-evaluated"


def test_the_same_course_with_the_work_up_done_and_normal_is_not_met() -> None:
    three = {"hb": 10.5, "platelets": 40, "ldh": 400}
    normal = {"sc5b9": 100, "upcr": 0.2, "schistocytes": 0, "sbp": 120, "dbp": 70}
    c = course({d: {**three, **normal} for d in (10, 12, 13)})
    t = assess(c).tatma
    assert (t.criteria_met, t.assessable, t.status) == (3, 7, "not met")
