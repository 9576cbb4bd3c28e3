"""The JSON API (service/api.py): auth per route, problem details, locking, audit."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from cart_cytopenia.store import audit
from tests.conftest import EXAMPLES
from tests.service.conftest import Service

PROBLEM = "application/problem+json"

# every API route with the lowest role allowed to use it; test_every_route_is_covered keeps
# this table complete
ROUTES: list[tuple[str, str, str]] = [
    ("GET", "/api/v1/me", "read-only"),
    ("GET", "/api/v1/worklist", "read-only"),
    ("GET", "/api/v1/patients", "read-only"),
    ("GET", "/api/v1/patients/{patient_id}", "read-only"),
    ("GET", "/api/v1/patients/{patient_id}/courses", "read-only"),
    ("POST", "/api/v1/courses", "clinician"),
    ("GET", "/api/v1/courses/{course_id}", "read-only"),
    ("PUT", "/api/v1/courses/{course_id}", "clinician"),
    ("DELETE", "/api/v1/courses/{course_id}", "admin"),
    ("POST", "/api/v1/courses/{course_id}/status", "clinician"),
    ("GET", "/api/v1/courses/{course_id}/observations", "read-only"),
    ("POST", "/api/v1/courses/{course_id}/observations", "clinician"),
    ("DELETE", "/api/v1/courses/{course_id}/observations/{observation_id}", "clinician"),
    ("GET", "/api/v1/courses/{course_id}/events", "read-only"),
    ("POST", "/api/v1/courses/{course_id}/events", "clinician"),
    ("DELETE", "/api/v1/courses/{course_id}/events/{event_id}", "clinician"),
    ("GET", "/api/v1/courses/{course_id}/assessment", "read-only"),
    ("GET", "/api/v1/courses/{course_id}/timeline.svg", "read-only"),
    ("GET", "/api/v1/courses/{course_id}/guidance/actions", "read-only"),
    ("POST", "/api/v1/courses/{course_id}/guidance/{item_id}/actions", "clinician"),
    ("POST", "/api/v1/cohort/grade", "read-only"),
    ("GET", "/api/v1/users", "admin"),
    ("POST", "/api/v1/users", "admin"),
    ("GET", "/api/v1/audit", "admin"),
    ("POST", "/api/v1/fhir/import", "read-only"),
    ("GET", "/api/v1/fhir/CodeSystem/cart-cytopenia", "read-only"),
    ("GET", "/api/v1/courses/{course_id}/fhir", "read-only"),
    ("GET", "/api/v1/courses/{course_id}/fhir/assessment", "read-only"),
]
PUBLIC = {("GET", "/api/v1/openapi.json"), ("GET", "/api/v1/problems")}
LOWER = {"clinician": "read-only", "admin": "clinician"}


def _url(service: Service, path: str) -> str:
    cid = service.courses["wl-neutropenic"]
    return path.format(
        patient_id=service.patients["wl-neutropenic"],
        course_id=cid,
        observation_id=1,
        event_id=1,
        item_id="management.gcsf.start",
    )


def _assert_problem(r: Any, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["type"].endswith("#" + slug)
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


def test_every_route_is_covered(service: Service) -> None:
    """Every /api/v1 route the app publishes is in ROUTES, so each is tested for 401/403."""
    schema = service.client().get("/api/v1/openapi.json").json()
    published = {
        (method.upper(), path)
        for path, ops in schema["paths"].items()
        if path.startswith("/api/v1")
        for method in ops
    }
    assert published - PUBLIC == {(m, p) for m, p, _ in ROUTES}


@pytest.mark.parametrize(("method", "path", "role"), ROUTES)
def test_unauthorised_without_or_with_a_bad_token(
    service: Service, method: str, path: str, role: str
) -> None:
    client = service.client()
    r = client.request(method, _url(service, path))
    _assert_problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = client.request(method, _url(service, path), headers={"Authorization": "Bearer cct_nope"})
    _assert_problem(r, 401, "unauthorized")


@pytest.mark.parametrize(("method", "path", "role"), ROUTES)
def test_forbidden_below_the_route_role(
    service: Service, method: str, path: str, role: str
) -> None:
    client = service.client()
    if role == "read-only":
        # every role may read; a deactivated account's token is refused outright
        from cart_cytopenia.store import accounts

        with service.db.transaction() as s:
            user = accounts.get_user_by_name(s, "rita")
            assert user is not None
            accounts.set_active(s, user, False)
        r = client.request(method, _url(service, path), headers=service.auth("read-only"))
        _assert_problem(r, 401, "unauthorized")
        return
    r = client.request(method, _url(service, path), headers=service.auth(LOWER[role]))
    body = _assert_problem(r, 403, "forbidden")
    assert role in body["detail"]


def test_openapi_is_published(service: Service) -> None:
    r = service.client().get("/api/v1/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert "/api/v1/courses/{course_id}/assessment" in paths
    assert "/worklist" not in paths  # pages are not API
    types = service.client().get("/api/v1/problems").json()
    assert {"input-error", "conflict", "unauthorized", "forbidden"} <= set(types)


def test_course_round_trip_and_etag(service: Service) -> None:
    client = service.client()
    doc = (EXAMPLES / "review-case-2.json").read_text()
    r = client.post(
        "/api/v1/courses",
        content=doc,
        headers={**service.auth("clinician"), "Content-Type": "application/json"},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert r.headers["location"] == f"/api/v1/courses/{created['id']}"
    assert created["version"] == 1
    r = client.get(f"/api/v1/courses/{created['id']}", headers=service.auth("read-only"))
    assert r.headers["etag"] == '"1"'
    assert r.json()["document"]["patient"]["id"] == "review-case-2"
    # the same course again conflicts
    r = client.post(
        "/api/v1/courses",
        content=doc,
        headers={**service.auth("clinician"), "Content-Type": "application/json"},
    )
    _assert_problem(r, 409, "conflict")


def test_invalid_course_is_a_problem_with_locations(service: Service) -> None:
    bad = {
        "patient": {"id": "x1", "disease": "LBCL"},
        "product": {"name": "axi-cel"},
        "infusion_date": "2024-01-10",
        "labs": [{"day": 3, "analyte": "anc", "value": 300, "unit": "furlongs"}],
    }
    r = service.client().post("/api/v1/courses", json=bad, headers=service.auth("clinician"))
    body = _assert_problem(r, 422, "input-error")
    (err,) = body["errors"]
    assert err["kind"] == "UnitError"
    assert err["location"]["field"] == "labs[0]"
    assert err["location"]["patient_id"] == "x1"
    r = service.client().get("/api/v1/patients", headers=service.auth("read-only"))
    assert "x1" not in {p["pseudonym"] for p in r.json()}


def test_observations_all_or_nothing_and_locking(service: Service) -> None:
    client = service.client()
    cid = service.courses["wl-neutropenic"]
    h = service.auth("clinician")
    good = {"day": 11, "analyte": "anc", "value": 450, "unit": "/uL"}
    bad = {"day": 11, "analyte": "anc", "value": 45_000_000, "unit": "/uL"}
    r = client.post(
        f"/api/v1/courses/{cid}/observations",
        json={"version": 1, "observations": [good, bad]},
        headers=h,
    )
    body = _assert_problem(r, 422, "input-error")
    assert body["errors"][0]["location"] == {
        "patient_id": "wl-neutropenic", "row": 2, "field": "value", "source": "observations",
    }  # fmt: skip
    n_before = len(client.get(f"/api/v1/courses/{cid}/observations", headers=h).json())
    r = client.post(
        f"/api/v1/courses/{cid}/observations",
        json={"version": 1, "observations": [good]},
        headers=h,
    )
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 2
    obs = client.get(f"/api/v1/courses/{cid}/observations", headers=h).json()
    assert len(obs) == n_before + 1
    # a second client still holding version 1 is refused
    r = client.post(
        f"/api/v1/courses/{cid}/observations",
        json={"version": 1, "observations": [good]},
        headers=h,
    )
    body = _assert_problem(r, 409, "conflict")
    assert body["current_version"] == 2
    new_id = max(o["id"] for o in obs)
    r = client.delete(f"/api/v1/courses/{cid}/observations/{new_id}?version=2", headers=h)
    assert r.status_code == 200
    assert r.json()["version"] == 3


def test_replace_needs_a_version(service: Service) -> None:
    client = service.client()
    cid = service.courses["wl-neutropenic"]
    doc = client.get(f"/api/v1/courses/{cid}", headers=service.auth("clinician")).json()["document"]
    r = client.put(f"/api/v1/courses/{cid}", json=doc, headers=service.auth("clinician"))
    assert r.status_code == 428
    r = client.put(
        f"/api/v1/courses/{cid}", json=doc, headers={**service.auth("clinician"), "If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == '"2"'


def test_events_and_status(service: Service) -> None:
    client = service.client()
    cid = service.courses["wl-neutropenic"]
    h = service.auth("clinician")
    r = client.post(
        f"/api/v1/courses/{cid}/events",
        json={
            "events": [
                {
                    "type": "medication",
                    "drug": "filgrastim",
                    "start_day": 10,
                    "dose": 480,
                    "dose_unit": "ug",
                }
            ]
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    events = client.get(f"/api/v1/courses/{cid}/events", headers=h).json()
    assert any(e["event"].get("drug") == "filgrastim" for e in events)
    r = client.post(f"/api/v1/courses/{cid}/status", json={"status": "closed"}, headers=h)
    assert r.json()["status"] == "closed"
    rows = client.get("/api/v1/worklist", headers=h).json()
    assert cid not in {row["course_id"] for row in rows}


def test_assessment_has_grades_guidance_and_sources(service: Service) -> None:
    client = service.client()
    cid = service.courses["wl-neutropenic"]
    r = client.get(f"/api/v1/courses/{cid}/assessment", headers=service.auth("read-only"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["day"] == 10
    anc = next(c for c in body["assessment"]["ctcae"] if c["analyte"] == "anc")
    assert anc["last_value"] == 300
    assert anc["current"]["grade"] == 4
    ids = {i["item"]["id"] for i in body["items"]}
    assert "management.gcsf.start" in ids
    for i in body["items"]:
        assert i["item"]["citation"]
        assert i["item"]["rationale"]
    # as of day 6 (before the G-CSF window) the same course gives no G-CSF start
    r = client.get(f"/api/v1/courses/{cid}/assessment?day=5", headers=service.auth("read-only"))
    assert "management.gcsf.start" not in {i["item"]["id"] for i in r.json()["items"]}
    svg = client.get(f"/api/v1/courses/{cid}/timeline.svg", headers=service.auth("read-only"))
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg")


def test_acknowledgement_closes_the_item(service: Service) -> None:
    client = service.client()
    cid = service.courses["wl-neutropenic"]
    url = f"/api/v1/courses/{cid}/guidance/management.gcsf.start/actions"
    r = client.post(
        url, json={"action": "acknowledged", "reason": ""}, headers=service.auth("clinician")
    )
    _assert_problem(r, 422, "input-error")
    r = client.post(
        url,
        json={"action": "acknowledged", "reason": "filgrastim ordered"},
        headers=service.auth("clinician"),
    )
    assert r.status_code == 201, r.text
    assert r.json()["username"] == "cleo"
    body = client.get(f"/api/v1/courses/{cid}/assessment", headers=service.auth("read-only")).json()
    item = next(i for i in body["items"] if i["item"]["id"] == "management.gcsf.start")
    assert item["handled"] is True
    assert item["handled_by"]["reason"] == "filgrastim ordered"
    row = next(
        r
        for r in client.get("/api/v1/worklist", headers=service.auth("read-only")).json()
        if r["course_id"] == cid
    )
    assert "management.gcsf.start" not in {i["id"] for i in row["open_items"]}
    r = client.post(
        f"/api/v1/courses/{cid}/guidance/no.such.item/actions",
        json={"action": "dismissed", "reason": "x"},
        headers=service.auth("clinician"),
    )
    _assert_problem(r, 404, "not-found")


def test_worklist_row(service: Service) -> None:
    rows = service.client().get("/api/v1/worklist", headers=service.auth("read-only")).json()
    row = next(r for r in rows if r["pseudonym"] == "wl-neutropenic")
    assert row["day"] == 10
    assert row["product"] == "axi-cel"
    assert row["counts"]["anc"]["value"] == 300
    assert row["counts"]["anc"]["grade"] == 4
    assert row["needs_action"] is False  # G-CSF is "consider"; prophylaxis is recorded
    gcsf = next(i for i in row["open_items"] if i["id"] == "management.gcsf.start")
    assert gcsf["urgency"] == "consider"


def test_cohort_grading_of_uploaded_files(service: Service) -> None:
    client = service.client()
    files = {
        "labs": ("labs.csv", (EXAMPLES / "cohort" / "labs.csv").read_bytes(), "text/csv"),
        "patients": (
            "patients.csv",
            (EXAMPLES / "cohort" / "patients.csv").read_bytes(),
            "text/csv",
        ),
    }
    r = client.post("/api/v1/cohort/grade", files=files, headers=service.auth("read-only"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["n_patients"] == len(body["rows"]) > 0
    assert "patient_id" in body["columns"]
    bad = {
        "labs": (
            "mylabs.csv",
            b"patient_id,day,analyte,value,unit\nP1,3,anc,lots,/uL\n",
            "text/csv",
        ),
        "patients": ("pts.csv", b"patient_id\nP1\n", "text/csv"),
    }
    r = client.post("/api/v1/cohort/grade", files=bad, headers=service.auth("read-only"))
    body = _assert_problem(r, 422, "input-error")
    assert "mylabs.csv" in body["detail"]
    assert body["errors"][0]["location"]["row"] == 2
    assert "/tmp" not in r.text


def test_users_and_audit_for_admin(service: Service) -> None:
    client = service.client()
    r = client.post(
        "/api/v1/users",
        json={"username": "newdoc", "password": "short", "role": "clinician"},
        headers=service.auth("admin"),
    )
    body = _assert_problem(r, 422, "input-error")
    # the request schema carries the account rules (OpenAPI documents them): body field named
    assert body["errors"][0]["location"]["field"] == "body:password"
    assert "at least 10 characters" in body["errors"][0]["message"]
    r = client.post(
        "/api/v1/users",
        json={"username": "newdoc", "password": "long enough pass", "role": "clinician"},
        headers=service.auth("admin"),
    )
    assert r.status_code == 201
    cid = service.courses["wl-neutropenic"]
    client.get(f"/api/v1/courses/{cid}", headers=service.auth("read-only"))
    rows = client.get(
        f"/api/v1/audit?patient_id={service.patients['wl-neutropenic']}",
        headers=service.auth("admin"),
    ).json()
    assert any(
        r["username"] == "rita"
        and r["action"] == "read"
        and r["resource"] == "course"
        and r["channel"] == "api"
        for r in rows
    )


def test_every_read_is_audited_and_no_patient_data_reaches_logs(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = service.client()
    cid = service.courses["wl-neutropenic"]
    with service.db.session() as s:
        before = len(audit.entries(s, limit=10_000))
    client.get(f"/api/v1/courses/{cid}/assessment", headers=service.auth("read-only"))
    client.get(f"/api/v1/courses/{cid}/observations", headers=service.auth("read-only"))
    client.post(
        f"/api/v1/courses/{cid}/observations",
        json={"observations": [{"day": 11, "analyte": "anc", "value": 999, "unit": "/uL"}]},
        headers=service.auth("clinician"),
    )
    with service.db.session() as s:
        after = audit.entries(s, limit=10_000)
    assert len(after) - before == 3
    assert {(e.action, e.resource) for e in after[:3]} == {
        ("read", "assessment"),
        ("read", "observation"),
        ("create", "observation"),
    }
    # everything the server side logged (the test client's own httpx log is not the app's)
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert "wl-neutropenic" not in text
    assert "999" not in text
    assert f"/courses/{cid}/" not in text  # route templates only
    assert "/api/v1/courses/{course_id}/assessment" in text


def test_unexpected_errors_are_logged_without_their_message(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    def boom() -> None:
        raise KeyError("wl-neutropenic has ANC 300")

    service.app.add_api_route("/api/v1/boom", boom, include_in_schema=False)  # type: ignore[attr-defined]
    caplog.set_level(logging.INFO)
    r = service.client().get("/api/v1/boom")
    assert r.status_code == 500
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.headers["cache-control"] == "no-store"
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert "unexpected KeyError in GET /api/v1/boom" in text
    assert "wl-neutropenic" not in text
    assert "ANC 300" not in text
