"""HZ-015-04: a stored worklist row that is out of date is computed again or marked, never shown
as today's."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from cart_cytopenia.service import worklist as wl
from tests.service.conftest import TODAY, login, make_service


def test_rows_of_yesterday_are_marked_until_computed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = make_service(tmp_path)
    web = login(svc.client(), "cleo")
    assert "as of" not in web.get("/worklist").text  # computed for today by the view
    ctx = svc.app.state.ctx  # type: ignore[attr-defined]
    tomorrow = TODAY + dt.timedelta(days=1)
    monkeypatch.setattr(ctx.worklist, "today", lambda: tomorrow)  # the daily rollover
    monkeypatch.setattr(wl, "INLINE_REFRESH", 0)  # as if more rows were due than a view computes
    monkeypatch.setattr(ctx.refresher, "wake", lambda: None)  # and the refresher not yet there
    page = web.get("/worklist").text
    assert "2 course(s) are being brought up to date" in page
    assert page.count(f"as of {TODAY.isoformat()}") == 2
    api = svc.client().get("/api/v1/worklist", headers=svc.auth("read-only")).json()
    assert {(r["as_of"], r["up_to_date"]) for r in api} == {(TODAY.isoformat(), False)}
    monkeypatch.setattr(wl, "INLINE_REFRESH", 25)  # computed again: today's rows, no mark
    page = web.get("/worklist").text
    assert "being brought up to date" not in page and "as of" not in page
    svc.db.dispose()


def test_a_course_changed_since_its_row_is_computed_before_the_view_answers(
    tmp_path: Path,
) -> None:
    svc = make_service(tmp_path)
    api = svc.client()
    cid = svc.courses["wl-neutropenic"]
    rows = api.get("/api/v1/worklist", headers=svc.auth("read-only")).json()
    before = next(r for r in rows if r["course_id"] == cid)
    assert before["counts"]["anc"]["value"] == 300
    course = api.get(f"/api/v1/courses/{cid}", headers=svc.auth("read-only")).json()
    doc = course["document"]
    doc["labs"] = [lab for lab in doc["labs"] if not (lab["analyte"] == "anc" and lab["day"] == 10)]
    r = api.put(
        f"/api/v1/courses/{cid}?version={course['version']}",
        json=doc,
        headers=svc.auth("clinician"),
    )
    assert r.status_code == 200, r.text
    rows = api.get("/api/v1/worklist", headers=svc.auth("read-only")).json()
    after = next(r for r in rows if r["course_id"] == cid)
    assert after["up_to_date"] and after["counts"]["anc"]["value"] == 280  # day 9's value
    svc.db.dispose()
