"""Reading a FHIR server on behalf of a CDS Hooks call (``fhirServer`` + ``fhirAuthorization``).

``fetch_queries`` runs several FHIR read/search requests concurrently with the bearer token the
EHR gave, each with a timeout, follows ``next`` paging links on the same server only (the token
never goes anywhere else), and returns each result or the reason it could not be had. Nothing
is logged about the content; errors name the query key, never patient data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

FHIR_JSON = "application/fhir+json"
TOKEN_REFUSED = "the access token was refused"  # the reason given for an HTTP 401


class FetchError(Exception):
    """Why one query could not be answered (raised inside, returned as a value by
    ``fetch_queries``)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class UnsafeServerError(ValueError):
    """The fhirServer URL is not one the service may send a token to."""


def check_server_url(url: str, allow_http: bool = False) -> str:
    """The FHIR base URL without a trailing slash; https required unless ``allow_http``."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise UnsafeServerError(f"fhirServer {url!r} is not an absolute http(s) URL")
    if parts.scheme == "http" and not allow_http:
        raise UnsafeServerError(
            "fhirServer uses plain http; the access token is only sent over https "
            "(set cds_hooks.fhir_allow_http for a local test server)"
        )
    if parts.username or parts.password:
        raise UnsafeServerError("fhirServer must not carry credentials in the URL")
    return url.rstrip("/")


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.netloc.lower()) == (pb.scheme, pb.netloc.lower()) and pb.path.startswith(
        pa.path.rstrip("/")
    )


async def _get_json(client: httpx.AsyncClient, url: str, token: str) -> Any:
    r = await client.get(
        url,
        headers={"Authorization": f"Bearer {token}", "Accept": f"{FHIR_JSON}, application/json"},
    )
    if r.status_code == 404:
        return None  # a read of a resource that does not exist: no data
    if r.status_code >= 400:
        raise httpx.HTTPStatusError(f"HTTP {r.status_code}", request=r.request, response=r)
    return r.json()


async def fetch_query(
    client: httpx.AsyncClient,
    base: str,
    key: str,
    query: str,
    token: str,
    max_pages: int,
) -> Any:
    """One prefetch-style query (relative to ``base``) with its pages merged into one Bundle."""
    url = urljoin(base + "/", query.lstrip("/"))
    if not _same_origin(base, url):
        raise FetchError(key, "the query leaves the FHIR server")
    doc = await _get_json(client, url, token)
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        return doc
    return await follow_pages(client, base, key, doc, token, max_pages)


async def follow_pages(
    client: httpx.AsyncClient,
    base: str,
    key: str,
    bundle: dict[str, Any],
    token: str,
    max_pages: int,
) -> dict[str, Any]:
    """``bundle`` with the entries of its ``next`` pages appended (same server only)."""
    entries = list(bundle.get("entry") or [])
    doc = bundle
    pages = 1
    while True:
        nxt = next(
            (link.get("url") for link in doc.get("link") or [] if link.get("relation") == "next"),
            None,
        )
        if not nxt:
            break
        if pages >= max_pages:
            raise FetchError(key, f"more than {max_pages} pages of results")
        if not _same_origin(base, nxt):
            raise FetchError(key, "a paging link points away from the FHIR server")
        doc = await _get_json(client, nxt, token)
        if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
            raise FetchError(key, "a paging link did not return a Bundle")
        entries += doc.get("entry") or []
        pages += 1
    out = {k: v for k, v in bundle.items() if k != "link"}
    out["entry"] = entries
    return out


async def fetch_queries(
    base: str,
    token: str,
    queries: Mapping[str, str],
    *,
    timeout: float = 5.0,
    max_pages: int = 20,
    transport: httpx.AsyncBaseTransport | None = None,
    continue_bundles: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run ``queries`` ({key: relative FHIR URL}) concurrently; each value is the result or a
    ``FetchError``. ``continue_bundles`` are Bundles already in hand whose ``next`` pages are
    to be fetched (paginated prefetch). The whole call is bounded by ``timeout`` seconds."""
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(timeout), transport=transport, limits=limits, follow_redirects=False
    ) as client:

        async def one(key: str, coro: Any) -> tuple[str, Any]:
            try:
                return key, await coro
            except FetchError as exc:
                return key, exc
            except httpx.TimeoutException:
                return key, FetchError(key, f"the FHIR server did not answer within {timeout:g} s")
            except httpx.HTTPStatusError as exc:
                code = exc.response.status_code
                why = {401: TOKEN_REFUSED, 403: "access to this data was refused"}
                return key, FetchError(key, why.get(code, f"the FHIR server answered HTTP {code}"))
            except httpx.HTTPError as exc:
                return key, FetchError(
                    key, f"the FHIR server cannot be reached ({type(exc).__name__})"
                )
            except ValueError:
                return key, FetchError(key, "the FHIR server did not return JSON")

        jobs = [
            one(k, fetch_query(client, base, k, q, token, max_pages)) for k, q in queries.items()
        ]
        jobs += [
            one(k, follow_pages(client, base, k, b, token, max_pages))
            for k, b in (continue_bundles or {}).items()
        ]
        try:
            done = await asyncio.wait_for(asyncio.gather(*jobs), timeout=timeout)
        except TimeoutError:
            keys = [*queries, *(continue_bundles or {})]
            return {
                k: FetchError(k, f"the FHIR server did not answer within {timeout:g} s")
                for k in keys
            }
    return dict(done)
