"""``insert_new_courses`` (the bulk loader's insert; COPY for lab results and events on
PostgreSQL, ``executemany`` on SQLite) stores what a plain SQLAlchemy ``INSERT`` of the same
rows stores, value for value: floats bit for bit, the JSON text byte for byte, the timestamps to
the microsecond; and a row the database refuses leaves nothing behind."""

from __future__ import annotations

import datetime as dt
import json
import struct
from typing import Any

import pytest
from sqlalchemy import cast, insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import Text

from cart_cytopenia.store import courses as repo
from cart_cytopenia.store.db import Database
from cart_cytopenia.store.models import CourseRecord, EventRecord, Observation, Patient, utcnow

LABS: list[dict[str, Any]] = [
    {"baseline": True, "day": -5, "analyte": "anc", "value": 0.1, "unit": "10^9/L",
     "comparator": None},
    {"baseline": False, "day": 3, "analyte": "platelets", "value": 2 / 3, "unit": "10^9/L",
     "comparator": "<"},
    {"baseline": False, "day": 7, "analyte": "ferritin", "value": 123456.789e3, "unit": "µg/L",
     "comparator": ">="},
    {"baseline": False, "day": 28, "analyte": "crp", "value": 1e-7, "unit": "mg/L",
     "comparator": None},
]  # fmt: skip
EVENTS: list[dict[str, Any]] = [
    {"type": "crs", "start_day": 1, "end_day": 4,
     "payload": {"type": "crs", "grade": 2, "note": "tab\there, line\nbreak, back\\slash \"q\" é"}},
    {"type": "medication", "start_day": 2, "end_day": None,
     "payload": {"type": "medication", "dose": 0.30000000000000004, "nested": [1, {"a": None}]}},
]  # fmt: skip


def _new(pseudonym: str) -> repo.NewCourse:
    common = {"source": "demo", "created_by": "loader\tone"}
    return repo.NewCourse(
        pseudonym, "active", dt.date(2024, 5, 1), "axi-cel", "LBCL", {"schema_version": 1},
        [{**lab, **common} for lab in LABS], [{**ev, **common} for ev in EVENTS],
    )  # fmt: skip


def _reference(db: Database, pseudonym: str) -> int:
    """The same course written by plain INSERTs, one statement a row."""
    new = _new(pseudonym)
    now = utcnow()
    with db.transaction() as s:
        pid = s.scalar(insert(Patient).values(pseudonym=pseudonym).returning(Patient.id))
        cid = s.scalar(insert(CourseRecord).values(
            patient_id=pid, status=new.status, infusion_date=new.infusion_date,
            product=new.product, disease=new.disease, details=new.details, version=1,
            created_at=now, updated_at=now).returning(CourseRecord.id))  # fmt: skip
        for table, rows in ((Observation, new.labs), (EventRecord, new.events)):
            for row in rows:
                s.execute(insert(table).values(course_id=cid, created_at=now, **row))
    assert cid is not None
    return int(cid)


def _stored(db: Database, course_id: int) -> dict[str, list[tuple[Any, ...]]]:
    o, e = Observation, EventRecord
    with db.session() as s:
        labs = s.execute(
            select(o.baseline, o.day, o.analyte, o.value, o.unit, o.comparator, o.source,
                   o.created_by, o.created_at).where(o.course_id == course_id).order_by(o.id)
        ).all()  # fmt: skip
        events = s.execute(
            select(e.type, e.start_day, e.end_day, cast(e.payload, Text), e.source, e.created_by,
                   e.created_at).where(e.course_id == course_id).order_by(e.id)
        ).all()  # fmt: skip
    return {"labs": [tuple(r) for r in labs], "events": [tuple(r) for r in events]}


def test_bulk_insert_stores_what_an_insert_stores(db: Database) -> None:
    expected = _stored(db, _reference(db, "REF-1"))
    with db.transaction() as s:
        [cid] = repo.insert_new_courses(s, [_new("BULK-1")], user="loader\tone")
    got = _stored(db, cid)
    # the clock differs between the two writes: compare it apart (same microsecond precision)
    stamps = {r[-1] for rows in got.values() for r in rows}
    assert len(stamps) == 1 and next(iter(stamps)).tzinfo == dt.UTC
    assert {k: [r[:-1] for r in v] for k, v in got.items()} == {
        k: [r[:-1] for r in v] for k, v in expected.items()
    }
    bits = [struct.pack("<d", r[3]) for r in got["labs"]]
    assert bits == [struct.pack("<d", lab["value"]) for lab in LABS]
    assert [r[3] for r in got["events"]] == [json.dumps(ev["payload"]) for ev in EVENTS]


def test_a_row_the_database_refuses_leaves_nothing(db: Database) -> None:
    bad = _new("BAD-1")
    bad.labs.append({**bad.labs[0], "analyte": "x" * 65})  # the column is VARCHAR(64)
    if db.backend == "sqlite":
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    with pytest.raises(DBAPIError), db.transaction() as s:
        repo.insert_new_courses(s, [_new("OK-1"), bad], user=None)
    with db.session() as s:
        assert s.scalars(select(Patient.id)).all() == []
        assert s.scalars(select(Observation.id)).all() == []
    with db.transaction() as s:  # the connection is usable again
        assert len(repo.insert_new_courses(s, [_new("OK-1")], user=None)) == 1
