"""Course -> FHIR Bundle (fhir_export) -> course (fhir_import): nothing lost, same grades.

The generator writes every part of a course; the importer must read it back to an equivalent
course (same days, analytes, canonical values, events) and the assessment must not change.
Bundles are validated with the fhir.resources R4B models.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.codesystem import CodeSystem

from cart_cytopenia.cohort.synthetic import PHENOTYPES
from cart_cytopenia.cohort.synthetic_courses import generate_courses
from cart_cytopenia.domain.course import Course, parse_course
from cart_cytopenia.grading.assessment import assess
from cart_cytopenia.io.fhir_codes import codes, project_code_system
from cart_cytopenia.io.fhir_export import (
    assessment_to_resources,
    course_to_bundle,
    courses_to_ndjson,
)
from cart_cytopenia.io.fhir_import import import_text
from tests.conftest import EXAMPLES
from tests.fhir.conftest import normalised

REVIEW_CASES = sorted(EXAMPLES.glob("review-case-*.json"))


def _assessment(c: Course) -> dict[str, object]:
    return assess(c).model_dump()


def _roundtrip(course: Course, bundle_type: str = "collection") -> Course:
    bundle = course_to_bundle(course, bundle_type)  # type: ignore[arg-type]
    Bundle.model_validate(bundle)
    result = import_text(json.dumps(bundle))
    assert result.failed == [], [str(f) for f in result.failed]
    assert result.unmapped == [], [str(u) for u in result.unmapped]
    assert result.warnings == [], [str(w) for w in result.warnings]
    (back,) = result.courses
    return back


@pytest.mark.parametrize("path", REVIEW_CASES, ids=lambda p: Path(p).stem)
def test_review_case_roundtrip(path: Path) -> None:
    course = parse_course(path.read_text(), source=str(path))
    back = _roundtrip(course, "transaction")
    assert normalised(back) == normalised(course)
    assert _assessment(back) == _assessment(course)


@pytest.fixture(scope="module")
def synthetic() -> list[Course]:
    return generate_courses(9, seed=2024)


def test_synthetic_cohort_has_every_phenotype(synthetic: list[Course]) -> None:
    found = {assess(c).phenotype.phenotype for c in synthetic}
    assert set(PHENOTYPES) <= found


@pytest.mark.parametrize("phenotype", PHENOTYPES)
def test_synthetic_phenotype_roundtrip_import_assess_export(
    synthetic: list[Course], phenotype: str
) -> None:
    courses = [c for c in synthetic if assess(c).phenotype.phenotype == phenotype]
    assert courses
    for course in courses:
        back = _roundtrip(course)
        assert normalised(back) == normalised(course)
        a = assess(back)
        assert a.phenotype.phenotype == phenotype
        assert _assessment(back) == _assessment(course)
        # ... and export the assessment of the imported course
        grades = assessment_to_resources(back, a, f"Patient/{back.patient.id}")
        bundle = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": r} for r in grades],
        }
        Bundle.model_validate(bundle)
        by_code = {r["code"]["coding"][0]["code"]: r for r in grades}
        assert (
            by_code["recovery-phenotype"]["valueCodeableConcept"]["coding"][0]["code"]
            == f"phenotype-{phenotype}"
        )
        early = a.early_icaht.result
        if early.grade is not None:
            assert by_code["icaht-early-grade"]["valueInteger"] == early.grade
        t = a.ticaht
        t_early = by_code["ticaht-early-grade"]
        if t.early.grade is not None:
            assert t_early["valueInteger"] == t.early.grade
            days = {c["code"]["coding"][0]["code"]: c["valueInteger"] for c in t_early["component"]}
            assert days == {
                "ticaht-days-plt-lt-50": t.early_days_plt_lt_50,
                "ticaht-days-plt-lt-20": t.early_days_plt_lt_20,
            }
        else:
            assert "valueInteger" not in t_early and "dataAbsentReason" in t_early
        e = by_code["easix-baseline"]
        if a.easix.easix_baseline is not None:
            assert e["valueQuantity"]["value"] == round(a.easix.easix_baseline, 4)
        else:
            assert "dataAbsentReason" in e


def test_ndjson_of_several_courses_imports_each(synthetic: list[Course]) -> None:
    text = courses_to_ndjson(synthetic[:3])
    assert "urn:uuid" not in text
    result = import_text(text, "export.ndjson")
    assert sorted(c.patient.id for c in result.courses) == sorted(
        c.patient.id for c in synthetic[:3]
    )
    assert result.unmapped == []


def test_export_is_deterministic(synthetic: list[Course]) -> None:
    assert course_to_bundle(synthetic[0]) == course_to_bundle(synthetic[0])


def test_project_code_system_is_valid_and_covers_exported_codes(synthetic: list[Course]) -> None:
    cs = project_code_system()
    CodeSystem.model_validate(cs)
    defined = {c["code"] for c in cs["concept"]}
    used: set[str] = set()

    def walk(x: object) -> None:
        if isinstance(x, dict):
            if x.get("system") == codes().project_system:
                used.add(str(x["code"]))
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    for c in synthetic:
        walk(course_to_bundle(c))
        walk(assessment_to_resources(c, assess(c), "Patient/x"))
    assert used and used <= defined


def test_grades_that_cannot_be_given_are_data_absent_not_zero() -> None:
    course = parse_course(
        {
            "patient": {"id": "t", "disease": "LBCL"},
            "product": {"name": "axi-cel"},
            "infusion_date": "2024-01-10",
        }
    )
    a = assess(course, day=10)
    grades = {
        r["code"]["coding"][0]["code"]: r for r in assessment_to_resources(course, a, "Patient/t")
    }
    anc = grades["ctcae-neutrophil-count-decreased"]
    assert "valueInteger" not in anc and anc["dataAbsentReason"]["coding"][0]["code"] == "unknown"
    assert "valueInteger" not in grades["car-hematotox-score"]
