"""A test EHR for the SMART App Launch: an authorization server and a FHIR R4 server, served
on 127.0.0.1 by the tests (``tests.live_server.serve``).

Its behaviour follows the SMART App Launch 2.0 specification
(https://hl7.org/fhir/smart-app-launch/app-launch.html) and the OAuth 2.0 / PKCE RFCs it builds
on (RFC 6749 section 4.1, RFC 7636):

- ``/fhir/.well-known/smart-configuration``: endpoints, capabilities, ``S256`` only;
- ``/auth/authorize``: a registered ``client_id`` and exact ``redirect_uri`` (else an error page,
  never a redirect), ``response_type=code``, ``state``, ``aud`` = this FHIR base URL, a PKCE S256
  ``code_challenge`` (a request without one is refused), ``launch`` valid for an EHR launch
  (scope ``launch``) or ``launch/patient`` for a standalone launch; the user is taken as signed in
  and consenting (an EHR with single sign-on), so it answers at once with a code and the state;
- ``/auth/token``: the code once only, unexpired (``code_seconds``), with the same redirect URI,
  the client's authentication (public: ``client_id``; confidential: HTTP Basic), and a
  ``code_verifier`` whose S256 hash is the challenge (missing: ``invalid_request``; wrong:
  ``invalid_grant``); answers a bearer token for ``access_seconds``, the granted scope, the
  ``patient`` in context, a refresh token (scope ``online_access``) and an RS256 id_token with
  ``fhirUser`` (scope ``openid fhirUser``); ``grant_type=refresh_token`` gives a new one;
- ``/fhir/...``: reads and searches of the patient's resources with a valid, unexpired token
  whose patient is the one asked for and whose scopes cover the resource type (401 / 403).

Everything it was asked is kept in ``calls`` for the tests to check.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from cart_cytopenia.domain.course import Course
from cart_cytopenia.io.fhir_export import _with_plain_references, course_to_resources

CLIENT_ID = "cart-cytopenia-test"
PRACTITIONER = "Practitioner/dr-lee"


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    patient: str
    expires: float
    used: bool = False


@dataclass
class FakeEhr:
    base: str  # http://127.0.0.1:PORT
    redirect_uris: list[str]
    client_secret: str | None = None  # set: a confidential client
    code_seconds: float = 60
    access_seconds: float = 300
    give_patient: bool = True
    refresh_tokens_given: bool = True
    configuration: dict[str, Any] = field(default_factory=dict)  # overrides of the discovery
    id_token_audience: str = CLIENT_ID
    standalone_patient: str = ""
    resources: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    launches: dict[str, str] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    tokens: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # patient, scope, exp
    refresh_tokens: dict[str, tuple[str, str]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    key: Any = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))

    @property
    def fhir(self) -> str:
        return self.base + "/fhir"

    def add_course(self, course: Course) -> str:
        """The course's FHIR resources on this server; returns the Patient id."""
        pid = ""
        for _url, res in _with_plain_references(course_to_resources(course)):
            self.resources[res["resourceType"]].append(res)
            if res["resourceType"] == "Patient":
                pid = res["id"]
        return pid

    def new_launch(self, patient_id: str) -> str:
        """What the EHR puts in ``launch`` when the clinician opens the app on a patient."""
        token = secrets.token_urlsafe(12)
        self.launches[token] = patient_id
        return token

    def expire_access_tokens(self) -> None:
        self.tokens = {t: (p, s, 0.0) for t, (p, s, _e) in self.tokens.items()}

    def app(self) -> FastAPI:
        app = FastAPI()
        app.add_api_route("/fhir/.well-known/smart-configuration", self.smart_configuration)
        app.add_api_route("/jwks", self.jwks)
        app.add_api_route("/auth/authorize", self.authorize)
        app.add_api_route("/auth/token", self.token, methods=["POST"])
        app.add_api_route("/fhir/Patient/{pid}", self.read_patient)
        app.add_api_route("/fhir/{rtype}", self.search)
        return app

    # ----------------------------------------------------------------- discovery

    def smart_configuration(self) -> dict[str, Any]:
        self.calls.append(("discovery", ""))
        return {**self._configuration(), **self.configuration}

    def _configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.base,
            "jwks_uri": self.base + "/jwks",
            "authorization_endpoint": self.base + "/auth/authorize",
            "token_endpoint": self.base + "/auth/token",
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "scopes_supported": [
                "openid",
                "fhirUser",
                "launch",
                "launch/patient",
                "online_access",
                "patient/*.rs",
            ],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "capabilities": [
                "launch-ehr",
                "launch-standalone",
                "client-public",
                "client-confidential-symmetric",
                "context-ehr-patient",
                "context-standalone-patient",
                "sso-openid-connect",
                "permission-patient",
                "permission-v2",
            ],
        }

    def jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": "ehr-1", "use": "sig", "alg": "RS256"}]}

    # ----------------------------------------------------------------- authorization

    def authorize(self, request: Request) -> Response:
        q = request.query_params
        self.calls.append(("authorize", str(request.url.query)))
        redirect_uri = q.get("redirect_uri", "")
        if q.get("client_id") != CLIENT_ID or redirect_uri not in self.redirect_uris:
            # RFC 6749 4.1.2.1: never redirect to an unverified redirect URI
            return PlainTextResponse("unknown client or redirect_uri", status_code=400)

        def fail(error: str, why: str) -> Response:
            params = {"error": error, "error_description": why, "state": q.get("state", "")}
            return RedirectResponse(redirect_uri + "?" + urlencode(params), status_code=302)

        scopes = q.get("scope", "").split()
        if q.get("response_type") != "code" or not q.get("state"):
            return fail("invalid_request", "response_type code and state are required")
        if q.get("aud", "").rstrip("/") != self.fhir:
            return fail("invalid_request", "aud is not this FHIR server")
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return fail("invalid_request", "PKCE S256 code_challenge is required")
        if "launch" in scopes:
            patient = self.launches.pop(q.get("launch", ""), None)
            if patient is None:
                return fail("invalid_request", "unknown or used launch")
        elif "launch/patient" in scopes and self.standalone_patient:
            patient = self.standalone_patient
        else:
            return fail("invalid_scope", "no launch context asked for")
        code = secrets.token_urlsafe(16)
        self.grants[code] = Grant(
            CLIENT_ID, redirect_uri, q["code_challenge"], " ".join(scopes), patient,
            time.time() + self.code_seconds,
        )  # fmt: skip
        return RedirectResponse(
            redirect_uri + "?" + urlencode({"code": code, "state": q["state"]}), status_code=302
        )

    def _client_ok(self, request: Request, form: Any) -> bool:
        if self.client_secret is None:
            return form.get("client_id") == CLIENT_ID
        expected = base64.b64encode(f"{CLIENT_ID}:{self.client_secret}".encode()).decode()
        return request.headers.get("authorization", "") == f"Basic {expected}"

    async def token(self, request: Request) -> Response:
        form = await request.form()
        grant_type = form.get("grant_type")
        self.calls.append(("token", str(grant_type)))

        def error(code: str, why: str, status: int = 400) -> Response:
            return JSONResponse({"error": code, "error_description": why}, status_code=status)

        if not self._client_ok(request, form):
            return error("invalid_client", "client authentication failed", 401)
        if grant_type == "refresh_token":
            held = self.refresh_tokens.get(str(form.get("refresh_token")))
            if held is None:
                return error("invalid_grant", "unknown refresh token")
            return JSONResponse(self._issue(*held, with_id_token=False))
        if grant_type != "authorization_code":
            return error("unsupported_grant_type", str(grant_type))
        grant = self.grants.get(str(form.get("code")))
        if grant is None or grant.used:
            return error("invalid_grant", "unknown or used code")
        grant.used = True
        if time.time() > grant.expires:
            return error("invalid_grant", "the authorization code has expired")
        if form.get("redirect_uri") != grant.redirect_uri:
            return error("invalid_grant", "redirect_uri differs from the authorization request")
        verifier = form.get("code_verifier")
        if not verifier:
            return error("invalid_request", "code_verifier is missing (PKCE)")
        if s256(str(verifier)) != grant.challenge:
            return error("invalid_grant", "code_verifier does not match the code_challenge")
        return JSONResponse(self._issue(grant.patient, grant.scope, with_id_token=True))

    def _issue(self, patient: str, scope: str, with_id_token: bool) -> dict[str, Any]:
        access = secrets.token_urlsafe(24)
        self.tokens[access] = (patient, scope, time.time() + self.access_seconds)
        out: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(self.access_seconds),
            "scope": scope,
        }
        if self.give_patient:
            out["patient"] = patient
        if "online_access" in scope.split() and self.refresh_tokens_given:
            refresh = secrets.token_urlsafe(24)
            self.refresh_tokens[refresh] = (patient, scope)
            out["refresh_token"] = refresh
        if with_id_token and {"openid", "fhirUser"} <= set(scope.split()):
            now = int(time.time())
            claims = {"iss": self.base, "sub": "dr-lee", "aud": self.id_token_audience, "iat": now,
                      "exp": now + 300, "fhirUser": f"{self.fhir}/{PRACTITIONER}"}  # fmt: skip
            out["id_token"] = jwt.encode(claims, self.key, "RS256", headers={"kid": "ehr-1"})
        return out

    # ----------------------------------------------------------------- FHIR

    def _allowed(self, request: Request, patient: str, rtype: str) -> Response | None:
        header = request.headers.get("authorization", "")
        held = self.tokens.get(header.removeprefix("Bearer "))
        if held is None or held[2] < time.time():
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=401)
        t_patient, scope, _exp = held
        scopes = scope.split()
        if patient != t_patient or not (
            f"patient/{rtype}.rs" in scopes or "patient/*.rs" in scopes
        ):
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=403)
        return None

    def read_patient(self, pid: str, request: Request) -> Response:
        self.calls.append(("read", f"Patient/{pid}"))
        refused = self._allowed(request, pid, "Patient")
        if refused is not None:
            return refused
        found = [r for r in self.resources["Patient"] if r["id"] == pid]
        if not found:
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=404)
        return JSONResponse(found[0], media_type="application/fhir+json")

    def search(self, rtype: str, request: Request) -> Response:
        q = request.query_params
        self.calls.append(("search", rtype))
        patient = q.get("patient", "")
        refused = self._allowed(request, patient, rtype)
        if refused is not None:
            return refused
        wanted = {c.split("|")[-1] for c in q.get("code", "").split(",") if c}

        def matches(r: dict[str, Any]) -> bool:
            subject = (r.get("subject") or r.get("patient") or {}).get("reference", "")
            codes = {c.get("code") for c in (r.get("code") or {}).get("coding", [])}
            return subject == f"Patient/{patient}" and (not wanted or bool(codes & wanted))

        hits = [r for r in self.resources[rtype] if matches(r)]
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(hits),
            "entry": [
                {
                    "fullUrl": f"{self.fhir}/{rtype}/{r['id']}",
                    "resource": r,
                    "search": {"mode": "match"},
                }
                for r in hits
            ],
        }
        return JSONResponse(bundle, media_type="application/fhir+json")
