"""Settings of the SMART on FHIR app launch (``[smart]`` in the service settings file, or
``CART_CYTOPENIA_SMART_<FIELD>`` environment variables; lists as JSON).

The launch is off until a ``client_id`` (the one the EHR registered for cart-cytopenia) and at
least one allow-listed issuer are set. An EHR launch from an ``iss`` that is not in ``issuers``
is refused before anything is fetched from it, so that no page can make cart-cytopenia send a
user to an authorization server of its choosing. See docs/interoperability.md ("SMART on FHIR
app launch") for what the EHR registers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# what cart-cytopenia reads (the resources its FHIR importer maps), read-only and search only
DATA_SCOPES = (
    "patient/Patient.rs",
    "patient/Condition.rs",
    "patient/Observation.rs",
    "patient/Procedure.rs",
    "patient/MedicationRequest.rs",
    "patient/MedicationAdministration.rs",
    "patient/Medication.rs",
)
IDENTITY_SCOPES = ("openid", "fhirUser")
# a refresh token for as long as the user is online (SMART App Launch 2.0, "online_access")
REFRESH_SCOPE = "online_access"


class SmartSettings(BaseModel):
    """The SMART App Launch client; see docs/deployment.md ("SMART on FHIR launch")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field("", description="Client id the EHR registered (empty: launch off)")
    client_secret: str = Field(
        "",
        repr=False,
        description="Confidential client: the secret (client_secret_basic); empty: public client",
    )
    issuers: list[str] = Field(
        default_factory=list,
        description="FHIR base URLs ('iss') allowed to launch cart-cytopenia (exact match)",
    )
    standalone_issuer: str = Field(
        "", description="FHIR base URL used by the standalone launch (one of 'issuers')"
    )
    scopes: list[str] = Field(
        default_factory=lambda: [*IDENTITY_SCOPES, REFRESH_SCOPE, *DATA_SCOPES],
        description="Scopes asked for besides 'launch' (EHR) / 'launch/patient' (standalone)",
    )
    public_url: str = Field(
        "",
        description="Base URL of cart-cytopenia as the browser sees it (redirect URI "
        "{public_url}/smart/callback); default: the URL of the request",
    )
    allow_http: bool = Field(False, description="Allow plain-http issuers (local testing only)")
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    max_pages: int = Field(20, ge=1, le=1000)
    launch_minutes: int = Field(
        10, ge=1, le=60, description="Time to complete the authorization after a launch"
    )
    context_minutes: int = Field(
        120, ge=5, le=24 * 60, description="How long a launched EHR patient stays open"
    )

    @property
    def enabled(self) -> bool:
        return bool(self.client_id and self.issuers)

    @property
    def confidential(self) -> bool:
        return bool(self.client_secret)

    @field_validator("issuers")
    @classmethod
    def _absolute(cls, v: list[str]) -> list[str]:
        out = []
        for iss in v:
            parts = urlsplit(iss)
            if parts.scheme not in ("https", "http") or not parts.netloc or parts.query:
                raise ValueError(f"issuer {iss!r} is not an absolute http(s) FHIR base URL")
            out.append(iss.rstrip("/"))
        return out

    @model_validator(mode="after")
    def _consistent(self) -> SmartSettings:
        plain = [i for i in self.issuers if i.startswith("http:")]
        if plain and not self.allow_http:
            raise ValueError(
                f"issuer {plain[0]} uses plain http; tokens are only sent over https "
                "(allow_http is for a local test server only)"
            )
        if self.standalone_issuer and self.standalone_issuer.rstrip("/") not in self.issuers:
            raise ValueError("standalone_issuer must be one of 'issuers'")
        if any(s.split(" ")[0] in ("launch", "launch/patient") for s in self.scopes):
            raise ValueError("leave 'launch' and 'launch/patient' out of 'scopes' (added per flow)")
        return self

    def allowed(self, iss: str) -> str | None:
        """The allow-listed issuer ``iss`` names (trailing slash ignored), or None."""
        key = iss.strip().rstrip("/")
        return key if key in self.issuers else None

    def scope_for(self, flow: str) -> str:
        launch = "launch" if flow == "ehr" else "launch/patient"
        return " ".join([launch, *self.scopes])


def smart_from_env(env: dict[str, str] | Any, prefix: str) -> dict[str, Any]:
    """``<prefix>SMART_<FIELD>`` variables as raw values (lists given as JSON)."""
    import json

    out: dict[str, Any] = {}
    for name, f in SmartSettings.model_fields.items():
        key = f"{prefix}SMART_{name.upper()}"
        if env.get(key, "") == "":
            continue
        value: Any = env[key]
        if "list" in str(f.annotation):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ValueError(f"{key} must be JSON (a list)") from None
        out[name] = value
    return out
