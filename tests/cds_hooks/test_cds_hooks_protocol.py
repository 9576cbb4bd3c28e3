"""CDS Hooks 2.0 protocol of service/cds_hooks.py: discovery, JWT, CORS, prefetch, feedback.

The clinical content of the cards is tested in test_cds_hooks_cards.py; here the guidance is a
stub so that these tests exercise the protocol only.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cart_cytopenia.grading.assessment import Assessment, assess
from cart_cytopenia.service.cds_hooks import (
    PATIENT_VIEW,
    CdsHooksSettings,
    HookRequest,
    content_key,
    load_cds_settings,
    prefetch_templates,
    render_template,
    request_key,
)
from tests.cds_hooks.conftest import (
    BASE,
    FHIR,
    ISS,
    KID,
    Harness,
    hook_request,
    load_example,
    make_harness,
    review_course,
    split_prefetch,
)

PV = f"/cds-services/{PATIENT_VIEW}"


@dataclass
class StubGuidance:
    assessment: Assessment
    missing_data: list[str] = field(default_factory=list)

    def items(self) -> list[Any]:
        return []

    def ids(self) -> set[str]:
        return set()

    def item(self, _id: str) -> None:
        return None


def stub_evaluate(course: Any, day: int | None = None, settings: Any = None) -> StubGuidance:
    return StubGuidance(assess(course, day, settings))


@pytest.fixture
def h() -> Harness:
    # review case 1: infusion 2022-03-07; "today" is day 30
    return make_harness(dt.date(2022, 4, 6), evaluate=stub_evaluate)


def _case1_day30() -> tuple[str, dict[str, Any]]:
    course = review_course(1).as_of(30)
    return course.patient.id, split_prefetch(course)


# --------------------------------------------------------------------------- discovery


def test_discovery_matches_recorded_example(h: Harness) -> None:
    r = h.client.get("/cds-services", headers=h.ehr.auth("/cds-services"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == load_example("discovery.response.json")


def test_discovery_shape_follows_the_specification(h: Harness) -> None:
    services = h.client.get("/cds-services", headers=h.ehr.auth("/cds-services")).json()["services"]
    assert {s["hook"] for s in services} == {"patient-view", "order-select", "order-sign"}
    for s in services:
        assert {"hook", "description", "id"} <= set(s)
        assert all(v for v in s.values())  # no null or empty values
        for template in s["prefetch"].values():
            assert "{{context.patientId}}" in template


def test_prefetch_templates_render_context_tokens() -> None:
    t = prefetch_templates()
    assert render_template(t["patient"], {"patientId": "123"}) == "Patient/123"
    assert render_template(t["procedures"], {"patientId": "a b"}) == "Procedure?patient=a%20b"
    assert "751-8" in t["labs"] and "8310-5" in t["vitals"]


# --------------------------------------------------------------------------- JWT


def test_missing_or_malformed_token_is_401_with_operation_outcome(h: Harness) -> None:
    r = h.client.get("/cds-services")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["resourceType"] == "OperationOutcome"
    r = h.client.get("/cds-services", headers={"Authorization": "Bearer not-a-jwt"})
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"aud": BASE + "/cds-services/other"}, "aud"),
        ({"iss": "https://evil.example.org"}, "issuer is not trusted"),
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"jti": None}, "jti"),
        ({"iat": None}, "iat"),
        ({"exp": int(time.time()) + 7200}, "too long"),
        ({"headers": {"jku": "https://evil.example.org/jwks"}}, "jku"),
        ({"headers": {"kid": "unknown-key"}}, "kid"),
        ({"headers": {"typ": "JOSE"}}, "typ"),
    ],
)
def test_invalid_tokens_are_refused(h: Harness, change: dict[str, Any], message: str) -> None:
    over = dict(change)
    aud = over.pop("aud", BASE + "/cds-services")
    token = h.ehr.token(aud, **over)
    r = h.client.get("/cds-services", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert message in r.json()["issue"][0]["details"]["text"]


def test_token_signed_by_another_key_is_refused(h: Harness) -> None:
    other = ec.generate_private_key(ec.SECP384R1())
    token = h.ehr.token(BASE + "/cds-services", key=other)
    r = h.client.get("/cds-services", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_symmetric_and_none_algorithms_are_refused(h: Harness) -> None:
    claims = {
        "iss": ISS,
        "aud": BASE + "/cds-services",
        "exp": int(time.time()) + 60,
        "iat": int(time.time()),
        "jti": "x",
    }
    hs = jwt.encode(
        claims, "shared-secret-shared-secret-shared", algorithm="HS256", headers={"kid": KID}
    )
    none = jwt.encode(claims, None, algorithm="none", headers={"kid": KID})
    for token in (hs, none):
        r = h.client.get("/cds-services", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
        assert "not accepted" in r.json()["issue"][0]["details"]["text"]
    with pytest.raises(ValueError, match="asymmetric"):
        CdsHooksSettings(algorithms=["HS256"])


def test_replayed_jti_is_refused(h: Harness) -> None:
    headers = h.ehr.auth("/cds-services")
    assert h.client.get("/cds-services", headers=headers).status_code == 200
    r = h.client.get("/cds-services", headers=headers)
    assert r.status_code == 401 and "replay" in r.json()["issue"][0]["details"]["text"]


def test_jwks_is_fetched_once_and_cached(h: Harness) -> None:
    for _ in range(3):
        assert h.client.get("/cds-services", headers=h.ehr.auth("/cds-services")).status_code == 200
    assert h.ehr.jwks_hits == 1


def test_inline_jwks_and_rs384_without_jku() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    jwk.update({"kid": "rsa-1", "use": "sig", "alg": "RS384"})
    h = make_harness(
        dt.date(2024, 1, 1),
        settings={"issuers": [{"iss": ISS, "jwks": {"keys": [jwk]}}]},
        evaluate=stub_evaluate,
    )
    token = h.ehr.token(
        BASE + "/cds-services", key=rsa_key, headers={"alg": "RS384", "kid": "rsa-1", "jku": None}
    )
    token = jwt.encode(
        jwt.decode(token, options={"verify_signature": False}),
        rsa_key,
        algorithm="RS384",
        headers={"kid": "rsa-1", "typ": "JWT"},
    )
    r = h.client.get("/cds-services", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text


def test_aud_must_be_the_service_endpoint(h: Harness) -> None:
    pid, prefetch = _case1_day30()
    body = hook_request("patient-view", pid, prefetch)
    wrong = {"Authorization": f"Bearer {h.ehr.token(BASE + '/cds-services')}"}
    assert h.client.post(PV, json=body, headers=wrong).status_code == 401
    assert h.post(PV, body).status_code == 200


def test_auth_can_be_disabled_for_local_trials() -> None:
    h = make_harness(dt.date(2024, 1, 1), settings={"require_auth": False}, evaluate=stub_evaluate)
    assert h.client.get("/cds-services").status_code == 200


# --------------------------------------------------------------------------- CORS


def test_cors_preflight_and_headers_for_allowed_origins_only(h: Harness) -> None:
    pre = {"Origin": "https://ehr-web.example.org", "Access-Control-Request-Method": "POST"}
    r = h.client.options(PV, headers=pre)
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "https://ehr-web.example.org"
    assert "Authorization" in r.headers["access-control-allow-headers"]
    assert "POST" in r.headers["access-control-allow-methods"]
    r = h.client.options(PV, headers={**pre, "Origin": "https://evil.example.org"})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    r = h.client.get(
        "/cds-services",
        headers={**h.ehr.auth("/cds-services"), "Origin": "https://ehr-web.example.org"},
    )
    assert r.headers["access-control-allow-origin"] == "https://ehr-web.example.org"
    assert r.headers["vary"] == "Origin"
    # errors carry CORS headers too, so the browser client can read them
    r = h.client.get("/cds-services", headers={"Origin": "https://ehr-web.example.org"})
    assert (
        r.status_code == 401
        and r.headers["access-control-allow-origin"] == "https://ehr-web.example.org"
    )
    with pytest.raises(ValueError, match="refused"):
        CdsHooksSettings(allowed_origins=["*"])


# --------------------------------------------------------------------------- prefetch and FHIR access


def test_patient_without_car_t_gets_no_cards(h: Harness) -> None:
    prefetch = {
        "patient": {"resourceType": "Patient", "id": "x1", "gender": "male"},
        **{k: None for k in prefetch_templates() if k != "patient"},
    }
    r = h.post(PV, hook_request("patient-view", "x1", prefetch))
    assert r.status_code == 200 and r.json() == {"cards": []}


def test_missing_prefetch_without_fhir_access_is_412(h: Harness) -> None:
    r = h.post(PV, hook_request("patient-view", "p1", None, fhir_access=False))
    assert r.status_code == 412
    oo = r.json()
    assert (
        oo["resourceType"] == "OperationOutcome" and "prefetch" in oo["issue"][0]["details"]["text"]
    )


def test_missing_prefetch_is_fetched_from_the_fhir_server_with_the_token(h: Harness) -> None:
    pid, prefetch = _case1_day30()
    for key, template in prefetch_templates().items():
        h.ehr.fhir[render_template(template, {"patientId": pid})] = prefetch[key]
    r = h.post(PV, hook_request("patient-view", pid, None))
    assert r.status_code == 200, r.text
    cards = r.json()["cards"]
    assert cards and "Day 30" in cards[0]["summary"]
    fhir_calls = [q for q in h.ehr.seen if str(q.url).startswith(FHIR)]
    assert len(fhir_calls) == len(prefetch_templates())
    assert all(
        q.headers["authorization"] == "Bearer some-opaque-fhir-access-token" for q in fhir_calls
    )


def test_paginated_prefetch_pages_are_followed_on_the_same_server(h: Harness) -> None:
    pid, prefetch = _case1_day30()
    labs = prefetch["labs"]
    first, rest = labs["entry"][:10], labs["entry"][10:]
    prefetch["labs"] = {
        **labs,
        "entry": first,
        "link": [{"relation": "next", "url": f"{FHIR}/Observation?page=2"}],
    }
    h.ehr.fhir["Observation?page=2"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": rest,
    }
    r = h.post(PV, hook_request("patient-view", pid, prefetch))
    assert r.status_code == 200
    assert "Observation?page=2" in [str(q.url).removeprefix(FHIR + "/") for q in h.ehr.seen]
    # the same data without paging give the same cards
    pid, full = _case1_day30()
    r2 = h.post(PV, hook_request("patient-view", pid, full))
    assert [c["summary"] for c in r.json()["cards"]] == [c["summary"] for c in r2.json()["cards"]]


@pytest.mark.parametrize("failure", [500, 401, "timeout"])
def test_fhir_server_failure_gives_a_clear_card(h: Harness, failure: Any) -> None:
    pid, prefetch = _case1_day30()
    del prefetch["medicationRequests"]
    template = prefetch_templates()["medicationRequests"]
    h.ehr.fhir[render_template(template, {"patientId": pid})] = failure
    r = h.post(PV, hook_request("patient-view", pid, prefetch))
    assert r.status_code == 200
    (card,) = r.json()["cards"]
    assert card["indicator"] == "warning"
    assert "could not read" in card["summary"]
    assert "medicationRequests" in card["detail"]


def test_fhir_server_failure_as_412_when_configured() -> None:
    h = make_harness(
        dt.date(2022, 4, 6), settings={"unavailable_as_card": False}, evaluate=stub_evaluate
    )
    pid, prefetch = _case1_day30()
    del prefetch["procedures"]
    h.ehr.fhir[render_template(prefetch_templates()["procedures"], {"patientId": pid})] = 503
    assert h.post(PV, hook_request("patient-view", pid, prefetch)).status_code == 412


def test_plain_http_fhir_server_is_refused(h: Harness) -> None:
    pid, prefetch = _case1_day30()
    del prefetch["procedures"]
    body = hook_request("patient-view", pid, prefetch)
    body["fhirServer"] = "http://ehr.example.org/fhir"
    r = h.post(PV, body)
    assert r.status_code == 400 and "https" in r.json()["issue"][0]["details"]["text"]


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda b: b.pop("hookInstance"), 400),
        (lambda b: b.update(hook="order-sign"), 400),
        (lambda b: b["context"].pop("patientId"), 400),
        (lambda b: b["fhirAuthorization"].update(token_type="MAC"), 400),
    ],
)
def test_invalid_requests_are_400(h: Harness, mutate: Any, status: int) -> None:
    pid, prefetch = _case1_day30()
    body = hook_request("patient-view", pid, prefetch)
    mutate(body)
    r = h.post(PV, body)
    assert r.status_code == status
    assert r.json()["resourceType"] == "OperationOutcome"


def test_unknown_service_is_404(h: Harness) -> None:
    r = h.post("/cds-services/nope", hook_request("patient-view", "p", None))
    assert r.status_code == 404


def test_cards_are_memoised_by_content_with_fresh_uuids(h: Harness) -> None:
    pid, prefetch = _case1_day30()
    a = h.post(PV, hook_request("patient-view", pid, prefetch)).json()["cards"]
    b = h.post(PV, hook_request("patient-view", pid, prefetch)).json()["cards"]
    assert [c["summary"] for c in a] == [c["summary"] for c in b]
    assert {c["uuid"] for c in a}.isdisjoint({c["uuid"] for c in b})
    assert h.router.state["stats"]["cache_hits"] == 1
    # a changed value is a different key
    prefetch["labs"]["entry"][-1]["resource"]["valueQuantity"]["value"] += 1
    h.post(PV, hook_request("patient-view", pid, prefetch))
    assert h.router.state["stats"]["cache_hits"] == 1


def test_memo_keys_on_the_patient_and_data_not_on_who_asked(h: Harness) -> None:
    pid, prefetch = _case1_day30()
    a = h.post(PV, hook_request("patient-view", pid, prefetch)).json()["cards"]
    other_user = hook_request(
        "patient-view",
        pid,
        prefetch,
        context={"userId": "Practitioner/another", "encounterId": "e-2"},
    )
    other_user["fhirAuthorization"]["access_token"] = "another-users-token"
    b = h.post(PV, other_user).json()["cards"]
    assert [c["summary"] for c in a] == [c["summary"] for c in b]
    assert h.router.state["stats"]["cache_hits"] == 1
    # the same body again is answered by its content key without parsing
    h.post(PV, other_user)
    assert h.router.state["stats"]["cache_hits"] == 2
    # another patient with the same data is not the same answer
    h.post(PV, hook_request("patient-view", "someone-else", prefetch))
    assert h.router.state["stats"]["cache_hits"] == 2


def test_new_lab_result_computes_afresh_validating_only_the_new_resource(h: Harness) -> None:
    pid, prefetch = _case1_day30()
    engine = h.router.state["engine"]
    h.post(PV, hook_request("patient-view", pid, prefetch))
    validated = engine.models.misses
    assert validated == len(engine.models) > 50
    new = json.loads(json.dumps(prefetch["labs"]["entry"][-1]))
    new["resource"]["id"] += "-new"
    new["fullUrl"] += "-new"
    new["resource"]["valueQuantity"]["value"] += 1
    prefetch["labs"]["entry"].append(new)
    r = h.post(PV, hook_request("patient-view", pid, prefetch))
    assert r.status_code == 200 and r.json()["cards"]
    assert h.router.state["stats"]["cache_hits"] == 0
    assert engine.models.misses == validated + 1


def test_resource_cache_can_be_switched_off() -> None:
    h = make_harness(
        dt.date(2022, 4, 6), settings={"resource_cache_entries": 0}, evaluate=stub_evaluate
    )
    pid, prefetch = _case1_day30()
    assert h.router.state["engine"].models is None
    assert h.post(PV, hook_request("patient-view", pid, prefetch)).json()["cards"]


def test_request_key_with_fetching_depends_on_server_context_and_token() -> None:
    def key(body: dict[str, Any], fetches: bool) -> str:
        return request_key(HookRequest.model_validate(body), "x", fetches=fetches)

    a = hook_request("patient-view", "p", None)
    b = hook_request("patient-view", "p", None, context={"userId": "Practitioner/other"})
    assert key(a, False) == key(b, False)  # prefetch complete: who asked does not matter
    assert key(a, True) != key(b, True)  # fetched: the context renders the queries
    c = json.loads(json.dumps(a))
    c["fhirAuthorization"]["access_token"] = "another-token"
    assert key(a, False) == key(c, False) and key(a, True) != key(c, True)
    assert key(a, False) != request_key(HookRequest.model_validate(a), "y", fetches=False)
    # order-select / order-sign: the draft orders and the selections are part of the key
    draft = {"resourceType": "Bundle", "type": "collection", "entry": []}
    d1 = hook_request("order-select", "p", None, context={"draftOrders": draft, "selections": []})
    d2 = json.loads(json.dumps(d1))
    d2["context"]["selections"] = ["MedicationRequest/m1"]
    d3 = json.loads(json.dumps(d1))
    d3["context"]["draftOrders"]["type"] = "batch"
    assert len({key(d1, False), key(d2, False), key(d3, False)}) == 3


def test_engine_fetches_when_a_prefetch_key_is_missing_or_incomplete(h: Harness) -> None:
    engine = h.router.state["engine"]
    pid, prefetch = _case1_day30()

    def fetches(pf: dict[str, Any] | None) -> bool:
        return bool(
            engine.fetches(HookRequest.model_validate(hook_request("patient-view", pid, pf)))
        )

    assert not fetches(prefetch)
    assert not fetches({**prefetch, "procedures": None})  # the EHR has none: nothing to fetch
    assert fetches(None)
    assert fetches({k: v for k, v in prefetch.items() if k != "labs"})
    outcome = {"resourceType": "OperationOutcome", "issue": []}
    assert fetches({**prefetch, "labs": outcome})
    paged = {**prefetch["labs"], "link": [{"relation": "next", "url": FHIR + "/page2"}]}
    assert fetches({**prefetch, "labs": paged})


def test_content_key_ignores_hook_instance_and_token_only() -> None:
    a = json.dumps(hook_request("patient-view", "p", {"patient": None})).encode()
    b = json.dumps(hook_request("patient-view", "p", {"patient": None})).encode()
    c = json.dumps(hook_request("patient-view", "q", {"patient": None})).encode()
    assert a != b and content_key(a) == content_key(b) != content_key(c)


# --------------------------------------------------------------------------- feedback


def test_feedback_accepted_and_overridden_are_recorded(h: Harness) -> None:
    pid, prefetch = _case1_day30()
    cards = h.post(PV, hook_request("patient-view", pid, prefetch)).json()["cards"]
    example = load_example("feedback.overridden.request.json")
    example["feedback"][0]["card"] = cards[0]["uuid"]
    r = h.post(PV + "/feedback", example)
    assert r.status_code == 200
    (rec,) = h.feedback
    assert rec.outcome == "overridden" and rec.card == cards[0]["uuid"]
    assert rec.item == "assessment" and rec.patient == pid
    assert rec.override_reason is not None and "override-clinical-judgement" in rec.override_reason
    assert rec.comment_given and rec.client == ISS

    accepted = load_example("feedback.accepted.request.json")
    assert h.post(PV + "/feedback", accepted).status_code == 200
    assert h.feedback[-1].outcome == "accepted" and h.feedback[-1].accepted == (
        "e56e1945-20b3-4393-8503-a1a20fd73152",
    )
    assert h.feedback[-1].item is None  # a card this service did not issue


def test_feedback_validation(h: Harness) -> None:
    bad = {
        "feedback": [
            {"card": "x", "outcome": "accepted", "outcomeTimestamp": "2024-01-01T00:00:00Z"}
        ]
    }
    r = h.post(PV + "/feedback", bad)
    assert r.status_code == 400 and "acceptedSuggestions" in r.json()["issue"][0]["details"]["text"]
    assert h.post(PV + "/feedback", {"feedback": []}).status_code == 400
    assert h.feedback == []


def test_feedback_audience_may_be_the_service_url(h: Harness) -> None:
    body = load_example("feedback.accepted.request.json")
    token = h.ehr.token(BASE + PV)
    r = h.client.post(PV + "/feedback", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200


# --------------------------------------------------------------------------- settings


def test_settings_from_toml_and_environment(tmp_path: Any) -> None:
    f = tmp_path / "cds.toml"
    f.write_text(
        '[cds_hooks]\npublic_url = "https://cds.example.org"\n'
        '[[cds_hooks.issuers]]\niss = "https://ehr.example.org"\njwks_url = "https://ehr.example.org/jwks"\n'
    )
    s = load_cds_settings(
        f,
        env={
            "CART_CYTOPENIA_CDS_ALLOWED_ORIGINS": '["https://a.example.org"]',
            "CART_CYTOPENIA_CDS_MAX_CARDS": "4",
        },
    )
    assert (
        s.public_url == "https://cds.example.org"
        and s.issuers[0].jwks_url == "https://ehr.example.org/jwks"
    )
    assert s.allowed_origins == ["https://a.example.org"] and s.max_cards == 4


@pytest.mark.parametrize("limit", [1, 0])
def test_calls_with_new_data_are_computed_one_at_a_time(limit: int) -> None:
    import asyncio
    import threading

    import httpx

    running: list[int] = [0, 0]  # now, most at once
    lock = threading.Lock()

    def slow_evaluate(course: Any, day: int | None = None, settings: Any = None) -> StubGuidance:
        with lock:
            running[0] += 1
            running[1] = max(running)
        time.sleep(0.15)
        with lock:
            running[0] -= 1
        return stub_evaluate(course, day, settings)

    h = make_harness(
        dt.date(2022, 4, 6), settings={"compute_concurrency": limit}, evaluate=slow_evaluate
    )
    pid, prefetch = _case1_day30()
    bodies = [hook_request("patient-view", f"{pid}", prefetch) for _ in range(4)]
    for i, b in enumerate(bodies):  # new data in each: a different value of the last lab
        b["prefetch"] = json.loads(json.dumps(prefetch))
        b["prefetch"]["labs"]["entry"][-1]["resource"]["valueQuantity"]["value"] += i + 1

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=h.client.app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
            return await asyncio.gather(
                *(c.post(PV, json=b, headers=h.ehr.auth(PV)) for b in bodies)
            )

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 4
    assert running[0] == 0
    assert running[1] == 1 if limit == 1 else running[1] > 1  # 0: no limit


def test_concurrent_identical_calls_are_computed_once() -> None:
    import asyncio

    import httpx

    calls: list[int] = []

    def slow_evaluate(course: Any, day: int | None = None, settings: Any = None) -> StubGuidance:
        calls.append(1)
        time.sleep(0.2)
        return stub_evaluate(course, day, settings)

    h = make_harness(dt.date(2022, 4, 6), evaluate=slow_evaluate)
    pid, prefetch = _case1_day30()
    body = hook_request("patient-view", pid, prefetch)

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=h.client.app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
            return await asyncio.gather(
                *(c.post(PV, json=body, headers=h.ehr.auth(PV)) for _ in range(5))
            )

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 5
    assert len(calls) == 1
    summaries = {r.json()["cards"][0]["summary"] for r in responses}
    assert len(summaries) == 1


def test_startup_freezes_long_lived_objects_for_short_gc_pauses() -> None:
    import gc

    h = make_harness(dt.date(2024, 1, 1), evaluate=stub_evaluate)
    gc.unfreeze()
    try:
        with h.client:  # runs the application's lifespan (startup)
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    off = make_harness(dt.date(2024, 1, 1), settings={"gc_freeze": False}, evaluate=stub_evaluate)
    with off.client:
        assert gc.get_freeze_count() == 0


def test_startup_raises_the_young_gc_threshold_and_shutdown_restores_it() -> None:
    import gc

    before = gc.get_threshold()
    h = make_harness(
        dt.date(2024, 1, 1),
        settings={"gc_freeze": False, "gc_young_threshold": 40_000},
        evaluate=stub_evaluate,
    )
    with h.client:
        assert gc.get_threshold() == (40_000, *before[1:])
    assert gc.get_threshold() == before
    off = make_harness(
        dt.date(2024, 1, 1),
        settings={"gc_freeze": False, "gc_young_threshold": 0},
        evaluate=stub_evaluate,
    )
    with off.client:
        assert gc.get_threshold() == before


def test_unreadable_draft_order_is_said_not_silently_skipped(h: Harness) -> None:
    pid, prefetch = _case1_day30()
    bad = {
        "resourceType": "MedicationRequest",
        "id": "bad1",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": "oops"},
    }
    body = hook_request(
        "order-select",
        pid,
        prefetch,
        {
            "selections": ["MedicationRequest/bad1"],
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": bad}],
            },
        },
    )
    r = h.post("/cds-services/cart-cytopenia-order-select", body)
    (card,) = r.json()["cards"]
    assert (
        "could not read a draft order" in card["summary"]
        and "MedicationRequest/bad1" in card["detail"]
    )


def test_service_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from cart_cytopenia.rules.settings import Settings
    from cart_cytopenia.service.cds_hooks import router_from_context

    ctx = SimpleNamespace(clinical=Settings(), today=lambda: dt.date(2024, 1, 1), db=None)
    monkeypatch.setenv("CART_CYTOPENIA_CDS_ENABLED", "false")
    assert router_from_context(ctx).routes == []
    monkeypatch.setenv("CART_CYTOPENIA_CDS_ENABLED", "true")
    assert any(getattr(r, "path", "") == "/cds-services" for r in router_from_context(ctx).routes)


def test_hashing_parsing_and_signature_checks_run_off_the_event_loop(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hook body (up to max_request_bytes) is hashed and parsed, and the caller's JWT
    signature checked, in the thread pool: none of it blocks the event loop."""
    import asyncio

    from cart_cytopenia.service.cds_hooks import auth, router

    on_loop: dict[str, bool] = {}

    def watched(name: str, fn: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                asyncio.get_running_loop()
                on_loop[name] = True
            except RuntimeError:
                on_loop.setdefault(name, False)
            return fn(*args, **kwargs)

        return run

    monkeypatch.setattr(router, "content_key", watched("hash", router.content_key))
    monkeypatch.setattr(router, "parse_body", watched("parse", router.parse_body))
    monkeypatch.setattr(auth.jwt, "decode", watched("jwt", auth.jwt.decode))
    pid, prefetch = _case1_day30()
    assert h.post(PV, hook_request("patient-view", pid, prefetch)).status_code == 200
    accepted = load_example("feedback.accepted.request.json")
    assert h.post(PV + "/feedback", accepted).status_code == 200
    assert on_loop == {"hash": False, "parse": False, "jwt": False}
