"""HZ-013-03: CAR-T day 0 and lymphodepletion coded only by claims and RxNorm clinical-drug
codes are recognised; an unknown code leaves the patient reported, never silently dropped."""

from __future__ import annotations

from tests.fhir.test_fhir_third_party import (
    ICD10PCS,
    UCUM,
    _administration,
    _import,
    base_resources,
    cart_procedure,
    transaction,
)


def test_an_icd10pcs_coded_car_t_infusion_makes_day_0() -> None:
    result = _import(
        transaction(*base_resources()[1:], cart_procedure(coding=(ICD10PCS, "XW043H7")))
    )
    (course,) = result.courses
    assert course.infusion_date.isoformat() == "2024-01-10" and course.product.id == "axi-cel"


def test_an_unknown_procedure_code_leaves_the_patient_reported_as_failed() -> None:
    result = _import(
        transaction(*base_resources()[1:], cart_procedure(coding=(ICD10PCS, "XW0DXM6")))
    )
    assert result.courses == []
    (failed,) = result.failed
    assert "no CAR-T infusion found" in failed.message
    assert any("XW0DXM6" in u.reason for u in result.unmapped)


def test_lymphodepletion_coded_by_clinical_drug_codes_sets_the_baseline_window() -> None:
    mg = {"value": 50, "unit": "mg", "system": UCUM, "code": "mg"}
    flu = [_administration(f"f{d}", "1740864", f"2024-01-0{d}", mg) for d in (5, 6, 7)]
    course = _import(transaction(*base_resources(), *flu)).courses[0]
    assert course.lymphodepletion is not None and course.lymphodepletion.regimen == "fludarabine"
    assert course.ld_start_day == -5
    unknown = [_administration(f"u{d}", "1049221", f"2024-01-0{d}", mg) for d in (5, 6, 7)]
    course = _import(transaction(*base_resources(), *unknown)).courses[0]
    assert course.lymphodepletion is None
