"""A course's assessment answer: its shape, its serialised body, and where it is kept.

The answer is the JSON body of ``GET /api/v1/courses/{id}/assessment`` (``AssessmentOut``). Its
body is made once and kept in two places, each under everything it depends on (an
``AnswerKey``: the course's version, which changes with every edit, its guidance actions, which
are only added, the day shown, today's date and the clinical settings), so a changed course
never gets an old answer, its key is new:

- in the store, beside the course's worklist row, for today's day (``store.answers``): written
  wherever worklist rows are computed (a bulk load's workers, the background refresher at the
  rollover, a view's few stale rows), so the first request of the day for a course reads one
  row instead of grading the course (~30 ms of CPU, which at 50 clients was the service's
  ceiling);
- in memory (``AnswerCache``), for any day asked: a repeat costs a small query.

A body is kept compressed (zlib) and without the course's and patient's ids, which a bulk
load's workers do not know yet; ``with_ids`` puts them back in front.
"""

from __future__ import annotations

import datetime as dt
import threading
import zlib
from collections import OrderedDict
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from cart_cytopenia.grading.assessment import Assessment
from cart_cytopenia.service.clinical import CourseSnapshot, ItemState, StoredCourse, snapshot
from cart_cytopenia.store import answers as stored
from cart_cytopenia.store import courses as repo
from cart_cytopenia.store.answers import AnswerKey

if TYPE_CHECKING:
    from cart_cytopenia.service.deps import ServiceContext


class GuidanceActionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from the stored record

    id: int
    item_id: str
    day: int
    action: str
    reason: str
    urgency: str
    summary: str
    username: str
    created_at: dt.datetime


class GuidanceItemOut(BaseModel):
    section: str
    item: dict[str, Any]
    handled: bool
    handled_by: GuidanceActionOut | None


class AssessmentOut(BaseModel):
    course_id: int
    patient_id: int
    version: int
    day: int
    today_day: int
    assessment: Assessment
    guidance: dict[str, Any]
    items: list[GuidanceItemOut]
    dated_after_today: list[str] = Field(
        description="What the course records after today (most often a mistyped date): not "
        "counted by today's grades and guidance until that day; check the dates"
    )


IDS = {"course_id", "patient_id"}  # AssessmentOut's first fields, left out of a kept body


def item_out(s: ItemState) -> GuidanceItemOut:
    return GuidanceItemOut(
        section=s.section,
        item=s.item.model_dump(mode="json"),
        handled=s.handled,
        handled_by=GuidanceActionOut.model_validate(s.action) if s.action else None,
    )


def assessment_out(snap: CourseSnapshot) -> AssessmentOut:
    return AssessmentOut(
        course_id=snap.record_id,
        patient_id=snap.patient_id,
        version=snap.version,
        day=snap.day,
        today_day=snap.today_day,
        assessment=snap.assessment,
        guidance=snap.guidance.model_dump(mode="json", exclude={"assessment"}),
        items=[item_out(s) for s in snap.items],
        dated_after_today=snap.dated_after_today,
    )


def packed_body(snap: CourseSnapshot) -> bytes:
    """The answer's JSON body without the ids, compressed: what is kept."""
    return zlib.compress(assessment_out(snap).model_dump_json(exclude=IDS).encode(), 1)


def with_ids(course_id: int, patient_id: int, packed: bytes) -> bytes:
    """The whole JSON body from a kept one: the ids put back as its first fields."""
    rest = zlib.decompress(packed)
    return b'{"course_id":%d,"patient_id":%d,' % (course_id, patient_id) + rest[1:]


def answer_key(course: StoredCourse, day: int, today: dt.date, settings_key: str) -> AnswerKey:
    """The key of the answer computed for ``course`` on ``day`` (its actions as it holds them)."""
    last = max((a.id for a in course.actions), default=0)
    return AnswerKey(course.version, len(course.actions), last, day, today, settings_key)


class AnswerCache:
    """Kept (compressed) bodies by key, bounded in bytes, least recently used dropped first
    (``answer_cache_bytes``; 64 MB holds about 10,000 typical answers). Thread-safe."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._data: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            packed = self._data.get(key)
            if packed is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
        return packed

    def put(self, key: Hashable, packed: bytes) -> None:
        if len(packed) > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            self._bytes += len(packed) - (len(old) if old is not None else 0)
            self._data[key] = packed
            while self._bytes > self.max_bytes:
                _, dropped = self._data.popitem(last=False)
                self._bytes -= len(dropped)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def size_bytes(self) -> int:
        return self._bytes


def assessment_body(
    ctx: ServiceContext, session: Session, course_id: int, day: int | None
) -> tuple[int, int, int, bytes]:
    """(course id, patient id, day shown, JSON body) of a course's assessment: kept in memory,
    else kept in the store, else computed (and kept in memory)."""
    cid, patient_id, version, infusion, n_actions, last_action = repo.course_stamp(
        session, course_id
    )
    today = ctx.today()
    shown = max(0, (today - infusion).days) if day is None else day
    key = AnswerKey(version, n_actions, last_action, shown, today, ctx.worklist.key)
    packed = ctx.answers.get((cid, key))
    if packed is None:
        packed = stored.stored_answer(session, cid, key)
        if packed is None:
            rec = repo.get_course(session, course_id)
            snap = snapshot(rec, today, ctx.clinical, ctx.cache, day=day)
            packed = packed_body(snap)  # the key of what was computed, read with it:
            key = answer_key(StoredCourse.of(rec), snap.day, today, ctx.worklist.key)
        ctx.answers.put((cid, key), packed)
    return cid, patient_id, shown, with_ids(cid, patient_id, packed)
