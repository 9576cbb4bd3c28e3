"""Authentication of the CDS client: the EHR's signed JWT, keys from its JWK Set.

CDS Hooks 2.0 "Trusting CDS Clients": asymmetric algorithms only, ``kid`` looked up in the
issuer's JWK Set (``jku`` only when allow-listed), ``iss`` allow-listed, ``aud`` = the endpoint
called, ``exp``/``iat`` checked, ``jti`` never accepted twice.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import jwt
from starlette.concurrency import run_in_threadpool

from cart_cytopenia.service.cds_hooks.protocol import unauthorized as _unauthorized
from cart_cytopenia.service.cds_hooks.settings import CdsHooksSettings, TrustedIssuer


@dataclass(frozen=True)
class Caller:
    """An authenticated CDS client."""

    iss: str
    tenant: str | None = None
    jti: str | None = None


def _b64json(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Header and claims of a compact JWS, unverified (to find the issuer's key)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header, claims = _b64json(parts[0]), _b64json(parts[1])
    except (ValueError, TypeError):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return header, claims


@dataclass(frozen=True)
class _Key:
    jwk: jwt.PyJWK
    alg: str | None


class JwtVerifier:
    """Verifies the CDS client's JWT as CDS Hooks 2.0 "Trusting CDS Clients" requires."""

    def __init__(
        self, settings: CdsHooksSettings, transport: httpx.AsyncBaseTransport | None
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.issuers = {i.iss: i for i in settings.issuers}
        self._jwks: dict[str, tuple[float, dict[str, _Key]]] = {}
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._last_prune = time.time()

    async def _fetch_jwks(self, url: str) -> dict[str, _Key]:
        if not url.startswith("https://") and not (
            self.settings.allow_http and url.startswith("http://")
        ):
            raise _unauthorized("the JWK Set URL must use https")
        try:
            async with httpx.AsyncClient(timeout=5.0, transport=self.transport) as client:
                r = await client.get(url, headers={"Accept": "application/json"})
                r.raise_for_status()
                doc = r.json()
        except (httpx.HTTPError, ValueError):
            raise _unauthorized("the issuer's JWK Set cannot be retrieved") from None
        return self._parse_jwks(doc)

    @staticmethod
    def _parse_jwks(doc: Any) -> dict[str, _Key]:
        out: dict[str, _Key] = {}
        for k in (doc or {}).get("keys", []) if isinstance(doc, dict) else []:
            if not isinstance(k, dict) or not k.get("kid") or k.get("use", "sig") != "sig":
                continue
            if k.get("kty") == "oct":
                continue  # symmetric keys are never trusted
            try:
                out[str(k["kid"])] = _Key(jwt.PyJWK(k), k.get("alg"))
            except (jwt.PyJWTError, ValueError, TypeError):
                continue
        return out

    async def _key(self, issuer: TrustedIssuer, kid: str, jku: str | None) -> _Key:
        if jku is not None:
            if jku not in issuer.jku:
                raise _unauthorized(
                    "the JWT 'jku' is not an allow-listed JWK Set URL for this issuer"
                )
            source = jku
        elif issuer.jwks is not None:
            keys = self._parse_jwks(issuer.jwks)
            if kid not in keys:
                raise _unauthorized("the JWT 'kid' is not in the issuer's JWK Set")
            return keys[kid]
        elif issuer.jwks_url:
            source = issuer.jwks_url
        else:
            raise _unauthorized("no JWK Set is configured for this issuer")
        now = time.time()
        cached = self._jwks.get(source)
        if (
            cached is None
            or now - cached[0] > self.settings.jwks_cache_seconds
            or (kid not in cached[1] and now - cached[0] > 30)
        ):
            keys = await self._fetch_jwks(source)
            self._jwks[source] = (now, keys)
            cached = self._jwks[source]
        if kid not in cached[1]:
            raise _unauthorized("the JWT 'kid' is not in the issuer's JWK Set")
        return cached[1][kid]

    async def verify(self, authorization: str | None, audiences: Sequence[str]) -> Caller:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("send the CDS client's signed JWT: 'Authorization: Bearer <JWT>'")
        token = token.strip()
        peeked = _peek(token)
        if peeked is None:
            raise _unauthorized("the bearer token is not a JWT")
        header, unverified = peeked
        alg = header.get("alg")
        if alg not in self.settings.algorithms:
            raise _unauthorized(
                f"JWT algorithm {alg!r} is not accepted (asymmetric algorithms only)"
            )
        if str(header.get("typ", "")).upper() != "JWT":
            raise _unauthorized("the JWT header 'typ' must be 'JWT'")
        kid = header.get("kid")
        if not kid:
            raise _unauthorized("the JWT header has no 'kid'")
        iss = unverified.get("iss")
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise _unauthorized("the JWT issuer is not trusted by this service")
        key = await self._key(issuer, str(kid), header.get("jku"))
        if key.alg is not None and key.alg != alg:
            raise _unauthorized("the JWT algorithm does not match the key's")
        try:
            claims = await run_in_threadpool(  # the signature check: off the event loop
                partial(
                    jwt.decode,
                    token,
                    key.jwk.key,
                    algorithms=[alg],
                    audience=list(audiences),
                    issuer=issuer.iss,
                    leeway=self.settings.leeway_seconds,
                    options={"require": ["iss", "aud", "exp", "iat", "jti"]},
                )
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("the JWT has expired") from None
        except jwt.InvalidAudienceError:
            raise _unauthorized("the JWT 'aud' is not the URL of the endpoint called") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _unauthorized(f"the JWT has no '{exc.claim}' claim") from None
        except jwt.PyJWTError as exc:
            raise _unauthorized(f"the JWT is not valid ({type(exc).__name__})") from None
        now = time.time()
        exp = float(claims["exp"])
        if exp - now > self.settings.max_token_lifetime_seconds:
            raise _unauthorized("the JWT stays valid for too long; use short-lived tokens")
        if issuer.tenant is not None and claims.get("tenant") != issuer.tenant:
            raise _unauthorized("the JWT 'tenant' is not the one agreed for this issuer")
        jti = str(claims["jti"])
        with self._lock:
            if now - self._last_prune > 60:
                self._seen = {
                    k: v for k, v in self._seen.items() if v > now - self.settings.leeway_seconds
                }
                self._last_prune = now
            if (issuer.iss, jti) in self._seen:
                raise _unauthorized("the JWT 'jti' was used before (replay)")
            self._seen[(issuer.iss, jti)] = exp
        return Caller(issuer.iss, claims.get("tenant"), jti)
