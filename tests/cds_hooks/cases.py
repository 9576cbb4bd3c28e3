"""The recorded CDS Hooks calls: the review's three cases on telling days, and draft orders."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from cart_cytopenia.service.cds_hooks import ORDER_SELECT, ORDER_SIGN, PATIENT_VIEW
from tests.cds_hooks.conftest import hook_request, make_harness, review_course, split_prefetch

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


@dataclass(frozen=True)
class Case:
    name: str
    review_case: int
    day: int
    hook: str = "patient-view"
    service: str = PATIENT_VIEW
    drafts: tuple[dict[str, Any], ...] = ()
    notes: str = ""
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def today(self) -> dt.date:
        return review_course(self.review_case).infusion_date + dt.timedelta(days=self.day)

    def request(self) -> dict[str, Any]:
        course = review_course(self.review_case).as_of(self.day)
        pid = course.patient.id
        context: dict[str, Any] = dict(self.context)
        if self.drafts:
            drafts = [
                {
                    **d,
                    "subject": {"reference": f"Patient/{pid}"},
                    "authoredOn": self.today.isoformat(),
                }
                for d in self.drafts
            ]
            context["draftOrders"] = {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": d} for d in drafts],
            }
            if self.hook == "order-select":
                context["selections"] = [f"MedicationRequest/{drafts[-1]['id']}"]
        body = hook_request(self.hook, pid, split_prefetch(course), context)
        body["hookInstance"] = _fixed_uuid(self.name)
        return body


def _fixed_uuid(name: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, "cart-cytopenia-test/" + name))


def draft(rid: str, text: str, rxnorm: str | None = None) -> dict[str, Any]:
    med: dict[str, Any] = {"text": text}
    if rxnorm:
        med["coding"] = [{"system": RXNORM, "code": rxnorm}]
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": med,
    }


CASES = (
    Case(
        "patient-view.review-case-1.day-60",
        1,
        60,
        notes="marrow hypocellular; eltrombopag started at 2 months",
    ),
    Case(
        "patient-view.review-case-2.day-42",
        2,
        42,
        notes="aplastic; eltrombopag initiated at 6 weeks",
    ),
    Case(
        "patient-view.review-case-3.day-45", 3, 45, notes="ANC < 100/uL for 6 weeks; G-CSF started"
    ),
)

ORDER_CASES = (
    Case(
        "order-select.review-case-1.gm-csf-day-12",
        1,
        12,
        hook="order-select",
        service=ORDER_SELECT,
        drafts=(
            draft("draft-acyclovir", "acyclovir 400 mg PO BID", "281"),
            draft("draft-gmcsf", "sargramostim (Leukine) 250 mcg/m2 SC daily"),
        ),
    ),
    Case(
        "order-sign.review-case-3.g-csf-during-crs-day-10",
        3,
        10,
        hook="order-sign",
        service=ORDER_SIGN,
        drafts=(draft("draft-gcsf", "filgrastim 5 mcg/kg SC daily", "68442"),),
    ),
    Case(
        "order-select.review-case-1.eltrombopag-day-20",
        1,
        20,
        hook="order-select",
        service=ORDER_SELECT,
        drafts=(draft("draft-elt", "eltrombopag 75 mg PO daily", "711942"),),
    ),
)


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def mask(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: ("<uuid>" if k == "uuid" else mask(v)) for k, v in doc.items()}
    if isinstance(doc, list):
        return [mask(v) for v in doc]
    return doc


def respond(
    case: Case, request: dict[str, Any], mask_uuids: bool = False, **kw: Any
) -> dict[str, Any]:
    h = make_harness(case.today, **kw)
    r = h.post(f"/cds-services/{case.service}", request)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return mask(doc) if mask_uuids else doc
