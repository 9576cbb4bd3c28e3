"""HZ-012-25: a patient never worked up for TA-TMA shown like one with a partial work-up, or
either read as excluded. Anaemia, thrombocytopenia and LDH > ULN (routine values, near-universal
after CAR-T) give "3 of 7" for almost everyone: without the TA-TMA-specific work-up (smear, blood
pressure or antihypertensive treatment, sC5b-9, UPCR) the status is "not evaluated"; with part of
it, "work-up incomplete" naming what is missing; never "not met"."""

from __future__ import annotations

from typing import Any

from cart_cytopenia.domain.frames import course_to_frames
from cart_cytopenia.grading.assessment import assess
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.io.fhir import assessment_to_resources
from cart_cytopenia.rules.settings import Settings
from tests.grading.test_tatma import course


def _status_code(c: Any) -> tuple[str, str]:
    obs = next(
        o
        for o in assessment_to_resources(c, assess(c), "Patient/p")
        if o["code"]["coding"][0]["code"] == "tatma-criteria"
    )
    comp = {x["code"]["coding"][0]["code"]: x for x in obs["component"]}
    return comp["tatma-status"]["valueCodeableConcept"]["coding"][0]["code"], obs["status"]


def test_routine_values_alone_are_not_evaluated_everywhere() -> None:
    three = {"hb": 10.5, "platelets": 40, "ldh": 400}
    c = course({10: three, 12: three})
    t = assess(c).tatma
    assert (t.status, t.criteria_met) == ("not evaluated", 3)
    assert "no TA-TMA-specific work-up" in t.summary
    assert _status_code(c) == ("tatma-status-not-evaluated", "preliminary")
    row = grade_cohort(course_to_frames(c), Settings()).row(0, named=True)
    assert row["tatma_status"] == "not evaluated"


def test_part_of_the_work_up_done_is_work_up_incomplete_never_not_met() -> None:
    # 3 of 7 met, sC5b-9 measured and normal: 3 criteria still not assessable could reach 4
    three = {"hb": 10.5, "platelets": 40, "ldh": 400, "sc5b9": 100}
    c = course({10: three, 12: three, 13: three})
    t = assess(c).tatma
    assert (t.criteria_met, t.assessable, t.status) == (3, 4, "work-up incomplete")
    assert "3 of 7 met, 3 of 7 not assessable" in t.summary
    assert "Schistocytes, Hypertension, Proteinuria" in t.summary
    obs = next(
        o
        for o in assessment_to_resources(c, assess(c), "Patient/p")
        if o["code"]["coding"][0]["code"] == "tatma-criteria"
    )
    comp = {x["code"]["coding"][0]["code"]: x for x in obs["component"]}
    status = comp["tatma-status"]["valueCodeableConcept"]["coding"][0]["code"]
    assert (status, obs["status"]) == ("tatma-status-work-up-incomplete", "preliminary")

    row = grade_cohort(course_to_frames(c), Settings()).row(0, named=True)
    assert row["tatma_status"] == "work-up incomplete"
