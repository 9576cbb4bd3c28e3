"""Accounts: users with roles, argon2 password hashes, web sessions, API tokens, login limits.

Secrets are never stored: passwords as argon2id hashes, session and API tokens as SHA-256
hashes of 256-bit random tokens (shown once). Logins are limited per user name and per client
address over a sliding window (``LoginLimits``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cart_cytopenia.errors import InputError, Location, Problem
from cart_cytopenia.store.errors import AuthError, ConflictError, NotFoundError, RateLimitedError
from cart_cytopenia.store.models import (
    ROLES,
    ApiToken,
    LoginAttempt,
    User,
    WebSession,
    utcnow,
)


@dataclass(frozen=True)
class HashParameters:
    """argon2id cost of a password hash: memory (KiB), passes over it, lanes.

    Default: the OWASP Password Storage Cheat Sheet's argon2id configuration of 19 MiB, two
    passes, one lane (one of its five equivalent minimum configurations). About 25 ms of one
    core per check on the development machine, against ~160 ms for argon2-cffi's own default
    (RFC 9106's second recommended option: 64 MiB, three passes, four lanes), which stays
    available through the settings. ``OWASP_MINIMUM_KIB_PASSES`` is the weakest memory x passes
    product of the cheat sheet's table (7 MiB x 5), below which the service refuses to start.
    """

    memory_kib: int = 19_456
    time_cost: int = 2
    parallelism: int = 1


OWASP_MINIMUM_KIB = 7_168
OWASP_MINIMUM_KIB_PASSES = 7_168 * 5


def _new_hasher(params: HashParameters) -> PasswordHasher:
    return PasswordHasher(
        time_cost=params.time_cost, memory_cost=params.memory_kib, parallelism=params.parallelism
    )


class _Hashing:
    """The hasher in force, and a hash with its parameters to check against for unknown user
    names (so that the time of a sign-in does not reveal whether the name exists)."""

    def __init__(self, params: HashParameters) -> None:
        self.params = params
        self.hasher = _new_hasher(params)
        self.dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))


_hashing = _Hashing(HashParameters())
# argon2 checks running at once: each takes its memory and a core for tens of milliseconds, so a
# burst of sign-ins queues here (memory bounded) instead of thrashing every core at once
_hash_slots = threading.BoundedSemaphore(os.cpu_count() or 2)


def configure_hashing(params: HashParameters, at_once: int) -> None:
    """Hash new passwords with ``params`` (existing hashes keep verifying and are re-hashed at
    their next successful sign-in) and allow ``at_once`` hashes/checks at the same time."""
    global _hashing, _hash_slots
    if _hashing.params != params:
        _hashing = _Hashing(params)
    _hash_slots = threading.BoundedSemaphore(max(1, at_once))


def hash_parameters() -> HashParameters:
    """The parameters new password hashes get."""
    return _hashing.params


def _verify(password_hash: str, password: str) -> bool:
    with _hash_slots:
        return bool(_hashing.hasher.verify(password_hash, password))


USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")
MIN_PASSWORD = 10
TOKEN_PREFIX = "cct_"
# "last used" of an API token is kept to the minute (the account page shows minutes): a token
# used again within a minute is not written again, so a busy API client's reads are not each a
# write transaction (on SQLite, the one write lock; issue 15's load profile)
TOKEN_USE_RESOLUTION = dt.timedelta(minutes=1)

ROLE_RANK = {"read-only": 0, "clinician": 1, "admin": 2}


def role_at_least(role: str, minimum: str) -> bool:
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[minimum]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    with _hash_slots:
        return _hashing.hasher.hash(password)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InputError(
            "password too short",
            [
                Problem(
                    f"use at least {MIN_PASSWORD} characters (a passphrase is fine)",
                    Location(field="password"),
                )
            ],
        )


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InputError(
            "unknown role",
            [Problem(f"role must be one of {', '.join(ROLES)}", Location(field="role"))],
        )


# --------------------------------------------------------------------------- users


def create_user(
    session: Session, username: str, password: str, role: str, display_name: str = ""
) -> User:
    problems = []
    if not USERNAME.match(username):
        problems.append(
            Problem(
                "2-64 characters: letters, digits and . _ @ - (starting with a letter or digit)",
                Location(field="username"),
            )
        )
    try:
        _check_password(password)
    except InputError as exc:
        problems += exc.problems
    try:
        _check_role(role)
    except InputError as exc:
        problems += exc.problems
    if problems:
        raise InputError("the account was not created", problems)
    if get_user_by_name(session, username) is not None:
        raise ConflictError(f"user {username!r} already exists")
    user = User(
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        role=role,
        active=True,
    )
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, user_id: int) -> User:
    u = session.get(User, user_id)
    if u is None:
        raise NotFoundError(f"user {user_id} does not exist")
    return u


def get_user_by_name(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).one_or_none()


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def set_password(session: Session, user: User, password: str) -> None:
    _check_password(password)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    # a new password ends every session of that user
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    session.flush()


def set_role(session: Session, user: User, role: str) -> None:
    _check_role(role)
    user.role = role
    session.flush()


def set_active(session: Session, user: User, active: bool) -> None:
    user.active = active
    if not active:
        session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    session.flush()


# --------------------------------------------------------------------------- login


@dataclass(frozen=True)
class LoginLimits:
    max_failures_per_user: int = 5
    max_failures_per_client: int = 20
    window_seconds: int = 900


def _failures_since(session: Session, column: Any, value: str, since: dt.datetime) -> int:
    stmt = select(func.count(LoginAttempt.id)).where(
        column == value,
        LoginAttempt.success.is_(False),
        LoginAttempt.at >= since,
    )
    return int(session.scalar(stmt) or 0)


def check_login_allowed(session: Session, username: str, client: str, limits: LoginLimits) -> None:
    since = utcnow() - dt.timedelta(seconds=limits.window_seconds)
    by_user = _failures_since(session, LoginAttempt.username, username.lower(), since)
    by_client = _failures_since(session, LoginAttempt.client, client, since)
    if by_user >= limits.max_failures_per_user or by_client >= limits.max_failures_per_client:
        raise RateLimitedError(
            "too many failed sign-ins; wait and try again, or ask an administrator",
            retry_after=limits.window_seconds,
        )


def authenticate(
    session: Session, username: str, password: str, client: str, limits: LoginLimits
) -> User | None:
    """The user for these credentials, or None; records the attempt (commit it either way).

    Raises ``RateLimitedError`` (without checking the password) while the user name or the
    client has too many recent failures.
    """
    check_login_allowed(session, username, client, limits)
    user = get_user_by_name(session, username)
    ok = False
    hashing = _hashing
    try:
        if user is not None:
            ok = _verify(user.password_hash, password)
        else:
            _verify(hashing.dummy_hash, password)
    except (VerificationError, InvalidHashError):
        ok = False
    ok = ok and user is not None and user.active
    session.add(LoginAttempt(username=username.lower()[:64], client=client[:64], success=ok))
    session.flush()
    if not ok or user is None:
        return None
    if hashing.hasher.check_needs_rehash(user.password_hash):
        # a hash made with other parameters (an older default, or settings since changed)
        user.password_hash = hash_password(password)
    return user


def prune_login_attempts(session: Session, older_than_seconds: int = 86_400) -> int:
    cutoff = utcnow() - dt.timedelta(seconds=older_than_seconds)
    res = session.execute(delete(LoginAttempt).where(LoginAttempt.at < cutoff))
    return int(getattr(res, "rowcount", 0) or 0)


# --------------------------------------------------------------------------- web sessions


def create_session(session: Session, user: User, ttl_seconds: int) -> tuple[str, WebSession]:
    token = secrets.token_urlsafe(32)
    ws = WebSession(
        token_hash=token_hash(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        expires_at=utcnow() + dt.timedelta(seconds=ttl_seconds),
    )
    session.add(ws)
    session.flush()
    return token, ws


def session_for_token(session: Session, token: str) -> WebSession | None:
    ws = session.scalars(
        select(WebSession).where(WebSession.token_hash == token_hash(token))
    ).one_or_none()
    if ws is None or ws.expires_at <= utcnow() or not ws.user.active:
        return None
    return ws


def end_session(session: Session, token: str) -> None:
    session.execute(delete(WebSession).where(WebSession.token_hash == token_hash(token)))
    session.execute(delete(WebSession).where(WebSession.expires_at <= utcnow()))


# --------------------------------------------------------------------------- API tokens


def create_api_token(
    session: Session, user: User, name: str, ttl_days: int | None = 365
) -> tuple[str, ApiToken]:
    name = name.strip()
    if not name or len(name) > 128:
        raise InputError(
            "the token was not created",
            [
                Problem(
                    "give the token a name (what it is for), at most 128 characters",
                    Location(field="name"),
                )
            ],
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    t = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=token_hash(token),
        prefix=token[: len(TOKEN_PREFIX) + 6],
        expires_at=utcnow() + dt.timedelta(days=ttl_days) if ttl_days else None,
    )
    session.add(t)
    session.flush()
    return token, t


def user_for_api_token(session: Session, token: str) -> tuple[ApiToken, User]:
    t = session.scalars(
        select(ApiToken).where(ApiToken.token_hash == token_hash(token))
    ).one_or_none()
    now = utcnow()
    if t is None or t.revoked_at is not None or (t.expires_at is not None and t.expires_at <= now):
        raise AuthError("unknown, expired or revoked API token")
    if not t.user.active:
        raise AuthError("the account of this token is deactivated")
    if t.last_used_at is None or now - t.last_used_at >= TOKEN_USE_RESOLUTION:
        t.last_used_at = now
    return t, t.user


def list_api_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at)
        )
    )


def revoke_api_token(session: Session, user: User, token_id: int) -> None:
    t = session.get(ApiToken, token_id)
    if t is None or (t.user_id != user.id and user.role != "admin"):
        raise NotFoundError(f"token {token_id} does not exist")
    if t.revoked_at is None:
        t.revoked_at = utcnow()
    session.flush()
