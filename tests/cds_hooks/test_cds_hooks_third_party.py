"""CDS Hooks calls built from third-party material: the specification's own order-sign and
order-select examples (tests/cds_hooks/spec_examples/, source named in its README), draft orders
that name their drug only through a Medication reference, JWT audiences and card Markdown as an
EHR sends and renders them (issue 13, defects 2, 3 and 9)."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

from cart_cytopenia.io.fhir_import import import_text
from cart_cytopenia.service.cds_hooks import ORDER_SELECT, ORDER_SIGN, prefetch_templates
from tests.cds_hooks.conftest import (
    BASE,
    Harness,
    hook_request,
    make_harness,
    review_course,
    split_prefetch,
)

SPEC = Path(__file__).parent / "spec_examples"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SIGN = f"/cds-services/{ORDER_SIGN}"
SELECT = f"/cds-services/{ORDER_SELECT}"


def spec_context(name: str) -> dict[str, Any]:
    context: dict[str, Any] = json.loads((SPEC / name).read_text())["context"]
    return context


def _day10_case_3() -> tuple[Harness, str, dict[str, Any]]:
    """Review case 3 on day 10 (CRS ongoing, no infection): G-CSF there is a conflict."""
    course = review_course(3)
    h = make_harness(course.infusion_date + dt.timedelta(days=10))
    return h, course.patient.id, split_prefetch(course.as_of(10))


def _with_drug(context: dict[str, Any], pid: str, medication: dict[str, Any]) -> dict[str, Any]:
    """The spec example's context for patient ``pid``, its MedicationRequest ordering another
    drug (everything else as the specification wrote it, Bundle without a type included)."""
    ctx = copy.deepcopy(context)
    ctx["patientId"] = pid
    for e in ctx["draftOrders"]["entry"]:
        r = e["resource"]
        ref = "patient" if r["resourceType"] == "NutritionOrder" else "subject"
        r[ref] = {"reference": f"Patient/{pid}"}
        if r["resourceType"] == "MedicationRequest" and medication:
            r.pop("medicationCodeableConcept")
            r.update(medication)
    return ctx


FILGRASTIM = {"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "68442"}]}}


def test_spec_order_sign_example_is_answered_not_refused() -> None:
    context = spec_context("order-sign.r4.json")
    assert "type" not in context["draftOrders"]  # as the specification sends it
    h = make_harness(dt.date(2024, 3, 1))
    empty = dict.fromkeys(prefetch_templates())  # the EHR has no data for patient 1288992
    r = h.post(SIGN, hook_request("order-sign", "1288992", empty, context))
    assert r.status_code == 200, r.text
    assert r.json() == {"cards": []}  # no CAR-T infusion in the record: nothing to say


def test_spec_order_select_example_is_answered_not_refused() -> None:
    context = spec_context("order-select.r4.json")
    assert "type" not in context["draftOrders"]
    h = make_harness(dt.date(2024, 3, 1))
    empty = dict.fromkeys(prefetch_templates())
    r = h.post(SELECT, hook_request("order-select", "1288992", empty, context))
    assert r.status_code == 200, r.text
    assert r.json() == {"cards": []}


def test_spec_example_shaped_orders_are_checked_for_a_car_t_patient() -> None:
    h, pid, prefetch = _day10_case_3()
    context = spec_context("order-sign.r4.json")
    # the example as written: amoxicillin/clavulanate, not a drug the order checks are about
    r = h.post(SIGN, hook_request("order-sign", pid, prefetch, _with_drug(context, pid, {})))
    assert r.status_code == 200, r.text
    assert r.json()["cards"] == []
    # the same untyped Bundle ordering filgrastim (its dosage made R4-valid): the CRS conflict
    ctx = _with_drug(context, pid, FILGRASTIM)
    for e in ctx["draftOrders"]["entry"]:
        dosage = e["resource"].get("dosageInstruction", [{}])[0]
        if "doseQuantity" in dosage:
            dosage["doseAndRate"] = [{"doseQuantity": dosage.pop("doseQuantity")}]
    (card,) = h.post(SIGN, hook_request("order-sign", pid, prefetch, ctx)).json()["cards"]
    assert card["source"]["topic"]["code"] == "alert.gcsf-during-crs"


def test_an_invalid_draft_order_of_a_checked_drug_gets_an_info_card() -> None:
    h, pid, prefetch = _day10_case_3()
    # the order-sign example's own dosage (doseQuantity directly in dosageInstruction) is not
    # valid R4: a filgrastim order written that way cannot be checked, and the card says so
    ctx = _with_drug(spec_context("order-sign.r4.json"), pid, FILGRASTIM)
    (card,) = h.post(SIGN, hook_request("order-sign", pid, prefetch, ctx)).json()["cards"]
    assert card["indicator"] == "info"
    assert "could not read a draft order" in card["summary"]
    assert "MedicationRequest/smart-MedicationRequest-103" in card["detail"]
    assert "doseQuantity" in card["detail"]


def _reference_order(pid: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "entry": [
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "draft-1",
                    "status": "draft",
                    "intent": "order",
                    "medicationReference": {"reference": "Medication/med-gcsf"},
                    "subject": {"reference": f"Patient/{pid}"},
                }
            }
        ],
    }


MEDICATION = {
    "resourceType": "Medication",
    "id": "med-gcsf",
    "code": {"coding": [{"system": RXNORM, "code": "68442", "display": "filgrastim"}]},
}


def test_medication_reference_is_resolved_from_the_prefetch() -> None:
    h, pid, prefetch = _day10_case_3()
    prefetch["medicationRequests"]["entry"].append(
        {"resource": MEDICATION, "search": {"mode": "include"}}
    )
    body = hook_request("order-sign", pid, prefetch, {"draftOrders": _reference_order(pid)})
    (card,) = h.post(SIGN, body).json()["cards"]
    assert card["source"]["topic"]["code"] == "alert.gcsf-during-crs"
    assert not any("Medication/" in str(r.url) for r in h.ehr.seen)  # nothing fetched


def test_medication_reference_is_read_from_the_fhir_server() -> None:
    h, pid, prefetch = _day10_case_3()
    h.ehr.fhir["Medication/med-gcsf"] = MEDICATION
    body = hook_request("order-sign", pid, prefetch, {"draftOrders": _reference_order(pid)})
    (card,) = h.post(SIGN, body).json()["cards"]
    assert card["source"]["topic"]["code"] == "alert.gcsf-during-crs"
    (read,) = [r for r in h.ehr.seen if str(r.url).endswith("/Medication/med-gcsf")]
    assert read.headers["authorization"] == "Bearer some-opaque-fhir-access-token"


def test_an_unidentifiable_draft_order_gets_the_info_card() -> None:
    h, pid, prefetch = _day10_case_3()  # Medication/med-gcsf: 404 on the FHIR server
    body = hook_request("order-sign", pid, prefetch, {"draftOrders": _reference_order(pid)})
    r = h.post(SIGN, body)
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    assert card["indicator"] == "info"
    assert "could not identify the medication of a draft order" in card["summary"]
    assert "Medication/med-gcsf" in card["detail"] and "not in the data given" in card["detail"]


def test_a_trailing_slash_audience_is_refused(harness: Harness) -> None:
    course = review_course(1)
    body = hook_request("patient-view", course.patient.id, split_prefetch(course.as_of(20)))
    path = "/cds-services/cart-cytopenia-patient-view"
    token = harness.ehr.token(BASE + path + "/")
    r = harness.client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert "'aud'" in r.text
    assert harness.post(path, body).status_code == 200  # the exact endpoint URL


def test_card_markdown_has_no_html_entities() -> None:
    course = review_course(1)
    h = make_harness(course.infusion_date + dt.timedelta(days=60))
    body = hook_request("patient-view", course.patient.id, split_prefetch(course.as_of(60)))
    cards = h.post("/cds-services/cart-cytopenia-patient-view", body).json()["cards"]
    details = "\n".join(c["detail"] for c in cards)
    assert "&gt;" not in details and "&lt;" not in details and "&amp;" not in details
    assert "CD4 > 200/uL" in details


def test_the_labs_prefetch_returns_blood_count_panels_and_their_components_are_read() -> None:
    labs = prefetch_templates()["labs"]
    for panel in ("58410-2", "57021-8"):
        assert f"http://loinc.org|{panel}" in labs
    # a CBC stored as one panel Observation with components, as many EHRs return it
    panel = {
        "resourceType": "Observation",
        "id": "cbc-1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "58410-2"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-01-20",
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "26515-7"}]},
                "valueQuantity": {
                    "value": 35,
                    "unit": "K/uL",
                    "system": "http://unitsofmeasure.org",
                    "code": "10*3/uL",
                },
            }
        ],
    }
    result = import_text(json.dumps(panel))
    assert not any(u.resource.startswith("Observation/cbc-1") for u in result.unmapped)


def test_conflicting_versions_in_the_prefetch_give_a_warning_card_not_guidance() -> None:
    course = review_course(1)
    h = make_harness(course.infusion_date + dt.timedelta(days=20))
    prefetch = split_prefetch(course.as_of(20))
    entries = prefetch["labs"]["entry"]
    changed = copy.deepcopy(next(e for e in entries if "valueQuantity" in e["resource"]))
    changed["resource"]["valueQuantity"]["value"] += 1  # same id, other value, no lastUpdated
    entries.append(changed)
    body = hook_request("patient-view", course.patient.id, prefetch)
    r = h.post("/cds-services/cart-cytopenia-patient-view", body)
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    assert card["indicator"] == "warning" and "conflicting versions" in card["summary"]
    assert f"Observation/{changed['resource']['id']}" in card["detail"]


def test_a_medication_the_fhir_server_refuses_is_named_with_why() -> None:
    h, pid, prefetch = _day10_case_3()
    h.ehr.fhir["Medication/med-gcsf"] = 403
    body = hook_request("order-sign", pid, prefetch, {"draftOrders": _reference_order(pid)})
    (card,) = h.post(SIGN, body).json()["cards"]
    assert "could not identify" in card["summary"]
    assert (
        "The FHIR server could not give Medication/med-gcsf: access to this data was refused"
        in card["detail"]
    )
