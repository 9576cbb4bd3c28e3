"""CDS Hooks wire formats: the request bodies (hook call, feedback) and errors answered as an
HTTP status with a FHIR OperationOutcome body."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal

from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


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
        return json_response(
            operation_outcome(self.text, self.code, diagnostics=self.diagnostics),
            self.status,
            self.headers,
        )


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(doc, ensure_ascii=False, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def unauthorized(text: str) -> CdsError:
    return CdsError(
        401,
        text,
        "login",
        {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{text[:120]}"'},
    )


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


def validation_text(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(x) for x in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
    )
