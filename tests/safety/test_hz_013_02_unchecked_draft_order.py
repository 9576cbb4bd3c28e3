"""HZ-013-02: a draft order the service cannot identify is named in a card, never passed silently."""

from __future__ import annotations

from tests.cds_hooks.conftest import hook_request
from tests.cds_hooks.test_cds_hooks_third_party import (
    MEDICATION,
    SIGN,
    _day10_case_3,
    _reference_order,
)


def test_g_csf_by_reference_during_crs_is_checked_when_the_medication_can_be_read() -> None:
    h, pid, prefetch = _day10_case_3()
    h.ehr.fhir["Medication/med-gcsf"] = MEDICATION
    body = hook_request("order-sign", pid, prefetch, {"draftOrders": _reference_order(pid)})
    (card,) = h.post(SIGN, body).json()["cards"]
    assert card["indicator"] == "warning"
    assert card["source"]["topic"]["code"] == "alert.gcsf-during-crs"


def test_an_order_whose_medication_cannot_be_found_gets_a_card_saying_it_was_not_checked() -> None:
    h, pid, prefetch = _day10_case_3()
    body = hook_request("order-sign", pid, prefetch, {"draftOrders": _reference_order(pid)})
    (card,) = h.post(SIGN, body).json()["cards"]
    assert card["indicator"] == "info"
    assert "not checked" in card["summary"]
