"""HZ-015-02: two patients' data in one file or under one FHIR Patient id."""

from __future__ import annotations

from cart_cytopenia.cli.paths import unique_names
from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.io.fhir_export import course_to_bundle, patient_fhir_id
from tests.conftest import course_dict


def test_pseudonyms_that_make_the_same_safe_name_get_different_files() -> None:
    assert unique_names(["a_b", "a_b", "A_B", "c"]) == [
        "a_b.json",
        "a_b-2.json",
        "A_B-3.json",
        "c.json",
    ]


def test_two_patients_never_share_a_fhir_patient_id() -> None:
    ids = {patient_fhir_id(p) for p in ("a/b", "a_b", "a b", "a-b", "A_B")}
    assert len(ids) == 5
    assert patient_fhir_id("review-case-1") == "review-case-1"  # a valid id stays as it is


def test_the_bundle_of_each_patient_has_its_own_patient() -> None:
    def patient_ids(pid: str) -> set[str]:
        doc = course_to_bundle(
            parse_course(course_dict([(1, 300)], patient={"id": pid, "disease": "LBCL"}))
        )
        return {
            e["resource"]["id"] for e in doc["entry"] if e["resource"]["resourceType"] == "Patient"
        }

    assert patient_ids("a/b").isdisjoint(patient_ids("a_b"))
