"""The OpenAPI document of ``/api/v1``, made to tell the truth about errors.

FastAPI documents a route's success answer and a validation error in its own format; the API
answers errors as RFC 9457 problem details (``application/problem+json``). ``truthful_openapi``
adds to every API operation each error status it can return, with the ``Problem`` schema:
400 (a body that cannot be read at all: not UTF-8 text, a broken multipart form), 401 (no or
a bad token), 403 (role), 404 (a record of the path does not exist), 405 (another
method; the ``Allow`` header lists the allowed ones), 409 (a write that lost a race), 413 (a
body over the limit), 422 (invalid input), 428 (a replacement without the version read), 500.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from cart_cytopenia.service.problems import MEDIA_TYPE

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details (the types: GET /api/v1/problems)",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
        "current_version": {"type": "integer"},
    },
}
DESCRIPTIONS = {
    "400": "The request body cannot be read at all (not UTF-8 text, a broken multipart form)",
    "401": "No API token, or an unknown, expired or revoked one",
    "403": "The role of the token's account does not allow this",
    "404": "A record named in the path does not exist",
    "405": "Method not allowed (the Allow header lists the allowed methods)",
    "409": "The record changed since it was read (send the current version), or exists",
    "413": "The request body is larger than the limit (MAX_UPLOAD_BYTES)",
    "422": "The input is invalid: each entry of `errors` says what and where",
    "428": "Replacing a course needs the version read (If-Match or ?version=)",
    "500": "An unexpected error (logged without the request's data)",
}
WRITES = ("post", "put", "patch", "delete")
UNAUTHENTICATED = ("/api/v1/problems", "/api/v1/openapi.json")


def _problem(status: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": DESCRIPTIONS[status],
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status == "405":
        response["headers"] = {"Allow": {"schema": {"type": "string"}}}
    return response


def _statuses(path: str, method: str, op: dict[str, Any]) -> set[str]:
    out = {"405", "500"}
    if path not in UNAUTHENTICATED:
        out |= {"401", "403"}
    if "{" in path:
        out.add("404")
    if op.get("parameters") or "requestBody" in op:
        out.add("422")
    if "requestBody" in op or method in WRITES:
        out |= {"413", "422"}
    if "requestBody" in op:
        out.add("400")
    if method in WRITES and "/cohort/" not in path:  # a record that exists or changed meanwhile
        out.add("409")
    if method == "put" and path.endswith("/courses/{course_id}"):
        out.add("428")
    return out


def truthful_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with every error answer of the API documented."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, op in operations.items():
            responses = op.setdefault("responses", {})
            for status in sorted(_statuses(path, method, op)):
                existing = responses.get(status)
                if existing is None or (status == "422" and "HTTPValidationError" in str(existing)):
                    responses[status] = _problem(status)
                else:  # the route's own answer for this status (e.g. an import report) stays
                    existing.setdefault("content", {}).setdefault(
                        MEDIA_TYPE, {"schema": {"$ref": "#/components/schemas/Problem"}}
                    )
    schema["components"]["schemas"].pop("HTTPValidationError", None)
    schema["components"]["schemas"].pop("ValidationError", None)
    app.openapi_schema = schema
    return schema
