"""Request context, authentication and authorisation for pages and API.

Pages authenticate with the session cookie and check the CSRF token on every POST; the API
authenticates with ``Authorization: Bearer <API token>`` only (no cookies, so no CSRF).
Roles: ``read-only`` reads, ``clinician`` also writes patient data and acknowledges guidance,
``admin`` also manages accounts and reads the audit log.

The event loop never waits for the database, a password hash or clinical work: routes that use
the database are plain ``def`` functions (run in the thread pool) and the form of a POST is read
by an ``async`` dependency (``FORM``) before them. A database connection is only held inside one
thread-pool call: authentication commits (returning its connection to the pool) before the
request goes on, and ``ServiceRoute`` commits a route's work in the same thread that did it.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from cart_cytopenia.rules.settings import Settings
from cart_cytopenia.service.answers import AnswerCache
from cart_cytopenia.service.clinical import SnapshotCache
from cart_cytopenia.service.config import ServiceSettings
from cart_cytopenia.service.jobs import JobRunner
from cart_cytopenia.service.limits import id_out_of_range
from cart_cytopenia.service.problems import ProblemError
from cart_cytopenia.service.security import CSRF_FIELD, SESSION_COOKIE, same, sign, unsign
from cart_cytopenia.service.worklist import WorklistRefresher, WorklistSource
from cart_cytopenia.store import accounts, audit
from cart_cytopenia.store.db import Database
from cart_cytopenia.store.errors import AuthError, NotFoundError


@dataclass
class ServiceContext:
    settings: ServiceSettings
    db: Database
    clinical: Settings
    cache: SnapshotCache
    jobs: JobRunner
    worklist: WorklistSource
    refresher: WorklistRefresher
    answers: AnswerCache = field(default_factory=AnswerCache)

    def today(self) -> dt.date:
        return self.settings.today or dt.date.today()


@dataclass(frozen=True)
class Viewer:
    user_id: int
    username: str
    display_name: str
    role: str
    channel: str  # "web" or "api"
    client: str
    csrf_token: str = ""

    def can(self, minimum: str) -> bool:
        return accounts.role_at_least(self.role, minimum)


class LoginRequiredError(Exception):
    """A page needs a signed-in user: the handler redirects to the sign-in page."""


class PageForbiddenError(Exception):
    """The signed-in user's role does not allow this page or action."""


def get_ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _finish(session: Session, ok: bool) -> None:
    try:
        if ok:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


def _holds_work(session: Session) -> bool:
    """Whether ending ``session`` would touch the database: an open transaction (and so a
    connection), or changes or audit entries not yet flushed."""
    return session.in_transaction() or bool(
        session.new or session.dirty or session.deleted or session.info
    )


async def db_session(request: Request) -> AsyncIterator[Session]:
    """One session per request: committed at the end, rolled back on an error.

    Created on the event loop (a session takes its connection only when first used, in a
    route's thread). ``ServiceRoute`` and authentication commit in their own threads, so at the
    end there is usually nothing left and the session is closed here without a database call;
    otherwise the commit or rollback runs in the thread pool. (A plain ``def`` dependency
    would cost two more thread-pool hops per request, each waiting for the interpreter lock
    behind the threads that grade and render: a source of issue 15's latency tail.)
    """
    session = get_ctx(request).db.session()
    ok = False
    try:
        yield session
        ok = True
    finally:
        if _holds_work(session):
            await run_in_threadpool(_finish, session, ok)
        else:
            session.close()


# Use DB (not a bare Depends(db_session)) in routes: the session is committed when the route
# function returns, *before* the response is sent, so a browser following a redirect after a
# write always sees it (a yield dependency's default "request" scope would commit afterwards).
DB = Depends(db_session, scope="function")
DbSession = Annotated[Session, DB]


def _in_one_thread(endpoint: Callable[..., Any], path_params: list[str]) -> Callable[..., Any]:
    """``endpoint``, refusing ids beyond 64 bits (404) and committing its ``session`` itself."""
    has_session = "session" in inspect.signature(endpoint).parameters

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        for name in path_params:
            if id_out_of_range(kwargs.get(name)):
                raise NotFoundError(f"{name.replace('_', ' ')} {kwargs[name]} does not exist")
        if not has_session:
            return endpoint(*args, **kwargs)
        session: Session = kwargs["session"]
        try:
            result = endpoint(*args, **kwargs)
        except BaseException:
            session.rollback()
            raise
        session.commit()
        return result

    return run


class ServiceRoute(APIRoute):
    """A plain ``def`` route whose database work starts and ends in one thread-pool call.

    FastAPI runs a plain ``def`` route in the thread pool and the exit of the ``DB`` dependency
    in another call after it; in between the request would hold its connection while waiting
    for a free thread (with the pool exhausted, every thread then waits for a connection: the
    sign-in hang of issue 15). Committing in the route's own thread releases the connection
    there; the dependency's exit then has nothing left to do. A record id in the path beyond
    64 bits is answered 404 (it cannot exist) before the database sees it.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if inspect.iscoroutinefunction(endpoint):
            raise TypeError(
                f"{endpoint.__name__}: routes are plain def functions (the database, password "
                "hashing and grading must not run on the event loop); read a form with FORM"
            )
        params = inspect.signature(endpoint).parameters
        path_params = [n for n in re.findall(r"{(\w+)", path) if n in params]
        super().__init__(path, _in_one_thread(endpoint, path_params), **kwargs)


def _release(session: Session) -> None:
    """End authentication's transaction: its connection goes back to the pool at once."""
    session.commit()


def optional_web_viewer(request: Request, session: Session = DB) -> Viewer | None:
    ctx = get_ctx(request)
    token = unsign(ctx.settings.secret_key, "session", request.cookies.get(SESSION_COOKIE))
    if token is None:
        return None
    ws = accounts.session_for_token(session, token)
    if ws is None:
        _release(session)
        return None
    u = ws.user
    viewer = Viewer(
        u.id, u.username, u.display_name, u.role, "web", client_of(request), ws.csrf_token
    )
    _release(session)
    request.state.viewer = viewer
    return viewer


async def web_viewer(viewer: Viewer | None = Depends(optional_web_viewer)) -> Viewer:
    # async: no database, so no thread-pool hop (the same for the role checks below)
    if viewer is None:
        raise LoginRequiredError()
    return viewer


SignedIn = Annotated[Viewer, Depends(web_viewer)]


def web_role(minimum: str) -> Callable[..., Awaitable[Viewer]]:
    async def dep(viewer: Viewer = Depends(web_viewer)) -> Viewer:
        if not viewer.can(minimum):
            raise PageForbiddenError(minimum)
        return viewer

    return dep


async def posted_form(request: Request) -> FormData:
    """The submitted form, read on the event loop (no connection is held while it arrives)."""
    return await request.form(max_part_size=get_ctx(request).settings.max_upload_bytes)


# The form of a POST page; declare it after the viewer, so the user is known before the body is
# read, and before the route (a plain def) runs in the thread pool.
FORM = Depends(posted_form)
Posted = Annotated[FormData, FORM]  # check its CSRF token (``check_csrf``) before using it


async def raw_body(request: Request) -> bytes:
    """The request body as bytes, read on the event loop before the route runs (``BodyLimit``
    has refused it already if it is too large)."""
    return await request.body()


RAW_BODY = Depends(raw_body)


def check_csrf(form: FormData, viewer: Viewer) -> FormData:
    """``form``, after checking its CSRF token against the session's."""
    token = form.get(CSRF_FIELD)
    if not isinstance(token, str) or not same(token, viewer.csrf_token):
        raise PageForbiddenError("csrf")
    return form


async def close_form(request: Request) -> AsyncIterator[None]:
    """Close uploaded files of a parsed form when the request is done (router dependency)."""
    yield
    form = getattr(request, "_form", None)
    if form is not None:
        await form.close()


def set_signed_cookie(
    response: Response,
    request: Request,
    cookie: str,
    signed: tuple[str, str],
    samesite: Literal["strict", "lax"],
    max_age: int,
) -> None:
    """Set ``cookie`` to the value of ``signed`` (purpose, value) signed with the secret key:
    HTTP-only, ``Secure`` when the settings say so, for the whole site."""
    settings = get_ctx(request).settings
    response.set_cookie(
        cookie,
        sign(settings.secret_key, *signed),
        max_age=max_age,
        httponly=True,
        samesite=samesite,
        secure=settings.secure_cookies,
    )


def page_router(prefix: str = "") -> APIRouter:
    """A router of server-rendered pages: not in the API document, the uploaded files of a form
    closed after the request, each route run in one thread (``ServiceRoute``)."""
    return APIRouter(
        prefix=prefix,
        include_in_schema=False,
        dependencies=[Depends(close_form)],
        route_class=ServiceRoute,
    )


# Who may see a page: the signed-in user (``SignedIn``) of at least this role.
PageReader = Annotated[Viewer, Depends(web_role("read-only"))]
PageWriter = Annotated[Viewer, Depends(web_role("clinician"))]
PageAdmin = Annotated[Viewer, Depends(web_role("admin"))]


def api_viewer(request: Request, session: Session = DB) -> Viewer:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ProblemError(
            "unauthorized",
            "send an API token: `Authorization: Bearer <token>` (create one under Account)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        _, user = accounts.user_for_api_token(session, token.strip())
    except AuthError as exc:
        _release(session)
        raise ProblemError(
            "unauthorized", str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        ) from None
    viewer = Viewer(user.id, user.username, user.display_name, user.role, "api", client_of(request))
    _release(session)
    request.state.viewer = viewer
    return viewer


def api_role(minimum: str) -> Callable[..., Awaitable[Viewer]]:
    async def dep(viewer: Viewer = Depends(api_viewer)) -> Viewer:
        if not viewer.can(minimum):
            raise ProblemError(
                "forbidden",
                f"this needs the role '{minimum}' or higher; your role is '{viewer.role}'",
            )
        return viewer

    return dep


def record(
    session: Session,
    viewer: Viewer,
    action: str,
    resource: str,
    resource_id: str | int | None = None,
    patient_id: int | None = None,
    outcome: str = "ok",
    detail: str | None = None,
) -> None:
    audit.record(
        session,
        user_id=viewer.user_id,
        username=viewer.username,
        action=action,
        resource=resource,
        resource_id=resource_id,
        patient_id=patient_id,
        channel=viewer.channel,
        client=viewer.client,
        outcome=outcome,
        detail=detail,
    )


REFUSALS = {403: "forbidden", 422: "rejected"}
METHOD_ACTIONS = {"GET": "read", "POST": "create", "PUT": "update", "PATCH": "update",
                  "DELETE": "delete"}  # fmt: skip


def _route_of(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", "") or "(unmatched)")


async def audit_refusal(request: Request, status: int) -> None:
    """Record a refusal (403) or rejected input (422) of a signed-in user in the audit log.

    The entry names the route template and the record ids of its path (never a value of the
    request), like every other audit entry; it is written in the thread pool, in a
    transaction of its own (the request's own was rolled back).
    """
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    outcome = REFUSALS.get(status)
    if viewer is None or outcome is None:
        return
    params = request.path_params
    ids = " ".join(f"{k}={v}" for k, v in params.items() if str(v).isdigit())
    detail = f"{request.method} {_route_of(request)} {ids}".strip()
    literal = [part for part in _route_of(request).split("/") if part and "{" not in part]
    resource = literal[-1] if literal else "page"
    action = METHOD_ACTIONS.get(request.method, "read")
    db = get_ctx(request).db

    def write() -> None:
        with db.transaction() as session:
            record(session, viewer, action, resource, outcome=outcome, detail=detail)

    await run_in_threadpool(write)
