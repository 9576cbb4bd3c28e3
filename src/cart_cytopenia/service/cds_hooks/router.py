"""The HTTP side of the CDS Hooks service: routes, CORS, request limits, answers from memory.

``create_cds_router`` wires the endpoints (``CdsEndpoints``) to a FastAPI router; each call is
authenticated (``auth.JwtVerifier``), read within the size limit, answered from memory when the
same data were answered before (``memo``), else gathered (``prefetch``) and computed in a worker
thread (``engine.CdsEngine``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from cart_cytopenia import __version__
from cart_cytopenia.errors import CartCytopeniaError
from cart_cytopenia.io.fhir_cards import with_uuids
from cart_cytopenia.rules.settings import Settings
from cart_cytopenia.service.cds_hooks.auth import Caller, JwtVerifier
from cart_cytopenia.service.cds_hooks.cards import unavailable_card
from cart_cytopenia.service.cds_hooks.engine import CdsEngine
from cart_cytopenia.service.cds_hooks.feedback import (
    FeedbackRecord,
    FeedbackSink,
    IssuedCard,
    IssuedCards,
    store_feedback_sink,
)
from cart_cytopenia.service.cds_hooks.memo import Answer, content_key, request_key
from cart_cytopenia.service.cds_hooks.prefetch import Gathered, PreconditionFailed
from cart_cytopenia.service.cds_hooks.protocol import (
    CdsError,
    FeedbackItem,
    FeedbackRequest,
    HookRequest,
    json_response,
    validation_text,
)
from cart_cytopenia.service.cds_hooks.services import SERVICES, ServiceDef
from cart_cytopenia.service.cds_hooks.settings import CdsHooksSettings, load_cds_settings

log = logging.getLogger("cart_cytopenia.cds_hooks")

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


# --------------------------------------------------------------------------- requests


def parse_body(body: bytes, model: type[BaseModel]) -> Any:
    """The request body as ``model``; 400 with what is wrong when it is not."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise CdsError(400, "the request body is not valid JSON", "structure") from None
        raise CdsError(
            400,
            f"the request is not a valid CDS Hooks request: {validation_text(exc)}",
            "structure",
        ) from None


def _hook_context(service: ServiceDef, req: HookRequest) -> str:
    """The patient in context, after checking that the call is for this service's hook."""
    if req.hook != service.hook:
        raise CdsError(
            400,
            f"service {service.id} answers the '{service.hook}' hook, not '{req.hook}'",
            "not-supported",
        )
    patient_id = req.context.get("patientId")
    if not isinstance(patient_id, str) or not patient_id:
        raise CdsError(400, "context.patientId is required", "required")
    return patient_id


def _order_context(service: ServiceDef, req: HookRequest) -> tuple[dict[str, Any], Any]:
    """The draft orders (and, for order-select, the selections) of an order hook."""
    draft = req.context.get("draftOrders")
    if not isinstance(draft, dict):
        raise CdsError(400, "context.draftOrders (a Bundle) is required", "required")
    selections = req.context.get("selections") if service.hook == "order-select" else None
    if service.hook == "order-select" and not isinstance(selections, list):
        raise CdsError(400, "context.selections (a list of ids) is required", "required")
    return draft, selections


def _feedback_record(
    service_id: str, entry: FeedbackItem, info: IssuedCard | None, caller: Caller | None
) -> FeedbackRecord:
    """One feedback entry with what its card was about (no free text beyond the reason code)."""
    reason = None
    if entry.overrideReason is not None and entry.overrideReason.reason:
        r = entry.overrideReason.reason
        reason = f"{r.get('system', '')}|{r.get('code', '')}" + (
            f" ({r['display']})" if r.get("display") else ""
        )
    return FeedbackRecord(
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


def _parsed_call(
    service: ServiceDef, body: bytes, parts: tuple[str, ...], engine: CdsEngine
) -> tuple[HookRequest, str, str]:
    """(the parsed call, its patient, the key of what its cards depend on) of a hook body."""
    req = parse_body(body, HookRequest)
    patient_id = _hook_context(service, req)
    return req, patient_id, request_key(req, *parts, fetches=engine.fetches(req))


# --------------------------------------------------------------------------- endpoints


class CdsEndpoints:
    """The CDS Hooks endpoints: discovery, a service call, feedback."""

    def __init__(
        self,
        settings: CdsHooksSettings,
        engine: CdsEngine,
        verifier: JwtVerifier,
        feedback: FeedbackSink | None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.verifier = verifier
        self.feedback = feedback
        self.issued = IssuedCards()
        self.stats = {"requests": 0, "cache_hits": 0}

    def base_of(self, request: Request) -> str:
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        return str(request.base_url).rstrip("/")

    async def authenticate(self, request: Request, endpoint: str) -> Caller | None:
        if not self.settings.require_auth:
            return None
        base = self.base_of(request)
        # 'aud' is the URL of the endpoint called, exactly: no trailing-slash variant
        auds = [base + endpoint]
        if endpoint.endswith("/feedback"):
            auds.append(base + endpoint.removesuffix("/feedback"))
        return await self.verifier.verify(request.headers.get("authorization"), auds)

    async def read_body(self, request: Request) -> bytes:
        limit = self.settings.max_request_bytes
        size = request.headers.get("content-length")
        if size and size.isdigit() and int(size) > limit:
            raise CdsError(413, f"request larger than {limit} bytes", "too-costly")
        body = await request.body()
        if len(body) > limit:
            raise CdsError(413, f"request larger than {limit} bytes", "too-costly")
        return body

    # ---- routes

    async def discovery(self, request: Request) -> Response:
        try:
            await self.authenticate(request, "/cds-services")
        except CdsError as exc:
            return exc.response()
        return json_response({"services": [s.discovery() for s in SERVICES.values()]})

    async def call_service(self, service_id: str, request: Request) -> Response:
        service = SERVICES.get(service_id)
        if service is None:
            return CdsError(404, f"no CDS service '{service_id}'", "not-found").response()
        self.stats["requests"] += 1
        try:
            await self.authenticate(request, f"/cds-services/{service_id}")
            patient, templates = await self.answer(service, request)
        except CdsError as exc:
            return exc.response()
        except CartCytopeniaError as exc:
            return CdsError(400, str(exc).splitlines()[0], "invalid").response()
        cards = with_uuids(templates)
        for c in cards:
            topic = c.get("source", {}).get("topic", {}).get("code", "")
            suggestions = {s["uuid"]: s["label"] for s in c.get("suggestions", [])}
            self.issued.add(c["uuid"], IssuedCard(service_id, topic, patient, suggestions))
        return json_response({"cards": cards})

    async def post_feedback(self, service_id: str, request: Request) -> Response:
        if service_id not in SERVICES:
            return CdsError(404, f"no CDS service '{service_id}'", "not-found").response()
        try:
            caller = await self.authenticate(request, f"/cds-services/{service_id}/feedback")
            fb = await run_in_threadpool(parse_body, await self.read_body(request), FeedbackRequest)
        except CdsError as exc:
            return exc.response()
        for entry in fb.feedback:
            rec = _feedback_record(service_id, entry, self.issued.get(entry.card), caller)
            log.info(
                "cds feedback: service %s outcome %s item %s",
                service_id,
                rec.outcome,
                rec.item or "unknown",
            )
            if self.feedback is not None:
                result = self.feedback(rec)
                if inspect.isawaitable(result):
                    await result
        return json_response({})

    # ---- answering a hook call

    def _recall(self, key: str) -> Answer | None:
        hit = self.engine.memo.recall(key) if self.settings.cache_entries else None
        if hit is not None:
            self.stats["cache_hits"] += 1
        return hit

    async def answer(self, service: ServiceDef, request: Request) -> Answer:
        """(patient id, cards) for a hook call: from memory when the same body or the same data
        were answered before or are being answered, else computed once."""
        body = await self.read_body(request)
        base = self.base_of(request)
        engine = self.engine
        day_key = engine.today().isoformat()
        parts = (service.id, day_key, engine.settings_fingerprint, __version__, base)
        # hashing and parsing a body (up to max_request_bytes) run in the thread pool
        body_key = await run_in_threadpool(content_key, body, *parts)
        hit = self._recall(body_key)
        if hit is not None:  # the same body was answered before: valid, same patient, same cards
            return hit
        req, patient_id, key = await run_in_threadpool(_parsed_call, service, body, parts, engine)
        hit = self._recall(key)
        if hit is not None:  # the same data for the same patient were answered (another user)
            engine.memo.alias(body_key, key)
            return hit
        pending = engine.memo.inflight.get(key)
        if pending is not None:  # the same data are being answered: wait for it
            return await asyncio.shield(pending)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        engine.memo.inflight[key] = future
        try:
            gathered, cards = await self._compute(service, req, patient_id, base)
            if not gathered.fetched:
                engine.memo.remember(key, body_key, (patient_id, cards))
            future.set_result((patient_id, cards))
            return patient_id, cards
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            engine.memo.inflight.pop(key, None)

    async def _compute(
        self, service: ServiceDef, req: HookRequest, patient_id: str, base: str
    ) -> tuple[Gathered, list[dict[str, Any]]]:
        """The patient's data gathered, then the cards of the hook (in a worker thread)."""
        engine = self.engine
        try:
            gathered = await engine.gather(req)
        except PreconditionFailed as exc:
            raise CdsError(412, str(exc), "not-found") from None
        if gathered.unavailable:
            if not self.settings.unavailable_as_card:
                raise CdsError(
                    412,
                    "FHIR data could not be retrieved: " + "; ".join(gathered.unavailable),
                    "transient",
                )
            return gathered, [
                unavailable_card(gathered.unavailable, engine.links(base, patient_id))
            ]
        if service.hook == "patient-view":
            cards = await engine.compute(engine.patient_view, gathered.raws, patient_id, base)
            return gathered, cards
        draft, selections = _order_context(service, req)
        meds, failed, asked = await engine.draft_medications(req, draft, gathered.raws)
        gathered.fetched = gathered.fetched or asked
        cards = await engine.compute(
            engine.orders, gathered.raws, patient_id, base, draft, selections, meds, failed
        )
        return gathered, cards


# --------------------------------------------------------------------------- router


def _gc_lifespan(settings: CdsHooksSettings) -> Callable[[Any], Any]:
    """Start-up garbage-collector tuning (``gc_freeze``, ``gc_young_threshold``)."""

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

    return lifespan


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
    endpoints = CdsEndpoints(settings, engine, JwtVerifier(settings, transport), feedback)
    allowed = tuple(settings.allowed_origins)
    route_class = type("CdsCorsRoute", (CorsRoute,), {"allowed": allowed})
    router = APIRouter(route_class=route_class, tags=["CDS Hooks"], lifespan=_gc_lifespan(settings))
    router.state = {  # type: ignore[attr-defined]
        "engine": engine,
        "verifier": endpoints.verifier,
        "issued": endpoints.issued,
        "stats": endpoints.stats,
    }

    async def preflight(request: Request) -> Response:
        return _preflight(request, allowed)

    router.add_api_route(
        "/cds-services", endpoints.discovery, methods=["GET"], summary="CDS Hooks discovery"
    )
    for path in (
        "/cds-services",
        "/cds-services/{service_id}",
        "/cds-services/{service_id}/feedback",
    ):
        router.add_api_route(path, preflight, methods=["OPTIONS"], include_in_schema=False)
    router.add_api_route(
        "/cds-services/{service_id}",
        endpoints.call_service,
        methods=["POST"],
        summary="Call a CDS service (CDS Hooks 2.0)",
    )
    router.add_api_route(
        "/cds-services/{service_id}/feedback",
        endpoints.post_feedback,
        methods=["POST"],
        summary="Feedback on cards (CDS Hooks 2.0)",
    )
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
