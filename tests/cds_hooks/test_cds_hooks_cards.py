"""Cards of service/cds_hooks.py for the review's cases, against recorded spec-shaped calls.

Each recorded request (tests/cds_hooks/examples/*.request.json, rebuilt by
``python -m tests.cds_hooks.record``) is answered by the service with the real guidance engine;
the cards must satisfy the CDS Hooks 2.0 card rules, match the recorded response in indicator
and topic, and say what the review says for that case on that day.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest

from cart_cytopenia.service.cds_hooks import ORDER_SELECT, ORDER_SIGN
from tests.cds_hooks.cases import CASES, ORDER_CASES, Case, draft, respond
from tests.cds_hooks.conftest import (
    hook_request,
    load_example,
    make_harness,
    review_course,
    split_prefetch,
)

ALL = [*CASES, *ORDER_CASES]


def assert_no_null_or_empty(x: Any, where: str = "card") -> None:
    """CDS Hooks 2.0: JSON elements SHALL NOT be null or empty (unless specified)."""
    if isinstance(x, dict):
        assert x, f"{where} is an empty object"
        for k, v in x.items():
            assert v is not None and v != "" and v != [] and v != {}, (
                f"{where}.{k} is null or empty"
            )
            assert_no_null_or_empty(v, f"{where}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            assert_no_null_or_empty(v, f"{where}[{i}]")


def assert_spec_card(card: dict[str, Any]) -> None:
    assert_no_null_or_empty(card)
    assert set(card) <= {
        "uuid", "summary", "detail", "indicator", "source", "suggestions",
        "selectionBehavior", "overrideReasons", "links",
    }  # fmt: skip
    assert isinstance(card["summary"], str) and 0 < len(card["summary"]) < 140
    assert "\n" not in card["summary"]
    assert card["indicator"] in ("info", "warning", "critical")
    assert isinstance(card.get("detail", ""), str)
    src = card["source"]
    assert src["label"]
    if "url" in src:
        assert urlsplit(src["url"]).scheme in ("http", "https")
    if "topic" in src:
        assert src["topic"]["system"] and src["topic"]["code"]
    for link in card.get("links", []):
        assert link["label"] and link["type"] in ("absolute", "smart")
        assert urlsplit(link["url"]).scheme in ("http", "https")
    for reason in card.get("overrideReasons", []):
        assert reason["code"] and reason["system"] and reason["display"]
    if "suggestions" in card:
        assert card["selectionBehavior"] in ("at-most-one", "any")
        for s in card["suggestions"]:
            assert s["label"] and s["uuid"]
            for a in s.get("actions", []):
                assert a["type"] in ("create", "update", "delete") and a["description"]
                if a["type"] == "delete":
                    assert a["resourceId"].count("/") == 1
                else:
                    MedicationRequest.model_validate(a["resource"])


@pytest.mark.parametrize("case", ALL, ids=lambda c: c.name)
def test_recorded_call_gives_spec_cards_matching_the_recording(case: Case) -> None:
    request = load_example(f"{case.name}.request.json")
    got = respond(case, request)
    recorded = load_example(f"{case.name}.response.json")
    for card in got["cards"]:
        assert_spec_card(card)
    assert len({c["uuid"] for c in got["cards"]}) == len(got["cards"])

    def outline(doc: dict[str, Any]) -> list[tuple[str, str]]:
        return [(c["indicator"], c["source"]["topic"]["code"]) for c in doc["cards"]]

    assert outline(got) == outline(recorded), (
        "cards changed: re-record with python -m tests.cds_hooks.record"
    )


@pytest.mark.parametrize("case", ALL, ids=lambda c: c.name)
def test_recorded_request_is_the_review_case_as_known_that_day(case: Case) -> None:
    """The recording holds the review case's record up to that day (re-record when the example
    course files change: the recorded answer is checked against the recorded request)."""
    request = load_example(f"{case.name}.request.json")
    course = review_course(case.review_case)
    assert request["hook"] == case.hook and request["context"]["patientId"] == course.patient.id
    assert set(request["prefetch"]) == set(case.request()["prefetch"])
    procedures = request["prefetch"]["procedures"]["entry"]
    infusion = next(
        e["resource"] for e in procedures if "CAR T-cell infusion" in e["resource"]["code"]["text"]
    )
    assert infusion["performedDateTime"] == course.infusion_date.isoformat()
    labs = request["prefetch"]["labs"]["entry"]
    last = max(e["resource"]["effectiveDateTime"] for e in labs)
    assert last <= case.today.isoformat()


def _cards(case: Case) -> list[dict[str, Any]]:
    return respond(case, case.request())["cards"]  # type: ignore[no-any-return]


def _topics(cards: list[dict[str, Any]]) -> list[str]:
    return [c["source"]["topic"]["code"] for c in cards]


def test_case_1_day_60_intermittent_recovery_and_tpo_ra_considered() -> None:
    cards = _cards(CASES[0])
    summary = cards[0]
    assert summary["summary"].startswith("Day 60 after CAR-T (axi-cel)")
    assert "intermittent" in summary["summary"] and "early ICAHT 3" in summary["summary"]
    # the review started eltrombopag at 2 months for transfusion dependence
    assert "management.tpo-ra.start" in _topics(cards)
    assert "Bleeding risk not recorded" in summary["detail"]
    assert all(c["links"][0]["url"].endswith("/fhir/patient-page/review-case-1") for c in cards)


def test_case_2_day_42_aplastic_marrow_workup_and_platelets() -> None:
    cards = _cards(CASES[1])
    assert "aplastic" in cards[0]["summary"] and "ide-cel" in cards[0]["summary"]
    by_topic = {c["source"]["topic"]["code"]: c for c in cards}
    # no response to G-CSF -> marrow; platelets < 10 -> transfusion; both ask for action
    assert by_topic["workup.bone-marrow"]["indicator"] == "warning"
    assert by_topic["management.transfusion.platelets"]["indicator"] == "warning"
    assert "overrideReasons" in by_topic["workup.bone-marrow"]


def test_case_3_day_45_child_growth_factors_deferred() -> None:
    cards = _cards(CASES[2])
    assert "tisa-cel" in cards[0]["summary"] and "aplastic" in cards[0]["summary"]
    assert "management.growth-factors.paediatric-defer" in _topics(cards)
    assert "workup.chimerism" in _topics(cards)  # prior haploidentical allo-HCT


def test_gm_csf_order_warns_and_offers_g_csf() -> None:
    (card,) = _cards(ORDER_CASES[0])
    assert card["indicator"] == "warning" and card["source"]["topic"]["code"] == "alert.gmcsf-given"
    replace, remove = card["suggestions"]
    assert replace["isRecommended"] is True
    kinds = [a["type"] for a in replace["actions"]]
    assert kinds == ["delete", "create"]
    assert replace["actions"][0]["resourceId"] == "MedicationRequest/draft-gmcsf"
    created = replace["actions"][1]["resource"]
    assert (
        created["status"] == "draft"
        and "filgrastim" in created["medicationCodeableConcept"]["text"]
    )
    assert [a["type"] for a in remove["actions"]] == ["delete"]


def test_g_csf_order_during_crs_warns() -> None:
    (card,) = _cards(ORDER_CASES[1])
    assert card["source"]["topic"]["code"] == "alert.gcsf-during-crs"
    assert card["suggestions"][0]["actions"][0]["resourceId"] == "MedicationRequest/draft-gcsf"


def test_tpo_ra_order_before_criteria_warns_but_not_when_met() -> None:
    (card,) = _cards(ORDER_CASES[2])
    assert card["source"]["topic"]["code"] == "management.tpo-ra.start"
    assert "day 20" in card["detail"]
    met = Case(
        "eltrombopag-day-60",
        1,
        60,
        hook="order-select",
        service=ORDER_SELECT,
        drafts=(draft("draft-elt", "eltrombopag 75 mg PO daily", "711942"),),
    )
    assert _cards(met) == []


def test_orders_that_agree_with_the_approach_give_no_cards() -> None:
    ok = Case(
        "acyclovir",
        1,
        12,
        hook="order-sign",
        service=ORDER_SIGN,
        drafts=(draft("draft-acv", "acyclovir 400 mg PO BID", "281"),),
    )
    assert _cards(ok) == []
    # G-CSF on day 14 with ANC < 500 and CRS over: what the review suggests, so no warning
    gcsf = Case(
        "gcsf-day-14",
        1,
        14,
        hook="order-sign",
        service=ORDER_SIGN,
        drafts=(draft("draft-gcsf", "filgrastim 480 mcg SC daily", "68442"),),
    )
    assert _cards(gcsf) == []


def test_order_select_only_checks_the_selected_orders() -> None:
    case = ORDER_CASES[0]
    request = case.request()
    request["context"]["selections"] = ["MedicationRequest/draft-acyclovir"]
    assert respond(case, request)["cards"] == []


def test_before_infusion_the_card_gives_baseline_risk() -> None:
    course = review_course(1)
    h = make_harness(course.infusion_date - dt.timedelta(days=3))
    body = hook_request("patient-view", course.patient.id, split_prefetch(course.as_of(-3)))
    (card,) = h.post("/cds-services/cart-cytopenia-patient-view", body).json()["cards"]
    assert "planned" in card["summary"] and "CAR-HEMATOTOX high risk" in card["summary"]
    assert_spec_card(card)
