"""Sign-in, sign-out, the account page (API tokens, password) and administration pages."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from cart_cytopenia.errors import InputError
from cart_cytopenia.service.deps import (
    DbSession,
    PageAdmin,
    Posted,
    SignedIn,
    Viewer,
    check_csrf,
    client_of,
    get_ctx,
    optional_web_viewer,
    page_router,
    record,
    set_signed_cookie,
)
from cart_cytopenia.service.pages import render
from cart_cytopenia.service.security import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    new_login_csrf,
    same,
    unsign,
)
from cart_cytopenia.store import accounts, audit
from cart_cytopenia.store.errors import ConflictError, NotFoundError, RateLimitedError
from cart_cytopenia.store.models import User

router = page_router()


def _safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/worklist"
    return target


def _login_page(
    request: Request, error: str = "", status: int = 200, username: str = ""
) -> HTMLResponse:
    token = new_login_csrf()
    response = render(
        request,
        "login.html",
        None,
        status=status,
        title="Sign in",
        error=error,
        login_csrf=token,
        next=_safe_next(request.query_params.get("next")),
        username=username,
    )
    set_signed_cookie(response, request, LOGIN_CSRF_COOKIE, ("login", token), "strict", 3600)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, viewer: Viewer | None = Depends(optional_web_viewer)) -> Response:
    if viewer is not None:
        return RedirectResponse("/worklist", status_code=303)
    return _login_page(request)


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, form: Posted, session: DbSession) -> Response:
    ctx = get_ctx(request)
    username = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    cookie_token = unsign(ctx.settings.secret_key, "login", request.cookies.get(LOGIN_CSRF_COOKIE))
    if not same(str(form.get("csrf_token") or ""), cookie_token):
        return _login_page(request, "The sign-in form expired; please try again.", 400, username)
    client = client_of(request)
    limits = accounts.LoginLimits(
        ctx.settings.login_max_failures,
        ctx.settings.login_max_failures_per_client,
        ctx.settings.login_window_seconds,
    )
    try:
        user = accounts.authenticate(session, username, password, client, limits)
    except RateLimitedError as exc:
        audit.record(session, username=username[:64] or "-", action="login-failed",
                     resource="session", channel="web", client=client, outcome="rate-limited")  # fmt: skip
        response = _login_page(request, str(exc).capitalize() + ".", 429, username)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if user is None:
        audit.record(session, username=username[:64] or "-", action="login-failed",
                     resource="session", channel="web", client=client, outcome="denied")  # fmt: skip
        return _login_page(request, "Unknown user name or wrong password.", 401, username)
    token, _ = accounts.create_session(session, user, int(ctx.settings.session_hours * 3600))
    audit.record(session, user_id=user.id, username=user.username, action="login",
                 resource="session", channel="web", client=client)  # fmt: skip
    redirect = RedirectResponse(_safe_next(str(form.get("next") or "")), status_code=303)
    age = int(ctx.settings.session_hours * 3600)
    set_signed_cookie(redirect, request, SESSION_COOKIE, ("session", token), "lax", age)
    redirect.delete_cookie(LOGIN_CSRF_COOKIE)
    return redirect


@router.post("/logout")
def logout(request: Request, viewer: SignedIn, form: Posted, session: DbSession) -> Response:
    check_csrf(form, viewer)
    token = unsign(
        get_ctx(request).settings.secret_key, "session", request.cookies.get(SESSION_COOKIE)
    )
    if token:
        accounts.end_session(session, token)
    record(session, viewer, "logout", "session")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --------------------------------------------------------------------------- account


def _account_page(
    request: Request,
    viewer: Viewer,
    session: Session,
    status: int = 200,
    new_token: str = "",
    errors: list[str] | None = None,
    message: str = "",
) -> HTMLResponse:
    user = accounts.get_user(session, viewer.user_id)
    return render(
        request,
        "account.html",
        viewer,
        status=status,
        title="Account",
        user=user,
        tokens=accounts.list_api_tokens(session, user),
        new_token=new_token,
        errors=errors or [],
        message=message,
    )


def _own_account(session: Session, viewer: Viewer, form: FormData) -> User:
    """The signed-in user's account, for a form posted on the account page (CSRF checked)."""
    check_csrf(form, viewer)
    return accounts.get_user(session, viewer.user_id)


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, viewer: SignedIn, session: DbSession) -> Response:
    return _account_page(request, viewer, session)


@router.post("/account/tokens", response_class=HTMLResponse)
def create_token(request: Request, viewer: SignedIn, form: Posted, session: DbSession) -> Response:
    user = _own_account(session, viewer, form)
    try:
        token, t = accounts.create_api_token(
            session, user, str(form.get("name") or ""), get_ctx(request).settings.api_token_days
        )
    except InputError as exc:
        session.rollback()
        return _account_page(
            request, viewer, session, 422, errors=[p.message for p in exc.problems]
        )
    record(session, viewer, "create", "api-token", t.id)
    return _account_page(request, viewer, session, new_token=token)


@router.post("/account/tokens/{token_id}/revoke", response_class=HTMLResponse)
def revoke_token(
    request: Request, token_id: int, viewer: SignedIn, form: Posted, session: DbSession
) -> Response:
    user = _own_account(session, viewer, form)
    try:
        accounts.revoke_api_token(session, user, token_id)
    except NotFoundError as exc:
        return _account_page(request, viewer, session, 404, errors=[str(exc)])
    record(session, viewer, "update", "api-token", token_id, detail="revoked")
    return _account_page(request, viewer, session, message="Token revoked.")


@router.post("/account/password", response_class=HTMLResponse)
def change_password(
    request: Request, viewer: SignedIn, form: Posted, session: DbSession
) -> Response:
    ctx = get_ctx(request)
    user = _own_account(session, viewer, form)
    limits = accounts.LoginLimits(
        ctx.settings.login_max_failures,
        ctx.settings.login_max_failures_per_client,
        ctx.settings.login_window_seconds,
    )
    try:
        ok = accounts.authenticate(
            session, user.username, str(form.get("current") or ""), client_of(request), limits
        )
    except RateLimitedError as exc:
        return _account_page(request, viewer, session, 429, errors=[str(exc)])
    if ok is None:
        return _account_page(
            request, viewer, session, 403, errors=["The current password is wrong."]
        )
    new, again = str(form.get("new") or ""), str(form.get("again") or "")
    if new != again:
        return _account_page(request, viewer, session, 422, errors=["The new passwords differ."])
    try:
        accounts.set_password(session, user, new)
    except InputError as exc:
        return _account_page(
            request, viewer, session, 422, errors=[p.message for p in exc.problems]
        )
    record(session, viewer, "update", "user", user.id, detail="password changed")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --------------------------------------------------------------------------- admin


def _users_page(
    request: Request, viewer: Viewer, session: Session, status: int = 200,
    errors: list[str] | None = None, message: str = "",
) -> HTMLResponse:  # fmt: skip
    return render(
        request, "admin_users.html", viewer, status=status, title="Users",
        users=accounts.list_users(session), errors=errors or [], message=message,
    )  # fmt: skip


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, viewer: PageAdmin, session: DbSession) -> Response:
    return _users_page(request, viewer, session)


@router.post("/admin/users", response_class=HTMLResponse)
def create_user(request: Request, viewer: PageAdmin, form: Posted, session: DbSession) -> Response:
    check_csrf(form, viewer)
    try:
        u = accounts.create_user(
            session,
            str(form.get("username") or "").strip(),
            str(form.get("password") or ""),
            str(form.get("role") or ""),
            str(form.get("display_name") or "").strip(),
        )
    except InputError as exc:
        session.rollback()
        return _users_page(request, viewer, session, 422, errors=[str(p) for p in exc.problems])
    except ConflictError as exc:
        session.rollback()
        return _users_page(request, viewer, session, 409, errors=[str(exc)])
    record(session, viewer, "create", "user", u.id)
    return _users_page(request, viewer, session, message=f"Created {u.username} ({u.role}).")


@router.post("/admin/users/{user_id}", response_class=HTMLResponse)
def update_user(
    request: Request, user_id: int, viewer: PageAdmin, form: Posted, session: DbSession
) -> Response:
    check_csrf(form, viewer)
    user = accounts.get_user(session, user_id)
    role = str(form.get("role") or user.role)
    active = form.get("active") == "yes"
    if user.id == viewer.user_id and (role != "admin" or not active):
        return _users_page(
            request, viewer, session, 422,
            errors=["You cannot remove your own administrator role or deactivate yourself."],
        )  # fmt: skip
    try:
        accounts.set_role(session, user, role)
        accounts.set_active(session, user, active)
    except InputError as exc:
        session.rollback()
        return _users_page(request, viewer, session, 422, errors=[str(p) for p in exc.problems])
    record(session, viewer, "update", "user", user.id, detail=f"role={role} active={active}")
    return _users_page(request, viewer, session, message=f"Updated {user.username}.")


@router.get("/admin/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    viewer: PageAdmin,
    session: DbSession,
    patient: int | None = None,
    user: str | None = None,
) -> Response:
    rows = audit.entries(session, limit=500, patient_id=patient, username=user or None)
    return render(
        request, "admin_audit.html", viewer, title="Audit log", rows=rows,
        f={"patient": patient or "", "user": user or ""},
    )  # fmt: skip


@router.get("/api", response_class=HTMLResponse)
def api_page(request: Request, viewer: SignedIn) -> Response:
    schema = request.app.openapi()
    ops = []
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            ops.append((path, method.upper(), op.get("summary", "")))
    return render(request, "api.html", viewer, title="JSON API", ops=ops)
