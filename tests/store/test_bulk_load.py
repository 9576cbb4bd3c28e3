"""The bulk loader (``demo load``) stores exactly what loading the courses one by one and
refreshing their worklist rows (and kept assessment answers) one by one stores, row for row; all or nothing."""

from __future__ import annotations

import datetime as dt
import zlib
from typing import Any

import pytest
from sqlalchemy import select

from cart_cytopenia.cli import serve_cmd
from cart_cytopenia.cli.serve_cmd import demo_documents, demo_sources
from cart_cytopenia.domain.course import Death, parse_course
from cart_cytopenia.errors import InputError
from cart_cytopenia.rules.settings import Settings
from cart_cytopenia.service import bulk_load as bulk
from cart_cytopenia.service.worklist import WorklistSource, settings_key
from cart_cytopenia.store import courses as repo
from cart_cytopenia.store.db import Database
from cart_cytopenia.store.errors import ConflictError
from cart_cytopenia.store.models import (
    AssessmentAnswer,
    CourseRecord,
    EventRecord,
    Observation,
    Patient,
    WorklistEntry,
)

TODAY = dt.date(2024, 6, 1)


def _snapshot_of_store(db: Database) -> dict[str, Any]:
    """Every stored value that does not depend on ids or the clock, by patient."""
    with db.session() as s:
        who = {int(cid): str(p) for cid, p in s.execute(
            select(CourseRecord.id, Patient.pseudonym).join(Patient)).all()}  # fmt: skip
        courses = sorted(
            (who[c.id], c.status, c.infusion_date, c.product, c.disease, c.details, c.version,
             c.updated_by)
            for c in s.scalars(select(CourseRecord))
        )  # fmt: skip
        labs = sorted(
            (who[o.course_id], o.baseline, o.day, o.analyte, o.value, o.unit, o.comparator or "",
             o.source, o.created_by or "")
            for o in s.scalars(select(Observation))
        )  # fmt: skip
        events = sorted(
            (who[e.course_id], e.type, e.start_day, e.end_day or -1, repr(e.payload), e.source)
            for e in s.scalars(select(EventRecord))
        )  # fmt: skip
        skip = {"course_id", "refreshed_at"}
        rows = sorted(
            (who[e.course_id], repr({k: v for k, v in vars(e).items()
                                     if k not in skip and not k.startswith("_")}))
            for e in s.scalars(select(WorklistEntry))
        )  # fmt: skip
        answers = sorted(
            (who[a.course_id], a.course_version, a.n_actions, a.last_action, a.day, a.as_of,
             a.settings_key, zlib.decompress(a.body))
            for a in s.scalars(select(AssessmentAnswer))
        )  # fmt: skip
    return {"courses": courses, "labs": labs, "events": events, "worklist": rows,
            "answers": answers}  # fmt: skip


def _one_by_one(db: Database, docs: list[dict[str, Any]]) -> None:
    clinical = Settings()
    source = WorklistSource(db, clinical, settings_key(clinical), lambda: TODAY)
    for doc in docs:
        course = parse_course(doc)
        status = "closed" if course.events_of(Death) else "active"
        with db.transaction() as s:
            rec = repo.import_course(s, course, user="demo-loader", source="demo", status=status)
            cid = rec.id
        if status == "active":
            source.refresh([cid])


def _job() -> bulk.LoadJob:
    return bulk.load_job(Settings(), TODAY, "demo-loader", "demo")


def test_bulk_load_equals_course_by_course(db: Database, tmp_path: Any, monkeypatch: Any) -> None:
    docs = demo_documents(30, 5, TODAY)
    monkeypatch.setattr(bulk, "BATCH", 8)  # several batches, several transactions
    done = bulk.bulk_load(db, [docs], _job(), workers=2)
    assert done.courses == len(docs) == 33 and done.active > 20
    loaded = _snapshot_of_store(db)
    other = Database(f"sqlite:///{tmp_path / 'one_by_one.db'}")
    from cart_cytopenia.store.migrate import upgrade

    upgrade(other)
    _one_by_one(other, docs)
    expected = _snapshot_of_store(other)
    for table in ("courses", "labs", "events", "worklist", "answers"):
        assert loaded[table] == expected[table], table
    assert len(loaded["worklist"]) == len(loaded["answers"]) == done.active


def _count(db: Database) -> tuple[int, int, int]:
    with db.session() as s:
        return (
            len(s.scalars(select(Patient.id)).all()),
            len(s.scalars(select(Observation.id)).all()),
            len(s.scalars(select(WorklistEntry.course_id)).all()),
        )


def test_a_failing_batch_leaves_nothing_behind(db: Database, monkeypatch: Any) -> None:
    docs = demo_documents(12, 5, TODAY)[3:]
    bulk.bulk_load(db, [docs[:2]], _job(), workers=1)
    before = _count(db)
    monkeypatch.setattr(bulk, "BATCH", 4)
    # the last batch names a patient already in the store: the first two batches are undone
    with pytest.raises(ConflictError, match="already in the store"):
        bulk.bulk_load(db, [docs[2:] + docs[:1]], _job(), workers=1)
    assert _count(db) == before
    bad = [dict(d) for d in docs[2:]]
    bad[-1] = {**bad[-1], "labs": [{"day": 1, "analyte": "anc", "value": True, "unit": "/uL"}]}
    with pytest.raises(InputError):
        bulk.bulk_load(db, [bad], _job(), workers=1)
    assert _count(db) == before


def test_large_demo_loads_are_drawn_in_blocks_of_distinct_patients(monkeypatch: Any) -> None:
    monkeypatch.setattr(serve_cmd, "DEMO_BLOCK", 5)
    parts = demo_sources(12, 5, TODAY)
    assert len(parts) == 1 + 3 and all(callable(p) for p in parts[1:])
    docs = [d for p in parts for d in (p() if callable(p) else p)]
    names = [d["patient"]["id"] for d in docs]
    assert len(docs) == 15 and len(set(names)) == 15
    assert demo_documents(12, 5, TODAY) == docs  # deterministic
