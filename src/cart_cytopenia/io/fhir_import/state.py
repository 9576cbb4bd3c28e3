"""The state of one import: per-patient builders of dated items, the report being written, and
the lookups (references, Patients by identifier) every resource mapping uses."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from cart_cytopenia.io.fhir_codes import FhirCodes, codes
from cart_cytopenia.io.fhir_import.reading import ModelCache
from cart_cytopenia.io.fhir_import.report import FhirImport, ImportWarning, Unmapped


@dataclass
class Dated:
    ref: str
    when: dt.date | None
    payload: dict[str, Any]
    end: dt.date | None = None
    open_end: bool = False
    merge: bool = False  # an administration: consecutive days may join into one span


@dataclass
class PatientBuilder:
    pid: str
    patient: Any = None
    patient_ref: str | None = None
    diseases: list[Dated] = field(default_factory=list)
    infusions: list[Dated] = field(default_factory=list)
    ld: list[Dated] = field(default_factory=list)
    ld_agents: list[Dated] = field(default_factory=list)
    labs: list[Dated] = field(default_factory=list)
    temps: list[Dated] = field(default_factory=list)
    weights: list[Dated] = field(default_factory=list)
    events: list[Dated] = field(default_factory=list)  # payload has "type"
    hcts: list[Dated] = field(default_factory=list)
    relapse_candidates: list[Dated] = field(default_factory=list)
    meds: list[Dated] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    marrow_findings: dict[str, Dated] = field(default_factory=dict)  # Procedure ref -> findings
    marrow_findings_unlinked: list[Dated] = field(default_factory=list)
    last_followup: dt.date | None = None


class ImportState:
    """What an import holds while it reads resources: the result so far, resources by
    reference, one builder per patient; and the bookkeeping every mapping uses."""

    def __init__(self, cache: ModelCache | None = None) -> None:
        self.cache = cache
        self.cs: FhirCodes = codes()
        self.result = FhirImport()
        self.by_ref: dict[str, Any] = {}
        self.urls: dict[str, str] = {}  # fullUrl -> "Type/id"
        self.builders: dict[str, PatientBuilder] = {}
        self.superseded: set[str] = set()
        self.patient_identifiers: dict[tuple[str | None, str], str] = {}

    # ---- bookkeeping

    def unmapped(self, ref: str, reason: str, source: str = "", group: str = "") -> None:
        self.result.unmapped.append(Unmapped(ref, reason, source, group))

    def warn(self, ref: str, message: str) -> None:
        self.result.warnings.append(ImportWarning(ref, message))

    def builder(self, pid: str) -> PatientBuilder:
        b = self.builders.get(pid)
        if b is None:
            b = self.builders[pid] = PatientBuilder(pid)
        return b

    def resolve(self, reference: str | None) -> str | None:
        """'Type/id' for a reference (relative, absolute, urn:uuid, versioned), or None."""
        if not reference:
            return None
        if reference in self.urls:
            return self.urls[reference]
        ref = reference.split("/_history/")[0]
        parts = ref.rstrip("/").split("/")
        if len(parts) >= 2:
            return f"{parts[-2]}/{parts[-1]}"
        return None

    def subject_of(self, res: Any, ref: str, source: str) -> PatientBuilder | None:
        r = getattr(res, "subject", None) or getattr(res, "patient", None)
        if r is not None and (r.reference or "").startswith("#"):
            return self._contained_subject(res, r.reference, ref, source)
        target = self.resolve(r.reference if r is not None else None)
        if target is None or not target.startswith("Patient/"):
            why = (
                "has no subject"
                if r is None
                else f"subject {getattr(r, 'reference', None)!r} is not a Patient reference"
            )
            self.unmapped(ref, f"{why}; cannot tell whose it is", source)
            return None
        return self.builder(target.split("/", 1)[1])

    def _contained_subject(
        self, res: Any, reference: str, ref: str, source: str
    ) -> PatientBuilder | None:
        """The patient of a resource whose subject is a Patient contained in it ('#p1').

        A contained resource has no identity outside its container, so it is joined with the
        patient's other data through a business identifier (system and value) that one Patient
        of the import also has; without one, the resource is reported."""
        inner = next(
            (c for c in getattr(res, "contained", None) or [] if c.id == reference[1:]), None
        )
        if inner is None or inner.get_resource_type() != "Patient":
            what = "no contained resource" if inner is None else f"a {inner.get_resource_type()}"
            self.unmapped(ref, f"subject {reference!r} is {what}, not a contained Patient", source)
            return None
        idents = [(i.system, i.value) for i in inner.identifier or [] if i.value]
        pids = {self.patient_identifiers[i] for i in idents if i in self.patient_identifiers}
        if len(pids) == 1:
            return self.builder(pids.pop())
        why = (
            "identifiers that name several Patients"
            if pids
            else "no identifier shared with a Patient resource of the import"
            if idents
            else "no identifier"
        )
        self.unmapped(
            ref,
            f"subject is a Patient contained in the resource ({reference}) with {why}: a "
            "contained resource has no identity of its own, so it cannot be joined with the "
            "patient's other data; reference the Patient resource (Patient/<id>) or send the "
            "Patient with the same identifier",
            source,
        )
        return None
