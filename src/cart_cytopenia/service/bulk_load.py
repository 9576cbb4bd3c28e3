"""Load many courses of new patients into the store with their worklist rows (``demo load``).

The courses come as course documents, in parts: lists of documents (cut into batches of
``BATCH``) or picklable calls that make a list (the demo's synthetic blocks, drawn by the
workers themselves). Each batch goes to a worker process (spawned, one per core by default),
which validates each document once, grades the batch's active courses together through the
grading engine, computes their worklist rows and assessment answers (``compute_entries``: the
one function every worklist row comes from) and turns everything into plain rows. The main
process inserts each batch as it comes back, in order, in one transaction (bulk inserts through
SQLAlchemy core), while the workers prepare the next ones. If anything fails, the courses
already stored by this load are deleted again: the store holds all of them or none.
"""

from __future__ import annotations

import datetime as dt
import gc
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete

from cart_cytopenia.domain.course import Course, Death, parse_course
from cart_cytopenia.errors import InputError
from cart_cytopenia.rules.settings import Settings
from cart_cytopenia.service.clinical import StoredCourse
from cart_cytopenia.service.worklist import Computed, compute_entries, settings_key
from cart_cytopenia.store import answers
from cart_cytopenia.store import courses as repo
from cart_cytopenia.store import worklist as rows
from cart_cytopenia.store.db import Database
from cart_cytopenia.store.models import CourseRecord, Patient

BATCH = 500  # courses per worker task and per transaction

Prepared = list[tuple[repo.NewCourse, Computed | None]]


@dataclass(frozen=True)
class LoadJob:
    """What a worker needs besides the documents (picklable)."""

    today: dt.date
    clinical: Settings
    key: str
    user: str | None
    source: str


Docs = list[dict[str, Any]]
Part = Docs | Callable[[], Docs]


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused: reference counting still frees every
    object a batch drops, cycles are collected once it is on again. A batch makes hundreds of
    thousands of objects, and the collector's passes over them were a third of a batch's CPU
    (prepare_batch 3.1 -> 2.0 ms per course, measured)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def prepare_batch(part: Part, job: LoadJob) -> Prepared:
    """Validate the documents (once each), compute the worklist rows of the active ones (closed
    when the course records a death) and return their rows; runs in a worker process."""
    with _cyclic_gc_paused():
        return _prepare(part() if callable(part) else part, job)


def _prepare(docs: Docs, job: LoadJob) -> Prepared:
    courses = [
        parse_course(doc, source=f"course of patient {doc.get('patient', {}).get('id', '?')}")
        for doc in docs
    ]
    statuses = ["closed" if c.events_of(Death) else "active" for c in courses]
    active: list[tuple[StoredCourse, Course | InputError]] = [
        (StoredCourse(0, 0, c.patient.id, 1, "active", c.infusion_date), c)
        for c, status in zip(courses, statuses, strict=True)
        if status == "active"
    ]
    entries = iter(compute_entries(active, job.today, job.clinical, job.key))
    return [
        (
            repo.new_course_rows(c, status, user=job.user, source=job.source),
            next(entries) if status == "active" else None,
        )
        for c, status in zip(courses, statuses, strict=True)
    ]


@dataclass(frozen=True)
class LoadResult:
    courses: int
    active: int
    seconds: float


def _prepared(batches: list[Part], job: LoadJob, workers: int) -> Iterator[Prepared]:
    """Each batch prepared, in order: in worker processes (spawned), or here for one worker."""
    if workers <= 1 or len(batches) <= 1:
        for b in batches:
            yield prepare_batch(b, job)
        return
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
        yield from pool.map(prepare_batch, batches, [job] * len(batches))


def _undo(db: Database, course_ids: list[int], names: list[str]) -> None:
    """Delete what this load stored (its courses' rows go with them: ON DELETE CASCADE)."""
    with db.transaction() as s:
        for start in range(0, len(course_ids), 1000):
            part = course_ids[start : start + 1000]
            s.execute(delete(CourseRecord).where(CourseRecord.id.in_(part)))
        for start in range(0, len(names), 1000):
            s.execute(delete(Patient).where(Patient.pseudonym.in_(names[start : start + 1000])))


def bulk_load(
    db: Database,
    parts: Sequence[Part],
    job: LoadJob,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> LoadResult:
    """Store the courses of ``parts`` (patients new to the store) with their worklist rows; all
    or nothing (ConflictError if a patient is already in the store or given twice).
    ``progress(courses stored)`` after each batch."""
    t0 = time.perf_counter()
    batches: list[Part] = []
    for part in parts:
        if callable(part):
            batches.append(part)
        else:
            batches += [part[i : i + BATCH] for i in range(0, len(part), BATCH)]
    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    stored: list[int] = []
    names: list[str] = []
    active = 0
    try:
        for prepared in _prepared(batches, job, n_workers):
            with db.transaction() as s:
                ids = repo.insert_new_courses(s, [p for p, _ in prepared], user=job.user)
                found = [(cid, c) for cid, (_, c) in zip(ids, prepared, strict=True) if c]
                rows.insert_entries(s, [(cid, c.entry) for cid, c in found])
                answers.insert_answers(s, [(cid, *c.answer) for cid, c in found if c.answer])
            stored += ids
            names += [p.pseudonym for p, _ in prepared]
            active += len(found)
            if progress is not None:
                progress(len(stored))
    except BaseException:
        _undo(db, stored, names)
        raise
    return LoadResult(len(stored), active, time.perf_counter() - t0)


def load_job(clinical: Settings, today: dt.date, user: str | None, source: str) -> LoadJob:
    return LoadJob(today, clinical, settings_key(clinical), user, source)
