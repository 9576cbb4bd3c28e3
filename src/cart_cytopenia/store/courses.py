"""Repository functions for patients, courses, observations, events and guidance actions.

Every write validates the whole course it produces with the domain model (``parse_course``)
before anything is flushed, so a course in the store is always a valid course. Each write bumps
the course's ``version``; callers pass the version they read (``expected_version``) and get a
``ConflictError`` when somebody else changed the course in between (optimistic locking), and
the database's own ``UPDATE ... WHERE version = ?`` catches a race between the check and the
write. Run writes inside ``Database.transaction()``: an error leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.exc import StaleDataError

from cart_cytopenia.domain.course import Course, Dated, LabObservation, parse_course
from cart_cytopenia.errors import InputError, Location, Problem
from cart_cytopenia.store.errors import ConflictError, NotFoundError
from cart_cytopenia.store.models import (
    COURSE_STATUSES,
    GUIDANCE_ACTIONS,
    CourseRecord,
    EventRecord,
    GuidanceAction,
    Observation,
    Patient,
    utcnow,
)
from cart_cytopenia.store.pg_copy import copy_course_rows
from cart_cytopenia.store.worklist import mark_stale

SOURCES = ("form", "csv", "json", "api", "demo", "fhir")
_DATE_KEYS = ("date", "start_date", "end_date")


# --------------------------------------------------------------------------- reading


def get_course(session: Session, course_id: int) -> CourseRecord:
    stmt = (
        select(CourseRecord)
        .where(CourseRecord.id == course_id)
        .options(
            selectinload(CourseRecord.observations),
            selectinload(CourseRecord.events),
            selectinload(CourseRecord.patient),
        )
    )
    rec = session.scalars(stmt).one_or_none()
    if rec is None:
        raise NotFoundError(f"course {course_id} does not exist")
    return rec


def get_course_row(session: Session, course_id: int) -> CourseRecord:
    """The course's own row, without its lab results and events (a status change, a summary:
    their counts come from ``record_counts``)."""
    rec = session.get(CourseRecord, course_id)
    if rec is None:
        raise NotFoundError(f"course {course_id} does not exist")
    return rec


def course_stamp(session: Session, course_id: int) -> tuple[int, int, int, dt.date, int, int]:
    """What identifies a course's current state without loading its records: (id, patient id,
    version, infusion date, number of guidance actions, last action id). The version changes
    with every edit of the course; guidance actions are only ever added."""
    actions = select(GuidanceAction.id).where(GuidanceAction.course_id == course_id).subquery()
    row = session.execute(
        select(
            CourseRecord.id, CourseRecord.patient_id, CourseRecord.version,
            CourseRecord.infusion_date,
            select(func.count()).select_from(actions).scalar_subquery(),
            select(func.coalesce(func.max(actions.c.id), 0)).scalar_subquery(),
        ).where(CourseRecord.id == course_id)
    ).one_or_none()  # fmt: skip
    if row is None:
        raise NotFoundError(f"course {course_id} does not exist")
    cid, pid, version, infusion, n, last = row
    return int(cid), int(pid), int(version), infusion, int(n), int(last)


def get_patient(session: Session, patient_id: int) -> Patient:
    p = session.get(Patient, patient_id)
    if p is None:
        raise NotFoundError(f"patient {patient_id} does not exist")
    return p


def find_patient(session: Session, pseudonym: str) -> Patient | None:
    return session.scalars(select(Patient).where(Patient.pseudonym == pseudonym)).one_or_none()


def list_patients(session: Session, limit: int = 1000, offset: int = 0) -> list[Patient]:
    stmt = (
        select(Patient)
        .options(selectinload(Patient.courses))
        .order_by(Patient.id)
        .limit(limit)
        .offset(offset)
    )
    return list(session.scalars(stmt))


def record_counts(session: Session, course_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """(lab results, events) per course, counted by the database (no rows are loaded)."""
    out = dict.fromkeys(course_ids, (0, 0))
    if not course_ids:
        return out
    obs = session.execute(
        select(Observation.course_id, func.count())
        .where(Observation.course_id.in_(course_ids))
        .group_by(Observation.course_id)
    )
    for cid, n in obs:
        out[cid] = (int(n), 0)
    events = session.execute(
        select(EventRecord.course_id, func.count())
        .where(EventRecord.course_id.in_(course_ids))
        .group_by(EventRecord.course_id)
    )
    for cid, n in events:
        out[cid] = (out[cid][0], int(n))
    return out


def count_patients(session: Session) -> int:
    return int(session.scalar(select(func.count(Patient.id))) or 0)


def list_courses(session: Session, status: str | None = "active") -> list[CourseRecord]:
    stmt = (
        select(CourseRecord)
        .options(
            selectinload(CourseRecord.observations),
            selectinload(CourseRecord.events),
            selectinload(CourseRecord.patient),
            selectinload(CourseRecord.guidance_actions),
        )
        .order_by(CourseRecord.infusion_date, CourseRecord.id)
    )
    if status is not None:
        stmt = stmt.where(CourseRecord.status == status)
    return list(session.scalars(stmt))


def latest_course(patient: Patient) -> CourseRecord | None:
    active = [c for c in patient.courses if c.status == "active"]
    pool = active or list(patient.courses)
    return max(pool, key=lambda c: (c.infusion_date, c.id)) if pool else None


def _lab_doc(o: Observation) -> dict[str, Any]:
    d: dict[str, Any] = {"day": o.day, "analyte": o.analyte, "value": o.value, "unit": o.unit}
    if o.comparator:
        d["comparator"] = o.comparator
    return d


def course_document(rec: CourseRecord) -> dict[str, Any]:
    """The course as the JSON document of the domain model (labs and events from their rows)."""
    doc = dict(rec.details)
    doc["baseline_labs"] = [_lab_doc(o) for o in rec.observations if o.baseline]
    doc["labs"] = [_lab_doc(o) for o in rec.observations if not o.baseline]
    doc["events"] = [dict(e.payload) for e in rec.events]
    return doc


def load_course(rec: CourseRecord) -> Course:
    return parse_course(course_document(rec), source=f"stored course {rec.id}")


# --------------------------------------------------------------------------- helpers


def _details(course: Course) -> dict[str, Any]:
    return course.model_dump(
        mode="json", exclude={"labs", "baseline_labs", "events"}, exclude_none=True
    )


def _event_payload(ev: Any) -> dict[str, Any]:
    d: dict[str, Any] = ev.model_dump(mode="json", exclude_none=True)
    for k in _DATE_KEYS:
        d.pop(k, None)
    return d


def _observation_values(lab: LabObservation) -> dict[str, Any]:
    assert lab.day is not None
    return {
        "day": lab.day,
        "analyte": lab.analyte,
        "value": lab.value,
        "unit": lab.unit,
        "comparator": lab.comparator.value if lab.comparator else None,
    }


def _observation(lab: LabObservation, baseline: bool, source: str, user: str | None) -> Observation:
    return Observation(
        baseline=baseline, source=source, created_by=user, **_observation_values(lab)
    )


def _event_record(ev: Any, source: str, user: str | None) -> EventRecord:
    start = ev.day if isinstance(ev, Dated) else ev.start_day
    end = None if isinstance(ev, Dated) else ev.end_day
    return EventRecord(
        type=ev.type,
        start_day=start,
        end_day=end,
        payload=_event_payload(ev),
        source=source,
        created_by=user,
    )


def _check_version(rec: CourseRecord, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != rec.version:
        raise ConflictError(
            f"course {rec.id} was changed by someone else (now version {rec.version}, "
            f"you edited version {expected_version}); reload it and enter the change again",
            current_version=rec.version,
        )


def _touch(session: Session, rec: CourseRecord, user: str | None) -> None:
    """Bump the version: ``UPDATE courses ... WHERE id = ? AND version = ?``."""
    course_id = rec.id
    rec.updated_at = utcnow()
    rec.updated_by = user
    try:
        session.flush()
    except StaleDataError:
        raise ConflictError(
            f"course {course_id} was changed by someone else while this change was saved; "
            "reload it and enter the change again"
        ) from None


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")


# --------------------------------------------------------------------------- error mapping

_ITEM = re.compile(r"^(labs|baseline_labs|events)(?:\[(\d+)\]|\.(\d+))(.*)$")
_KIND_FIELD_LAB = {
    "UnitError": "unit",
    "UnknownAnalyteError": "analyte",
    "ImplausibleValueError": "value",
    "TimelineError": "day",
}


def _sub_field(list_name: str, rest: str, problem: Problem) -> str | None:
    rest = rest.strip()
    if rest.startswith("("):  # "events[3] (crs).start" -> ".start"
        rest = rest[rest.find(")") + 1 :]
    parts = [p for p in rest.split(".") if p]
    if list_name == "events" and parts and parts[0] in _EVENT_TAGS:
        parts = parts[1:]
    if parts:
        head = parts[0]
        if head in ("start", "end"):
            return f"{head}_day"
        return head
    if list_name == "events":
        if problem.kind == "TimelineError" and "ends" in problem.message:
            return "end_day"
        return "day" if "date" in problem.message or "event needs" in problem.message else None
    return _KIND_FIELD_LAB.get(problem.kind, "day" if "day" in problem.message else None)


_EVENT_TAGS = {
    "crs",
    "icans",
    "iec_hs",
    "medication",
    "infection",
    "fever",
    "transfusion",
    "bone_marrow",
    "stem_cell_boost",
    "hct",
    "relapse",
    "next_therapy",
    "death",
    "gvhd",
    "finding",
}


def relocate_problems(
    exc: InputError,
    list_name: str,
    first_new: int,
    rows: Sequence[int] | None,
    source: str | None,
    patient_id: str,
) -> InputError:
    """Re-point problems on appended items to the caller's rows/fields; keep the others."""
    out: list[Problem] = []
    for p in exc.problems:
        m = _ITEM.match(p.location.field or "")
        if m and m.group(1) == list_name:
            idx = int(m.group(2) if m.group(2) is not None else m.group(3))
            if idx >= first_new:
                k = idx - first_new
                row = rows[k] if rows is not None and k < len(rows) else k + 1
                out.append(
                    Problem(
                        p.message,
                        Location(
                            patient_id=patient_id,
                            row=row,
                            field=_sub_field(list_name, m.group(4), p),
                            source=source,
                        ),
                        kind=p.kind,
                    )
                )
                continue
        out.append(
            Problem(
                p.message,
                Location(patient_id=patient_id, field=p.location.field, source=source),
                kind=p.kind,
            )
        )
    n = len(out)
    return type(exc)(f"nothing was saved: {n} problem(s) in the data entered", out)


# --------------------------------------------------------------------------- writing


def import_course(
    session: Session,
    course: Course,
    *,
    user: str | None,
    source: str,
    status: str = "active",
) -> CourseRecord:
    """Store a validated course: a new patient if the pseudonym is new, else a new course."""
    _check_source(source)
    patient = find_patient(session, course.patient.id)
    if patient is None:
        patient = Patient(pseudonym=course.patient.id)
        session.add(patient)
        session.flush()
    else:
        clash = session.scalars(
            select(CourseRecord).where(
                CourseRecord.patient_id == patient.id,
                CourseRecord.infusion_date == course.infusion_date,
            )
        ).one_or_none()
        if clash is not None:
            raise ConflictError(
                f"patient {course.patient.id} already has a course with infusion on "
                f"{course.infusion_date} (course {clash.id}); replace that course instead",
                current_version=clash.version,
            )
    rec = CourseRecord(
        patient=patient,
        status=status,
        infusion_date=course.infusion_date,
        product=course.product.id,
        disease=course.patient.disease.value,
        details=_details(course),
        updated_by=user,
    )
    session.add(rec)
    for lab in course.baseline_labs:
        rec.observations.append(_observation(lab, True, source, user))
    for lab in course.labs:
        rec.observations.append(_observation(lab, False, source, user))
    for ev in course.events:
        rec.events.append(_event_record(ev, source, user))
    session.flush()
    return rec


@dataclass(frozen=True)
class NewCourse:
    """A validated course as the rows it is stored as (plain data: built in a worker process,
    inserted by ``insert_new_courses``). ``labs`` and ``events`` lack only their course id."""

    pseudonym: str
    status: str
    infusion_date: dt.date
    product: str
    disease: str
    details: dict[str, Any]
    labs: list[dict[str, Any]]
    events: list[dict[str, Any]]


def new_course_rows(course: Course, status: str, *, user: str | None, source: str) -> NewCourse:
    """The rows of a course new to the store: the same values ``import_course`` writes."""
    _check_source(source)
    common = {"source": source, "created_by": user}
    labs = [
        {"baseline": baseline, **_observation_values(lab), **common}
        for baseline, group in ((True, course.baseline_labs), (False, course.labs))
        for lab in group
    ]
    events = []
    for ev in course.events:
        e = _event_record(ev, source, user)
        events.append({"type": e.type, "start_day": e.start_day, "end_day": e.end_day,
                       "payload": e.payload, **common})  # fmt: skip
    return NewCourse(
        course.patient.id, status, course.infusion_date, course.product.id,
        course.patient.disease.value, _details(course), labs, events,
    )  # fmt: skip


def _refuse_known(session: Session, pseudonyms: list[str]) -> None:
    taken = set(session.scalars(select(Patient.pseudonym).where(Patient.pseudonym.in_(pseudonyms))))
    if taken or len(set(pseudonyms)) != len(pseudonyms):
        raise ConflictError(
            f"{len(taken) or 'some'} of these patients are already in the store (or given "
            "twice); import them one by one"
        )


def insert_new_courses(
    session: Session, new: Sequence[NewCourse], *, user: str | None, batch: int = 20_000
) -> list[int]:
    """Insert courses of patients new to the store with bulk inserts (``executemany`` through
    SQLAlchemy core, ``batch`` rows a statement; their lab results and events by ``COPY`` on
    PostgreSQL); the courses' ids, in order. Refuses (ConflictError) if any pseudonym is
    already in the store or given twice."""
    if not new:
        return []
    _refuse_known(session, [c.pseudonym for c in new])
    now = utcnow()
    conn = session.connection()

    def ids(table: Any, rows: list[dict[str, Any]]) -> list[int]:
        stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return [int(i) for i in conn.scalars(stmt, rows)]

    patients = cast(Table, Patient.__table__)
    pids = ids(patients, [{"pseudonym": c.pseudonym, "created_at": now} for c in new])
    course_ids = ids(cast(Table, CourseRecord.__table__), [
        {"patient_id": pid, "status": c.status, "infusion_date": c.infusion_date,
         "product": c.product, "disease": c.disease, "details": c.details, "version": 1,
         "created_at": now, "updated_at": now, "updated_by": user}
        for pid, c in zip(pids, new, strict=True)
    ])  # fmt: skip
    for table, key in ((cast(Table, Observation.__table__), "labs"),
                       (cast(Table, EventRecord.__table__), "events")):  # fmt: skip
        children = [(cid, getattr(c, key)) for cid, c in zip(course_ids, new, strict=True)]
        if conn.dialect.driver == "psycopg":  # COPY: 1/30 of the client CPU (store.pg_copy)
            copy_course_rows(conn, table, {"created_at": now}, children)
            continue
        rows = [{"course_id": cid, "created_at": now, **r} for cid, rs in children for r in rs]
        for start in range(0, len(rows), batch):
            conn.execute(insert(table), rows[start : start + batch])
    return course_ids


def import_new_courses(
    session: Session,
    courses: Sequence[tuple[Course, str]],
    *,
    user: str | None,
    source: str,
) -> int:
    """Store many validated courses of patients new to the store at once, each with its status.

    For loading a cohort: patients, courses, lab results and events are written with bulk
    inserts, so the time grows linearly with the rows (``cart_cytopenia.service.bulk_load``
    also computes their worklist rows, in worker processes). Refuses (ConflictError) if any
    pseudonym is already in the store.
    """
    new = [new_course_rows(c, status, user=user, source=source) for c, status in courses]
    return len(insert_new_courses(session, new, user=user))


def replace_course(
    session: Session,
    rec: CourseRecord,
    course: Course,
    *,
    expected_version: int | None,
    user: str | None,
    source: str,
) -> CourseRecord:
    """Replace a course's content by a new document of the same patient."""
    _check_source(source)
    _check_version(rec, expected_version)
    if course.patient.id != rec.patient.pseudonym:
        raise InputError(
            "the document is for another patient",
            [
                Problem(
                    f"patient id is {course.patient.id!r}, this course belongs to "
                    f"{rec.patient.pseudonym!r}",
                    Location(field="patient.id"),
                )
            ],
        )
    rec.observations.clear()
    rec.events.clear()
    rec.infusion_date = course.infusion_date
    rec.product = course.product.id
    rec.disease = course.patient.disease.value
    rec.details = _details(course)
    for lab in course.baseline_labs:
        rec.observations.append(_observation(lab, True, source, user))
    for lab in course.labs:
        rec.observations.append(_observation(lab, False, source, user))
    for ev in course.events:
        rec.events.append(_event_record(ev, source, user))
    _touch(session, rec, user)
    return rec


def add_labs(
    session: Session,
    rec: CourseRecord,
    labs: Sequence[dict[str, Any]],
    *,
    expected_version: int | None,
    user: str | None,
    source: str,
    baseline: bool = False,
    rows: Sequence[int] | None = None,
    source_name: str | None = None,
) -> list[Observation]:
    """Append lab results (dicts in the course JSON form) after validating the whole course."""
    _check_source(source)
    _check_version(rec, expected_version)
    if not labs:
        raise InputError("no lab results given", [Problem("the upload has no rows")])
    doc = course_document(rec)
    key = "baseline_labs" if baseline else "labs"
    first_new = len(doc[key])
    doc[key] = doc[key] + [dict(lab) for lab in labs]
    try:
        course = parse_course(doc)
    except InputError as exc:
        raise relocate_problems(
            exc, key, first_new, rows, source_name, rec.patient.pseudonym
        ) from None
    new = (course.baseline_labs if baseline else course.labs)[first_new:]
    out = [_observation(lab, baseline, source, user) for lab in new]
    for o in out:
        rec.observations.append(o)
    _touch(session, rec, user)
    return out


def add_events(
    session: Session,
    rec: CourseRecord,
    events: Sequence[dict[str, Any]],
    *,
    expected_version: int | None,
    user: str | None,
    source: str,
    rows: Sequence[int] | None = None,
    source_name: str | None = None,
) -> list[EventRecord]:
    """Append events (dicts in the course JSON form) after validating the whole course."""
    _check_source(source)
    _check_version(rec, expected_version)
    if not events:
        raise InputError("no events given", [Problem("nothing to add")])
    doc = course_document(rec)
    first_new = len(doc["events"])
    doc["events"] = doc["events"] + [dict(e) for e in events]
    try:
        course = parse_course(doc)
    except InputError as exc:
        raise relocate_problems(
            exc, "events", first_new, rows, source_name, rec.patient.pseudonym
        ) from None
    out = [_event_record(ev, source, user) for ev in course.events[first_new:]]
    for e in out:
        rec.events.append(e)
    _touch(session, rec, user)
    return out


def delete_observation(
    session: Session,
    rec: CourseRecord,
    observation_id: int,
    *,
    expected_version: int | None,
    user: str | None,
) -> None:
    _check_version(rec, expected_version)
    obs = next((o for o in rec.observations if o.id == observation_id), None)
    if obs is None:
        raise NotFoundError(f"observation {observation_id} is not part of course {rec.id}")
    rec.observations.remove(obs)
    _touch(session, rec, user)


def delete_event(
    session: Session,
    rec: CourseRecord,
    event_id: int,
    *,
    expected_version: int | None,
    user: str | None,
) -> None:
    _check_version(rec, expected_version)
    ev = next((e for e in rec.events if e.id == event_id), None)
    if ev is None:
        raise NotFoundError(f"event {event_id} is not part of course {rec.id}")
    rec.events.remove(ev)
    # removing an event can make the rest invalid only through death; check anyway
    parse_course(course_document(rec))
    _touch(session, rec, user)


def set_status(
    session: Session,
    rec: CourseRecord,
    status: str,
    *,
    expected_version: int | None,
    user: str | None,
) -> None:
    if status not in COURSE_STATUSES:
        raise InputError(
            f"status must be one of {', '.join(COURSE_STATUSES)}",
            [Problem(f"unknown status {status!r}", Location(field="status"))],
        )
    _check_version(rec, expected_version)
    rec.status = status
    _touch(session, rec, user)


def delete_course(session: Session, rec: CourseRecord) -> None:
    patient = rec.patient
    session.delete(rec)
    session.flush()
    session.refresh(patient)
    if not patient.courses:
        session.delete(patient)
    session.flush()


# --------------------------------------------------------------------------- guidance actions


def record_guidance_action(
    session: Session,
    rec: CourseRecord,
    *,
    item_id: str,
    day: int,
    action: str,
    reason: str,
    urgency: str,
    summary: str,
    user_id: int | None,
    username: str,
) -> GuidanceAction:
    problems = []
    if action not in GUIDANCE_ACTIONS:
        problems.append(
            Problem(
                f"action must be one of {', '.join(GUIDANCE_ACTIONS)}", Location(field="action")
            )
        )
    reason = reason.strip()
    if not reason:
        problems.append(
            Problem(
                "give a reason (e.g. 'G-CSF started today', 'not indicated: CRS ongoing')",
                Location(field="reason"),
            )
        )
    elif len(reason) > 2000:
        problems.append(Problem("keep the reason under 2000 characters", Location(field="reason")))
    if not item_id or len(item_id) > 128:
        problems.append(Problem("unknown guidance item", Location(field="item_id")))
    if problems:
        raise InputError("the acknowledgement was not recorded", problems)
    ga = GuidanceAction(
        item_id=item_id,
        day=day,
        action=action,
        reason=reason,
        urgency=urgency,
        summary=summary[:255],
        user_id=user_id,
        username=username,
    )
    rec.guidance_actions.append(ga)
    session.flush()
    mark_stale(session, rec.id)  # what the worklist shows as open changed
    return ga


def guidance_actions(session: Session, course_id: int) -> list[GuidanceAction]:
    stmt = (
        select(GuidanceAction)
        .where(GuidanceAction.course_id == course_id)
        .order_by(GuidanceAction.created_at, GuidanceAction.id)
    )
    return list(session.scalars(stmt))


def course_day(rec: CourseRecord, today: dt.date) -> int:
    """Days since infusion on ``today`` (day 0 = infusion)."""
    return (today - rec.infusion_date).days
