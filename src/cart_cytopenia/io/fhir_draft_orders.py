"""Draft orders of the CDS Hooks ``order-select`` / ``order-sign`` hooks, and their Medications.

- ``draftOrders`` is "a Bundle of FHIR request resources" (CDS Hooks 2.0); the specification's
  own examples send it without ``Bundle.type``, so a draftOrders Bundle without a type is read as
  a collection.
- A MedicationRequest may name its drug only through ``medicationReference``. The Medication is
  looked for in the draftOrders Bundle (or contained), then in the prefetch data, then read from
  the EHR's FHIR server (``fhirServer`` with the access token of ``fhirAuthorization``, through
  the same client as the prefetch queries). What cannot be found is reported by the order check
  as an order it could not identify.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from cart_cytopenia.domain.catalogues import Drug, Product
from cart_cytopenia.errors import ParseError
from cart_cytopenia.io.fhir_client import FetchError, fetch_queries
from cart_cytopenia.io.fhir_import import (
    Importer,
    RawResource,
    Unmapped,
    ref_key,
    resources_from_json,
    unidentified_medication,
)


def draft_order_raws(draft: Any, where: str = "context.draftOrders") -> list[RawResource]:
    """The resources of a draftOrders Bundle (a Bundle without a type is a collection)."""
    if not isinstance(draft, dict) or draft.get("resourceType") != "Bundle":
        raise ParseError(f"{where} must be a FHIR Bundle of request resources")
    if "type" not in draft:
        draft = {**draft, "type": "collection"}
    return list(resources_from_json(draft, where))


def _reference_key(reference: str) -> str | None:
    """'Medication/<id>' of a relative, absolute or versioned Medication reference."""
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == "Medication" and parts[-1]:
        return f"Medication/{parts[-1]}"
    return None


def _medications_by_key(raws: Iterable[RawResource]) -> dict[str, RawResource]:
    out: dict[str, RawResource] = {}
    for r in raws:
        if r.data.get("resourceType") != "Medication":
            continue
        if r.data.get("id"):
            out.setdefault(f"Medication/{r.data['id']}", r)
        if r.full_url:
            out.setdefault(r.full_url, r)
    return out


def missing_medications(draft_raws: Sequence[RawResource]) -> list[str]:
    """Medication references of the draft MedicationRequests that the Bundle does not hold
    (contained '#id' references are the resource's own business)."""
    known = _medications_by_key(draft_raws)
    missing: list[str] = []
    for r in draft_raws:
        if r.data.get("resourceType") != "MedicationRequest":
            continue
        ref = (r.data.get("medicationReference") or {}).get("reference")
        if not isinstance(ref, str) or not ref or ref.startswith("#") or ref in known:
            continue
        key = _reference_key(ref)
        if key is not None and key not in known and key not in missing:
            missing.append(key)
    return missing


def medications_from(raws: Iterable[RawResource], keys: Sequence[str]) -> list[RawResource]:
    """The Medications named by ``keys`` ('Medication/<id>') that ``raws`` (prefetch) hold."""
    by_key = _medications_by_key(raws)
    return [by_key[k] for k in keys if k in by_key]


async def fetch_medications(
    base: str,
    token: str,
    keys: Sequence[str],
    *,
    timeout: float,
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[list[RawResource], dict[str, str]]:
    """Read the Medications ``keys`` from the FHIR server: (those read, {key: why not} for those
    the server could not give; an absent one is neither: the order check reports it as not
    identified)."""
    if not keys:
        return [], {}
    results = await fetch_queries(
        base, token, {k: k for k in keys}, timeout=timeout, max_pages=1, transport=transport
    )
    out: list[RawResource] = []
    failed: dict[str, str] = {}
    for key, doc in results.items():
        if isinstance(doc, FetchError):
            failed[key] = doc.reason
        elif isinstance(doc, dict) and f"{doc.get('resourceType')}/{doc.get('id')}" == key:
            out.append(RawResource(doc, f"FHIR server {key}"))
    return out, failed


def medication_key(order: Any) -> str | None:
    """'Medication/<id>' of a draft order's medicationReference (None when it has none)."""
    ref = getattr(getattr(order, "medicationReference", None), "reference", None)
    return _reference_key(ref) if isinstance(ref, str) else None


@dataclass(frozen=True)
class MedicationOrder:
    """A medication request/administration as the catalogue sees it (CDS Hooks draft orders).

    ``problem`` says why the order cannot be checked: not valid FHIR (``readable`` False), or its
    medication cannot be identified (no code, name or resolvable Medication)."""

    reference: str  # "MedicationRequest/id"
    resource: Any  # the fhir.resources model (None when not even its medication validates)
    drug: Drug | None
    product: Product | None
    name: str | None
    problem: str | None = None
    readable: bool = True


_MEDICATION_FIELDS = (
    "resourceType",
    "id",
    "status",
    "intent",
    "subject",
    "medicationCodeableConcept",
    "medicationReference",
    "contained",
)


def _medication_only(data: dict[str, Any]) -> Any:
    """A MedicationRequest of only its identity and medication (to tell which drug an invalid
    draft order names), or None when even that is not valid FHIR."""
    slim = {k: v for k, v in data.items() if k in _MEDICATION_FIELDS}
    try:
        return get_fhir_model_class("MedicationRequest").model_validate(slim)
    except ValidationError:
        return None


def medication_orders(raws: Iterable[RawResource]) -> tuple[list[MedicationOrder], list[Unmapped]]:
    """The MedicationRequests of ``raws`` (e.g. a draftOrders Bundle) with their catalogue drug.

    Medication resources in ``raws`` or contained ones are followed. A MedicationRequest that
    is not valid FHIR is returned with its problem (and its drug when its medication alone
    validates); other resources that are not valid FHIR are returned as ``Unmapped``.
    """
    imp = Importer()
    parsed: list[tuple[Any, str]] = []
    invalid: list[tuple[dict[str, Any], str, str]] = []
    for raw in raws:
        rt = str(raw.data.get("resourceType", ""))
        rid = raw.data.get("id")
        ref = ref_key(rt, str(rid)) if rid else (raw.full_url or raw.where)
        try:
            model = get_fhir_model_class(rt).model_validate(raw.data)
        except (ValueError, ValidationError) as exc:
            why = f"not valid FHIR {rt}: {str(exc).splitlines()[0]}"
            if isinstance(exc, ValidationError):
                why = f"not valid FHIR {rt}: " + "; ".join(
                    f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()[:3]
                )
            if rt == "MedicationRequest":
                invalid.append((raw.data, ref, why))
            else:
                imp.unmapped(ref, why, raw.where)
            continue
        if rid:
            imp.by_ref[ref] = model
        if raw.full_url:
            imp.urls[raw.full_url] = ref
        parsed.append((model, ref))
    out = [
        _order(imp, model, ref)
        for model, ref in parsed
        if model.get_resource_type() == "MedicationRequest"
    ]
    for data, ref, why in invalid:
        slim = _medication_only(data)
        if slim is None:
            out.append(MedicationOrder(ref, None, None, None, None, why, readable=False))
            continue
        drug, product, name, _texts = imp._medication_concept(slim, ref)
        out.append(MedicationOrder(ref, slim, drug, product, name, why, readable=False))
    return out, imp.result.unmapped


def _order(imp: Importer, model: Any, ref: str) -> MedicationOrder:
    drug, product, name, _texts = imp._medication_concept(model, ref)
    problem = None
    if drug is None and product is None and not name:
        problem = unidentified_medication(model, imp.by_ref, imp.resolve)
    return MedicationOrder(ref, model, drug, product, name, problem)


__all__ = [
    "MedicationOrder",
    "draft_order_raws",
    "fetch_medications",
    "medication_key",
    "medication_orders",
    "medications_from",
    "missing_medications",
]
