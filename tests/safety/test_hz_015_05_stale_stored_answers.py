"""HZ-015-05: an assessment kept in the store (computed with the course's worklist row) answers a
request only while nothing it was computed from has changed: after a new lab result, an
acknowledgement, the daily rollover or a settings change the course is graded afresh, never
answered with the kept body. When nothing changed, the kept body is the answer that grading
the course now gives, byte for byte."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cart_cytopenia.service import answers
from cart_cytopenia.service.answers import AnswerCache, assessment_out
from cart_cytopenia.service.clinical import snapshot
from cart_cytopenia.store import courses as repo
from tests.service.conftest import TODAY, Service, make_service


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    s = make_service(tmp_path)
    yield s
    s.db.dispose()


def _ctx(svc: Service) -> Any:
    return svc.app.state.ctx  # type: ignore[attr-defined]


def _kept_answer_computed(svc: Service, cid: int) -> None:
    """The course's worklist row and answer computed (as a bulk load or the refresher does);
    nothing in memory."""
    ctx = _ctx(svc)
    ctx.worklist.refresh([cid])
    ctx.answers = AnswerCache()


def _get(svc: Service, cid: int) -> bytes:
    r = svc.client().get(f"/api/v1/courses/{cid}/assessment", headers=svc.auth("clinician"))
    assert r.status_code == 200, r.text
    return r.content


def _graded_now(svc: Service, cid: int) -> bytes:
    ctx = _ctx(svc)
    with svc.db.session() as s:
        rec = repo.get_course(s, cid)
        snap = snapshot(rec, ctx.today(), ctx.clinical, ctx.cache)
        return assessment_out(snap).model_dump_json().encode()


def _count_grading(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that gets one entry each time a request grades the course."""
    calls: list[int] = []
    real = answers.snapshot

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(answers, "snapshot", counted)
    return calls


def test_an_unchanged_course_gets_its_kept_answer_equal_to_grading_it_now(
    svc: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = svc.courses["wl-neutropenic"]
    _kept_answer_computed(svc, cid)
    expected = _graded_now(svc, cid)
    graded = _count_grading(monkeypatch)
    assert _get(svc, cid) == expected
    assert not graded  # answered from the store


def test_a_new_lab_result_is_never_answered_with_the_kept_body(
    svc: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = svc.courses["wl-neutropenic"]
    _kept_answer_computed(svc, cid)
    r = svc.client().post(
        f"/api/v1/courses/{cid}/observations",
        json={"observations": [{"day": 10, "analyte": "anc", "value": 40, "unit": "/uL"}]},
        headers=svc.auth("clinician"),
    )
    assert r.status_code == 201, r.text
    _ctx(svc).answers = AnswerCache()
    body = _get(svc, cid)
    assert body == _graded_now(svc, cid)
    anc = next(x for x in _lineages(body) if x["analyte"] == "anc")
    assert anc["last_value"] == 40  # today's value, not the kept 300


def test_an_acknowledgement_is_never_answered_with_the_kept_body(svc: Service) -> None:
    cid = svc.courses["wl-neutropenic"]
    _kept_answer_computed(svc, cid)
    open_items = [i["item"]["id"] for i in json.loads(_get(svc, cid))["items"] if not i["handled"]]
    _ctx(svc).answers = AnswerCache()
    r = svc.client().post(
        f"/api/v1/courses/{cid}/guidance/{open_items[0]}/actions",
        json={"action": "acknowledged", "reason": "seen"},
        headers=svc.auth("clinician"),
    )
    assert r.status_code == 201, r.text
    _ctx(svc).answers = AnswerCache()
    items = json.loads(_get(svc, cid))["items"]
    assert next(i for i in items if i["item"]["id"] == open_items[0])["handled"] is True


def test_the_next_day_and_other_settings_are_never_answered_with_the_kept_body(
    svc: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = svc.courses["wl-neutropenic"]
    _kept_answer_computed(svc, cid)
    ctx = _ctx(svc)
    tomorrow = TODAY + dt.timedelta(days=1)
    with monkeypatch.context() as m:
        m.setattr(ctx, "today", lambda: tomorrow)
        answer = json.loads(_get(svc, cid))
        assert answer["today_day"] == 11 and answer["day"] == 11  # the kept one says day 10
    ctx.answers = AnswerCache()
    with monkeypatch.context() as m:
        m.setattr(ctx.worklist, "key", "other settings")
        graded = _count_grading(m)
        assert _get(svc, cid) == _graded_now(svc, cid)
        assert graded == [1]  # the kept answer was made under other settings


def _lineages(body: bytes) -> list[dict[str, Any]]:
    return list(json.loads(body)["assessment"]["lineages"])
