"""Settings of the CDS Hooks service: trusted issuers (EHRs), limits, caching, CORS origins.

Read from a TOML file (``CART_CYTOPENIA_CDS_CONFIG``, ``[cds_hooks]`` table) and
``CART_CYTOPENIA_CDS_*`` environment variables by ``load_cds_settings``.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cart_cytopenia.errors import SettingsError

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
