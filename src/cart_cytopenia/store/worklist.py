"""The stored worklist: one row per active course, read, filtered, sorted and paged in SQL.

The rows are computed by the service (``service.worklist``, from the course's grades and
guidance); this module finds the rows that are out of date, writes computed rows and answers
the page's query. A row is out of date when it is missing, when its course changed since
(``course_version``), when guidance was acknowledged (``mark_stale``), on a new day (``as_of``)
or under other clinical settings (``settings_key``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, Table, and_, case, func, insert, or_, select, update
from sqlalchemy.orm import Session

from cart_cytopenia.store.db import upsert
from cart_cytopenia.store.models import CourseRecord, Patient, WorklistEntry, utcnow
from cart_cytopenia.store.pg_copy import copy_course_rows

PAGE_SIZES = (25, 50, 100, 200)
# IEC-HS (ASTCT) by ``iechs_rank``: 3 met, 2 suspected, 1 not met, 0 not assessable
IECHS_FILTERS = {"met": (3, 3), "suspected": (2, 2), "flagged": (2, 3)}
# TA-TMA harmonised criteria: "meets" (as the grading decides it, rules/tables/tatma.toml)
TATMA_FILTERS = ("meets",)


@dataclass(frozen=True)
class WorklistQuery:
    """Filters, sort and page of one worklist view (the pseudonym search ``q`` included)."""

    product: str = ""
    phase: str = ""
    needs_action: bool = False
    q: str = ""
    iechs: str = ""  # one of IECHS_FILTERS
    tatma: str = ""  # one of TATMA_FILTERS
    sort: str = "urgency"
    descending: bool = False
    page: int = 1
    per_page: int = 50


def _fresh(as_of: dt.date, settings_key: str) -> ColumnElement[bool]:
    return and_(
        WorklistEntry.course_version == CourseRecord.version,
        WorklistEntry.as_of == as_of,
        WorklistEntry.settings_key == settings_key,
    )


def stale_course_ids(
    session: Session, as_of: dt.date, settings_key: str, limit: int | None = None
) -> list[int]:
    """Active courses whose row is missing or out of date, oldest infusion first."""
    stmt = (
        select(CourseRecord.id)
        .outerjoin(WorklistEntry, WorklistEntry.course_id == CourseRecord.id)
        .where(CourseRecord.status == "active")
        .where(or_(WorklistEntry.course_id.is_(None), ~_fresh(as_of, settings_key)))
        .order_by(CourseRecord.id)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


@dataclass(frozen=True)
class Overview:
    """The whole worklist in numbers, from one pass over the active courses: rows missing and
    out of date, and among the shown rows (no error) those needing action or with items to
    consider."""

    missing: int
    old: int
    total: int
    action: int
    consider: int
    errors: int = 0  # rows of courses that cannot be assessed (``broken`` lists them)


def overview(session: Session, as_of: dt.date, settings_key: str) -> Overview:
    e = WorklistEntry
    shown = and_(e.course_id.is_not(None), e.error.is_(None))
    counts = session.execute(
        select(
            func.count(case((e.course_id.is_(None), 1))),
            func.count(case((and_(e.course_id.is_not(None), ~_fresh(as_of, settings_key)), 1))),
            func.count(case((shown, 1))),
            func.count(case((and_(shown, e.needs_action.is_(True)), 1))),
            func.count(case((and_(shown, e.needs_action.is_(False), e.n_decisions > 0), 1))),
            func.count(e.error),
        )
        .select_from(CourseRecord)
        .outerjoin(e, e.course_id == CourseRecord.id)
        .where(CourseRecord.status == "active")
    ).one()
    return Overview(*(int(n) for n in counts))


def data_stamp(session: Session) -> tuple[Any, ...]:
    """What changes whenever anything a worklist view reads changes, from one aggregate pass
    over the rows and one over the courses (nothing loaded): a row written (``refreshed_at``)
    or marked out of date (``course_version``), a course added, removed or changed (its
    ``version`` and ``updated_at``; a status change is a change). Written by any process, so
    a view may be answered from memory while its stamp is the same (``service.worklist``)."""
    e, c = WorklistEntry, CourseRecord
    entries = session.execute(
        select(func.count(), func.max(e.refreshed_at), func.coalesce(func.sum(e.course_version), 0))
    ).one()
    courses = session.execute(
        select(func.count(), func.max(c.updated_at), func.coalesce(func.sum(c.version), 0))
    ).one()
    return (*entries, *courses)


def save_entry(session: Session, course_id: int, values: dict[str, Any]) -> None:
    """Write the computed row of a course, replacing the old one (an upsert: a view and the
    background refresher may compute the same row at the same moment)."""
    row = {"course_id": course_id, "refreshed_at": utcnow(), **values}
    upsert(session, cast(Table, WorklistEntry.__table__), [row], "course_id")


def insert_entries(session: Session, entries: Sequence[tuple[int, dict[str, Any]]]) -> None:
    """Write the rows of courses that have none yet (a bulk load), in one ``executemany``
    (by ``COPY`` on PostgreSQL: a third of the time, ``store.pg_copy``)."""
    if entries:
        now = utcnow()
        conn = session.connection()
        if conn.dialect.driver == "psycopg":
            table = cast(Table, WorklistEntry.__table__)
            copy_course_rows(conn, table, {"refreshed_at": now}, [(c, [v]) for c, v in entries])
            return
        rows = [{"course_id": cid, "refreshed_at": now, **values} for cid, values in entries]
        conn.execute(insert(WorklistEntry.__table__), rows)  # type: ignore[arg-type]


def mark_stale(session: Session, course_id: int) -> None:
    """The course's row must be computed again (e.g. guidance was acknowledged)."""
    session.execute(
        update(WorklistEntry).where(WorklistEntry.course_id == course_id).values(course_version=-1)
    )


SORT_COLUMNS: dict[str, tuple[Any, ...]] = {
    # (column, ...) ascending; "desc" reverses each; missing values always last
    "urgency": (-WorklistEntry.top_urgency_rank, -WorklistEntry.n_decisions, WorklistEntry.day),
    "patient": (Patient.pseudonym,),
    "day": (WorklistEntry.day,),
    "product": (CourseRecord.product, WorklistEntry.day),
    "anc": (WorklistEntry.anc,),
    "platelets": (WorklistEntry.platelets,),
    "hb": (WorklistEntry.hb,),
    "icaht": (-WorklistEntry.icaht_rank, WorklistEntry.day),
    "ticaht": (-WorklistEntry.ticaht_rank, WorklistEntry.day),
    "phase": (WorklistEntry.phase, WorklistEntry.day),
    "phenotype": (WorklistEntry.phenotype, WorklistEntry.day),
    "iechs": (-WorklistEntry.iechs_rank, WorklistEntry.day),
    "tatma": (-WorklistEntry.tatma_met, WorklistEntry.day),
}


def _base() -> Select[WorklistEntry, str, int, str]:
    return (
        select(WorklistEntry, CourseRecord.product, CourseRecord.patient_id, Patient.pseudonym)
        .join(CourseRecord, CourseRecord.id == WorklistEntry.course_id)
        .join(Patient, Patient.id == CourseRecord.patient_id)
        .where(CourseRecord.status == "active", WorklistEntry.error.is_(None))
    )


def _filtered(
    stmt: Select[WorklistEntry, str, int, str], q: WorklistQuery
) -> Select[WorklistEntry, str, int, str]:
    if q.product:
        stmt = stmt.where(CourseRecord.product == q.product)
    if q.phase == "none":
        stmt = stmt.where(WorklistEntry.phase.is_(None))
    elif q.phase:
        stmt = stmt.where(WorklistEntry.phase == q.phase)
    if q.needs_action:
        stmt = stmt.where(WorklistEntry.needs_action.is_(True))
    if q.iechs in IECHS_FILTERS:
        low, high = IECHS_FILTERS[q.iechs]
        stmt = stmt.where(WorklistEntry.iechs_rank.between(low, high))
    if q.tatma == "meets":
        stmt = stmt.where(WorklistEntry.tatma_status == "meets")
    if q.q.strip():
        needle = q.q.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(func.lower(Patient.pseudonym).like(f"%{needle}%", escape="\\"))
    return stmt


def page(
    session: Session, q: WorklistQuery, offset: int | None = None, shown: int | None = None
) -> tuple[list[Any], int]:
    """(rows of the page: entry, product, patient id, pseudonym; rows matching in all).
    ``offset`` (the API's) replaces the page number; ``shown`` (``Overview.total``, when known)
    is the number matching a query without filters, which then is not counted again."""
    stmt = _filtered(_base(), q)
    unfiltered = not (q.product or q.phase or q.needs_action or q.q.strip() or q.iechs or q.tatma)
    if shown is not None and unfiltered:
        total = shown
    else:
        total = int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    order = []
    for col in SORT_COLUMNS.get(q.sort, SORT_COLUMNS["urgency"]):
        order.append(col.is_(None))  # missing last, whichever direction
        order.append(col.desc() if q.descending else col.asc())
    stmt = stmt.order_by(*order, WorklistEntry.course_id)
    start = offset if offset is not None else (max(q.page, 1) - 1) * q.per_page
    stmt = stmt.limit(q.per_page).offset(start)
    return list(session.execute(stmt)), total


def products(session: Session) -> list[str]:
    stmt = select(CourseRecord.product).where(CourseRecord.status == "active").distinct()
    return sorted(session.scalars(stmt))


def broken(session: Session) -> Sequence[tuple[int, str]]:
    """(course id, why) of active courses that cannot be assessed under the current rules."""
    stmt = (
        select(WorklistEntry.course_id, WorklistEntry.error)
        .join(CourseRecord, CourseRecord.id == WorklistEntry.course_id)
        .where(CourseRecord.status == "active", WorklistEntry.error.is_not(None))
        .order_by(WorklistEntry.course_id)
    )
    return [(int(cid), str(err)) for cid, err in session.execute(stmt)]
