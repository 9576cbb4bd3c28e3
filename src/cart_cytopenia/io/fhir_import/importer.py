"""FHIR R4 -> courses: Bundles (transaction, batch, collection, searchset) or bulk NDJSON.

Every resource is parsed with the ``fhir.resources`` R4B models (FHIR 4.3, wire-compatible with
R4 for the resources read here), then mapped:

- Patient -> patient (sex, birth date, death); Condition -> the malignancy, CRS / ICANS / IEC-HS
  with their ASTCT grade, infections, GVHD, relapse, clinical findings;
- Observation -> labs (LOINC via the analyte catalogue, UCUM units, comparators such as ``<0.1``),
  fevers (body temperature), weight, project-coded facts and marrow findings;
- MedicationAdministration / MedicationRequest -> medications (RxNorm or text via the drug
  catalogue), the CAR-T product (-> infusion), lymphodepleting agents (-> lymphodepletion);
- Procedure -> CAR-T infusion (day 0 and product), lymphodepletion, transfusion, marrow
  evaluation, stem cell boost, HCT (before day 0: prior HCT), next therapy.

Nothing is dropped silently: a resource that cannot be mapped is listed in
``FhirImport.unmapped`` with the reason; a choice made on incomplete data is listed in
``FhirImport.warnings``; a patient whose resources do not make a valid course (no CAR-T
infusion, a timeline contradiction ...) is listed in ``FhirImport.failed`` with every problem.
The mapping and every code recognised are documented in docs/interoperability.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from cart_cytopenia.io.fhir_duplicates import deduplicate
from cart_cytopenia.io.fhir_import.conditions import ConditionMapping
from cart_cytopenia.io.fhir_import.course import CourseAssembly
from cart_cytopenia.io.fhir_import.medications import MedicationMapping
from cart_cytopenia.io.fhir_import.observations import ObservationMapping
from cart_cytopenia.io.fhir_import.procedures import ProcedureMapping
from cart_cytopenia.io.fhir_import.reading import (
    ModelCache,
    RawResource,
    ref_key,
    resources_from_text,
)
from cart_cytopenia.io.fhir_import.report import FhirImport
from cart_cytopenia.io.fhir_status import invalid_status


class Importer(
    ObservationMapping, ConditionMapping, ProcedureMapping, MedicationMapping, CourseAssembly
):
    """Resources -> courses: parse and index every resource, map each by its type, then
    assemble one course per patient."""

    # ---- pipeline

    def run(self, raws: Iterable[RawResource]) -> FhirImport:
        counts: dict[str, int] = defaultdict(int)
        unique = deduplicate(raws)
        for ref, where, first in unique.merged:
            counts[ref.split("/", 1)[0]] += 1
            self.unmapped(ref, f"duplicate of the same resource ({first}): read once", where)
        for ref, message in unique.chosen:
            self.warn(ref, message)
        parsed: list[tuple[Any, str, str]] = []
        for raw in unique.raws:
            counts[str(raw.data.get("resourceType", ""))] += 1
            found = self._parse(raw)
            if found is not None:
                parsed.append((*found, raw.where))
        self.result.resources_read = dict(counts)
        self._index(parsed)
        for model, ref, where in parsed:
            handler = getattr(self, "_" + model.get_resource_type(), None)
            if handler is None:
                self.unmapped(
                    ref, f"{model.get_resource_type()} is not used by cart-cytopenia", where
                )
                continue
            handler(model, ref, where)
        for pid in sorted(self.builders):
            self._finish(self.builders[pid])
        return self.result

    def _parse(self, raw: RawResource) -> tuple[Any, str] | None:
        """(validated model, 'Type/id') of a raw resource, or None after reporting why not."""
        rt = str(raw.data.get("resourceType", ""))
        if rt == "_delete":
            self.unmapped(
                raw.full_url or raw.where,
                "DELETE request in a transaction: nothing to import",
                raw.where,
            )
            return None
        if rt == "_empty":
            self.unmapped(raw.full_url or raw.where, "Bundle entry without a resource", raw.where)
            return None
        rid = raw.data.get("id")
        ref = ref_key(rt, str(rid)) if rid else (raw.full_url or raw.where)
        try:
            cls = get_fhir_model_class(rt)
        except ValueError:
            self.unmapped(ref, f"'{rt}' is not a FHIR R4 resource type", raw.where)
            return None
        try:
            model = (
                cls.model_validate(raw.data)
                if self.cache is None
                else self.cache.validate(cls, raw.data)
            )
        except ValidationError as exc:
            errs = "; ".join(
                f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()[:3]
            )
            self.unmapped(ref, f"not valid FHIR {rt}: {errs}", raw.where, f"not valid FHIR {rt}")
            return None
        bad_status = invalid_status(rt, raw.data.get("status"))
        if bad_status is not None:
            self.unmapped(ref, f"not valid FHIR {rt}: {bad_status}", raw.where)
            return None
        if rid:
            self.by_ref[ref] = model
        if raw.full_url:
            self.urls[raw.full_url] = ref
        return model, ref

    def _index(self, parsed: list[tuple[Any, str, str]]) -> None:
        """What the handlers look up across resources: Patients by business identifier (for
        contained Patient subjects) and the requests that administrations fulfil."""
        for model, _ref, _w in parsed:
            if model.get_resource_type() == "Patient":
                for ident in model.identifier or []:
                    if ident.value:
                        self.patient_identifiers[(ident.system, ident.value)] = model.id
            elif (
                model.get_resource_type() == "MedicationAdministration"
                and model.request is not None
            ):
                target = self.resolve(model.request.reference)
                if target:
                    self.superseded.add(target)

    # ---- resource handlers

    def _Patient(self, res: Any, ref: str, where: str) -> None:
        b = self.builder(res.id)
        b.patient = res
        b.patient_ref = ref

    def _OperationOutcome(self, res: Any, ref: str, where: str) -> None:
        msgs = []
        for i in res.issue or []:
            text = (i.details.text if i.details else None) or i.diagnostics or i.code
            msgs.append(f"{i.severity}: {text}")
        self.unmapped(
            ref,
            "OperationOutcome from the sender (data may be incomplete): " + "; ".join(msgs),
            where,
            "OperationOutcome from the sender (data may be incomplete)",
        )

    def _Medication(self, res: Any, ref: str, where: str) -> None:
        pass  # resolved when referenced by a MedicationRequest / MedicationAdministration


def import_resources(raws: Iterable[RawResource], cache: ModelCache | None = None) -> FhirImport:
    """Map FHIR resources (from ``resources_from_text`` / ``resources_from_json``) to courses.

    With ``cache``, resources validated before (same content) are not validated again (the CDS
    Hooks service, where the same chart is sent again and again); the result is the same.
    """
    return Importer(cache).run(raws)


def import_text(text: str | bytes, source: str = "FHIR document") -> FhirImport:
    """Import a FHIR JSON document (Bundle or resource) or bulk NDJSON given as text."""
    return import_resources(resources_from_text(text, source))
