"""FHIR resources as JSON dicts: deterministic ids and urn:uuid full URLs (``ResourceWriter``)
and the data types every exported resource is built from (CodeableConcept, Coding, Quantity,
project extensions, dates)."""

import datetime as dt
import re
import uuid
from typing import Any

from cart_cytopenia.domain.course import (
    Course,
)
from cart_cytopenia.io.fhir_codes import codes

_NAMESPACE = uuid.UUID("6f0c2a4e-8a54-5c1e-9d0b-6a1f2c3d4e5f")
_ID_SAFE = re.compile(r"[^A-Za-z0-9\-.]")


def fhir_id(text: str) -> str:
    """A valid FHIR logical id (``[A-Za-z0-9-.]{1,64}``) derived from ``text``."""
    safe = _ID_SAFE.sub("-", text).strip("-.") or "x"
    if len(safe) > 64:
        digest = uuid.uuid5(_NAMESPACE, text).hex[:12]
        safe = safe[:51] + "-" + digest
    return safe


def patient_fhir_id(patient_id: str) -> str:
    """The FHIR id of a patient: the pseudonym itself when it is a valid id, else ``fhir_id``
    of it with a digest of the pseudonym, so that two patients never share one (``a/b`` and
    ``a_b`` both make ``a-b``: their resources would merge into one patient's on a server)."""
    safe = fhir_id(patient_id)
    if safe == patient_id:
        return safe
    return f"{safe[:51]}-{uuid.uuid5(_NAMESPACE, patient_id).hex[:12]}"


class ResourceWriter:
    """Collects resources with deterministic ids and urn:uuid full URLs."""

    def __init__(self, patient_id: str) -> None:
        self.patient_id = patient_id
        self.prefix = patient_fhir_id(patient_id)
        self.entries: list[tuple[str, dict[str, Any]]] = []
        self.counter: dict[str, int] = {}
        self.patient_url = self.url_for("Patient", self.prefix)

    @staticmethod
    def url_for(resource_type: str, rid: str) -> str:
        return "urn:uuid:" + str(uuid.uuid5(_NAMESPACE, f"{resource_type}/{rid}"))

    def next_id(self, kind: str) -> str:
        n = self.counter.get(kind, 0) + 1
        self.counter[kind] = n
        return fhir_id(f"{self.prefix}-{kind}-{n}")

    def add(self, resource: dict[str, Any], kind: str | None = None) -> str:
        rt = resource["resourceType"]
        if "id" not in resource:
            resource["id"] = self.next_id(kind or rt.lower())
        url = self.url_for(rt, resource["id"])
        self.entries.append((url, resource))
        return url

    @property
    def subject(self) -> dict[str, str]:
        return {"reference": self.patient_url}


def iso(d: dt.date) -> str:
    return d.isoformat()


def date_of(course: Course, date: dt.date | None, day: int | None) -> dt.date | None:
    if date is not None:
        return date
    if day is not None:
        return course.infusion_date + dt.timedelta(days=day)
    return None


def cc(*codings: dict[str, str], text: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"coding": list(codings)}
    if text:
        out["text"] = text
    return out


def coding(system_name: str, code: str, display: str | None = None) -> dict[str, str]:
    c = {"system": codes().system(system_name), "code": code}
    if display:
        c["display"] = display
    return c


def extension(name: str, **value: Any) -> dict[str, Any]:
    return {"url": codes().extension(name), **value}


def category(system_name: str, code: str, display: str) -> list[dict[str, Any]]:
    return [cc(coding(system_name, code, display))]


def quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": codes().system("ucum"), "code": unit}


def number(x: float) -> float | int:
    return int(x) if float(x).is_integer() and abs(x) < 1e15 else x
