"""FHIR R4 in and out: the public entry points (docs/interoperability.md).

- ``read_fhir(paths)``: import FHIR Bundles (transaction, batch, collection, searchset) or bulk
  NDJSON files (or directories of them) into courses, with a report of everything that did not
  map (``FhirImport``).
- ``import_text(text)``: the same for a document held in memory (the API, CDS Hooks prefetch).
- ``course_to_bundle(course)``: the generator, a course as a FHIR Bundle that imports back to
  the same course.
- ``assessment_bundle(course, assessment, guidance_items)``: grades as Observations and the
  guidance as a RequestGroup of proposals plus DetectedIssues, in one collection Bundle.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cart_cytopenia.domain.course import Course
from cart_cytopenia.errors import ParseError
from cart_cytopenia.grading.assessment import Assessment
from cart_cytopenia.io.fhir_codes import codes, project_code_system
from cart_cytopenia.io.fhir_export import (
    assessment_to_resources,
    course_to_bundle,
    course_to_resources,
    courses_to_ndjson,
    guidance_to_resources,
    to_bundle,
)
from cart_cytopenia.io.fhir_import import (
    FailedPatient,
    FhirImport,
    ImportWarning,
    ModelCache,
    RawResource,
    Unmapped,
    import_resources,
    import_text,
    resources_from_json,
    resources_from_text,
)
from cart_cytopenia.io.fhir_resources import ResourceWriter

__all__ = [
    "FailedPatient",
    "FhirImport",
    "ImportWarning",
    "ModelCache",
    "RawResource",
    "Unmapped",
    "assessment_bundle",
    "codes",
    "course_to_bundle",
    "course_to_resources",
    "courses_to_ndjson",
    "import_resources",
    "import_text",
    "project_code_system",
    "read_fhir",
    "resources_from_json",
    "resources_from_text",
]

FHIR_SUFFIXES = (".json", ".ndjson", ".jsonl", ".fhir")


def _files(paths: Sequence[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(
                f for f in p.iterdir() if f.is_file() and f.suffix.lower() in FHIR_SUFFIXES
            )
            if not found:
                raise ParseError(f"{p} holds no .json or .ndjson files")
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise ParseError(f"{p} does not exist")
    return out


def read_fhir(paths: Sequence[Path | str]) -> FhirImport:
    """Import FHIR JSON / NDJSON files (several files of one bulk export belong together)."""
    raws: list[RawResource] = []
    for f in _files([Path(p) for p in paths]):
        try:
            data = f.read_bytes()
        except OSError as exc:
            raise ParseError(f"{f} cannot be read: {exc.strerror}") from None
        raws += resources_from_text(data, str(f))
    return import_resources(raws)


def assessment_bundle(
    course: Course,
    assessment: Assessment,
    guidance_items: Sequence[Any] = (),
    issued: dt.datetime | None = None,
) -> dict[str, Any]:
    """Grades (Observations), guidance (RequestGroup + DetectedIssue) and the Patient they are about."""
    w = ResourceWriter(course.patient.id)
    patient = {"resourceType": "Patient", "id": w.prefix}
    entries: list[tuple[str, dict[str, Any]]] = [(w.patient_url, patient)]
    for res in assessment_to_resources(course, assessment, w.patient_url, issued):
        w.add(res, "grade")
    for res in guidance_to_resources(guidance_items, w.patient_url, issued):
        w.add(res, res["resourceType"].lower())
    entries += w.entries
    return to_bundle(entries, "collection")
