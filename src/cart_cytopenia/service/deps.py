"""Request context, authentication and authorisation for pages and API.

Pages authenticate with the session cookie and check the CSRF token on every POST; the API
authenticates with ``Authorization: Bearer <API token>`` only (no cookies, so no CSRF).
Roles: ``read-only`` reads, ``clinician`` also writes patient data and acknowledges guidance,
``admin`` also manages accounts and reads the audit log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from cart_cytopenia.rules.settings import Settings
from cart_cytopenia.service.clinical import SnapshotCache
from cart_cytopenia.service.config import ServiceSettings
from cart_cytopenia.service.problems import ProblemError
from cart_cytopenia.service.security import CSRF_FIELD, SESSION_COOKIE, same, unsign
from cart_cytopenia.store import accounts, audit
from cart_cytopenia.store.db import Database
from cart_cytopenia.store.errors import AuthError


@dataclass
class ServiceContext:
    settings: ServiceSettings
    db: Database
    clinical: Settings
    cache: SnapshotCache

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


def db_session(request: Request) -> Iterator[Session]:
    """One session per request: committed at the end, rolled back on an error."""
    session = get_ctx(request).db.session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# Use DB (not a bare Depends(db_session)) in routes: the session is committed when the route
# function returns, *before* the response is sent, so a browser following a redirect after a
# write always sees it (a yield dependency's default "request" scope would commit afterwards).
DB = Depends(db_session, scope="function")


def optional_web_viewer(request: Request, session: Session = DB) -> Viewer | None:
    ctx = get_ctx(request)
    token = unsign(ctx.settings.secret_key, "session", request.cookies.get(SESSION_COOKIE))
    if token is None:
        return None
    ws = accounts.session_for_token(session, token)
    if ws is None:
        return None
    u = ws.user
    return Viewer(
        u.id, u.username, u.display_name, u.role, "web", client_of(request), ws.csrf_token
    )


def web_viewer(viewer: Viewer | None = Depends(optional_web_viewer)) -> Viewer:
    if viewer is None:
        raise LoginRequiredError()
    return viewer


def web_role(minimum: str) -> Callable[..., Viewer]:
    def dep(viewer: Viewer = Depends(web_viewer)) -> Viewer:
        if not viewer.can(minimum):
            raise PageForbiddenError(minimum)
        return viewer

    return dep


async def check_csrf(request: Request, viewer: Viewer) -> FormData:
    """The submitted form, after checking its CSRF token against the session's."""
    form = await request.form(max_part_size=get_ctx(request).settings.max_upload_bytes)
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
        raise ProblemError(
            "unauthorized", str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        ) from None
    return Viewer(user.id, user.username, user.display_name, user.role, "api", client_of(request))


def api_role(minimum: str) -> Callable[..., Viewer]:
    def dep(viewer: Viewer = Depends(api_viewer)) -> Viewer:
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
