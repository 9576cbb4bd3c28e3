"""Hazards of opening a patient from the EHR (SMART launch), each with the control that stops it:

- H-SMART-1 another patient's data shown under the launched patient: the Patient returned must be
  the one of the token's ``patient`` context, and only that patient's resources make the course;
- H-SMART-2 guidance from a partial record (a query not answered taken as "no data"): any query
  that fails stops the page, naming it;
- H-SMART-3 a launch without a patient context guessed from elsewhere: refused
  (tests/smart/test_smart_launch.py::test_token_without_patient_context_is_refused).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.errors import EhrAccessError, TokenRefusedError
from cart_cytopenia.io.fhir_export import _with_plain_references, course_to_resources
from cart_cytopenia.io.fhir_server_source import read_course
from cart_cytopenia.service.smart.routes import patient_queries
from tests.service.conftest import neutropenic_course

FHIR = "https://ehr.example.org/fhir"


def _resources(patient_id: str) -> list[dict[str, Any]]:
    doc = neutropenic_course()
    doc["patient"]["id"] = patient_id
    return [r for _u, r in _with_plain_references(course_to_resources(parse_course(doc)))]


def _server(
    resources: list[dict[str, Any]], patient_read: dict[str, Any] | None = None, fail: str = ""
) -> httpx.MockTransport:
    """A FHIR server that answers every search with ``resources`` of its type (whoever they
    belong to: a misbehaving server) and the Patient read with ``patient_read``."""

    def handler(request: httpx.Request) -> httpx.Response:
        rtype = request.url.path.rsplit("/fhir/", 1)[1].split("/")[0]
        if rtype == fail:
            return httpx.Response(503)
        if "/Patient/" in request.url.path:
            return httpx.Response(200, json=patient_read)
        hits = [r for r in resources if r["resourceType"] == rtype]
        entry = [{"resource": r} for r in hits]
        return httpx.Response(
            200, json={"resourceType": "Bundle", "type": "searchset", "entry": entry}
        )

    return httpx.MockTransport(handler)


def _read(transport: httpx.MockTransport, patient: str = "pat-a") -> Any:
    return read_course(FHIR, "token", patient, patient_queries(patient), transport=transport)


def test_h_smart_1_a_patient_read_that_is_not_the_context_patient_stops_the_page() -> None:
    other = _resources("pat-b")
    with pytest.raises(EhrAccessError, match="did not return the Patient of the launch context"):
        _read(_server(other, patient_read=other[0]))


def test_h_smart_1_other_patients_resources_never_enter_the_course() -> None:
    own = _resources("pat-a")
    mixed = own + [r for r in _resources("pat-b") if r["resourceType"] != "Patient"]
    result = _read(_server(mixed, patient_read=own[0]))
    assert result.course.patient.id == "pat-a"
    alone = _read(_server(own, patient_read=own[0]))
    assert result.course.labs == alone.course.labs
    assert result.course.events == alone.course.events


def test_h_smart_2_a_query_not_answered_stops_the_page_and_names_it() -> None:
    own = _resources("pat-a")
    with pytest.raises(EhrAccessError, match="procedures: the FHIR server answered HTTP 503"):
        _read(_server(own, patient_read=own[0], fail="Procedure"))


def test_a_refused_token_is_told_apart_so_that_it_can_be_refreshed() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401)

    with pytest.raises(TokenRefusedError):
        _read(httpx.MockTransport(refuse))
