"""Helpers of the SMART launch hazard tests: a FHIR server (httpx mock) that answers every
search with the resources it is given, whoever they belong to, (the launchable app and test EHR are in conftest.py)."""

from __future__ import annotations

from typing import Any

import httpx

from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.io.fhir_export import _with_plain_references, course_to_resources
from cart_cytopenia.io.fhir_server_source import EhrCourse, read_course
from cart_cytopenia.service.smart.routes import patient_queries
from tests.service.conftest import neutropenic_course

FHIR = "https://ehr.example.org/fhir"


def resources(patient_id: str) -> list[dict[str, Any]]:
    doc = neutropenic_course()
    doc["patient"]["id"] = patient_id
    return [r for _u, r in _with_plain_references(course_to_resources(parse_course(doc)))]


def server(
    found: list[dict[str, Any]], patient_read: dict[str, Any] | None = None, fail: str = ""
) -> httpx.MockTransport:
    """Searches answered with ``found`` of the type asked (a misbehaving server does not filter
    by patient), the Patient read with ``patient_read``, HTTP 503 for the type ``fail``."""

    def handler(request: httpx.Request) -> httpx.Response:
        rtype = request.url.path.rsplit("/fhir/", 1)[1].split("/")[0]
        if rtype == fail:
            return httpx.Response(503)
        if "/Patient/" in request.url.path:
            return httpx.Response(200, json=patient_read)
        entry = [{"resource": r} for r in found if r["resourceType"] == rtype]
        return httpx.Response(
            200, json={"resourceType": "Bundle", "type": "searchset", "entry": entry}
        )

    return httpx.MockTransport(handler)


def read(transport: httpx.MockTransport, patient: str = "pat-a") -> EhrCourse:
    return read_course(FHIR, "token", patient, patient_queries(patient), transport=transport)
