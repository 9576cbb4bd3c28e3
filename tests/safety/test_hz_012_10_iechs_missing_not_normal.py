"""HZ-012-10: IEC-HS, carHLH or the HScore read as negative when inputs are missing."""

from __future__ import annotations

from cart_cytopenia.domain.frames import course_to_frames
from cart_cytopenia.grading.assessment import assess
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.io.fhir import assessment_to_resources
from cart_cytopenia.rules.settings import Settings
from tests.grading.test_iec_hs import ONSET, course


def test_no_ferritin_is_not_assessable_in_assess_grade_and_fhir() -> None:
    c = course([(10, "fibrinogen", 100.0), (10, "ast", 300.0)])
    a = assess(c, 10)
    assert a.iechs.status == "not assessable"
    assert "ferritin after infusion" in a.iechs.missing
    row = grade_cohort(course_to_frames(c), Settings(), as_of=10, workers=1).row(0, named=True)
    assert row["iechs_astct_status"] == "not assessable"
    obs = {o["code"]["coding"][0]["code"]: o for o in assessment_to_resources(c, a, "Patient/p")}
    assert "not assessable" in obs["iec-hs-astct"]["valueCodeableConcept"]["text"]


def test_unmeasured_manifestations_keep_it_suspected_not_not_met() -> None:
    a = assess(course(ONSET), 10)
    assert a.iechs.status == "suspected"
    assert {"AST/ALT", "fibrinogen"} <= set(a.iechs.missing)


def test_hscore_with_items_missing_is_a_lower_bound_never_a_false_below() -> None:
    a = assess(course([(9, "ferritin", 7000.0)]), 10)
    x = a.iechs
    assert x.hscore_items < 9 and x.hscore_at_cutoff is None  # 169 still reachable
    assert x.hscore_max >= x.hscore_cutoff
    obs = {
        o["code"]["coding"][0]["code"]: o
        for o in assessment_to_resources(course([(9, "ferritin", 7000.0)]), a, "Patient/p")
    }
    h = obs["hscore"]
    assert "incomplete" in h["note"][0]["text"]


def test_carhlh_without_organ_data_is_incomplete() -> None:
    assert assess(course([(4, "ferritin", 20000.0)]), 10).iechs.carhlh == "incomplete"
