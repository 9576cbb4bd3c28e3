"""FHIR through the API (service/fhir_api.py) and CDS Hooks inside the full application."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle

from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.io.fhir_export import course_to_bundle
from cart_cytopenia.service.cds_hooks import FeedbackRecord, store_feedback_sink
from cart_cytopenia.store import audit
from tests.conftest import EXAMPLES
from tests.service.conftest import Service, login, make_service


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = make_service(tmp_path)
    yield svc
    svc.db.dispose()


def _bundle(n: int = 2, pid: str | None = None) -> dict[str, object]:
    course = parse_course((EXAMPLES / f"review-case-{n}.json").read_text())
    if pid:
        course = course.model_copy(
            update={"patient": course.patient.model_copy(update={"id": pid})}
        )
    return course_to_bundle(course, "transaction")


def test_import_returns_courses_and_report_without_storing(service: Service) -> None:
    client = service.client()
    r = client.post(
        "/api/v1/fhir/import",
        content=json.dumps(_bundle()),
        headers={**service.auth("read-only"), "Content-Type": "application/fhir+json"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["patient"]["id"] for c in body["courses"]] == ["review-case-2"]
    assert body["report"]["unmapped"] == [] and "stored" not in body


def test_import_and_store_needs_clinician_and_is_audited(service: Service) -> None:
    client = service.client()
    doc = json.dumps(_bundle(3, "fhir-patient-9"))
    r = client.post(
        "/api/v1/fhir/import?store=true", content=doc, headers=service.auth("read-only")
    )
    assert r.status_code == 403
    r = client.post(
        "/api/v1/fhir/import?store=true", content=doc, headers=service.auth("clinician")
    )
    assert r.status_code == 200, r.text
    (stored,) = r.json()["stored"]
    assert stored["pseudonym"] == "fhir-patient-9"
    with service.db.session() as s:
        events = audit.entries(s, patient_id=stored["patient_id"])
        assert any(
            e.action == "create" and e.resource == "course" and e.channel == "api" for e in events
        )
    # the stored course exports back to FHIR, and its assessment too
    r = client.get(f"/api/v1/courses/{stored['course_id']}/fhir", headers=service.auth("read-only"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    Bundle.model_validate(r.json())
    r = client.get(
        f"/api/v1/courses/{stored['course_id']}/fhir/assessment?day=45",
        headers=service.auth("read-only"),
    )
    assert r.status_code == 200
    bundle = r.json()
    Bundle.model_validate(bundle)
    kinds = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert {"Patient", "Observation", "RequestGroup"} <= kinds
    group = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "RequestGroup"
    )
    assert group["intent"] == "proposal"


def test_import_errors_are_problem_details(service: Service) -> None:
    client = service.client()
    r = client.post("/api/v1/fhir/import", content=b"{not json", headers=service.auth("read-only"))
    assert r.status_code in (400, 422) and r.headers["content-type"].startswith(
        "application/problem+json"
    )
    no_infusion = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": {"resourceType": "Patient", "id": "x"}}],
    }
    r = client.post(
        "/api/v1/fhir/import", content=json.dumps(no_infusion), headers=service.auth("read-only")
    )
    assert (
        r.status_code == 422 and "no CAR-T infusion" in r.json()["report"]["failed"][0]["message"]
    )
    # the same resource twice with different content (issue 13): refused, naming it
    bundle = _bundle()
    entries = bundle["entry"]
    assert isinstance(entries, list)
    entries.append({"resource": {**entries[0]["resource"], "gender": "other"}})
    r = client.post(
        "/api/v1/fhir/import", content=json.dumps(bundle), headers=service.auth("read-only")
    )
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert "conflicting versions" in r.text and entries[0]["resource"]["id"] in r.text


def test_code_system_route(service: Service) -> None:
    r = service.client().get(
        "/api/v1/fhir/CodeSystem/cart-cytopenia", headers=service.auth("read-only")
    )
    assert r.status_code == 200 and r.json()["resourceType"] == "CodeSystem"


def test_patient_page_link_of_cds_cards(service: Service) -> None:
    client = service.client()
    r = client.get("/fhir/patient-page/wl-neutropenic")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    login(client, "rita")
    r = client.get("/fhir/patient-page/wl-neutropenic")
    assert r.status_code == 303
    assert r.headers["location"] == f"/patients/{service.patients['wl-neutropenic']}"
    assert client.get("/fhir/patient-page/unknown-patient").status_code == 404


def test_cds_services_are_served_by_the_application(service: Service) -> None:
    # no trusted issuer configured: discovery is refused, as authentication is required
    r = service.client().get("/cds-services")
    assert r.status_code == 401 and r.json()["resourceType"] == "OperationOutcome"


def test_feedback_sink_writes_the_audit_log_without_free_text(service: Service) -> None:
    import datetime as dt

    sink = store_feedback_sink(service.db)
    sink(
        FeedbackRecord(
            service="cart-cytopenia-patient-view",
            card="9368d37b-283f-44a0-93ea-547cebab93ed",
            outcome="overridden",
            outcome_timestamp=dt.datetime(2024, 6, 1, 10, 0, tzinfo=dt.UTC),
            client="https://ehr.example.org",
            item="management.gcsf.start",
            patient="wl-neutropenic",
            override_reason="https://cart-cytopenia.org/fhir/CodeSystem/cart-cytopenia|override-clinical-judgement",
            comment_given=True,
        )
    )
    with service.db.session() as s:
        (e,) = [x for x in audit.entries(s) if x.resource == "cds-feedback"]
    assert e.channel == "cds-hooks" and e.outcome == "overridden"
    assert e.patient_id == service.patients["wl-neutropenic"]
    assert e.detail is not None and "management.gcsf.start" in e.detail and "not stored" in e.detail
