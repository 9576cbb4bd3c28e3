"""Stored assessment answers: read one by what it must have been computed from, write many.

A course's answer (``models.AssessmentAnswer``) is written beside its worklist row and read by
``GET /api/v1/courses/{id}/assessment``; it answers only while its key equals the course's
current state (``AnswerKey``): otherwise the caller computes the answer again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from cart_cytopenia.store.db import upsert
from cart_cytopenia.store.models import AssessmentAnswer


@dataclass(frozen=True)
class AnswerKey:
    """What an answer was computed from: the course's version and guidance actions (their
    number and last id), the day shown, the date and the clinical settings."""

    course_version: int
    n_actions: int
    last_action: int
    day: int
    as_of: dt.date
    settings_key: str


def stored_answer(session: Session, course_id: int, key: AnswerKey) -> bytes | None:
    """The course's stored answer if it was computed from exactly ``key``, else None."""
    a = AssessmentAnswer
    stmt = select(a.body).where(
        a.course_id == course_id,
        *(getattr(a, name) == value for name, value in asdict(key).items()),
    )
    return session.scalar(stmt)


def save_answers(session: Session, answers: Sequence[tuple[int, AnswerKey, bytes]]) -> None:
    """Write the answers of courses (course id, key, body), replacing their old ones."""
    rows = [{"course_id": cid, **asdict(key), "body": body} for cid, key, body in answers]
    upsert(session, cast(Table, AssessmentAnswer.__table__), rows, "course_id")


def insert_answers(session: Session, answers: Sequence[tuple[int, AnswerKey, bytes]]) -> None:
    """Write the answers of courses that have none yet (a bulk load), in one ``executemany``."""
    if answers:
        rows = [{"course_id": cid, **asdict(key), "body": body} for cid, key, body in answers]
        session.connection().execute(insert(AssessmentAnswer.__table__), rows)  # type: ignore[arg-type]
