"""The patient's data for a hook call: the EHR's prefetch, completed from its FHIR server.

Keys the EHR left out (or sent as an OperationOutcome, or as a Bundle with a ``next`` page) are
fetched from ``fhirServer`` with the bearer token of ``fhirAuthorization`` (async, timeouts, same
server only). Without prefetch and without FHIR access the call cannot be answered
(``PreconditionFailed``, HTTP 412); what the server could not give is listed in
``Gathered.unavailable``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx

from cart_cytopenia.errors import CartCytopeniaError
from cart_cytopenia.io.fhir_client import (
    FetchError,
    UnsafeServerError,
    check_server_url,
    fetch_queries,
)
from cart_cytopenia.io.fhir_draft_orders import (
    draft_order_raws,
    fetch_medications,
    medications_from,
    missing_medications,
)
from cart_cytopenia.io.fhir_import import RawResource, resources_from_json
from cart_cytopenia.service.cds_hooks.protocol import CdsError, HookRequest
from cart_cytopenia.service.cds_hooks.services import prefetch_templates
from cart_cytopenia.service.cds_hooks.settings import CdsHooksSettings


class PreconditionFailed(Exception):
    """Data are needed that neither prefetch nor FHIR access can give (HTTP 412)."""


@dataclass
class Gathered:
    raws: list[RawResource]
    unavailable: list[str]
    fetched: bool


def prefetch_status(value: Any) -> Literal["missing", "continue", "use", "none"]:
    """What to do with one prefetch value: use it, fetch it, or fetch its next pages."""
    if value is None:
        return "none"  # the EHR has no data for this key
    if isinstance(value, dict) and value.get("resourceType") == "OperationOutcome":
        return "missing"
    if (
        isinstance(value, dict)
        and value.get("resourceType") == "Bundle"
        and any(
            link.get("relation") == "next"
            for link in value.get("link") or []
            if isinstance(link, dict)
        )
    ):
        return "continue"
    return "use"


def render_template(template: str, context: Mapping[str, Any]) -> str:
    """Replace ``{{context.x}}`` prefetch tokens with the context's (simple) values."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1).strip()
        if not name.startswith("context."):
            raise CdsError(400, f"prefetch token {{{{{name}}}}} is not supported")
        value = context.get(name.removeprefix("context."))
        if not isinstance(value, str | int) or value == "":
            raise CdsError(400, f"context field {name.removeprefix('context.')} is required")
        return quote(str(value), safe="")

    return re.sub(r"\{\{([^}]+)\}\}", sub, template)


class FhirAccess:
    """Reads what the prefetch lacks from the EHR's FHIR server (``transport``: tests' mock)."""

    def __init__(
        self, settings: CdsHooksSettings, transport: httpx.AsyncBaseTransport | None
    ) -> None:
        self.settings = settings
        self.transport = transport

    def fetches(self, req: HookRequest) -> bool:
        """Will answering ``req`` read from the FHIR server (prefetch missing or incomplete)?"""
        have = req.prefetch or {}
        return any(
            key not in have or prefetch_status(have[key]) in ("missing", "continue")
            for key in prefetch_templates()
        )

    def server(self, url: str) -> str:
        """The EHR's FHIR server base URL, refused (400) when unsafe."""
        try:
            return check_server_url(url, self.settings.allow_http)
        except UnsafeServerError as exc:
            raise CdsError(400, str(exc), "security") from None

    async def gather(self, req: HookRequest) -> Gathered:
        """The resources of the prefetch, with the missing keys read from the FHIR server."""
        context = req.context
        have = req.prefetch or {}
        raws: list[RawResource] = []
        missing: dict[str, str] = {}
        continue_bundles: dict[str, dict[str, Any]] = {}
        for key, template in prefetch_templates().items():
            status = "missing" if key not in have else prefetch_status(have[key])
            if status == "missing":
                missing[key] = render_template(template, context)
            elif status == "continue":
                continue_bundles[key] = have[key]
            elif status == "use":
                raws.extend(resources_from_json(have[key], f"prefetch '{key}'"))
        if not missing and not continue_bundles:
            return Gathered(raws, [], False)
        if not req.fhirServer or req.fhirAuthorization is None:
            what = ", ".join([*missing, *continue_bundles])
            raise PreconditionFailed(
                f"prefetch key(s) {what} missing or incomplete and no FHIR server access "
                "(fhirServer and fhirAuthorization) was given"
            )
        results = await fetch_queries(
            self.server(req.fhirServer),
            req.fhirAuthorization.access_token,
            missing,
            timeout=self.settings.fhir_timeout_seconds,
            max_pages=self.settings.fhir_max_pages,
            transport=self.transport,
            continue_bundles=continue_bundles,
        )
        unavailable = []
        for key, value in results.items():
            if isinstance(value, FetchError):
                unavailable.append(f"{key}: {value.reason}")
            elif value is not None:
                raws.extend(resources_from_json(value, f"FHIR server '{key}'"))
        return Gathered(raws, unavailable, True)

    async def draft_medications(
        self, req: HookRequest, draft_orders: Any, raws: Sequence[RawResource]
    ) -> tuple[list[RawResource], dict[str, str], bool]:
        """The Medications that draft orders reference but the draftOrders Bundle does not
        hold: from the prefetch data, else read from the FHIR server. (Medications, those the
        server could not give with why, whether the server was asked.)"""
        try:
            missing = missing_medications(draft_order_raws(draft_orders))
        except CartCytopeniaError as exc:
            raise CdsError(400, f"context.draftOrders: {exc}") from None
        found = medications_from(raws, missing)
        have = {f"Medication/{r.data.get('id')}" for r in found}
        still = [k for k in missing if k not in have]
        if not still or not req.fhirServer or req.fhirAuthorization is None:
            return found, {}, False
        fetched, failed = await fetch_medications(
            self.server(req.fhirServer),
            req.fhirAuthorization.access_token,
            still,
            timeout=self.settings.fhir_timeout_seconds,
            transport=self.transport,
        )
        return found + fetched, failed, True
