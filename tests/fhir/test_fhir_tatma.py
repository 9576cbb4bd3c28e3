"""TA-TMA in FHIR: the new analytes and findings round-trip, a blood-pressure panel and a
qualitative schistocyte result import, and the criteria are exported as one Observation whose
not-assessable criteria carry dataAbsentReason (never false)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.grading.assessment import assess
from cart_cytopenia.io.fhir_export import assessment_to_resources, course_to_bundle
from cart_cytopenia.io.fhir_import import import_text
from tests.fhir.conftest import normalised

COURSE = Path(__file__).parents[1] / "data" / "tatma-course.json"
LOINC = "http://loinc.org"


def _course() -> Any:
    return parse_course(COURSE.read_text(), source=str(COURSE))


def test_tatma_course_roundtrips_with_the_same_criteria() -> None:
    course = _course()
    bundle = course_to_bundle(course, "collection")
    Bundle.model_validate(bundle)
    result = import_text(json.dumps(bundle))
    assert result.unmapped == [] and result.failed == []
    (back,) = result.courses
    assert normalised(back) == normalised(course)
    assert assess(back, 33).tatma == assess(course, 33).tatma


def _observation(code: dict[str, Any], **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": code,
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-03-31",
        **value,
    }


def test_blood_pressure_panel_and_qualitative_schistocytes_import() -> None:
    course = _course()
    bundle = course_to_bundle(course, "collection")
    pid = next(
        e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    bp = _observation(
        {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}]},
        component=[
            {
                "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                "valueQuantity": {"value": 21, "unit": "kPa", "code": "kPa"},
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                "valueQuantity": {"value": 96, "code": "mm[Hg]"},
            },
        ],
    )
    smear = _observation(
        {"coding": [{"system": LOINC, "code": "104779-4"}]},
        valueCodeableConcept={"text": "Not detected"},
    )
    unclear = _observation(
        {"coding": [{"system": LOINC, "code": "104779-4"}]},
        valueCodeableConcept={"text": "see comment"},
    )
    for r in (bp, smear, unclear):
        r["subject"] = {"reference": f"Patient/{pid}"}
        bundle["entry"].append({"resource": r})
    result = import_text(json.dumps(bundle))
    (back,) = result.courses
    day30 = {(x.analyte, x.value) for x in back.labs if x.day == 30}
    assert ("sbp", 21) in {(x.analyte, x.value) for x in back.labs if x.unit == "kPa"}
    assert ("dbp", 96) in day30
    assert ("schistocytes", 0.0) in day30
    assert any("neither present nor absent" in str(u) for u in result.unmapped)


def test_criteria_exported_as_one_observation() -> None:
    course = _course()
    a = assess(course, 33)
    grades = assessment_to_resources(course, a, "Patient/p1")
    Bundle.model_validate(
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in grades]}
    )
    (obs,) = [r for r in grades if r["code"]["coding"][0]["code"] == "tatma-criteria"]
    assert obs["valueInteger"] == 7 and obs["effectiveDateTime"] == "2024-04-03"
    comp = {c["code"]["coding"][0]["code"]: c for c in obs["component"]}
    assert comp["tatma-status"]["valueCodeableConcept"]["coding"][0]["code"] == "tatma-status-meets"
    assert comp["tatma-criterion-sc5b9"]["valueBoolean"] is True
    assert comp["tatma-high-risk"]["valueBoolean"] is True
    assert any("Evidence: " in n["text"] for n in obs["note"])
    # day 30: one time point, no sC5b-9 yet -> not assessable, never false
    early = assess(course, 30)
    (obs,) = [
        r
        for r in assessment_to_resources(course, early, "Patient/p1")
        if r["code"]["coding"][0]["code"] == "tatma-criteria"
    ]
    comp = {c["code"]["coding"][0]["code"]: c for c in obs["component"]}
    assert "valueBoolean" not in comp["tatma-criterion-sc5b9"]
    assert comp["tatma-criterion-sc5b9"]["dataAbsentReason"]["coding"][0]["code"] == "not-performed"
