"""Answers memoised by what the cards depend on.

The key is the patient in context, the prefetch data (and the draft orders and selections of
order-select / order-sign), the day, the clinical settings, the software version and the
service's base URL, not who asked (``userId``, ``encounterId``) or the ``hookInstance``: a chart
opened again with the same data, by anyone, is answered from memory, a change of any data point
computes afresh. Calls that fetch from the FHIR server are not memoised.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import OrderedDict
from typing import Any

from pydantic_core import to_json

from cart_cytopenia.service.cds_hooks.protocol import HookRequest

Answer = tuple[str, list[dict[str, Any]]]
"""(patient id, card templates) of one hook call."""

_MASKS = (
    re.compile(rb'"hookInstance"\s*:\s*"(?:[^"\\]|\\.)*"'),
    re.compile(rb'"fhirAuthorization"\s*:\s*\{[^{}]*\}'),
)


def content_key(body: bytes, *parts: str) -> str:
    """Cache key of a hook call: the body without hookInstance and fhirAuthorization, plus parts.

    The fast key (no parsing): the same body sent again. ``request_key`` is the key of what the
    cards depend on."""
    masked = body
    for pat in _MASKS:
        masked = pat.sub(b'""', masked, count=1)
    h = hashlib.sha256(masked)
    for p in parts:
        h.update(b"\x00" + p.encode())
    return h.hexdigest()


def request_key(req: HookRequest, *parts: str, fetches: bool = False) -> str:
    """Cache key of a parsed hook call: only what the cards depend on, plus parts.

    That is the hook, the patient in context, the draft orders and selections (order-select /
    order-sign) and the prefetch data, in the order sent; not ``hookInstance``, ``userId``,
    ``encounterId`` or any other context field. A call that ``fetches`` from the FHIR server also
    depends on the server, the whole context (prefetch templates are rendered from it) and the
    access token (what that token may read).
    """
    ctx = req.context
    doc: list[Any] = [
        req.hook,
        ctx.get("patientId"),
        ctx.get("draftOrders"),
        ctx.get("selections"),
        req.prefetch,
    ]
    if fetches:
        token = req.fhirAuthorization.access_token if req.fhirAuthorization else ""
        doc += [req.fhirServer, ctx, hashlib.sha256(token.encode()).hexdigest()]
    h = hashlib.sha256(to_json(doc))
    for p in parts:
        h.update(b"\x00" + p.encode())
    return h.hexdigest()


class Memo:
    """Answers by request_key, bounded (LRU); content keys of bodies answered -> request_key;
    the answers being computed, so that the same data are computed once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.cache: OrderedDict[str, Answer] = OrderedDict()
        self.aliases: OrderedDict[str, str] = OrderedDict()
        self.inflight: dict[str, asyncio.Future[Answer]] = {}

    def recall(self, key: str) -> Answer | None:
        """The answer memoised under ``key`` (a request_key or a content_key alias)."""
        hit = self.cache.get(self.aliases.get(key, key))
        if hit is not None:
            self.cache.move_to_end(self.aliases.get(key, key))
        return hit

    def remember(self, key: str, alias: str, value: Answer) -> None:
        """Memoise ``value`` under ``key`` (and the body's content key ``alias``), bounded."""
        if not self.size:
            return
        self.cache[key] = value
        self.cache.move_to_end(key)
        while len(self.cache) > self.size:
            self.cache.popitem(last=False)
        self.alias(alias, key)

    def alias(self, alias: str, key: str) -> None:
        self.aliases[alias] = key
        self.aliases.move_to_end(alias)
        while len(self.aliases) > 4 * self.size:
            self.aliases.popitem(last=False)
