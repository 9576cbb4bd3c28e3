"""FHIR R4 import (io/fhir_import/): mapping of each resource kind, and nothing dropped silently."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cart_cytopenia.domain.course import (
    CRS,
    ICANS,
    Fever,
    Infection,
    Medication,
    Relapse,
    StemCellBoost,
    Transfusion,
)
from cart_cytopenia.errors import ParseError
from cart_cytopenia.io.fhir_import import import_text, match_drug_text
from tests.fhir.conftest import (
    CPT,
    ICD10CM,
    RXNORM,
    SNOMED,
    infusion,
    lab,
    lymphoma,
    patient,
    searchset,
)


def _one(*resources: dict[str, Any]) -> Any:
    result = import_text(json.dumps(searchset(*resources)))
    assert len(result.courses) == 1, [str(f) for f in result.failed]
    return result, result.courses[0]


def _reasons(result: Any) -> dict[str, str]:
    return {u.resource: u.reason for u in result.unmapped}


def test_minimal_course_day_zero_product_disease_and_sex() -> None:
    _, c = _one(patient(), infusion(), lymphoma())
    assert c.infusion_date.isoformat() == "2024-01-10"
    assert c.product.id == "axi-cel"
    assert c.patient.disease.value == "LBCL"
    assert c.patient.sex.value == "female"
    assert c.patient.age_years == pytest.approx(63.7, abs=0.1)


def test_lab_with_comparator_keeps_bound_and_unit() -> None:
    _, c = _one(
        patient(),
        infusion(),
        lymphoma(),
        lab("o1", "751-8", 0.1, "10*9/L", "2024-01-15T07:30:00-05:00", comparator="<"),
        lab("o2", "777-3", 23, "10*3/uL", "2024-01-15"),
    )
    anc = next(x for x in c.labs if x.analyte_code == "anc")
    assert anc.day == 5
    assert anc.comparator is not None and anc.comparator.value == "<"
    assert anc.value == 0.1 and anc.unit == "10*9/L"
    assert anc.canonical_value() == pytest.approx(100.0)
    plt = next(x for x in c.labs if x.analyte_code == "platelets")
    assert plt.value == 23 and plt.day == 5


def test_value_string_with_comparator_and_unit_is_read() -> None:
    obs = lab("o1", "751-8", 0, "10*9/L", "2024-01-12")
    del obs["valueQuantity"]
    obs["valueString"] = "<0.1 x10^9/L"
    _, c = _one(patient(), infusion(), lymphoma(), obs)
    assert c.labs[0].comparator is not None and c.labs[0].canonical_value() == pytest.approx(100)


def test_labs_before_infusion_are_baseline() -> None:
    _, c = _one(patient(), infusion(), lymphoma(), lab("b1", "777-3", 60, "10*3/uL", "2024-01-04"))
    assert [x.day for x in c.baseline_labs] == [-6]
    assert c.labs == []


def test_unmappable_observations_are_reported_with_reasons() -> None:
    absent = lab("o3", "751-8", 1, "10*9/L", "2024-01-12")
    del absent["valueQuantity"]
    absent["dataAbsentReason"] = {"text": "specimen clotted"}
    cancelled = lab("o4", "751-8", 1.2, "10*9/L", "2024-01-12", status="cancelled")
    partial = lab("o5", "751-8", 1.2, "10*9/L", "2024-01")
    no_subject = lab("o6", "751-8", 1.2, "10*9/L", "2024-01-12")
    del no_subject["subject"]
    implausible = lab("o7", "751-8", 1200, "10*9/L", "2024-01-12")
    bad_unit = lab("o8", "751-8", 1.2, "mg/dL", "2024-01-12")
    result, c = _one(
        patient(),
        infusion(),
        lymphoma(),
        lab("o1", "2093-3", 190, "mg/dL", "2024-01-12"),  # cholesterol: not used
        absent,
        cancelled,
        partial,
        no_subject,
        implausible,
        bad_unit,
        {"resourceType": "Encounter", "id": "e1", "status": "finished", "class": {"code": "IMP"}},
    )
    r = _reasons(result)
    assert "not a laboratory test" in r["Observation/o1"] and "2093-3" in r["Observation/o1"]
    assert "dataAbsentReason" in r["Observation/o3"] and "specimen clotted" in r["Observation/o3"]
    assert "cancelled" in r["Observation/o4"]
    assert "not a full date" in r["Observation/o5"]
    assert "no subject" in r["Observation/o6"]
    assert "implausible" in r["Observation/o7"]
    assert "mg/dL" in r["Observation/o8"]
    assert "not used" in r["Encounter/e1"]
    assert c.labs == []
    assert result.unmapped_by_reason()  # summarised for the CLI


def test_invalid_resource_is_reported_not_raised() -> None:
    bad = {"resourceType": "Observation", "id": "x", "status": "final", "code": {"coding": "oops"}}
    result, _ = _one(patient(), infusion(), lymphoma(), bad)
    assert "not valid FHIR Observation" in _reasons(result)["Observation/x"]


def test_operation_outcome_in_searchset_is_reported() -> None:
    oo = {
        "resourceType": "OperationOutcome",
        "id": "oo1",
        "issue": [
            {"severity": "warning", "code": "incomplete", "diagnostics": "results truncated"}
        ],
    }
    result, _ = _one(patient(), infusion(), lymphoma(), oo)
    assert "results truncated" in _reasons(result)["OperationOutcome/oo1"]


def test_no_infusion_fails_the_patient_with_a_reason() -> None:
    result = import_text(json.dumps(searchset(patient(), lymphoma())))
    assert result.courses == []
    assert len(result.failed) == 1 and "no CAR-T infusion" in result.failed[0].message


def test_infusion_from_medication_administration_of_the_product() -> None:
    admin = {
        "resourceType": "MedicationAdministration",
        "id": "ma-cart",
        "status": "completed",
        "medicationCodeableConcept": {
            "text": "Tecartus (brexucabtagene autoleucel) suspension for IV infusion"
        },
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-02-01T10:00:00Z",
    }
    _, c = _one(patient(), lymphoma(), admin)
    assert c.product.id == "brexu-cel"
    assert c.infusion_date.isoformat() == "2024-02-01"


def test_crs_and_icans_grades_from_icd10cm_and_stage() -> None:
    crs = {
        "resourceType": "Condition",
        "id": "crs",
        "clinicalStatus": {"coding": [{"code": "resolved"}]},
        "code": {"coding": [{"system": ICD10CM, "code": "D89.832"}]},
        "subject": {"reference": "Patient/p1"},
        "onsetDateTime": "2024-01-12",
        "abatementDateTime": "2024-01-15",
    }
    icans = {
        "resourceType": "Condition",
        "id": "icans",
        "code": {"text": "Immune effector cell-associated neurotoxicity syndrome"},
        "stage": [{"summary": {"text": "Grade 3"}}],
        "subject": {"reference": "Patient/p1"},
        "onsetDateTime": "2024-01-14",
    }
    ungraded = {
        "resourceType": "Condition",
        "id": "crs2",
        "code": {"text": "Cytokine release syndrome"},
        "subject": {"reference": "Patient/p1"},
        "onsetDateTime": "2024-01-13",
    }
    result, c = _one(patient(), infusion(), lymphoma(), crs, icans, ungraded)
    (crs_ev,) = c.events_of(CRS)
    assert (crs_ev.max_grade, crs_ev.start_day, crs_ev.end_day) == (2, 2, 5)
    (icans_ev,) = c.events_of(ICANS)
    assert icans_ev.max_grade == 3 and icans_ev.end_day is None
    assert "without an ASTCT grade" in _reasons(result)["Condition/crs2"]


def test_resolved_without_abatement_is_a_warning() -> None:
    crs = {
        "resourceType": "Condition",
        "id": "crs",
        "clinicalStatus": {"coding": [{"code": "resolved"}]},
        "code": {"coding": [{"system": ICD10CM, "code": "D89.831"}]},
        "subject": {"reference": "Patient/p1"},
        "onsetDateTime": "2024-01-12",
    }
    result, c = _one(patient(), infusion(), lymphoma(), crs)
    assert c.events_of(CRS)[0].end_day == 2
    assert any("without an abatement date" in w.message for w in result.warnings)


def test_infections_with_category_from_code_or_text() -> None:
    cmv = {
        "resourceType": "Condition",
        "id": "cmv",
        "code": {"coding": [{"system": ICD10CM, "code": "B25.9"}], "text": "CMV reactivation"},
        "subject": {"reference": "Patient/p1"},
        "onsetDateTime": "2024-02-01",
    }
    asp = {
        "resourceType": "Condition",
        "id": "asp",
        "code": {"text": "Invasive aspergillosis"},
        "subject": {"reference": "Patient/p1"},
        "onsetDateTime": "2024-02-10",
        "severity": {"coding": [{"system": SNOMED, "code": "24484000"}]},
    }
    _, c = _one(patient(), infusion(), lymphoma(), cmv, asp)
    by_cat = {e.category.value: e for e in c.events_of(Infection)}
    assert by_cat["viral"].reactivation is True
    assert by_cat["fungal"].severity is not None and by_cat["fungal"].severity.value == "severe"


def test_relapse_after_infusion_and_prior_hct_before() -> None:
    relapse = {
        "resourceType": "Condition",
        "id": "rel",
        "code": {"text": "Relapsed diffuse large B-cell lymphoma"},
        "subject": {"reference": "Patient/p1"},
        "onsetDateTime": "2024-05-01",
    }
    auto = {
        "resourceType": "Procedure",
        "id": "asct",
        "status": "completed",
        "code": {"coding": [{"system": CPT, "code": "38241"}]},
        "subject": {"reference": "Patient/p1"},
        "performedDateTime": "2023-03-01",
    }
    _, c = _one(patient(), infusion(), lymphoma(), relapse, auto)
    assert c.relapse_day == (c.events_of(Relapse)[0].day) == 112
    assert c.patient.prior_auto_hct and c.patient.prior_hct[0].day == -315
    assert c.patient.disease.value == "LBCL"


def test_fevers_one_per_day_and_afebrile_reported() -> None:
    def temp(rid: str, v: float, when: str, unit: str = "Cel") -> dict[str, Any]:
        o = lab(rid, "8310-5", v, unit, when)
        o["category"] = [{"coding": [{"code": "vital-signs"}]}]
        return o

    result, c = _one(
        patient(),
        infusion(),
        lymphoma(),
        temp("t1", 38.4, "2024-01-11T06:00:00Z"),
        temp("t2", 39.1, "2024-01-11T18:00:00Z"),
        temp("t3", 36.9, "2024-01-12"),
        temp("t4", 101.3, "2024-01-13", "[degF]"),
    )
    fevers = sorted((f.day, f.max_temp_c) for f in c.events_of(Fever))
    assert fevers == [(1, 39.1), (3, pytest.approx(38.5, abs=0.01))]
    assert "below 38" in _reasons(result)["Observation/t3"]


def test_medication_administrations_on_consecutive_days_merge() -> None:
    def gcsf(i: int, day: str) -> dict[str, Any]:
        return {
            "resourceType": "MedicationAdministration",
            "id": f"g{i}",
            "status": "completed",
            "medicationCodeableConcept": {
                "coding": [
                    {
                        "system": RXNORM,
                        "code": "1649944",
                        "display": "filgrastim-sndz 480 MCG/0.8ML",
                    }
                ]
            },
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": day,
            "dosage": {"dose": {"value": 480, "unit": "ug"}, "route": {"text": "subcutaneous"}},
        }

    _, c = _one(
        patient(),
        infusion(),
        lymphoma(),
        gcsf(1, "2024-01-20"),
        gcsf(2, "2024-01-21"),
        gcsf(3, "2024-01-22"),
        gcsf(4, "2024-01-30"),
    )
    spans = sorted((m.start_day, m.end_day) for m in c.events_of(Medication))
    assert spans == [(10, 12), (20, 20)]
    assert all(
        m.drug == "filgrastim" and m.route == "subcutaneous" for m in c.events_of(Medication)
    )


def test_medication_request_via_medication_reference_and_superseded_request() -> None:
    med = {
        "resourceType": "Medication",
        "id": "m-elt",
        "code": {"coding": [{"system": RXNORM, "code": "711942", "display": "eltrombopag"}]},
    }
    req = {
        "resourceType": "MedicationRequest",
        "id": "rq1",
        "status": "active",
        "intent": "order",
        "medicationReference": {"reference": "Medication/m-elt"},
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2024-03-01",
        "dosageInstruction": [
            {
                "timing": {
                    "repeat": {
                        "boundsPeriod": {"start": "2024-03-01"},
                        "frequency": 1,
                        "period": 1,
                        "periodUnit": "d",
                    }
                },
                "doseAndRate": [{"doseQuantity": {"value": 75, "unit": "mg"}}],
            }
        ],
    }
    fulfilled = dict(
        req, id="rq2", medicationReference=None, medicationCodeableConcept={"text": "G-CSF"}
    )
    fulfilled.pop("medicationReference")
    admin = {
        "resourceType": "MedicationAdministration",
        "id": "ad2",
        "status": "completed",
        "medicationCodeableConcept": {"text": "filgrastim"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-01-25",
        "request": {"reference": "MedicationRequest/rq2"},
    }
    draft = dict(req, id="rq3", status="draft")
    result, c = _one(patient(), infusion(), lymphoma(), med, req, fulfilled, admin, draft)
    meds = {m.drug: m for m in c.events_of(Medication)}
    assert meds["eltrombopag"].start_day == 51 and meds["eltrombopag"].end_day is None
    assert meds["eltrombopag"].dose == 75 and meds["eltrombopag"].frequency == "daily"
    assert meds["filgrastim"].start_day == 15
    r = _reasons(result)
    assert "superseded" in r["MedicationRequest/rq2"]
    assert "draft" in r["MedicationRequest/rq3"]


def test_rxnorm_text_conflict_prefers_text_and_warns() -> None:
    admin = {
        "resourceType": "MedicationAdministration",
        "id": "x",
        "status": "completed",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": "68442"}],  # filgrastim
            "text": "sargramostim 250 mcg",
        },
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-01-25",
    }
    result, c = _one(patient(), infusion(), lymphoma(), admin)
    assert c.events_of(Medication)[0].drug == "sargramostim"
    assert any("RxNorm code names filgrastim" in w.message for w in result.warnings)


def test_lymphodepleting_agents_become_lymphodepletion() -> None:
    def agent(i: int, name: str, day: str) -> dict[str, Any]:
        return {
            "resourceType": "MedicationAdministration",
            "id": f"ld{i}",
            "status": "completed",
            "medicationCodeableConcept": {"text": name},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": day,
        }

    result, c = _one(
        patient(),
        infusion(),
        lymphoma(),
        agent(1, "fludarabine 30 mg/m2", "2024-01-05"),
        agent(2, "cyclophosphamide 500 mg/m2", "2024-01-05"),
        agent(3, "fludarabine 30 mg/m2", "2024-01-06"),
    )
    assert c.lymphodepletion is not None
    assert (c.lymphodepletion.regimen, c.lymphodepletion.start_day) == ("flu-cy", -5)
    assert c.events_of(Medication) == []
    assert all("lymphodepletion" in u.reason for u in result.unmapped)


def test_transfusion_and_boost_procedures() -> None:
    plt = {
        "resourceType": "Procedure",
        "id": "tx1",
        "status": "completed",
        "code": {
            "coding": [{"system": SNOMED, "code": "116859006"}],
            "text": "Platelet transfusion",
        },
        "subject": {"reference": "Patient/p1"},
        "performedDateTime": "2024-02-20",
    }
    unknown = dict(plt, id="tx2", code={"text": "Transfusion"})
    boost = {
        "resourceType": "Procedure",
        "id": "b1",
        "status": "completed",
        "code": {"text": "CD34-selected autologous stem cell boost"},
        "subject": {"reference": "Patient/p1"},
        "performedDateTime": "2024-04-01",
    }
    result, c = _one(patient(), infusion(), lymphoma(), plt, unknown, boost)
    (tx,) = c.events_of(Transfusion)
    assert (tx.product.value, tx.day) == ("platelets", 41)
    (b,) = c.events_of(StemCellBoost)
    assert b.source.value == "autologous"
    assert "without a recognised product" in _reasons(result)["Procedure/tx2"]


def test_transaction_with_urn_uuid_references_and_ndjson() -> None:
    p = patient("abc")
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111",
                "resource": p,
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:22222222-2222-4222-8222-222222222222",
                "resource": {
                    **infusion("abc"),
                    "subject": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"},
                },
                "request": {"method": "POST", "url": "Procedure"},
            },
        ],
    }
    result = import_text(json.dumps(bundle))
    assert [c.patient.id for c in result.courses] == ["abc"]
    assert any("no malignancy" in w.message for w in result.warnings)

    ndjson = "\n".join(
        json.dumps(r)
        for r in (
            patient("q"),
            infusion("q"),
            lymphoma("q"),
            lab("l1", "751-8", 300, "/uL", "2024-01-12", pid="q"),
        )
    )
    result = import_text(ndjson, "export.ndjson")
    assert result.courses[0].labs[0].value == 300


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("{not json", "neither JSON nor NDJSON"),
        ('{"resourceType": "Bundle", "type": "history", "entry": []}', "history"),
        ('{"a": 1}', "not a FHIR resource"),
        ('{"resourceType": "Patient", "id": "a"}\n{oops', "line 2"),
    ],
)
def test_unreadable_documents_raise_parse_error(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        import_text(text, "input.json")


def test_drug_text_matching_is_word_bounded() -> None:
    assert match_drug_text(["pegfilgrastim 6 mg"]).id == "pegfilgrastim"  # type: ignore[union-attr]
    assert match_drug_text(["Zarxio (filgrastim-sndz)"]).id == "filgrastim"  # type: ignore[union-attr]
    assert match_drug_text(["ondansetron 8 mg"]) is None


def test_multiple_patients_in_one_bundle() -> None:
    result = import_text(
        json.dumps(
            searchset(
                patient("a"),
                infusion("a"),
                lymphoma("a"),
                patient("b"),
                infusion("b", "2024-03-01", "Kymriah"),
            )
        )
    )
    by_id = {c.patient.id: c for c in result.courses}
    assert set(by_id) == {"a", "b"}
    assert by_id["b"].product.id == "tisa-cel"
