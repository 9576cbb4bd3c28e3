"""The FastAPI application: ``create_app(settings)``.

Routers live in their own modules and are included here, one line each (pages, sign-in and
administration, the JSON API; other adapters such as CDS Hooks add their router the same way).
The app refuses to start with a default secret outside development and with a database whose
schema is behind the code. The access log names the route template (``/patients/{patient_id}``),
never the concrete path, query string or body, so no patient data reaches application logs.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cart_cytopenia import __version__
from cart_cytopenia.errors import CartCytopeniaError, InputError
from cart_cytopenia.service import api, cds_hooks, fhir_api, pages, pages_auth, pages_import
from cart_cytopenia.service.allow import allowed_methods
from cart_cytopenia.service.answers import AnswerCache
from cart_cytopenia.service.clinical import SnapshotCache
from cart_cytopenia.service.config import ServiceSettings
from cart_cytopenia.service.deps import (
    LoginRequiredError,
    PageForbiddenError,
    ServiceContext,
    audit_refusal,
)
from cart_cytopenia.service.jobs import JobRunner, job_pool_options
from cart_cytopenia.service.limits import BodyLimit
from cart_cytopenia.service.openapi import truthful_openapi
from cart_cytopenia.service.problems import ProblemError, to_problem
from cart_cytopenia.service.smart import routes as smart
from cart_cytopenia.service.worklist import WorklistRefresher, WorklistSource, settings_key
from cart_cytopenia.store import accounts
from cart_cytopenia.store.db import Database
from cart_cytopenia.store.errors import ConflictError, NotFoundError
from cart_cytopenia.store.migrate import check_current

STATIC = Path(__file__).resolve().parent / "static"
log = logging.getLogger("cart_cytopenia.service")
access_log = logging.getLogger("cart_cytopenia.access")

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def _route_template(scope: Scope) -> str:
    """The matched route's template (``/patients/{patient_id}``), never the concrete path."""
    route = scope.get("route")
    if route is not None and getattr(route, "path", None) is not None:
        path = str(route.path)
        return path + "/…" if path == "/static" else path
    return "(unmatched)"


SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
)
API_HEADERS = (*SECURITY_HEADERS, ("Cache-Control", "no-store"))


class AccessLogAndHeaders:
    """Security headers on every response; an access log line without patient data.

    Plain ASGI middleware (not ``BaseHTTPMiddleware``, which costs about 0.4 ms per request:
    measured on the CDS Hooks hot path). A header the response already set is kept.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = str(scope.get("path", ""))
        extra = (
            API_HEADERS
            if path.startswith("/api/v1/") and "openapi" not in path
            else SECURITY_HEADERS
        )
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = int(message["status"])
                headers = MutableHeaders(scope=message)
                for name, value in extra:
                    headers.setdefault(name, value)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            # an unexpected error: log where it happened, never its message (it may hold data)
            frames = traceback.extract_tb(exc.__traceback__)
            where = " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames[-4:])
            log.error(
                "unexpected %s in %s %s at %s",
                type(exc).__name__,
                scope.get("method", ""),
                _route_template(scope),
                where,
            )
            if response_started:
                raise
            await _server_error(Request(scope))(scope, receive, send_with_headers)
        access_log.info(
            "%s %s %d %.0fms",
            scope.get("method", ""),
            _route_template(scope),
            status,
            (time.perf_counter() - started) * 1000,
        )


def _server_error(request: Request) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse(
            {
                "type": "about:blank",
                "title": "Internal Server Error",
                "status": 500,
                "detail": "an unexpected error; it was logged without the request's data",
            },
            status_code=500,
            media_type="application/problem+json",
        )
    return HTMLResponse(
        "<!doctype html><title>Error</title><h1>Something went wrong</h1>"
        "<p>The error was logged. <a href='/worklist'>Back to the worklist</a></p>",
        status_code=500,
    )


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _html_error(
    request: Request, status: int, title: str, detail: str, headers: dict[str, str] | None = None
) -> HTMLResponse:
    return pages.templates.TemplateResponse(
        request,
        "error.html",
        {"viewer": None, "title": title, "detail": detail, "status": status},
        status_code=status,
        headers=headers,
    )


def _context(settings: ServiceSettings, db: Database) -> ServiceContext:
    """What every request needs: settings, database, clinical settings, caches and workers."""
    clinical = settings.clinical_settings()
    cache = SnapshotCache()

    def today() -> dt.date:
        return settings.today or dt.date.today()

    answers = AnswerCache(settings.answer_cache_bytes)
    source = WorklistSource(db, clinical, settings_key(clinical), today)
    return ServiceContext(
        settings=settings,
        db=db,
        clinical=clinical,
        cache=cache,
        jobs=JobRunner(db, job_pool_options(settings.pool_options())),
        worklist=source,
        refresher=WorklistRefresher(source, pool=job_pool_options(settings.pool_options())),
        answers=answers,
    )


def create_app(
    settings: ServiceSettings, *, database: Database | None = None, check_schema: bool = True
) -> FastAPI:
    """The web application for ``settings`` (raises SettingsError when it must not start)."""
    settings.check_secret()
    db = database or Database(settings.effective_database_url, pool=settings.pool_options())
    if check_schema:
        check_current(db)
    ctx = _context(settings, db)
    accounts.configure_hashing(
        settings.hash_parameters(), settings.hash_concurrency or os.cpu_count() or 2
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # routes run in this many threads; the pool has a connection for each of them
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        ctx.refresher.start()  # brings the stored worklist up to date (and at each new day)
        try:
            yield
        finally:
            ctx.refresher.stop()
            ctx.jobs.shutdown()

    app = FastAPI(
        title="cart-cytopenia",
        version=__version__,
        description=(
            "Clinical decision support for cytopenias after CAR T-cell therapy. JSON API: "
            "authenticate with `Authorization: Bearer <API token>` (create one on the Account "
            "page); errors are RFC 9457 problem details. It supports clinicians; it never "
            "orders anything."
        ),
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
        root_path=settings.root_path,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.openapi = lambda: truthful_openapi(app)  # type: ignore[method-assign]
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)
    app.add_middleware(AccessLogAndHeaders)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    # routers, one line each
    app.include_router(cds_hooks.router_from_context(ctx))  # first: EHR calls match early
    app.include_router(pages_auth.router)
    app.include_router(pages.router)
    app.include_router(pages_import.router)
    app.include_router(api.router)
    app.include_router(fhir_api.router)
    app.state.smart_launches = smart.new_launch_store(settings.smart)
    app.include_router(smart.router)
    _handle_errors(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    return app


def _handle_errors(app: FastAPI) -> None:
    """Errors as problem details on the API, as error pages elsewhere; refusals audited."""

    @app.exception_handler(LoginRequiredError)
    async def _login_required(request: Request, exc: LoginRequiredError) -> Response:
        target = request.url.path if request.method == "GET" else "/worklist"
        if request.url.query and request.method == "GET":
            target += "?" + request.url.query
        from urllib.parse import quote

        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(PageForbiddenError)
    async def _forbidden(request: Request, exc: PageForbiddenError) -> Response:
        await audit_refusal(request, 403)
        if str(exc) == "csrf":
            return _html_error(
                request, 403, "Form expired",
                "The form was not accepted (its security token is missing or stale). Go back, "
                "reload the page and submit again.",
            )  # fmt: skip
        return _html_error(
            request, 403, "Not allowed",
            f"Your role does not allow this; it needs the role '{exc}' or higher.",
        )  # fmt: skip

    async def _any(request: Request, exc: Exception) -> Response:
        if isinstance(exc, StarletteHTTPException) and exc.status_code == 405:
            exc.headers = {**(exc.headers or {}), "Allow": allowed_methods(request)}
        if _is_api(request):
            response = to_problem(request, exc)
            await audit_refusal(request, response.status_code)
            return response
        if isinstance(exc, (InputError, RequestValidationError)):
            await audit_refusal(request, 422)
        if isinstance(exc, NotFoundError):
            return _html_error(request, 404, "Not found", str(exc))
        if isinstance(exc, ConflictError):
            return _html_error(request, 409, "Changed by someone else", str(exc))
        if isinstance(exc, InputError):
            return _html_error(request, 422, "Invalid input", str(exc))
        if isinstance(exc, StarletteHTTPException):
            headers = dict(exc.headers or {})
            return _html_error(request, exc.status_code, "Error", str(exc.detail), headers)
        if isinstance(exc, RequestValidationError):
            return _html_error(
                request, 422, "Invalid request", "A parameter of the page is invalid."
            )
        if isinstance(exc, ProblemError):
            return _html_error(request, exc.status, "Error", exc.detail)
        log.error("unexpected %s", type(exc).__name__)
        return _html_error(request, 500, "Error", "Something went wrong.")

    for exc_type in (
        ProblemError,
        CartCytopeniaError,
        RequestValidationError,
        StarletteHTTPException,
    ):
        app.add_exception_handler(exc_type, _any)
