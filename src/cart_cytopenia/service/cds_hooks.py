"""CDS Hooks 2.0 service: discovery, patient-view, order-select, order-sign, feedback.

Follows https://cds-hooks.hl7.org/2.0/ (docs/interoperability.md has the details):

- ``GET /cds-services`` lists the services with their prefetch templates.
- ``POST /cds-services/{id}`` answers a hook with ``{"cards": [...]}``. Data come from
  ``prefetch``; keys the EHR left out are fetched from ``fhirServer`` with the bearer token of
  ``fhirAuthorization`` (async, timeouts, same server only). Without prefetch and without FHIR
  access the answer is ``412`` with an OperationOutcome (as the specification requires); when the
  FHIR server fails, a card says that the data could not be read and no guidance is shown.
- ``POST /cds-services/{id}/feedback`` records accepted / overridden cards in the audit log.
- Every call is authenticated with the EHR's signed JWT (``Authorization: Bearer``): asymmetric
  algorithms only, ``kid`` looked up in the issuer's JWK Set (``jku`` only when allow-listed),
  ``iss`` allow-listed, ``aud`` = the endpoint called, ``exp``/``iat`` checked, ``jti`` never
  accepted twice.
- CORS for browser-based CDS clients: allow-listed origins only, preflight without credentials.

Results are memoised by what the cards depend on: the patient in context, the prefetch data (and
the draft orders and selections of order-select / order-sign), the day, the clinical settings,
the software version and the service's base URL, not who asked (``userId``, ``encounterId``) or
the ``hookInstance``: a chart opened again with the same data, by anyone, is answered from
memory, a change of any data point computes afresh. Calls that fetch from the FHIR server are not
memoised. When the data changed, only the resources not seen before are validated with the
fhir.resources models again (``resource_cache_entries``). Patient data never reach the
application log.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import gc
import hashlib
import inspect
import json
import logging
import os
import re
import threading
import time
import tomllib
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import httpx
import jwt
from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool

from cart_cytopenia import __version__
from cart_cytopenia.domain.catalogues import DrugClass, resolve_drug
from cart_cytopenia.domain.course import Course, Medication
from cart_cytopenia.errors import CartCytopeniaError, ConflictError, SettingsError
from cart_cytopenia.grading.assessment import Assessment, assess
from cart_cytopenia.io.fhir_cards import (
    INDICATOR,
    md_text,
    message_card,
    override_reasons,
    patient_view_cards,
    short,
    with_uuids,
)
from cart_cytopenia.io.fhir_client import (
    FetchError,
    UnsafeServerError,
    check_server_url,
    fetch_queries,
)
from cart_cytopenia.io.fhir_codes import codes
from cart_cytopenia.io.fhir_draft_orders import (
    MedicationOrder,
    draft_order_raws,
    fetch_medications,
    medication_key,
    medication_orders,
    medications_from,
    missing_medications,
)
from cart_cytopenia.io.fhir_import import (
    FhirImport,
    ModelCache,
    RawResource,
    import_resources,
    resources_from_json,
)
from cart_cytopenia.io.therapy_codes import therapy_codes
from cart_cytopenia.rules.settings import Settings

log = logging.getLogger("cart_cytopenia.cds_hooks")

ENV_PREFIX = "CART_CYTOPENIA_CDS_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"
ASYMMETRIC = (
    "ES256",
    "ES384",
    "ES512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "EdDSA",
)

PATIENT_VIEW = "cart-cytopenia-patient-view"
ORDER_SELECT = "cart-cytopenia-order-select"
ORDER_SIGN = "cart-cytopenia-order-sign"

# --------------------------------------------------------------------------- settings


class TrustedIssuer(BaseModel):
    """A CDS client (EHR) allowed to call: its ``iss`` and where its public keys are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    iss: str = Field(description="The JWT 'iss' of the EHR, exactly")
    jwks_url: str | None = Field(None, description="JWK Set URL agreed out of band")
    jwks: dict[str, Any] | None = Field(None, description="JWK Set given inline (public keys)")
    jku: list[str] = Field(
        default_factory=list,
        description="JWK Set URLs accepted in the JWT 'jku' header for this issuer (exact match)",
    )
    tenant: str | None = Field(None, description="Required JWT 'tenant' claim, if any")


class CdsHooksSettings(BaseModel):
    """Settings of the CDS Hooks service (TOML file ``CART_CYTOPENIA_CDS_CONFIG`` or env)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Serve /cds-services at all")
    require_auth: bool = Field(True, description="Require the EHR's signed JWT on every call")
    public_url: str | None = Field(
        None,
        description="Base URL the EHR calls (https://cds.example.org); used for 'aud' and links. "
        "Default: the URL of the request.",
    )
    issuers: list[TrustedIssuer] = Field(default_factory=list)
    algorithms: list[str] = Field(default_factory=lambda: list(ASYMMETRIC))
    leeway_seconds: int = Field(30, ge=0, le=300)
    max_token_lifetime_seconds: int = Field(
        3600, ge=60, description="Refuse JWTs that stay valid longer than this"
    )
    allowed_origins: list[str] = Field(
        default_factory=list, description="Browser origins allowed by CORS (exact, no wildcard)"
    )
    patient_link: str = Field(
        "{base}/fhir/patient-page/{patient_id}",
        description="Link on every card to the patient in cart-cytopenia ({base}, {patient_id})",
    )
    smart_links: bool = Field(
        False,
        description="The EHR launches SMART app links: cards link with type 'smart' to "
        "{base}/smart/launch (the SMART launch, for patients not in the store too) instead of "
        "patient_link",
    )
    fhir_timeout_seconds: float = Field(5.0, gt=0, le=60)
    fhir_max_pages: int = Field(20, ge=1, le=1000)
    allow_http: bool = Field(
        False, description="Allow plain-http fhirServer / JWKS URLs (local testing only)"
    )
    unavailable_as_card: bool = Field(
        True,
        description="FHIR server failed: answer with a card saying so (true) or HTTP 412 (false)",
    )
    max_cards: int = Field(6, ge=1, le=20)
    cache_entries: int = Field(
        512, ge=0, le=100_000, description="Answers memoised by content (0: none)"
    )
    resource_cache_entries: int = Field(
        30_000,
        ge=0,
        le=1_000_000,
        description="FHIR resources kept validated by content (about 5 KB each; 0: none), so "
        "that a chart sent again with one new result validates only that one",
    )
    compute_concurrency: int = Field(
        1,
        ge=0,
        le=64,
        description="Calls with new data computed at the same time per process (import, "
        "grading, guidance); the others wait their turn (0: no limit). Python computes one at "
        "a time anyway: more only makes each slower and keeps memoised answers waiting",
    )
    max_request_bytes: int = Field(20_000_000, ge=10_000)
    jwks_cache_seconds: int = Field(600, ge=0)
    gc_freeze: bool = Field(
        True,
        description="At startup, move the objects made while loading into the permanent "
        "generation (gc.freeze) so that garbage collection pauses stay short under load",
    )
    gc_young_threshold: int = Field(
        50_000,
        ge=0,
        description="At startup, collect the youngest generation after this many new objects "
        "instead of Python's 700 (0: leave Python's thresholds). With few collections, fewer "
        "short-lived objects of requests in flight are promoted to the oldest generation, so "
        "that full collections, which scan every model kept in memory, stay rare under load",
    )

    @field_validator("algorithms")
    @classmethod
    def _only_asymmetric(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if a not in ASYMMETRIC]
        if bad:
            raise ValueError(
                f"{', '.join(bad)}: CDS Hooks JWTs are signed with asymmetric algorithms only "
                f"(allowed: {', '.join(ASYMMETRIC)}); 'none' and HMAC are refused"
            )
        return v

    @field_validator("allowed_origins")
    @classmethod
    def _no_wildcard(cls, v: list[str]) -> list[str]:
        if any(o.strip() in ("*", "null") for o in v):
            raise ValueError(
                "list each origin (https://ehr.example.org); '*' and 'null' are refused"
            )
        return [o.rstrip("/") for o in v]


def load_cds_settings(
    path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> CdsHooksSettings:
    """Settings from a TOML file (``[cds_hooks]`` table or top level) and ``CART_CYTOPENIA_CDS_*``.

    Simple fields come from ``CART_CYTOPENIA_CDS_<FIELD>``; lists and issuers as JSON, e.g.
    ``CART_CYTOPENIA_CDS_ISSUERS='[{"iss": "https://ehr.example.org", "jwks_url": "..."}]'``.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    src = path or env.get(CONFIG_ENV)
    if src:
        p = Path(src)
        try:
            doc = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise SettingsError(f"CDS Hooks settings file {p} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"CDS Hooks settings file {p} is not valid TOML: {exc}") from None
        raw.update(doc.get("cds_hooks", doc))
    for name, f in CdsHooksSettings.model_fields.items():
        key = ENV_PREFIX + name.upper()
        if key in env and env[key] != "":
            value: Any = env[key]
            if f.annotation is not None and "list" in str(f.annotation):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    raise SettingsError(f"{key} must be JSON (a list)") from None
            raw[name] = value
    try:
        return CdsHooksSettings.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise SettingsError(
            "CDS Hooks settings are invalid:\n  - " + "\n  - ".join(lines)
        ) from None


# --------------------------------------------------------------------------- services


def prefetch_templates() -> dict[str, str]:
    """The FHIR queries the services ask the EHR to prefetch (restricted to 2.0 prefetch rules)."""
    loinc = codes().system("loinc")
    from cart_cytopenia.domain.analytes import catalogue

    analyte_codes = [c for a in catalogue().analytes for c in a.loinc]
    # panels too: a blood count may be one Observation whose components are the analytes
    lab_codes = ",".join(f"{loinc}|{c}" for c in [*analyte_codes, *codes().lab_panels])
    vitals = ",".join(
        f"{loinc}|{c}" for c in sorted(codes().body_temperature | codes().body_weight)
    )
    p = "{{context.patientId}}"
    return {
        "patient": f"Patient/{p}",
        "conditions": f"Condition?patient={p}",
        "labs": f"Observation?patient={p}&code={lab_codes}",
        "vitals": f"Observation?patient={p}&code={vitals}",
        "medicationRequests": f"MedicationRequest?patient={p}",
        "medicationAdministrations": f"MedicationAdministration?patient={p}",
        "procedures": f"Procedure?patient={p}",
    }


USAGE = (
    "For patients after a CAR T-cell infusion: the infusion must be in the record as a Procedure "
    "(or a MedicationAdministration of the CAR-T product). Without it the service returns no "
    "cards. Labs LOINC-coded with UCUM units. The service supports clinicians; it never orders "
    "anything."
)


@dataclass(frozen=True)
class ServiceDef:
    id: str
    hook: str
    title: str
    description: str

    def discovery(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "title": self.title,
            "description": self.description,
            "id": self.id,
            "prefetch": prefetch_templates(),
            "usageRequirements": USAGE,
        }


SERVICES = {
    s.id: s
    for s in (
        ServiceDef(
            PATIENT_VIEW,
            "patient-view",
            "Cytopenias after CAR-T",
            "Grades cytopenias after CAR T-cell therapy (CTCAE, EHA/EBMT ICAHT, CAR-HEMATOTOX, "
            "recovery phenotype) and shows the work-up and management to consider following "
            "Jain, Olson & Locke (Blood 2023), each with its rationale and source.",
        ),
        ServiceDef(
            ORDER_SELECT,
            "order-select",
            "Growth factor and TPO-RA orders after CAR-T",
            "Warns when a selected order conflicts with the approach to cytopenias after CAR-T "
            "(GM-CSF; G-CSF during active CRS without infection; a TPO-receptor agonist where "
            "its criteria are not met) and suggests the alternative.",
        ),
        ServiceDef(
            ORDER_SIGN,
            "order-sign",
            "Growth factor and TPO-RA orders after CAR-T (signing)",
            "The order-select checks again when orders are signed.",
        ),
    )
}


# --------------------------------------------------------------------------- errors


def operation_outcome(
    text: str, code: str = "processing", severity: str = "error", diagnostics: str | None = None
) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "details": {"text": text}}
    if diagnostics:
        issue["diagnostics"] = diagnostics
    return {"resourceType": "OperationOutcome", "issue": [issue]}


class CdsError(Exception):
    """An error answered as an HTTP status with an OperationOutcome body."""

    def __init__(
        self,
        status: int,
        text: str,
        code: str = "processing",
        headers: dict[str, str] | None = None,
        diagnostics: str | None = None,
    ) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.code = code
        self.headers = headers or {}
        self.diagnostics = diagnostics

    def response(self) -> Response:
        return _json(
            operation_outcome(self.text, self.code, diagnostics=self.diagnostics),
            self.status,
            self.headers,
        )


def _json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(doc, ensure_ascii=False, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _unauthorized(text: str) -> CdsError:
    return CdsError(
        401,
        text,
        "login",
        {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{text[:120]}"'},
    )


# --------------------------------------------------------------------------- JWT authentication


@dataclass(frozen=True)
class Caller:
    """An authenticated CDS client."""

    iss: str
    tenant: str | None = None
    jti: str | None = None


def _b64json(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Header and claims of a compact JWS, unverified (to find the issuer's key)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header, claims = _b64json(parts[0]), _b64json(parts[1])
    except (ValueError, TypeError):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return header, claims


@dataclass(frozen=True)
class _Key:
    jwk: jwt.PyJWK
    alg: str | None


class JwtVerifier:
    """Verifies the CDS client's JWT as CDS Hooks 2.0 "Trusting CDS Clients" requires."""

    def __init__(
        self, settings: CdsHooksSettings, transport: httpx.AsyncBaseTransport | None
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.issuers = {i.iss: i for i in settings.issuers}
        self._jwks: dict[str, tuple[float, dict[str, _Key]]] = {}
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._last_prune = time.time()

    async def _fetch_jwks(self, url: str) -> dict[str, _Key]:
        if not url.startswith("https://") and not (
            self.settings.allow_http and url.startswith("http://")
        ):
            raise _unauthorized("the JWK Set URL must use https")
        try:
            async with httpx.AsyncClient(timeout=5.0, transport=self.transport) as client:
                r = await client.get(url, headers={"Accept": "application/json"})
                r.raise_for_status()
                doc = r.json()
        except (httpx.HTTPError, ValueError):
            raise _unauthorized("the issuer's JWK Set cannot be retrieved") from None
        return self._parse_jwks(doc)

    @staticmethod
    def _parse_jwks(doc: Any) -> dict[str, _Key]:
        out: dict[str, _Key] = {}
        for k in (doc or {}).get("keys", []) if isinstance(doc, dict) else []:
            if not isinstance(k, dict) or not k.get("kid") or k.get("use", "sig") != "sig":
                continue
            if k.get("kty") == "oct":
                continue  # symmetric keys are never trusted
            try:
                out[str(k["kid"])] = _Key(jwt.PyJWK(k), k.get("alg"))
            except (jwt.PyJWTError, ValueError, TypeError):
                continue
        return out

    async def _key(self, issuer: TrustedIssuer, kid: str, jku: str | None) -> _Key:
        if jku is not None:
            if jku not in issuer.jku:
                raise _unauthorized(
                    "the JWT 'jku' is not an allow-listed JWK Set URL for this issuer"
                )
            source = jku
        elif issuer.jwks is not None:
            keys = self._parse_jwks(issuer.jwks)
            if kid not in keys:
                raise _unauthorized("the JWT 'kid' is not in the issuer's JWK Set")
            return keys[kid]
        elif issuer.jwks_url:
            source = issuer.jwks_url
        else:
            raise _unauthorized("no JWK Set is configured for this issuer")
        now = time.time()
        cached = self._jwks.get(source)
        if (
            cached is None
            or now - cached[0] > self.settings.jwks_cache_seconds
            or (kid not in cached[1] and now - cached[0] > 30)
        ):
            keys = await self._fetch_jwks(source)
            self._jwks[source] = (now, keys)
            cached = self._jwks[source]
        if kid not in cached[1]:
            raise _unauthorized("the JWT 'kid' is not in the issuer's JWK Set")
        return cached[1][kid]

    async def verify(self, authorization: str | None, audiences: Sequence[str]) -> Caller:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("send the CDS client's signed JWT: 'Authorization: Bearer <JWT>'")
        token = token.strip()
        peeked = _peek(token)
        if peeked is None:
            raise _unauthorized("the bearer token is not a JWT")
        header, unverified = peeked
        alg = header.get("alg")
        if alg not in self.settings.algorithms:
            raise _unauthorized(
                f"JWT algorithm {alg!r} is not accepted (asymmetric algorithms only)"
            )
        if str(header.get("typ", "")).upper() != "JWT":
            raise _unauthorized("the JWT header 'typ' must be 'JWT'")
        kid = header.get("kid")
        if not kid:
            raise _unauthorized("the JWT header has no 'kid'")
        iss = unverified.get("iss")
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise _unauthorized("the JWT issuer is not trusted by this service")
        key = await self._key(issuer, str(kid), header.get("jku"))
        if key.alg is not None and key.alg != alg:
            raise _unauthorized("the JWT algorithm does not match the key's")
        try:
            claims = jwt.decode(
                token,
                key.jwk.key,
                algorithms=[alg],
                audience=list(audiences),
                issuer=issuer.iss,
                leeway=self.settings.leeway_seconds,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("the JWT has expired") from None
        except jwt.InvalidAudienceError:
            raise _unauthorized("the JWT 'aud' is not the URL of the endpoint called") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _unauthorized(f"the JWT has no '{exc.claim}' claim") from None
        except jwt.PyJWTError as exc:
            raise _unauthorized(f"the JWT is not valid ({type(exc).__name__})") from None
        now = time.time()
        exp = float(claims["exp"])
        if exp - now > self.settings.max_token_lifetime_seconds:
            raise _unauthorized("the JWT stays valid for too long; use short-lived tokens")
        if issuer.tenant is not None and claims.get("tenant") != issuer.tenant:
            raise _unauthorized("the JWT 'tenant' is not the one agreed for this issuer")
        jti = str(claims["jti"])
        with self._lock:
            if now - self._last_prune > 60:
                self._seen = {
                    k: v for k, v in self._seen.items() if v > now - self.settings.leeway_seconds
                }
                self._last_prune = now
            if (issuer.iss, jti) in self._seen:
                raise _unauthorized("the JWT 'jti' was used before (replay)")
            self._seen[(issuer.iss, jti)] = exp
        return Caller(issuer.iss, claims.get("tenant"), jti)


# --------------------------------------------------------------------------- request bodies


class FhirAuthorization(BaseModel):
    model_config = ConfigDict(extra="allow")
    access_token: str = Field(min_length=1)
    token_type: str
    expires_in: int
    scope: str
    subject: str
    patient: str | None = None

    @field_validator("token_type")
    @classmethod
    def _bearer(cls, v: str) -> str:
        if v.lower() != "bearer":
            raise ValueError("token_type must be 'Bearer'")
        return v


class HookRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    hook: str = Field(min_length=1)
    hookInstance: str = Field(min_length=1)
    fhirServer: str | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None


class OverrideReason(BaseModel):
    model_config = ConfigDict(extra="allow")
    reason: dict[str, Any] | None = None
    userComment: str | None = None


class AcceptedSuggestion(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str


class FeedbackItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    card: str = Field(min_length=1)
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = None
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: dt.datetime

    @model_validator(mode="after")
    def _accepted_needs_suggestions(self) -> FeedbackItem:
        if self.outcome == "accepted" and not self.acceptedSuggestions:
            raise ValueError("an 'accepted' outcome needs acceptedSuggestions")
        return self


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    feedback: list[FeedbackItem] = Field(min_length=1)


def _validation_text(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(x) for x in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
    )


# --------------------------------------------------------------------------- feedback & issued cards


@dataclass(frozen=True)
class IssuedCard:
    service: str
    item: str
    patient: str
    suggestions: dict[str, str] = field(default_factory=dict)  # uuid -> label


@dataclass(frozen=True)
class FeedbackRecord:
    """One feedback entry, with what the card was about (no free text beyond the reason code)."""

    service: str
    card: str
    outcome: str
    outcome_timestamp: dt.datetime
    client: str
    item: str | None
    patient: str | None
    accepted: tuple[str, ...] = ()
    override_reason: str | None = None  # "system|code (display)"
    comment_given: bool = False


FeedbackSink = Callable[[FeedbackRecord], Awaitable[None] | None]


class IssuedCards:
    """Cards given out recently (uuid -> what they were about), bounded."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._items: OrderedDict[str, IssuedCard] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, card_uuid: str, info: IssuedCard) -> None:
        with self._lock:
            self._items[card_uuid] = info
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get(self, card_uuid: str) -> IssuedCard | None:
        with self._lock:
            return self._items.get(card_uuid)


def store_feedback_sink(db: Any) -> FeedbackSink:
    """Feedback into the audit log of the store (``cart_cytopenia.store.audit``)."""
    from cart_cytopenia.store import audit
    from cart_cytopenia.store.courses import find_patient

    def sink(rec: FeedbackRecord) -> None:
        with db.session() as session:
            patient = find_patient(session, rec.patient) if rec.patient else None
            parts = [f"service {rec.service}", f"item {rec.item or 'unknown'}"]
            if rec.accepted:
                parts.append(f"accepted suggestions {len(rec.accepted)}")
            if rec.override_reason:
                parts.append(f"reason {rec.override_reason}")
            if rec.comment_given:
                parts.append("comment given (not stored)")
            parts.append(f"at {rec.outcome_timestamp.isoformat()}")
            audit.record(
                session,
                username=f"cds:{rec.client}"[:64],
                action="create",
                resource="cds-feedback",
                resource_id=rec.card,
                patient_id=patient.id if patient is not None else None,
                channel="cds-hooks",
                client=rec.client,
                outcome=rec.outcome,
                detail="; ".join(parts),
            )
            session.commit()

    return sink


# --------------------------------------------------------------------------- the engine


class PreconditionFailed(Exception):
    """Data are needed that neither prefetch nor FHIR access can give (HTTP 412)."""


@dataclass
class Gathered:
    raws: list[RawResource]
    unavailable: list[str]
    fetched: bool


_MASKS = (
    re.compile(rb'"hookInstance"\s*:\s*"(?:[^"\\]|\\.)*"'),
    re.compile(rb'"fhirAuthorization"\s*:\s*\{[^{}]*\}'),
)


def content_key(body: bytes, *parts: str) -> str:
    """Cache key of a hook call: the body without hookInstance and fhirAuthorization, plus parts.

    The fast key (no parsing): the same body sent again. ``request_key`` is the key of what the
    cards depend on."""
    masked = body
    for pat in _MASKS:
        masked = pat.sub(b'""', masked, count=1)
    h = hashlib.sha256(masked)
    for p in parts:
        h.update(b"\x00" + p.encode())
    return h.hexdigest()


def request_key(req: HookRequest, *parts: str, fetches: bool = False) -> str:
    """Cache key of a parsed hook call: only what the cards depend on, plus parts.

    That is the hook, the patient in context, the draft orders and selections (order-select /
    order-sign) and the prefetch data, in the order sent; not ``hookInstance``, ``userId``,
    ``encounterId`` or any other context field. A call that ``fetches`` from the FHIR server also
    depends on the server, the whole context (prefetch templates are rendered from it) and the
    access token (what that token may read).
    """
    ctx = req.context
    doc: list[Any] = [
        req.hook,
        ctx.get("patientId"),
        ctx.get("draftOrders"),
        ctx.get("selections"),
        req.prefetch,
    ]
    if fetches:
        token = req.fhirAuthorization.access_token if req.fhirAuthorization else ""
        doc += [req.fhirServer, ctx, hashlib.sha256(token.encode()).hexdigest()]
    h = hashlib.sha256(to_json(doc))
    for p in parts:
        h.update(b"\x00" + p.encode())
    return h.hexdigest()


_CART_HINT = re.compile(
    r"chimeric antigen receptor|\bcar[- ]?t\b|cabtagene|leucel\b|car-t-infusion|\b38228\b|\b0540T\b|"
    + "|".join(
        re.escape(n)
        for n in ("yescarta", "kymriah", "breyanzi", "tecartus", "abecma", "carvykti", "aucatzyl")
    ),
    re.IGNORECASE,
)


@cache
def _cart_code_hint() -> re.Pattern[str]:
    """The CAR-T administration codes of the shared therapy-code table (ICD-10-PCS, HCPCS ...)."""
    found = sorted({e.code for e in therapy_codes().codes.values() if e.kind == "car_t"})
    return re.compile(r"\b(" + "|".join(re.escape(c) for c in found) + r")\b", re.IGNORECASE)


def mentions_cart(raws: Sequence[RawResource]) -> bool:
    """Cheap pre-check: does any procedure or medication resource mention a CAR-T infusion?"""
    for r in raws:
        if r.data.get("resourceType") in (
            "Procedure",
            "MedicationAdministration",
            "MedicationRequest",
            "MedicationStatement",
            "Medication",
        ):
            text = json.dumps(r.data)
            if _CART_HINT.search(text) or _cart_code_hint().search(text):
                return True
    return False


class CdsEngine:
    """Turns hook requests into cards (no HTTP here except fetching from the EHR's FHIR server)."""

    def __init__(
        self,
        settings: CdsHooksSettings,
        clinical: Settings,
        today: Callable[[], dt.date],
        evaluate: Callable[..., Any] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.clinical = clinical
        self.today = today
        self._evaluate = evaluate
        self.transport = transport
        # answers by request_key; content_key of bodies answered -> their request_key
        self.cache: OrderedDict[str, tuple[str, list[dict[str, Any]]]] = OrderedDict()
        self.aliases: OrderedDict[str, str] = OrderedDict()
        self.inflight: dict[str, asyncio.Future[tuple[str, list[dict[str, Any]]]]] = {}
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self.models = (
            ModelCache(settings.resource_cache_entries) if settings.resource_cache_entries else None
        )
        self.settings_fingerprint = hashlib.sha256(
            json.dumps(clinical.in_force(), sort_keys=True, default=str).encode()
        ).hexdigest()[:16]

    @property
    def evaluate(self) -> Callable[..., Any]:
        if self._evaluate is None:
            from cart_cytopenia.guidance import evaluate

            self._evaluate = evaluate
        return self._evaluate

    async def compute(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a worker thread, at most ``compute_concurrency`` at a time."""
        if not self.settings.compute_concurrency:
            return await run_in_threadpool(fn, *args)
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.settings.compute_concurrency))
        async with self._slots[1]:
            return await run_in_threadpool(fn, *args)

    # ---- answers from memory

    def recall(self, key: str) -> tuple[str, list[dict[str, Any]]] | None:
        """The answer memoised under ``key`` (a request_key or a content_key alias)."""
        hit = self.cache.get(self.aliases.get(key, key))
        if hit is not None:
            self.cache.move_to_end(self.aliases.get(key, key))
        return hit

    def remember(self, key: str, alias: str, value: tuple[str, list[dict[str, Any]]]) -> None:
        """Memoise ``value`` under ``key`` (and the body's content key ``alias``), bounded."""
        size = self.settings.cache_entries
        if not size:
            return
        self.cache[key] = value
        self.cache.move_to_end(key)
        while len(self.cache) > size:
            self.cache.popitem(last=False)
        self.alias(alias, key)

    def alias(self, alias: str, key: str) -> None:
        self.aliases[alias] = key
        self.aliases.move_to_end(alias)
        while len(self.aliases) > 4 * self.settings.cache_entries:
            self.aliases.popitem(last=False)

    # ---- data

    @staticmethod
    def _prefetch_status(value: Any) -> Literal["missing", "continue", "use", "none"]:
        if value is None:
            return "none"  # the EHR has no data for this key
        if isinstance(value, dict) and value.get("resourceType") == "OperationOutcome":
            return "missing"
        if (
            isinstance(value, dict)
            and value.get("resourceType") == "Bundle"
            and any(
                link.get("relation") == "next"
                for link in value.get("link") or []
                if isinstance(link, dict)
            )
        ):
            return "continue"
        return "use"

    def fetches(self, req: HookRequest) -> bool:
        """Will answering ``req`` read from the FHIR server (prefetch missing or incomplete)?"""
        have = req.prefetch or {}
        return any(
            key not in have or self._prefetch_status(have[key]) in ("missing", "continue")
            for key in prefetch_templates()
        )

    def _server(self, url: str) -> str:
        """The EHR's FHIR server base URL, refused (400) when unsafe."""
        try:
            return check_server_url(url, self.settings.allow_http)
        except UnsafeServerError as exc:
            raise CdsError(400, str(exc), "security") from None

    async def gather(self, req: HookRequest) -> Gathered:
        context = req.context
        templates = prefetch_templates()
        have = req.prefetch or {}
        raws: list[RawResource] = []
        missing: dict[str, str] = {}
        continue_bundles: dict[str, dict[str, Any]] = {}
        for key, template in templates.items():
            status = "missing" if key not in have else self._prefetch_status(have[key])
            if status == "missing":
                missing[key] = render_template(template, context)
            elif status == "continue":
                continue_bundles[key] = have[key]
            elif status == "use":
                raws.extend(resources_from_json(have[key], f"prefetch '{key}'"))
        if not missing and not continue_bundles:
            return Gathered(raws, [], False)
        if not req.fhirServer or req.fhirAuthorization is None:
            what = ", ".join([*missing, *continue_bundles])
            raise PreconditionFailed(
                f"prefetch key(s) {what} missing or incomplete and no FHIR server access "
                "(fhirServer and fhirAuthorization) was given"
            )
        results = await fetch_queries(
            self._server(req.fhirServer),
            req.fhirAuthorization.access_token,
            missing,
            timeout=self.settings.fhir_timeout_seconds,
            max_pages=self.settings.fhir_max_pages,
            transport=self.transport,
            continue_bundles=continue_bundles,
        )
        unavailable = []
        for key, value in results.items():
            if isinstance(value, FetchError):
                unavailable.append(f"{key}: {value.reason}")
            elif value is not None:
                raws.extend(resources_from_json(value, f"FHIR server '{key}'"))
        return Gathered(raws, unavailable, True)

    def links(self, base: str, patient_id: str) -> list[dict[str, Any]]:
        from urllib.parse import quote

        if self.settings.smart_links:  # the EHR adds 'iss' and 'launch' when it opens it
            return [
                {"label": "Open in cart-cytopenia", "url": base + "/smart/launch", "type": "smart"}
            ]
        url = self.settings.patient_link.format(base=base, patient_id=quote(patient_id, safe=""))
        return [{"label": "Open in cart-cytopenia", "url": url, "type": "absolute"}]

    def _course(
        self, raws: list[RawResource], patient_id: str, links: list[dict[str, Any]]
    ) -> tuple[Course | None, FhirImport | None, list[dict[str, Any]]]:
        """(course, import report, cards to answer with instead) for the patient in context."""
        if not mentions_cart(raws):
            return None, None, []
        try:
            result = import_resources(raws, self.models)
        except ConflictError as exc:
            detail = "\n".join(
                [
                    "The record sends one resource in versions that differ, and nothing says "
                    "which is current, so **no cytopenia guidance is shown**:",
                    "",
                    *[f"- {md_text(str(p))}" for p in exc.problems[:15]],
                ]
            )
            title = "cart-cytopenia cannot assess this record: conflicting versions of a resource"
            return None, None, [message_card(title, detail, "warning", "data-quality", links)]
        course = next((c for c in result.courses if c.patient.id == patient_id), None)
        if course is not None:
            return course, result, []
        failed = next((f for f in result.failed if f.patient == patient_id), None)
        if failed is None or "no CAR-T infusion" in failed.message:
            return None, result, []
        detail = "\n".join(
            [
                "The record has a CAR T-cell infusion, but its data do not make a course "
                "cart-cytopenia can assess, so **no cytopenia guidance is shown**:",
                "",
                f"- {failed.message}",
                *[f"- {p}" for p in failed.problems[:15]],
            ]
        )
        return (
            None,
            result,
            [
                message_card(
                    "cart-cytopenia cannot assess this CAR-T course: the record's data are inconsistent",
                    detail,
                    "warning",
                    "data-quality",
                    links,
                )
            ],
        )

    @staticmethod
    def _import_notes(result: FhirImport | None) -> list[str]:
        if result is None:
            return []
        notes = []
        if result.unmapped:
            top = list(result.unmapped_by_reason().items())[:4]
            notes.append(
                f"{len(result.unmapped)} EHR resource(s) were not used: "
                + "; ".join(f"{n} × {r}" for r, n in top)
                + "."
            )
        for w in result.warnings[:5]:
            notes.append(f"Import: {w.message}.")
        return notes

    def patient_view(
        self, raws: list[RawResource], patient_id: str, base: str
    ) -> list[dict[str, Any]]:
        links = self.links(base, patient_id)
        course, result, cards = self._course(raws, patient_id, links)
        if course is None:
            return cards
        today = self.today()
        day = (today - course.infusion_date).days
        if day < 0:
            a = assess(course, 0, self.clinical)
            h = a.hematotox
            if h.risk and h.score is not None:
                risk = f"CAR-HEMATOTOX {h.risk} risk ({h.score}/{h.max_score})"
            elif h.risk:
                risk = (
                    f"CAR-HEMATOTOX {h.risk} risk ({h.points_counted} points from the labs given)"
                )
            else:
                risk = "CAR-HEMATOTOX cannot be told yet (baseline labs missing)"
            return [
                message_card(
                    f"CAR-T infusion planned on {course.infusion_date} (in {-day} days): {risk}",
                    "\n".join(
                        [
                            f"Baseline risk of haematotoxicity from the labs before lymphodepletion: {risk}.",
                            *(f"- missing: {m}" for m in h.missing),
                            "",
                            f"_{a.based_on.software}; rules {'; '.join(a.based_on.rule_tables)}._",
                        ]
                    ),
                    "info",
                    "car-hematotox-score",
                    links,
                )
            ]
        guidance = self.evaluate(course, day, self.clinical)
        assessment: Assessment = guidance.assessment
        items = list(guidance.items())
        missing = [
            *map(str, getattr(guidance, "missing_data", []) or []),
            *self._import_notes(result),
        ]
        return patient_view_cards(
            course, assessment, items, links, missing, self.settings.max_cards
        )

    def orders(
        self,
        raws: list[RawResource],
        patient_id: str,
        base: str,
        draft_orders: Any,
        selections: Sequence[str] | None,
        medications: Sequence[RawResource] = (),
        unreadable: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Cards for the draft orders; ``medications`` are Medications the draft orders
        reference that came from the prefetch or the FHIR server, ``unreadable`` the ones the
        FHIR server could not give ('Medication/<id>' -> why)."""
        links = self.links(base, patient_id)
        try:
            draft_raws = draft_order_raws(draft_orders)
        except CartCytopeniaError as exc:
            raise CdsError(400, f"context.draftOrders: {exc}") from None
        orders, _other = medication_orders([*draft_raws, *medications])
        if selections is not None:
            wanted = set(selections)
            orders = [o for o in orders if o.reference in wanted]
        relevant = [o for o in orders if o.problem is None and _checked(o)]
        # not checked, and it might matter: the medication is unknown, or a checked drug
        unchecked = [
            o
            for o in orders
            if o.problem is not None and (_checked(o) or (o.drug is None and not o.name))
        ]
        if not relevant and not unchecked:
            return []
        course, _result, cards = self._course(raws, patient_id, links)
        if course is None:
            return cards
        out = [_unchecked_card(o, links, unreadable or {}) for o in unchecked]
        day = (self.today() - course.infusion_date).days
        if day < 0 or not relevant:
            return out
        guidance = self.evaluate(course, day, self.clinical)
        for order in relevant:
            out += order_checks(order, course, guidance, self.evaluate, day, self.clinical, links)
        return out

    async def draft_medications(
        self, req: HookRequest, draft_orders: Any, raws: Sequence[RawResource]
    ) -> tuple[list[RawResource], dict[str, str], bool]:
        """The Medications that draft orders reference but the draftOrders Bundle does not
        hold: from the prefetch data, else read from the FHIR server. (Medications, those the
        server could not give with why, whether the server was asked.)"""
        try:
            missing = missing_medications(draft_order_raws(draft_orders))
        except CartCytopeniaError as exc:
            raise CdsError(400, f"context.draftOrders: {exc}") from None
        found = medications_from(raws, missing)
        have = {f"Medication/{r.data.get('id')}" for r in found}
        still = [k for k in missing if k not in have]
        if not still or not req.fhirServer or req.fhirAuthorization is None:
            return found, {}, False
        fetched, failed = await fetch_medications(
            self._server(req.fhirServer),
            req.fhirAuthorization.access_token,
            still,
            timeout=self.settings.fhir_timeout_seconds,
            transport=self.transport,
        )
        return found + fetched, failed, True


def _checked(order: MedicationOrder) -> bool:
    return order.drug is not None and bool(order.drug.classes & CHECKED_CLASSES)


def _unchecked_card(
    order: MedicationOrder, links: list[dict[str, Any]], unreadable: Mapping[str, str]
) -> dict[str, Any]:
    """The info card for a draft order that could not be checked, saying why."""
    what = (
        "could not read a draft order"
        if not order.readable
        else "could not identify the medication of a draft order"
    )
    name = f" ({md_text(order.name)})" if order.name else ""
    key = medication_key(order.resource)
    why = unreadable.get(key) if key else None
    server = f" The FHIR server could not give {key}: {why}." if why else ""
    return message_card(
        f"cart-cytopenia {what}, so it was not checked",
        f"{order.reference}{name}: {md_text(order.problem or '')}.{server}\n\nThe order checks for "
        "GM-CSF, G-CSF, TPO-receptor agonists and myelosuppressive drugs did not run for this "
        "order; check it against the patient's cytopenia guidance yourself.",
        "info",
        "data-quality",
        links,
    )


def render_template(template: str, context: Mapping[str, Any]) -> str:
    """Replace ``{{context.x}}`` prefetch tokens with the context's (simple) values."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1).strip()
        if not name.startswith("context."):
            raise CdsError(400, f"prefetch token {{{{{name}}}}} is not supported")
        value = context.get(name.removeprefix("context."))
        if not isinstance(value, str | int) or value == "":
            raise CdsError(400, f"context field {name.removeprefix('context.')} is required")
        from urllib.parse import quote

        return quote(str(value), safe="")

    return re.sub(r"\{\{([^}]+)\}\}", sub, template)


# --------------------------------------------------------------------------- order checks


def _delete_action(order: MedicationOrder, what: str) -> dict[str, Any]:
    return {
        "type": "delete",
        "description": f"Remove the draft {what} order",
        "resourceId": order.reference,
    }


def _draft_filgrastim(patient_id: str) -> dict[str, Any]:
    drug = resolve_drug("filgrastim")
    rx = codes().system("rxnorm")
    coding = [
        {"system": rx, "code": c, "display": "filgrastim"}
        for c in (drug.rxnorm[:1] if drug else ())
    ]
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "proposal",
        "medicationCodeableConcept": {"coding": coding, "text": "filgrastim (G-CSF)"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "note": [
            {
                "text": "Proposed by cart-cytopenia instead of GM-CSF; dose and schedule per "
                "institutional protocol."
            }
        ],
    }
    return {
        "type": "create",
        "description": "Draft a filgrastim (G-CSF) order instead",
        "resource": res,
    }


@dataclass(frozen=True)
class OrderRule:
    """Which guidance alert makes a draft order of a drug class a conflict, and what to suggest."""

    drug_class: DrugClass
    alert: str
    summary: str  # {drug}
    remove_label: str  # {drug}
    offer_gcsf: bool = False


# The order checks rely on the guidance engine's own alerts (guidance/tables/recommendations.toml):
# the draft drug is added to the course as started today and the alerts that appear because of
# it are the conflicts. TPO-RA criteria are checked on the course without the draft.
ORDER_RULES = (
    OrderRule(
        DrugClass.GMCSF,
        "alert.gmcsf-given",
        "Avoid GM-CSF ({drug}) after CAR-T: use G-CSF if a growth factor is needed",
        "Remove the {drug} order",
        offer_gcsf=True,
    ),
    OrderRule(
        DrugClass.GCSF,
        "alert.gcsf-during-crs",
        "G-CSF ({drug}) during ongoing CRS without severe infection: the review withholds it",
        "Remove the {drug} order; reconsider when CRS has resolved or if severe infection develops",
    ),
    OrderRule(
        DrugClass.TPO_RA,
        "alert.paediatric-tpo-ra",
        "TPO-receptor agonist ({drug}) in a child: usually deferred after CAR-T",
        "Remove the {drug} order",
    ),
    OrderRule(
        DrugClass.MYELOSUPPRESSIVE,
        "alert.myelosuppressive-drug",
        "{drug} is myelosuppressive and the patient is cytopenic: consider an alternative",
        "Remove the {drug} order and choose an alternative",
    ),
)
TPO_RA_START = "management.tpo-ra.start"
GCSF_START = "management.gcsf.start"
CHECKED_CLASSES = frozenset(r.drug_class for r in ORDER_RULES)


def with_draft(course: Course, order: MedicationOrder, day: int) -> Course:
    """``course`` with the draft order's drug added as started on ``day`` (ongoing)."""
    assert order.drug is not None
    hypothetical = course.model_copy(deep=True)
    hypothetical.events.append(Medication(drug=order.drug.id, start_day=day, purpose="treatment"))
    return hypothetical


def _conflict_card(
    order: MedicationOrder,
    summary: str,
    why: Sequence[str],
    topic: str,
    citation: str | None,
    suggestions: list[dict[str, Any]],
    links: list[dict[str, Any]],
    indicator: str,
) -> dict[str, Any]:
    name = order.name or (order.drug.id if order.drug else "this medication")
    lines = [
        f"**{md_text(summary)}**",
        "",
        *why,
        "",
        f"Draft order: {md_text(name)} ({order.reference}).",
    ]
    if citation:
        lines += ["", f"**Source:** {md_text(citation)}"]
    lines += [
        "",
        "_cart-cytopenia supports clinicians; it never orders anything. A suggestion changes only "
        "the draft orders, which you still review and sign._",
    ]
    card: dict[str, Any] = {
        "summary": short(summary),
        "indicator": indicator,
        "detail": "\n".join(lines),
        "source": {
            "label": short(f"cart-cytopenia · {citation or 'Jain, Olson, Locke, Blood 2023'}", 200),
            "topic": {"system": codes().guidance_system, "code": topic, "display": "order check"},
        },
        "overrideReasons": override_reasons(),
        "links": [dict(link) for link in links],
    }
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = "at-most-one"
    return card


def order_checks(
    order: MedicationOrder,
    course: Course,
    base: Any,
    evaluate: Callable[..., Any],
    day: int,
    clinical: Settings,
    links: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Warning cards for one draft order (empty when it agrees with the approach)."""
    assert order.drug is not None
    drug = order.drug
    cards: list[dict[str, Any]] = []
    rules = [r for r in ORDER_RULES if r.drug_class in drug.classes]
    if rules:
        before = base.ids()
        after = evaluate(with_draft(course, order, day), day, clinical)
        for rule in rules:
            if rule.alert in before or after.item(rule.alert) is None:
                continue
            item = after.item(rule.alert)
            suggestions: list[dict[str, Any]] = []
            if rule.offer_gcsf and base.item(GCSF_START) is not None:
                suggestions.append(
                    {
                        "label": f"Replace {drug.id} with filgrastim (G-CSF)",
                        "isRecommended": True,
                        "actions": [
                            _delete_action(order, drug.id),
                            _draft_filgrastim(course.patient.id),
                        ],
                    }
                )
            remove = rule.remove_label.format(drug=drug.id)
            if drug.alternative and rule.drug_class == DrugClass.MYELOSUPPRESSIVE:
                remove += f" (e.g. {drug.alternative})"
            suggestions.append({"label": remove, "actions": [_delete_action(order, drug.id)]})
            why = [
                f"If this order is signed: {md_text(item.summary)}.",
                "",
                md_text(item.rationale),
            ]
            gcsf = base.item(GCSF_START)
            if rule.offer_gcsf and gcsf is not None:
                why += ["", f"Today's guidance: {md_text(gcsf.summary)}."]
            cards.append(
                _conflict_card(
                    order,
                    rule.summary.format(drug=drug.id),
                    why,
                    item.id,
                    item.citation,
                    suggestions,
                    links,
                    INDICATOR.get(item.urgency, "warning"),
                )
            )
    if DrugClass.TPO_RA in drug.classes:
        on_tpo = any(
            m.active_on(day) and DrugClass.TPO_RA in m.classes for m in course.events_of(Medication)
        )
        if not on_tpo and base.item(TPO_RA_START) is None:
            a: Assessment = base.assessment
            t = clinical.tpo_ra
            facts = [
                f"- day {day} after CAR-T (criteria from day {t.consider_from_day}, institutional setting)"
            ]
            plt = next((x for x in a.lineages if x.lineage == "platelets"), None)
            if plt is not None:
                last = (
                    f"{plt.last_value:g} ×10⁹/L on day {plt.last_value_day}"
                    if plt.last_value is not None
                    else "no value"
                )
                facts.append(f"- last platelet count: {last}")
                if plt.transfusion is not None:
                    dep = (
                        "transfusion-dependent"
                        if plt.transfusion.dependent
                        else "not transfusion-dependent"
                    )
                    facts.append(
                        f"- platelet transfusions: {plt.transfusion.in_window} in the last "
                        f"{plt.transfusion.window_days} days ({dep})"
                    )
            why = [
                "The review considers a thrombopoietin-receptor agonist for prolonged severe "
                "thrombocytopenia needing transfusion well beyond day 30, without another cause, in "
                "patients at high risk of bleeding; counts often recover without it, and it stops "
                "a TPO-RA without response after 4 to 6 weeks. Today's guidance for this patient "
                "does not include starting one.",
                "",
                "**Based on:**",
                *facts,
            ]
            cards.append(
                _conflict_card(
                    order,
                    f"TPO-receptor agonist ({drug.id}): the review's criteria are not met today",
                    why,
                    TPO_RA_START,
                    "Jain 2023, prolonged cytopenias (TPO-RA); refs 45-47",
                    [
                        {
                            "label": f"Remove the {drug.id} order; continue platelet transfusion support and reassess",
                            "actions": [_delete_action(order, drug.id)],
                        }
                    ],
                    links,
                    "warning",
                )
            )
    return cards


# --------------------------------------------------------------------------- CORS


class CorsRoute(APIRoute):
    """Adds CORS headers for allow-listed origins to every response of the CDS Hooks routes."""

    allowed: tuple[str, ...] = ()

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        allowed = self.allowed

        async def with_cors(request: Request) -> Response:
            response = await handler(request)
            origin = request.headers.get("origin")
            if origin and origin.rstrip("/") in allowed:
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Access-Control-Expose-Headers"] = "WWW-Authenticate"
            response.headers["Vary"] = "Origin"
            return response

        return with_cors


def _preflight(request: Request, allowed: tuple[str, ...]) -> Response:
    origin = request.headers.get("origin")
    headers = {"Vary": "Origin"}
    if origin and origin.rstrip("/") in allowed:
        headers.update(
            {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Allow-Headers": "Authorization, Content-Type",
                "Access-Control-Max-Age": "600",
            }
        )
        return Response(status_code=204, headers=headers)
    return Response(status_code=403, headers=headers)


# --------------------------------------------------------------------------- router


def create_cds_router(
    settings: CdsHooksSettings,
    *,
    clinical: Settings | None = None,
    today: Callable[[], dt.date] | None = None,
    evaluate: Callable[..., Any] | None = None,
    feedback: FeedbackSink | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> APIRouter:
    """The CDS Hooks router (mount at the application root: it serves ``/cds-services``).

    ``evaluate`` defaults to ``cart_cytopenia.guidance.evaluate``; ``feedback`` receives every
    feedback entry (``store_feedback_sink(db)`` writes the audit log); ``transport`` is the HTTP
    transport for the EHR's FHIR server and JWK Sets (tests pass a mock).
    """
    clinical = clinical or Settings()
    engine = CdsEngine(settings, clinical, today or dt.date.today, evaluate, transport)
    verifier = JwtVerifier(settings, transport)
    issued = IssuedCards()
    allowed = tuple(settings.allowed_origins)
    route_class = type("CdsCorsRoute", (CorsRoute,), {"allowed": allowed})

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        if settings.gc_freeze:
            # Everything loaded so far (modules, rule tables, the app) lives as long as the
            # process; frozen, it is no longer scanned by each full collection, which would
            # otherwise pause all requests for tens of milliseconds under load.
            gc.collect()
            gc.freeze()
        thresholds = gc.get_threshold()
        if settings.gc_young_threshold:
            gc.set_threshold(settings.gc_young_threshold, *thresholds[1:])
        try:
            yield
        finally:
            gc.set_threshold(*thresholds)

    router = APIRouter(route_class=route_class, tags=["CDS Hooks"], lifespan=lifespan)
    stats = {"requests": 0, "cache_hits": 0}
    router.state = {"engine": engine, "verifier": verifier, "issued": issued, "stats": stats}  # type: ignore[attr-defined]

    def base_of(request: Request) -> str:
        if settings.public_url:
            return settings.public_url.rstrip("/")
        return str(request.base_url).rstrip("/")

    async def authenticate(request: Request, endpoint: str) -> Caller | None:
        if not settings.require_auth:
            return None
        base = base_of(request)
        # 'aud' is the URL of the endpoint called, exactly: no trailing-slash variant
        auds = [base + endpoint]
        if endpoint.endswith("/feedback"):
            auds.append(base + endpoint.removesuffix("/feedback"))
        return await verifier.verify(request.headers.get("authorization"), auds)

    async def read_body(request: Request) -> bytes:
        size = request.headers.get("content-length")
        if size and size.isdigit() and int(size) > settings.max_request_bytes:
            raise CdsError(
                413, f"request larger than {settings.max_request_bytes} bytes", "too-costly"
            )
        body = await request.body()
        if len(body) > settings.max_request_bytes:
            raise CdsError(
                413, f"request larger than {settings.max_request_bytes} bytes", "too-costly"
            )
        return body

    def parse(body: bytes, model: type[BaseModel]) -> Any:
        try:
            return model.model_validate_json(body)
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                raise CdsError(400, "the request body is not valid JSON", "structure") from None
            raise CdsError(
                400,
                f"the request is not a valid CDS Hooks request: {_validation_text(exc)}",
                "structure",
            ) from None

    @router.get("/cds-services", summary="CDS Hooks discovery")
    async def discovery(request: Request) -> Response:
        try:
            await authenticate(request, "/cds-services")
        except CdsError as exc:
            return exc.response()
        return _json({"services": [s.discovery() for s in SERVICES.values()]})

    @router.options("/cds-services", include_in_schema=False)
    async def discovery_preflight(request: Request) -> Response:
        return _preflight(request, allowed)

    @router.options("/cds-services/{service_id}", include_in_schema=False)
    async def service_preflight(request: Request, service_id: str) -> Response:
        return _preflight(request, allowed)

    @router.options("/cds-services/{service_id}/feedback", include_in_schema=False)
    async def feedback_preflight(request: Request, service_id: str) -> Response:
        return _preflight(request, allowed)

    async def answer(service: ServiceDef, request: Request) -> tuple[str, list[dict[str, Any]]]:
        body = await read_body(request)
        base = base_of(request)
        day_key = engine.today().isoformat()
        parts = (service.id, day_key, engine.settings_fingerprint, __version__, base)
        body_key = content_key(body, *parts)
        hit = engine.recall(body_key) if settings.cache_entries else None
        if hit is not None:
            # the same body was answered before: valid, same patient, same cards
            stats["cache_hits"] += 1
            return hit
        req = parse(body, HookRequest)
        if req.hook != service.hook:
            raise CdsError(
                400,
                f"service {service.id} answers the '{service.hook}' hook, not '{req.hook}'",
                "not-supported",
            )
        patient_id = req.context.get("patientId")
        if not isinstance(patient_id, str) or not patient_id:
            raise CdsError(400, "context.patientId is required", "required")
        key = request_key(req, *parts, fetches=engine.fetches(req))
        hit = engine.recall(key) if settings.cache_entries else None
        if hit is not None:
            # the same data for the same patient were answered before (e.g. another user)
            engine.alias(body_key, key)
            stats["cache_hits"] += 1
            return hit
        pending = engine.inflight.get(key)
        if pending is not None:  # the same data are being answered: wait for it
            return await asyncio.shield(pending)
        future: asyncio.Future[tuple[str, list[dict[str, Any]]]] = (
            asyncio.get_running_loop().create_future()
        )
        engine.inflight[key] = future
        try:
            try:
                gathered = await engine.gather(req)
            except PreconditionFailed as exc:
                raise CdsError(412, str(exc), "not-found") from None
            if gathered.unavailable:
                if not settings.unavailable_as_card:
                    raise CdsError(
                        412,
                        "FHIR data could not be retrieved: " + "; ".join(gathered.unavailable),
                        "transient",
                    )
                cards = [
                    message_card(
                        "cart-cytopenia could not read this patient's record: no cytopenia guidance shown",
                        "\n".join(
                            [
                                "The data needed could not be retrieved from the EHR's FHIR server, so "
                                "**nothing was assessed**. Missing data are never taken as normal.",
                                "",
                                *[f"- {u}" for u in gathered.unavailable],
                            ]
                        ),
                        "warning",
                        "data-unavailable",
                        engine.links(base, patient_id),
                    )
                ]
            elif service.hook == "patient-view":
                cards = await engine.compute(engine.patient_view, gathered.raws, patient_id, base)
            else:
                draft = req.context.get("draftOrders")
                if not isinstance(draft, dict):
                    raise CdsError(400, "context.draftOrders (a Bundle) is required", "required")
                selections = (
                    req.context.get("selections") if service.hook == "order-select" else None
                )
                if service.hook == "order-select" and not isinstance(selections, list):
                    raise CdsError(
                        400, "context.selections (a list of ids) is required", "required"
                    )
                meds, failed, asked = await engine.draft_medications(req, draft, gathered.raws)
                gathered.fetched = gathered.fetched or asked
                cards = await engine.compute(
                    engine.orders, gathered.raws, patient_id, base, draft, selections, meds, failed
                )
            if not gathered.fetched:
                engine.remember(key, body_key, (patient_id, cards))
            future.set_result((patient_id, cards))
            return patient_id, cards
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            engine.inflight.pop(key, None)

    @router.post("/cds-services/{service_id}", summary="Call a CDS service (CDS Hooks 2.0)")
    async def call_service(service_id: str, request: Request) -> Response:
        service = SERVICES.get(service_id)
        if service is None:
            return CdsError(404, f"no CDS service '{service_id}'", "not-found").response()
        stats["requests"] += 1
        try:
            await authenticate(request, f"/cds-services/{service_id}")
            patient, templates = await answer(service, request)
        except CdsError as exc:
            return exc.response()
        except CartCytopeniaError as exc:
            return CdsError(400, str(exc).splitlines()[0], "invalid").response()
        cards = with_uuids(templates)
        for c in cards:
            topic = c.get("source", {}).get("topic", {}).get("code", "")
            issued.add(
                c["uuid"],
                IssuedCard(
                    service_id,
                    topic,
                    patient,
                    {s["uuid"]: s["label"] for s in c.get("suggestions", [])},
                ),
            )
        return _json({"cards": cards})

    @router.post("/cds-services/{service_id}/feedback", summary="Feedback on cards (CDS Hooks 2.0)")
    async def post_feedback(service_id: str, request: Request) -> Response:
        if service_id not in SERVICES:
            return CdsError(404, f"no CDS service '{service_id}'", "not-found").response()
        try:
            caller = await authenticate(request, f"/cds-services/{service_id}/feedback")
            fb = parse(await read_body(request), FeedbackRequest)
        except CdsError as exc:
            return exc.response()
        for entry in fb.feedback:
            info = issued.get(entry.card)
            reason = None
            if entry.overrideReason is not None and entry.overrideReason.reason:
                r = entry.overrideReason.reason
                reason = f"{r.get('system', '')}|{r.get('code', '')}" + (
                    f" ({r['display']})" if r.get("display") else ""
                )
            rec = FeedbackRecord(
                service=service_id,
                card=entry.card,
                outcome=entry.outcome,
                outcome_timestamp=entry.outcomeTimestamp,
                client=caller.iss if caller else "unauthenticated",
                item=info.item if info else None,
                patient=info.patient or None if info else None,
                accepted=tuple(s.id for s in entry.acceptedSuggestions or []),
                override_reason=reason,
                comment_given=bool(entry.overrideReason and entry.overrideReason.userComment),
            )
            log.info(
                "cds feedback: service %s outcome %s item %s",
                service_id,
                rec.outcome,
                rec.item or "unknown",
            )
            if feedback is not None:
                result = feedback(rec)
                if inspect.isawaitable(result):
                    await result
        return _json({})

    return router


def router_from_context(ctx: Any) -> APIRouter:
    """The CDS Hooks router wired to the service context (clinical settings, today, audit log);
    an empty router when the settings turn the service off (``enabled = false``)."""
    settings = load_cds_settings()
    if not settings.enabled:
        return APIRouter()
    return create_cds_router(
        settings,
        clinical=ctx.clinical,
        today=ctx.today,
        feedback=store_feedback_sink(ctx.db),
    )


__all__ = [
    "INDICATOR",
    "CdsEngine",
    "CdsHooksSettings",
    "FeedbackRecord",
    "TrustedIssuer",
    "content_key",
    "create_cds_router",
    "load_cds_settings",
    "prefetch_templates",
    "request_key",
    "router_from_context",
    "store_feedback_sink",
]
