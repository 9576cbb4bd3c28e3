"""CDS Hooks cards link to the app with a SMART app link (``type: smart``) when the EHR
supports it (``smart_links``), else with the plain link to the patient page (CDS Hooks 2.0,
"Link": a smart link's url is the app's launch URL, to which the EHR adds iss and launch)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.cds_hooks.conftest import BASE, hook_request, make_harness, review_course, split_prefetch

PV = "/cds-services/cart-cytopenia-patient-view"


@pytest.mark.parametrize(
    ("smart_links", "link"),
    [
        (True, {"label": "Open in cart-cytopenia", "url": f"{BASE}/smart/launch", "type": "smart"}),
        (
            False,
            {
                "label": "Open in cart-cytopenia",
                "url": f"{BASE}/fhir/patient-page/review-case-1",
                "type": "absolute",
            },
        ),
    ],
)
def test_card_links_follow_the_ehrs_smart_support(smart_links: bool, link: dict) -> None:
    course = review_course(1).as_of(30)
    h = make_harness(dt.date(2022, 4, 6), settings={"smart_links": smart_links, "public_url": BASE})
    r = h.post(PV, hook_request("patient-view", course.patient.id, split_prefetch(course)))
    assert r.status_code == 200, r.text
    cards = r.json()["cards"]
    assert cards
    assert all(c["links"] == [link] for c in cards)
