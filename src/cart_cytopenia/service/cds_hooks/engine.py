"""Turns hook requests into cards: the patient's course from the FHIR resources, then the
patient-view guidance cards or the order checks. No HTTP here except reading from the EHR's FHIR
server (``prefetch.FhirAccess``). When the data changed, only the resources not seen before are
validated with the fhir.resources models again (``resource_cache_entries``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any
from urllib.parse import quote

import httpx
from starlette.concurrency import run_in_threadpool

from cart_cytopenia.domain.course import Course
from cart_cytopenia.errors import CartCytopeniaError, ConflictError
from cart_cytopenia.grading.assessment import Assessment, assess
from cart_cytopenia.io.fhir_cards import patient_view_cards
from cart_cytopenia.io.fhir_draft_orders import draft_order_raws, medication_orders
from cart_cytopenia.io.fhir_import import FhirImport, ModelCache, RawResource, import_resources
from cart_cytopenia.io.therapy_codes import therapy_codes
from cart_cytopenia.rules.settings import Settings
from cart_cytopenia.service.cds_hooks.cards import (
    Links,
    conflicting_versions_card,
    import_notes,
    inconsistent_course_card,
    planned_infusion_card,
    unchecked_order_card,
)
from cart_cytopenia.service.cds_hooks.memo import Memo
from cart_cytopenia.service.cds_hooks.order_checks import checked, order_checks
from cart_cytopenia.service.cds_hooks.prefetch import FhirAccess, Gathered
from cart_cytopenia.service.cds_hooks.protocol import CdsError, HookRequest
from cart_cytopenia.service.cds_hooks.settings import CdsHooksSettings

_CART_HINT = re.compile(
    r"chimeric antigen receptor|\bcar[- ]?t\b|cabtagene|leucel\b|car-t-infusion|\b38228\b|\b0540T\b|"
    + "|".join(
        re.escape(n)
        for n in ("yescarta", "kymriah", "breyanzi", "tecartus", "abecma", "carvykti", "aucatzyl")
    ),
    re.IGNORECASE,
)


@cache
def _cart_code_hint() -> re.Pattern[str]:
    """The CAR-T administration codes of the shared therapy-code table (ICD-10-PCS, HCPCS ...)."""
    found = sorted({e.code for e in therapy_codes().codes.values() if e.kind == "car_t"})
    return re.compile(r"\b(" + "|".join(re.escape(c) for c in found) + r")\b", re.IGNORECASE)


def mentions_cart(raws: Sequence[RawResource]) -> bool:
    """Cheap pre-check: does any procedure or medication resource mention a CAR-T infusion?"""
    for r in raws:
        if r.data.get("resourceType") in (
            "Procedure",
            "MedicationAdministration",
            "MedicationRequest",
            "MedicationStatement",
            "Medication",
        ):
            text = json.dumps(r.data)
            if _CART_HINT.search(text) or _cart_code_hint().search(text):
                return True
    return False


class CdsEngine:
    """Turns hook requests into cards (no HTTP here except fetching from the EHR's FHIR server)."""

    def __init__(
        self,
        settings: CdsHooksSettings,
        clinical: Settings,
        today: Callable[[], dt.date],
        evaluate: Callable[..., Any] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.clinical = clinical
        self.today = today
        self._evaluate = evaluate
        self.fhir = FhirAccess(settings, transport)
        self.memo = Memo(settings.cache_entries)
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self.models = (
            ModelCache(settings.resource_cache_entries) if settings.resource_cache_entries else None
        )
        self.settings_fingerprint = hashlib.sha256(
            json.dumps(clinical.in_force(), sort_keys=True, default=str).encode()
        ).hexdigest()[:16]

    @property
    def evaluate(self) -> Callable[..., Any]:
        if self._evaluate is None:
            from cart_cytopenia.guidance import evaluate

            self._evaluate = evaluate
        return self._evaluate

    async def compute(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a worker thread, at most ``compute_concurrency`` at a time."""
        if not self.settings.compute_concurrency:
            return await run_in_threadpool(fn, *args)
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.settings.compute_concurrency))
        async with self._slots[1]:
            return await run_in_threadpool(fn, *args)

    # ---- data (from the prefetch and the EHR's FHIR server)

    def fetches(self, req: HookRequest) -> bool:
        """Will answering ``req`` read from the FHIR server (prefetch missing or incomplete)?"""
        return self.fhir.fetches(req)

    async def gather(self, req: HookRequest) -> Gathered:
        return await self.fhir.gather(req)

    async def draft_medications(
        self, req: HookRequest, draft_orders: Any, raws: Sequence[RawResource]
    ) -> tuple[list[RawResource], dict[str, str], bool]:
        return await self.fhir.draft_medications(req, draft_orders, raws)

    # ---- cards

    def links(self, base: str, patient_id: str) -> Links:
        if self.settings.smart_links:  # the EHR adds 'iss' and 'launch' when it opens it
            return [
                {"label": "Open in cart-cytopenia", "url": base + "/smart/launch", "type": "smart"}
            ]
        url = self.settings.patient_link.format(base=base, patient_id=quote(patient_id, safe=""))
        return [{"label": "Open in cart-cytopenia", "url": url, "type": "absolute"}]

    def _course(
        self, raws: list[RawResource], patient_id: str, links: Links
    ) -> tuple[Course | None, FhirImport | None, list[dict[str, Any]]]:
        """(course, import report, cards to answer with instead) for the patient in context."""
        if not mentions_cart(raws):
            return None, None, []
        try:
            result = import_resources(raws, self.models)
        except ConflictError as exc:
            return None, None, [conflicting_versions_card(exc.problems, links)]
        course = next((c for c in result.courses if c.patient.id == patient_id), None)
        if course is not None:
            return course, result, []
        failed = next((f for f in result.failed if f.patient == patient_id), None)
        if failed is None or "no CAR-T infusion" in failed.message:
            return None, result, []
        return None, result, [inconsistent_course_card(failed.message, failed.problems, links)]

    def patient_view(
        self, raws: list[RawResource], patient_id: str, base: str
    ) -> list[dict[str, Any]]:
        links = self.links(base, patient_id)
        course, result, cards = self._course(raws, patient_id, links)
        if course is None:
            return cards
        day = (self.today() - course.infusion_date).days
        if day < 0:
            a = assess(course, 0, self.clinical)
            return [planned_infusion_card(course.infusion_date, -day, a, links)]
        guidance = self.evaluate(course, day, self.clinical)
        assessment: Assessment = guidance.assessment
        items = list(guidance.items())
        missing = [
            *map(str, getattr(guidance, "missing_data", []) or []),
            *import_notes(result),
        ]
        return patient_view_cards(
            course, assessment, items, links, missing, self.settings.max_cards
        )

    def orders(
        self,
        raws: list[RawResource],
        patient_id: str,
        base: str,
        draft_orders: Any,
        selections: Sequence[str] | None,
        medications: Sequence[RawResource] = (),
        unreadable: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Cards for the draft orders; ``medications`` are Medications the draft orders
        reference that came from the prefetch or the FHIR server, ``unreadable`` the ones the
        FHIR server could not give ('Medication/<id>' -> why)."""
        links = self.links(base, patient_id)
        try:
            draft_raws = draft_order_raws(draft_orders)
        except CartCytopeniaError as exc:
            raise CdsError(400, f"context.draftOrders: {exc}") from None
        orders, _other = medication_orders([*draft_raws, *medications])
        if selections is not None:
            wanted = set(selections)
            orders = [o for o in orders if o.reference in wanted]
        relevant = [o for o in orders if o.problem is None and checked(o)]
        # not checked, and it might matter: the medication is unknown, or a checked drug
        unchecked = [
            o
            for o in orders
            if o.problem is not None and (checked(o) or (o.drug is None and not o.name))
        ]
        if not relevant and not unchecked:
            return []
        course, _result, cards = self._course(raws, patient_id, links)
        if course is None:
            return cards
        out = [unchecked_order_card(o, links, unreadable or {}) for o in unchecked]
        day = (self.today() - course.infusion_date).days
        if day < 0 or not relevant:
            return out
        guidance = self.evaluate(course, day, self.clinical)
        for order in relevant:
            out += order_checks(order, course, guidance, self.evaluate, day, self.clinical, links)
        return out
