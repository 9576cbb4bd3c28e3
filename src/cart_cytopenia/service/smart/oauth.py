"""The OAuth 2.0 side of a SMART App Launch 2.0, with Authlib's client (never hand-written).

- ``discover``: ``{iss}/.well-known/smart-configuration``; the authorization server must offer
  PKCE ``S256`` and the launch flow asked for (``launch-ehr`` / ``launch-standalone``);
- ``authorization_request``: the redirect to the authorization endpoint with ``aud`` = the FHIR
  base URL, the EHR's ``launch`` (EHR launch), a fresh ``state`` and a PKCE S256 challenge;
- ``exchange_code`` / ``refresh``: the token endpoint (public client, or confidential with
  ``client_secret_basic``);
- ``verify_id_token``: the OpenID Connect id_token (signature from the server's ``jwks_uri``,
  issuer, audience, expiry), for the ``fhirUser`` recorded in the audit log.

Blocking HTTP (``requests``): call these from worker threads. Errors raise ``EhrAccessError``
with what the EHR answered (its OAuth error code and description), never a token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from cart_cytopenia.errors import EhrAccessError
from cart_cytopenia.service.smart.settings import SmartSettings

ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "ES256", "ES384", "PS256", "EdDSA"]
FLOW_CAPABILITY = {"ehr": "launch-ehr", "standalone": "launch-standalone"}


@dataclass(frozen=True)
class SmartConfiguration:
    """What the EHR's ``.well-known/smart-configuration`` says, as far as the launch needs it."""

    iss: str  # the FHIR base URL (the EHR's 'iss'), also the 'aud' of the request
    authorization_endpoint: str
    token_endpoint: str
    capabilities: frozenset[str]
    jwks_uri: str | None = None
    oidc_issuer: str | None = None


@dataclass(frozen=True)
class AuthorizationRequest:
    url: str
    state: str
    code_verifier: str


def _endpoint(doc: dict[str, Any], name: str, settings: SmartSettings) -> str:
    url = doc.get(name)
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("https", "http") or not parts.netloc:
        raise EhrAccessError(f"the EHR's smart-configuration has no absolute '{name}'")
    if parts.scheme == "http" and not settings.allow_http:
        raise EhrAccessError(f"the EHR's '{name}' uses plain http; only https is accepted")
    return str(url)


def _get_json(url: str, settings: SmartSettings, what: str) -> dict[str, Any]:
    try:
        r = requests.get(
            url,
            headers={"Accept": "application/json"},
            timeout=settings.timeout_seconds,
            allow_redirects=False,
        )
        r.raise_for_status()
        doc = r.json()
    except requests.RequestException as exc:
        raise EhrAccessError(f"{what} could not be read ({type(exc).__name__})") from None
    except ValueError:
        raise EhrAccessError(f"{what} is not JSON") from None
    if not isinstance(doc, dict):
        raise EhrAccessError(f"{what} is not a JSON object")
    return doc


def discover(iss: str, flow: str, settings: SmartSettings) -> SmartConfiguration:
    """The EHR's SMART configuration for an allow-listed ``iss``; refuses what the launch
    cannot use safely (no PKCE S256, the flow not offered, plain-http endpoints)."""
    doc = _get_json(
        iss + "/.well-known/smart-configuration", settings, "the EHR's smart-configuration"
    )
    methods = doc.get("code_challenge_methods_supported") or []
    if "S256" not in methods:
        raise EhrAccessError(
            "the EHR's authorization server does not offer PKCE S256 "
            "(code_challenge_methods_supported), which SMART App Launch 2.0 requires"
        )
    capabilities = frozenset(str(c) for c in doc.get("capabilities") or [])
    if FLOW_CAPABILITY[flow] not in capabilities:
        raise EhrAccessError(
            f"the EHR's smart-configuration does not list the capability "
            f"'{FLOW_CAPABILITY[flow]}' this launch needs"
        )
    jwks = doc.get("jwks_uri")
    return SmartConfiguration(
        iss=iss,
        authorization_endpoint=_endpoint(doc, "authorization_endpoint", settings),
        token_endpoint=_endpoint(doc, "token_endpoint", settings),
        capabilities=capabilities,
        jwks_uri=_endpoint(doc, "jwks_uri", settings) if jwks else None,
        oidc_issuer=str(doc["issuer"]) if doc.get("issuer") else None,
    )


def _client(settings: SmartSettings, redirect_uri: str | None = None) -> OAuth2Session:
    return OAuth2Session(
        client_id=settings.client_id,
        client_secret=settings.client_secret or None,
        token_endpoint_auth_method="client_secret_basic" if settings.confidential else "none",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        default_timeout=settings.timeout_seconds,
    )


def authorization_request(
    settings: SmartSettings,
    config: SmartConfiguration,
    flow: str,
    redirect_uri: str,
    launch: str | None,
) -> AuthorizationRequest:
    """Where to send the browser: the authorization endpoint with state and PKCE S256."""
    verifier = generate_token(64)  # RFC 7636: 43-128 characters of the unreserved set
    extra = {"aud": config.iss}
    if launch:
        extra["launch"] = launch
    with _client(settings, redirect_uri) as client:
        url, state = client.create_authorization_url(
            config.authorization_endpoint,
            state=generate_token(32),
            code_verifier=verifier,
            scope=settings.scope_for(flow),
            **extra,
        )
    return AuthorizationRequest(url, state, verifier)


def _token_call(what: str, call: Any) -> dict[str, Any]:
    try:
        token = call()
    except AuthlibBaseError as exc:
        detail = f"{exc.error}" + (f" ({exc.description})" if exc.description else "")
        raise EhrAccessError(f"the EHR's authorization server refused {what}: {detail}") from None
    except requests.RequestException as exc:
        raise EhrAccessError(
            f"the EHR's token endpoint could not be reached for {what} ({type(exc).__name__})"
        ) from None
    except ValueError as exc:
        raise EhrAccessError(f"the EHR's token endpoint answered {what} wrongly: {exc}") from None
    if not token.get("access_token") or str(token.get("token_type", "")).lower() != "bearer":
        raise EhrAccessError(f"the EHR's token endpoint gave no bearer access token for {what}")
    return dict(token)


def exchange_code(
    settings: SmartSettings,
    config: SmartConfiguration,
    redirect_uri: str,
    code: str,
    code_verifier: str,
) -> dict[str, Any]:
    """The token response for an authorization code (with its PKCE verifier)."""
    with _client(settings, redirect_uri) as client:
        return _token_call(
            "the authorization code",
            lambda: client.fetch_token(
                config.token_endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
                redirect_uri=redirect_uri,
            ),
        )


def refresh(
    settings: SmartSettings, config: SmartConfiguration, token: dict[str, Any]
) -> dict[str, Any]:
    """A new access token from the refresh token (kept when the server sends no new one)."""
    if not token.get("refresh_token"):
        raise EhrAccessError(
            "the access token has expired and the EHR gave no refresh token: "
            "open cart-cytopenia from the EHR again"
        )
    with _client(settings) as client:
        client.token = token
        new = _token_call(
            "the refresh token",
            lambda: client.refresh_token(
                config.token_endpoint, refresh_token=token["refresh_token"]
            ),
        )
    return {**token, **new}


def verify_id_token(
    settings: SmartSettings, config: SmartConfiguration, id_token: str
) -> dict[str, Any]:
    """The claims of the launch's id_token once its signature, issuer, audience and expiry
    are checked against the EHR's published keys."""
    if not config.jwks_uri:
        raise EhrAccessError("the EHR sent an id_token but publishes no jwks_uri to check it")
    keys = jwt.PyJWKSet.from_dict(_get_json(config.jwks_uri, settings, "the EHR's JWK Set"))
    try:
        kid = jwt.get_unverified_header(id_token).get("kid")
        key = next((k for k in keys.keys if kid is None or k.key_id == kid), None)
        if key is None:
            raise EhrAccessError("the id_token is signed with a key the EHR does not publish")
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key,
            algorithms=ID_TOKEN_ALGORITHMS,
            audience=settings.client_id,
            issuer=config.oidc_issuer or config.iss,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            leeway=30,
        )
    except jwt.PyJWTError as exc:
        raise EhrAccessError(f"the EHR's id_token was refused: {exc}") from None
    return claims
