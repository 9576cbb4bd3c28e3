"""HZ-015-07: a result dated after today (a mistyped date: 2062 for 2026) is not counted by
today's grades and guidance. It is never dropped silently: the patient page says so at the top
and the API's assessment lists it; a course with nothing after today shows no such notice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.conftest import Service, login, make_service


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    s = make_service(tmp_path)
    yield s
    s.db.dispose()


def _assessment(svc: Service, cid: int) -> dict:
    r = svc.client().get(f"/api/v1/courses/{cid}/assessment", headers=svc.auth("clinician"))
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_a_result_dated_after_today_is_named_not_silently_left_out(svc: Service) -> None:
    cid, pid = svc.courses["wl-neutropenic"], svc.patients["wl-neutropenic"]
    assert _assessment(svc, cid)["dated_after_today"] == []  # today is day 10
    web = login(svc.client(), "cleo")
    assert "dated after today" not in web.get(f"/patients/{pid}?course={cid}").text
    late = {"day": 3660, "analyte": "anc", "value": 20, "unit": "/uL"}  # a year typed wrong
    r = svc.client().post(
        f"/api/v1/courses/{cid}/observations",
        json={"observations": [late]},
        headers=svc.auth("clinician"),
    )
    assert r.status_code == 201, r.text
    answer = _assessment(svc, cid)
    (listed,) = answer["dated_after_today"]
    assert "(anc) on day 3660" in listed
    anc = next(x for x in answer["assessment"]["lineages"] if x["analyte"] == "anc")
    assert anc["last_value"] == 300  # today's grades do not count it (as of today, day 10)
    page = web.get(f"/patients/{pid}?course={cid}").text
    assert "1 item(s) dated after today" in page and "(anc) on day 3660" in page
