"""HZ-013-S2: guidance from part of the EHR record (a query not answered read as "no data").

Controls: any query the FHIR server does not answer stops the page and is named; a refused
token is told apart (refreshed and read again), never taken as an empty record."""

from __future__ import annotations

import httpx
import pytest

from cart_cytopenia.errors import EhrAccessError, TokenRefusedError
from tests.safety.smart_ehr import read, resources, server


def test_a_query_not_answered_stops_the_page_and_names_it() -> None:
    own = resources("pat-a")
    with pytest.raises(EhrAccessError, match="procedures: the FHIR server answered HTTP 503"):
        read(server(own, patient_read=own[0], fail="Procedure"))
    assert read(server(own, patient_read=own[0])).course.infusion_date is not None


def test_a_refused_token_is_not_an_empty_record() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401)

    with pytest.raises(TokenRefusedError):
        read(httpx.MockTransport(refuse))
