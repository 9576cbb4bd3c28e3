"""RFC 9457 problem details for the JSON API, translated from the project's errors.

Every API error is ``application/problem+json`` with ``type``, ``title``, ``status``,
``detail`` and, for bad input, an ``errors`` member listing each problem with where it is
(``patient_id``, ``row``, ``field``, ``source``) and its kind (``UnitError`` ...). Problem types
are documented at ``/api/v1/problems``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cart_cytopenia.errors import InputError, RuleTableError, SettingsError
from cart_cytopenia.store.errors import AuthError, ConflictError, NotFoundError, RateLimitedError

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "/api/v1/problems#"

PROBLEM_TYPES: dict[str, tuple[int, str, str]] = {
    # slug: (status, title, when)
    "input-error": (
        422,
        "The input is invalid",
        "The data sent cannot be used: each entry of `errors` says what is wrong, where "
        "(patient, row, field) and how to fix it. Nothing was saved.",
    ),
    "not-found": (404, "Not found", "The patient, course or record does not exist."),
    "conflict": (
        409,
        "Conflict",
        "The record was changed by someone else since it was read (send the current "
        "`version`), or it already exists.",
    ),
    "unauthorized": (
        401,
        "Authentication required",
        "Send an API token as `Authorization: Bearer <token>`; the token may be unknown, "
        "expired or revoked.",
    ),
    "forbidden": (403, "Forbidden", "Your role does not allow this action."),
    "rate-limited": (429, "Too many requests", "Too many failed sign-ins; wait and retry."),
    "too-large": (413, "Upload too large", "The uploaded file exceeds the size limit."),
    "server-configuration": (
        500,
        "Server configuration error",
        "The server's rule tables or settings are invalid; tell the administrator.",
    ),
    "http": (400, "HTTP error", "A protocol-level error (method not allowed, bad request ...)."),
}


class ProblemError(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(
        self,
        slug: str,
        detail: str,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.slug = slug
        self.detail = detail
        self.status = status or PROBLEM_TYPES[slug][0]
        self.headers = headers or {}
        self.extra = extra
        super().__init__(detail)


def problem_body(
    slug: str, detail: str, status: int, instance: str | None = None, **extra: Any
) -> dict[str, Any]:
    title = PROBLEM_TYPES.get(slug, PROBLEM_TYPES["http"])[1]
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return body


def problem_response(
    request: Request,
    slug: str,
    detail: str,
    status: int,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(
        problem_body(slug, detail, status, instance=request.url.path, **extra),
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


def input_errors(exc: InputError) -> list[dict[str, Any]]:
    out = []
    for p in exc.problems:
        loc = p.location
        out.append(
            {
                "message": p.message,
                "kind": p.kind,
                "location": {
                    k: v
                    for k, v in {
                        "patient_id": loc.patient_id,
                        "row": loc.row,
                        "field": loc.field,
                        "source": loc.source,
                    }.items()
                    if v is not None
                },
            }
        )
    return out


def to_problem(request: Request, exc: Exception) -> JSONResponse:
    """Translate an exception raised inside an API route into a problem response."""
    if isinstance(exc, ProblemError):
        return problem_response(
            request, exc.slug, exc.detail, exc.status, headers=exc.headers, **exc.extra
        )
    if isinstance(exc, InputError):
        return problem_response(request, "input-error", exc.message, 422, errors=input_errors(exc))
    if isinstance(exc, NotFoundError):
        return problem_response(request, "not-found", str(exc), 404)
    if isinstance(exc, ConflictError):
        if exc.current_version is None:
            return problem_response(request, "conflict", str(exc), 409)
        return problem_response(
            request, "conflict", str(exc), 409, current_version=exc.current_version
        )
    if isinstance(exc, RateLimitedError):
        return problem_response(
            request,
            "rate-limited",
            str(exc),
            429,
            headers={"Retry-After": str(exc.retry_after)},
        )
    if isinstance(exc, AuthError):
        return problem_response(
            request, "unauthorized", str(exc), 401, headers={"WWW-Authenticate": "Bearer"}
        )
    if isinstance(exc, RequestValidationError):
        errors = []
        for e in exc.errors():
            loc = [str(x) for x in e.get("loc", ())]
            where = loc[0] if loc else "request"
            field = ".".join(loc[1:]) if len(loc) > 1 else None
            errors.append(
                {
                    "message": e.get("msg", "invalid"),
                    "kind": "SchemaError",
                    "location": {"field": f"{where}:{field}" if field else where},
                }
            )
        return problem_response(
            request,
            "input-error",
            f"the request is invalid ({len(errors)} problem(s))",
            422,
            errors=errors,
        )
    if isinstance(exc, StarletteHTTPException):
        slug = {401: "unauthorized", 403: "forbidden", 404: "not-found", 413: "too-large"}.get(
            exc.status_code, "http"
        )
        return problem_response(
            request, slug, str(exc.detail), exc.status_code, headers=dict(exc.headers or {})
        )
    if isinstance(exc, (RuleTableError, SettingsError)):
        return problem_response(
            request, "server-configuration", "the server's configuration is invalid", 500
        )
    raise exc
