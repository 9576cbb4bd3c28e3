"""Assessments are kept per course version: asked again they are the same answer without being
computed again; any change to the course (a lab result, an acknowledgement, another day)
gives a new, correct answer; the cache stays within its byte budget."""

from __future__ import annotations

import os

from cart_cytopenia.service.answers import AnswerCache
from tests.service.conftest import Service


def test_the_cache_keeps_within_its_bytes_and_drops_the_least_recent() -> None:
    cache = AnswerCache(max_bytes=3000)
    bodies = {k: os.urandom(1000) for k in "abcd"}  # 1 KB each, not compressible
    for k, body in bodies.items():
        cache.put(k, body)
        assert cache.size_bytes <= 3000
    assert cache.get("a") is None  # the oldest went first
    assert cache.get("d") == bodies["d"]
    cache.put("e", bodies["a"])
    assert cache.get("d") == bodies["d"] and cache.get("b") is None
    assert cache.hits == 2 and cache.misses == 2
    AnswerCache(max_bytes=10).put("big", bodies["a"])  # larger than the budget: not kept


def _assessment(service: Service, cid: int, query: str = "") -> dict:
    r = service.client().get(
        f"/api/v1/courses/{cid}/assessment{query}", headers=service.auth("read-only")
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_an_unchanged_course_is_answered_from_the_cache(service: Service) -> None:
    answers = service.app.state.ctx.answers  # type: ignore[attr-defined]
    cid = service.courses["wl-neutropenic"]
    first = _assessment(service, cid)
    hits = answers.hits
    assert _assessment(service, cid) == first
    assert answers.hits == hits + 1
    day5 = _assessment(service, cid, "?day=5")  # another day: computed, not the cached one
    assert day5["day"] == 5 and first["day"] != 5


def test_a_changed_course_is_never_answered_from_the_cache(service: Service) -> None:
    cid = service.courses["wl-neutropenic"]
    h = service.auth("clinician")
    before = _assessment(service, cid)
    lab = {"day": before["day"], "analyte": "anc", "value": 3000, "unit": "/uL"}
    r = service.client().post(
        f"/api/v1/courses/{cid}/observations",
        json={"version": before["version"], "observations": [lab]},
        headers=h,
    )
    assert r.status_code == 201, r.text
    after = _assessment(service, cid)
    assert after["version"] == before["version"] + 1
    assert after["assessment"] != before["assessment"]
    open_before = {i["item"]["id"] for i in after["items"] if not i["handled"]}
    item = sorted(open_before)[0]
    r = service.client().post(
        f"/api/v1/courses/{cid}/guidance/{item}/actions",
        json={"action": "acknowledged", "reason": "seen"},
        headers=h,
    )
    assert r.status_code == 201, r.text
    acked = _assessment(service, cid)  # same version, one more action: a new answer
    state = next(i for i in acked["items"] if i["item"]["id"] == item)
    assert state["handled"] is True and state["handled_by"]["reason"] == "seen"


def test_every_answer_from_the_cache_is_audited(service: Service) -> None:
    from sqlalchemy import func, select

    from cart_cytopenia.store.models import AuditEvent

    cid = service.courses["wl-neutropenic"]

    def reads() -> int:
        with service.db.session() as s:
            stmt = select(func.count()).where(
                AuditEvent.resource == "assessment", AuditEvent.resource_id == str(cid)
            )
            return int(s.scalar(stmt) or 0)

    n = reads()
    for _ in range(3):
        _assessment(service, cid)
    assert reads() == n + 3
