"""A patient's course read from an EHR's FHIR server (after a SMART on FHIR launch).

``read_course`` runs the given FHIR searches (the CDS Hooks prefetch queries for one patient)
with the launch's access token (``fhir_client.fetch_queries``: concurrent, bounded in time, next
pages on the same server only), maps what comes back with the FHIR importer and returns the
course of the patient in the launch context with the import report.

Nothing partial is shown as if it were whole: a query the server does not answer, a Patient that
is not the one in the launch context, or a record that does not make a course raises
``EhrAccessError`` / ``InputError`` saying which and why (missing data are never normal); a
refused token (HTTP 401) raises ``TokenRefusedError``, so that the caller can refresh it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from cart_cytopenia.domain.course import Course
from cart_cytopenia.errors import EhrAccessError, InputError, TokenRefusedError
from cart_cytopenia.io.fhir_client import (
    TOKEN_REFUSED,
    FetchError,
    check_server_url,
    fetch_queries,
)
from cart_cytopenia.io.fhir_import import (
    FhirImport,
    RawResource,
    import_resources,
    resources_from_json,
)


@dataclass(frozen=True)
class EhrCourse:
    """The course of the patient in context, and what the import could not use."""

    course: Course
    report: FhirImport
    resources: int  # resources read from the server


def _fetch(
    base: str,
    token: str,
    queries: Mapping[str, str],
    timeout: float,
    max_pages: int,
    transport: httpx.AsyncBaseTransport | None,
) -> dict[str, object]:
    """The queries' results, run on an event loop of this (worker) thread."""
    return asyncio.run(
        fetch_queries(
            base, token, queries, timeout=timeout, max_pages=max_pages, transport=transport
        )
    )


def _check_patient(raws: list[RawResource], patient_id: str) -> None:
    patients = [r for r in raws if r.data.get("resourceType") == "Patient"]
    ids = {str(r.data.get("id")) for r in patients}
    if ids != {patient_id}:
        raise EhrAccessError(
            "the EHR's FHIR server did not return the Patient of the launch context "
            f"(Patient resources returned: {len(patients)}); nothing is shown, so that no other "
            "patient's data can appear under this patient"
        )


def read_course(
    base: str,
    token: str,
    patient_id: str,
    queries: Mapping[str, str],
    *,
    allow_http: bool = False,
    timeout: float = 10.0,
    max_pages: int = 20,
    transport: httpx.AsyncBaseTransport | None = None,
) -> EhrCourse:
    """Read ``queries`` ({key: query relative to ``base``}) and import the patient's course.

    Blocking (network and parsing): call it from a worker thread, never the event loop.
    """
    base = check_server_url(base, allow_http=allow_http)
    results = _fetch(base, token, queries, timeout, max_pages, transport)
    failed = [v for v in results.values() if isinstance(v, FetchError)]
    if any(f.reason == TOKEN_REFUSED for f in failed):
        raise TokenRefusedError("the EHR's FHIR server refused the access token")
    if failed:
        raise EhrAccessError(
            "the EHR's FHIR server did not answer every query, so no guidance is shown: "
            + "; ".join(f"{f.key}: {f.reason}" for f in failed)
        )
    raws: list[RawResource] = []
    for key, doc in results.items():
        if doc is not None:
            raws.extend(resources_from_json(doc, f"FHIR server '{key}'"))
    _check_patient(raws, patient_id)
    report = import_resources(raws)
    course = next((c for c in report.courses if c.patient.id == patient_id), None)
    if course is not None:
        return EhrCourse(course, report, len(raws))
    failed_patient = next((f for f in report.failed if f.patient == patient_id), None)
    if failed_patient is None:
        raise InputError("the EHR record of this patient does not make a CAR-T course")
    raise InputError(
        f"the EHR record of this patient does not make a course cart-cytopenia can assess: "
        f"{failed_patient.message}",
        list(failed_patient.problems) or None,
    )
