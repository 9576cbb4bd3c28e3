"""FHIR import of input shaped as third-party systems send it (issue 13, defects 1, 4, 8, 9).

The transaction Bundles here are built the way Synthea writes them (``urn:uuid:`` full URLs,
ids equal to the uuid, ``request`` POST entries, references by full URL); the codes are the
ones claims-derived EHR data carry (ICD-10-PCS and HCPCS CAR-T codes, RxNorm clinical drugs).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from cart_cytopenia.domain.course import Medication, Transfusion
from cart_cytopenia.errors import ConflictError, ParseError
from cart_cytopenia.grading.assessment import assess
from cart_cytopenia.io.fhir_export import course_to_bundle
from cart_cytopenia.io.fhir_import import FhirImport, import_resources, resources_from_text
from cart_cytopenia.io.therapy_codes import therapy_codes
from tests.fhir.conftest import RXNORM, SNOMED, UCUM, lab, lymphoma
from tests.fhir.test_fhir_cmd import run

ICD10PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
HCPCS = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
PID = str(uuid.uuid5(uuid.NAMESPACE_URL, "synthea-like/patient"))
PATIENT_URL = f"urn:uuid:{PID}"


def _id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"synthea-like/{name}"))


def _synthea(resource: dict[str, Any], name: str) -> dict[str, Any]:
    """A resource as Synthea writes it: id = uuid, subject by full URL."""
    r = {**resource, "id": _id(name)}
    for key in ("subject", "patient"):
        if key in r:
            r[key] = {"reference": PATIENT_URL}
    return r


def transaction(*resources: dict[str, Any]) -> dict[str, Any]:
    patient = {
        "resourceType": "Patient",
        "id": PID,
        "identifier": [{"system": "https://github.com/synthetichealth/synthea", "value": PID}],
        "gender": "female",
        "birthDate": "1961-04-02",
    }
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{r['id']}",
                "resource": r,
                "request": {"method": "POST", "url": r["resourceType"]},
            }
            for r in (patient, *resources)
        ],
    }


def cart_procedure(name: str = "cart", coding: tuple[str, str] = (ICD10PCS, "XW033H7")) -> dict:
    # coded only, no text: claims-derived data carry the code and nothing else
    return _synthea(
        {
            "resourceType": "Procedure",
            "status": "completed",
            "code": {"coding": [{"system": coding[0], "code": coding[1]}]},
            "subject": {},
            "performedDateTime": "2024-01-10T10:00:00-05:00",
        },
        name,
    )


def platelet_transfusion(name: str, date: str) -> dict[str, Any]:
    return _synthea(
        {
            "resourceType": "Procedure",
            "status": "completed",
            "code": {"coding": [{"system": SNOMED, "code": "116859006"}]},
            "usedCode": [{"text": "Platelets, apheresis, leukoreduced"}],
            "subject": {},
            "performedDateTime": date,
        },
        name,
    )


def base_resources() -> list[dict[str, Any]]:
    return [
        cart_procedure(),
        _synthea(lymphoma(), "dlbcl"),
        _synthea(lab("x", "26515-7", 18, "10*3/uL", "2024-02-01"), "plt-day-22"),
    ]


def _import(doc: dict[str, Any]) -> FhirImport:
    return import_resources(resources_from_text(json.dumps(doc), "synthea.json"))


def _platelet_dependence(result: FhirImport) -> bool:
    (course,) = result.courses
    a = assess(course, 30)
    plt = next(x for x in a.lineages if x.lineage == "platelets")
    assert plt.transfusion is not None
    return plt.transfusion.dependent


def test_a_duplicated_platelet_transfusion_does_not_make_the_patient_transfusion_dependent() -> (
    None
):
    one = platelet_transfusion("tx-1", "2024-01-25")
    doc = transaction(*base_resources(), one)
    doc["entry"].append(dict(doc["entry"][-1]))  # the same entry again (same fullUrl and id)
    result = _import(doc)
    (course,) = result.courses
    assert len(course.events_of(Transfusion)) == 1
    assert _platelet_dependence(result) is False
    dup = [u for u in result.unmapped if "duplicate" in u.reason]
    assert [u.resource for u in dup] == [f"Procedure/{_id('tx-1')}"]
    # the test can fail: two different transfusions do make the patient dependent
    two = transaction(*base_resources(), one, platelet_transfusion("tx-2", "2024-01-29"))
    assert _platelet_dependence(_import(two)) is True


def test_duplicates_across_ndjson_files_of_one_export_are_read_once() -> None:
    tx = platelet_transfusion("tx-1", "2024-01-25")
    first = "\n".join(json.dumps(r) for r in [*base_resources(), tx])
    second = json.dumps(tx) + "\n" + json.dumps(_synthea(lymphoma(), "dlbcl"))
    raws = [
        *resources_from_text(first, "Procedure.1.ndjson"),
        *resources_from_text(second, "Procedure.2.ndjson"),
    ]
    for r in raws:  # bulk data: references are relative
        for key in ("subject", "patient"):
            if key in r.data:
                r.data[key] = {"reference": f"Patient/{PID}"}
    result = import_resources(raws)
    (course,) = result.courses
    assert len(course.events_of(Transfusion)) == 1
    assert len([u for u in result.unmapped if "duplicate" in u.reason]) == 2


def test_conflicting_versions_of_one_resource_are_refused_with_where_they_are() -> None:
    tx = platelet_transfusion("tx-1", "2024-01-25")
    changed = {**tx, "performedDateTime": "2024-01-26"}
    doc = transaction(*base_resources(), tx)
    doc["entry"].append({"fullUrl": f"urn:uuid:{tx['id']}", "resource": changed})
    with pytest.raises(ConflictError) as err:
        _import(doc)
    text = str(err.value)
    assert f"Procedure/{tx['id']}" in text and "different content" in text
    assert "entry[4]" in text and "entry[5]" in text


def test_conflicting_versions_with_last_updated_use_the_latest_and_say_so() -> None:
    tx = platelet_transfusion("tx-1", "2024-01-25")
    old = {**tx, "meta": {"lastUpdated": "2024-01-25T08:00:00Z"}}
    new = {**tx, "performedDateTime": "2024-01-26", "meta": {"lastUpdated": "2024-01-26T09:00:00Z"}}
    doc = transaction(*base_resources(), old)
    doc["entry"].append({"fullUrl": f"urn:uuid:{tx['id']}", "resource": new})
    result = _import(doc)
    (course,) = result.courses
    (t,) = course.events_of(Transfusion)
    assert t.day == 16  # 2024-01-26
    assert any("last updated 2024-01-26T09:00:00Z" in w.message for w in result.warnings)


@pytest.mark.parametrize(
    ("system", "code", "product"),
    [
        (ICD10PCS, "XW033H7", "axi-cel"),
        (ICD10PCS, "XW043C7", None),
        (ICD10PCS, "XW033C3", None),
        (HCPCS, "Q2054", "liso-cel"),
        ("http://www.ama-assn.org/go/cpt", "38228", None),
    ],
)
def test_car_t_codes_without_text_set_day_0(system: str, code: str, product: str | None) -> None:
    result = _import(transaction(*base_resources()[1:], cart_procedure(coding=(system, code))))
    (course,) = result.courses
    assert course.infusion_date.isoformat() == "2024-01-10"
    assert course.product.id == (product or "unknown")


def test_every_car_t_code_of_the_shared_table_is_recognised_by_the_fhir_importer() -> None:
    table = therapy_codes()
    uri = {name: u for u, name in table.fhir_systems.items()}
    for entry in table.codes.values():
        if entry.kind != "car_t":
            continue
        proc = cart_procedure(coding=(uri[entry.system], entry.code))
        result = _import(transaction(*base_resources()[1:], proc))
        assert len(result.courses) == 1, (entry, [str(f) for f in result.failed])


def _administration(name: str, rxcui: str, date: str, dose: dict[str, Any]) -> dict[str, Any]:
    return _synthea(
        {
            "resourceType": "MedicationAdministration",
            "status": "completed",
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxcui}]},
            "subject": {},
            "effectiveDateTime": date,
            "dosage": {"dose": dose},
        },
        name,
    )


def test_rxnorm_clinical_drug_codes_are_read_as_their_ingredient() -> None:
    flu = {"value": 50, "unit": "mg", "system": UCUM, "code": "mg"}
    cy = {"value": 500, "unit": "mg", "system": UCUM, "code": "mg"}
    ld = [_administration(f"flu-{d}", "1740864", f"2024-01-0{d}", flu) for d in (5, 6, 7)] + [
        _administration(f"cy-{d}", "1734917", f"2024-01-0{d}", cy) for d in (5, 6, 7)
    ]
    result = _import(transaction(*base_resources(), *ld))
    (course,) = result.courses
    assert course.lymphodepletion is not None
    assert course.lymphodepletion.regimen == "flu-cy"


def test_an_unknown_code_is_named_in_the_reason() -> None:
    unknown_proc = _synthea(
        {
            "resourceType": "Procedure",
            "status": "completed",
            "code": {"coding": [{"system": ICD10PCS, "code": "0DTJ4ZZ"}]},
            "subject": {},
            "performedDateTime": "2024-02-01",
        },
        "appendectomy",
    )
    unknown_drug = _administration("odd", "1049221", "2024-02-01", {"value": 1, "unit": "mg"})
    result = _import(transaction(*base_resources(), unknown_proc, unknown_drug))
    reasons = {u.resource.split("/")[0]: u.reason for u in result.unmapped}
    assert "ICD-10-PCS 0DTJ4ZZ not in the code tables" in reasons["Procedure"]
    assert "no code or text" not in reasons["Procedure"]
    assert "medication coded rxnorm 1049221" in reasons["MedicationAdministration"].lower()


def test_dose_units_keep_the_ucum_code_and_are_exported_with_system_and_code() -> None:
    gcsf = _administration(
        "gcsf",
        "68442",
        "2024-01-20",
        {"value": 300, "unit": "mcg", "system": UCUM, "code": "ug"},
    )
    result = _import(transaction(*base_resources(), gcsf))
    (course,) = result.courses
    (med,) = course.events_of(Medication)
    assert med.dose_unit == "ug"
    bundle = course_to_bundle(course)
    doses = [
        d["doseQuantity"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "MedicationRequest"
        for di in e["resource"].get("dosageInstruction", [])
        for d in di.get("doseAndRate", [])
    ]
    assert doses == [{"value": 300, "unit": "ug", "system": UCUM, "code": "ug"}]


def test_fhir_xml_gets_a_message_that_names_xml() -> None:
    xml = '<?xml version="1.0"?><Bundle xmlns="http://hl7.org/fhir"><type value="batch"/></Bundle>'
    with pytest.raises(ParseError, match="XML"):
        resources_from_text(xml, "export.xml")


def test_status_done_is_reported_as_invalid_fhir_not_as_filtered() -> None:
    done = {**platelet_transfusion("tx-done", "2024-01-25"), "status": "done"}
    result = _import(transaction(*base_resources(), done))
    (u,) = [u for u in result.unmapped if u.resource.endswith(_id("tx-done"))]
    assert u.reason.startswith("not valid FHIR Procedure: status 'done'")
    assert "completed" in u.reason


def test_a_contained_patient_subject_is_joined_by_its_identifier() -> None:
    contained = {
        "resourceType": "Patient",
        "id": "pat",
        "identifier": [{"system": "https://github.com/synthetichealth/synthea", "value": PID}],
    }
    obs = _synthea(lab("x", "751-8", 0.3, "10*9/L", "2024-01-25"), "anc-25")
    obs.update(contained=[contained], subject={"reference": "#pat"})
    result = _import(transaction(*base_resources(), obs))
    (course,) = result.courses
    assert any(x.analyte_code == "anc" and x.day == 15 for x in course.labs)
    # without an identifier shared with a Patient resource it cannot be joined: reported
    stranger = {**contained, "identifier": [{"system": "urn:mrn", "value": "999"}]}
    obs2 = {**obs, "id": _id("anc-26"), "contained": [stranger]}
    result = _import(transaction(*base_resources(), obs2))
    (u,) = [u for u in result.unmapped if u.resource.endswith(_id("anc-26"))]
    assert "contained in the resource" in u.reason and "no identifier shared" in u.reason


def test_the_cli_refuses_conflicting_versions_with_exit_2(tmp_path: Path) -> None:
    tx = platelet_transfusion("tx-1", "2024-01-25")
    (tmp_path / "a.ndjson").write_text(json.dumps(tx) + "\n")
    (tmp_path / "b.ndjson").write_text(json.dumps({**tx, "performedDateTime": "2024-01-27"}) + "\n")
    p = run("import", "fhir", str(tmp_path / "a.ndjson"), str(tmp_path / "b.ndjson"), check=False)
    assert p.returncode == 2, p.stderr
    assert "conflicting versions" in p.stderr and "a.ndjson" in p.stderr and "b.ndjson" in p.stderr
