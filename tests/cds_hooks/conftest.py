"""Test harness for the CDS Hooks service: an EHR with its own signing key, JWK Set and FHIR
server (served by an httpx mock transport), and the router on a bare FastAPI app."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette >= 1.x prefers the httpx2 package for its test client; httpx works the same
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from cart_cytopenia.domain.course import Course, parse_course
from cart_cytopenia.io.fhir_export import _with_plain_references, course_to_resources
from cart_cytopenia.rules.settings import Settings
from cart_cytopenia.service.cds_hooks import (
    CdsHooksSettings,
    FeedbackRecord,
    TrustedIssuer,
    create_cds_router,
    prefetch_templates,
)
from tests.conftest import EXAMPLES

HERE = Path(__file__).parent
EXAMPLES_DIR = HERE / "examples"
BASE = "https://cds.example.org"
ISS = "https://ehr.example.org"
JKU = "https://ehr.example.org/.well-known/jwks.json"
FHIR = "https://ehr.example.org/fhir"
KID = "ehr-signing-key-1"


def load_example(name: str) -> Any:
    return json.loads((EXAMPLES_DIR / name).read_text())


def review_course(n: int) -> Course:
    path = EXAMPLES / f"review-case-{n}.json"
    return parse_course(path.read_text(), source=str(path))


def split_prefetch(course: Course) -> dict[str, Any]:
    """A course as the prefetch the EHR would send for our templates (searchset Bundles)."""
    resources = [r for _u, r in _with_plain_references(course_to_resources(course))]
    groups: dict[str, list[dict[str, Any]]] = {
        k: [] for k in prefetch_templates() if k != "patient"
    }
    patient = None
    for r in resources:
        rt = r["resourceType"]
        if rt == "Patient":
            patient = r
            continue
        key = {
            "Condition": "conditions",
            "MedicationRequest": "medicationRequests",
            "MedicationAdministration": "medicationAdministrations",
            "Procedure": "procedures",
        }.get(rt)
        if rt == "Observation":
            cats = {c.get("code") for cc in r.get("category", []) for c in cc.get("coding", [])}
            key = "vitals" if "vital-signs" in cats else "labs"
        assert key is not None, rt
        groups[key].append(r)
    out: dict[str, Any] = {"patient": patient}
    for key, items in groups.items():
        out[key] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(items),
            "entry": [
                {
                    "fullUrl": f"{FHIR}/{r['resourceType']}/{r['id']}",
                    "resource": r,
                    "search": {"mode": "match"},
                }
                for r in items
            ],
        }
    return out


def hook_request(
    hook: str,
    patient_id: str,
    prefetch: dict[str, Any] | None,
    context: dict[str, Any] | None = None,
    fhir_access: bool = True,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hookInstance": str(uuid.uuid4()),
        "hook": hook,
        "context": {
            "userId": "Practitioner/example",
            "patientId": patient_id,
            "encounterId": "89284",
            **(context or {}),
        },
    }
    if fhir_access:
        body["fhirServer"] = FHIR
        body["fhirAuthorization"] = {
            "access_token": "some-opaque-fhir-access-token",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/Patient.read user/Observation.read",
            "subject": "cart-cytopenia",
        }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


@dataclass
class Ehr:
    """The EHR side: signing key, JWK Set, FHIR server content, requests seen."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP384R1())
    )
    fhir: dict[str, Any] = field(default_factory=dict)  # path+query -> JSON (or int status)
    seen: list[httpx.Request] = field(default_factory=list)
    jwks_hits: int = 0

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": KID, "use": "sig", "alg": "ES384"})
        return {"keys": [jwk]}

    def token(self, aud: str | list[str], **over: Any) -> str:
        key = over.pop("key", None) or self.key
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISS,
            "aud": aud,
            "exp": now + 300,
            "iat": now,
            "jti": str(uuid.uuid4()),
            "tenant": "2ddd6c3a-8e9a-44c6-a305-52111ad302a2",
        }
        headers = {"kid": KID, "jku": JKU, "typ": "JWT"}
        headers.update(over.pop("headers", {}))
        claims.update(over)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key, algorithm=headers.pop("alg", "ES384"), headers=headers)

    def auth(self, path: str, **over: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(BASE + path, **over)}"}

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        url = str(request.url)
        if url == JKU:
            self.jwks_hits += 1
            return httpx.Response(200, json=self.jwks())
        if url.startswith(FHIR):
            if request.headers.get("authorization") != "Bearer some-opaque-fhir-access-token":
                return httpx.Response(401)
            rel = url[len(FHIR) + 1 :]
            if rel not in self.fhir:
                return httpx.Response(404)
            value = self.fhir[rel]
            if isinstance(value, int):
                return httpx.Response(value)
            if value == "timeout":
                raise httpx.ReadTimeout("timed out", request=request)
            return httpx.Response(200, json=value)
        return httpx.Response(404)


@dataclass
class Harness:
    ehr: Ehr
    client: TestClient
    feedback: list[FeedbackRecord]
    router: Any

    def post(self, path: str, body: Any, **headers: str) -> httpx.Response:
        return self.client.post(path, json=body, headers={**self.ehr.auth(path), **headers})


def make_harness(
    today: dt.date,
    settings: dict[str, Any] | None = None,
    evaluate: Callable[..., Any] | None = None,
    ehr: Ehr | None = None,
) -> Harness:
    ehr = ehr or Ehr()
    cfg = {
        "issuers": [TrustedIssuer(iss=ISS, jku=[JKU])],
        "allowed_origins": ["https://ehr-web.example.org"],
        **(settings or {}),
    }
    feedback: list[FeedbackRecord] = []
    router = create_cds_router(
        CdsHooksSettings(**cfg),
        clinical=Settings(),
        today=lambda: today,
        evaluate=evaluate,
        feedback=feedback.append,
        transport=httpx.MockTransport(ehr.handler),
    )
    app = FastAPI()
    app.include_router(router)
    return Harness(ehr, TestClient(app, base_url=BASE), feedback, router)


@pytest.fixture
def harness() -> Harness:
    return make_harness(dt.date(2024, 3, 1))
