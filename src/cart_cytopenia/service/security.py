"""Cookie signing and CSRF tokens (HMAC-SHA256 with the service's secret key).

Session cookie: ``<token>.<hmac(token)>``; the token is random and only its hash is stored in
``web_sessions``, so neither a stolen database nor a forged cookie gives a session. Pages that
change data carry the session's CSRF token in a hidden field (synchronizer token); the sign-in
form, which has no session yet, uses a signed double-submit cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SESSION_COOKIE = "cc_session"
LOGIN_CSRF_COOKIE = "cc_login_csrf"
CSRF_FIELD = "csrf_token"


def _mac(secret: str, purpose: str, value: str) -> str:
    return hmac.new(secret.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def sign(secret: str, purpose: str, value: str) -> str:
    return f"{value}.{_mac(secret, purpose, value)}"


def unsign(secret: str, purpose: str, signed: str | None) -> str | None:
    if not signed or "." not in signed:
        return None
    value, mac = signed.rsplit(".", 1)
    if not hmac.compare_digest(mac, _mac(secret, purpose, value)):
        return None
    return value


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def same(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode(), b.encode())
