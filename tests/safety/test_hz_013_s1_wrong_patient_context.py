"""HZ-013-S1: another patient's data shown under the patient launched from the EHR.

Controls: the token's ``patient`` context is required (never guessed); the Patient the FHIR
server returns must be that patient; only that patient's resources make the course."""

from __future__ import annotations

import pytest

from cart_cytopenia.errors import EhrAccessError
from tests.safety.smart_ehr import read, resources, server
from tests.smart.conftest import Launchable, authorize, signed_in


def test_a_patient_read_that_is_not_the_context_patient_stops_the_page() -> None:
    other = resources("pat-b")
    with pytest.raises(EhrAccessError, match="did not return the Patient of the launch context"):
        read(server(other, patient_read=other[0]))


def test_other_patients_resources_never_enter_the_course() -> None:
    own = resources("pat-a")
    mixed = own + [r for r in resources("pat-b") if r["resourceType"] != "Patient"]
    result = read(server(mixed, patient_read=own[0]))
    alone = read(server(own, patient_read=own[0]))
    assert result.course.patient.id == "pat-a"
    assert result.course.labs == alone.course.labs
    assert result.course.events == alone.course.events


def test_a_token_without_patient_context_opens_no_patient(launchable: Launchable) -> None:
    launchable.ehr.give_patient = False
    client = signed_in(launchable.svc)
    r = client.get(authorize(client.get(launchable.launch_url())))
    assert r.status_code == 502
    assert "no patient context" in r.text
    assert not any(kind in ("read", "search") for kind, _ in launchable.ehr.calls)
