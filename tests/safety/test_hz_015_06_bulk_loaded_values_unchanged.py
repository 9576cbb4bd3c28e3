"""HZ-015-06: a bulk-loaded course reads back from the store exactly as it was validated. The bulk
loader writes lab results, events and worklist rows by its own path (PostgreSQL's binary COPY,
SQLite's executemany), apart from the course-by-course writes; every lab value, unit, day,
comparator and event of the demo cohort (the review's cases and synthetic courses, all
products) must come back equal, on both databases."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from cart_cytopenia.cli.serve_cmd import demo_documents
from cart_cytopenia.domain.course import Course, parse_course
from cart_cytopenia.rules.settings import Settings
from cart_cytopenia.service import bulk_load as bulk
from cart_cytopenia.store import courses as repo
from cart_cytopenia.store.db import Database
from cart_cytopenia.store.migrate import upgrade
from tests.store.conftest import make_database

TODAY = dt.date(2024, 6, 1)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    store = make_database(request.param, tmp_path)
    upgrade(store)
    yield store
    store.dispose()


def test_hz_015_06_bulk_loaded_courses_read_back_as_validated(db: Database) -> None:
    docs = demo_documents(40, 11, TODAY)
    job = bulk.load_job(Settings(), TODAY, "demo-loader", "demo")
    assert bulk.bulk_load(db, [docs], job, workers=1).courses == len(docs)
    validated = {d["patient"]["id"]: parse_course(d) for d in docs}
    with db.session() as s:
        stored = {r.patient.pseudonym: repo.load_course(r) for r in repo.list_courses(s, None)}
    assert stored.keys() == validated.keys()
    labs = 0
    for pseudonym, course in validated.items():
        back = stored[pseudonym]
        for part in ("baseline_labs", "labs", "events"):  # the store keeps its own row order
            assert _items(back, part) == _items(course, part), (pseudonym, part)
        rest = {"baseline_labs", "labs", "events"}
        assert back.model_dump(exclude=rest) == course.model_dump(exclude=rest), pseudonym
        labs += len(course.labs)
    assert labs > 40 * 50  # the demo's courses carry their full lab series


def _items(course: Course, part: str) -> list[str]:
    """The items of a list of the course, each as its full JSON (every field, types kept)."""
    return sorted(item.model_dump_json() for item in getattr(course, part))
