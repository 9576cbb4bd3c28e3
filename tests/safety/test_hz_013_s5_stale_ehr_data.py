"""HZ-013-S5: decisions on EHR data read long ago, or on a course taken for a stored one.

Controls: the page says when and from which EHR the data were read and that the course is not
stored; "Read again from the EHR" reads the latest; an opened patient expires after
``context_minutes``."""

from __future__ import annotations

import time
from typing import Any

from cart_cytopenia.service.smart.launches import EhrPatient, LaunchStore
from tests.smart.conftest import Launchable, authorize, signed_in


def test_the_page_says_where_and_when_it_was_read_and_that_it_is_not_stored(
    launchable: Launchable,
) -> None:
    client = signed_in(launchable.svc)
    page = client.get(
        client.get(authorize(client.get(launchable.launch_url()))).headers["location"]
    )
    banner = page.text.split('id="ehr-source"')[1].split("</div>")[0]
    assert launchable.ehr.fhir in banner
    assert time.strftime("%Y-%m-%d", time.gmtime()) in banner
    assert "not stored" in banner
    assert "Read again from the EHR" in page.text


def test_an_opened_patient_expires() -> None:
    store = LaunchStore(launch_seconds=600, context_seconds=60)
    stub: Any = None
    opened = EhrPatient("ctx", 1, stub, {}, "p", None, stub, time.time())
    store.open(opened)
    assert store.patient("ctx", 1) is opened
    opened.opened -= 61
    assert store.patient("ctx", 1) is None
    assert store.patient("ctx", 1) is None  # forgotten
