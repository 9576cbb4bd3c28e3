"""The work of an upload: check a lab CSV or a course JSON document whole and save it in one
transaction, or save nothing and audit the rejection.

These are module-level functions called as ``fn(db, progress, *args)`` (``jobs.Task``), so that
a large file's work can run in the job worker process (``service.jobs``) as well as within the
request (a small file). They receive plain data (the bytes, ids, the ``Viewer``), never the
request or the service context, and report their stages (row counts, the file name; never
clinical values) to ``progress``.
"""

from __future__ import annotations

from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.errors import InputError
from cart_cytopenia.service.deps import Viewer, record
from cart_cytopenia.service.forms import parse_lab_csv
from cart_cytopenia.service.jobs import Progress
from cart_cytopenia.store import courses as repo
from cart_cytopenia.store.db import Database
from cart_cytopenia.store.errors import ConflictError
from cart_cytopenia.store.models import CourseRecord


def patient_url(rec: CourseRecord) -> str:
    return f"/patients/{rec.patient_id}?course={rec.id}"


def audit_rejected(db: Database, viewer: Viewer, resource: str, patient_id: int | None,
                   detail: str) -> None:  # fmt: skip
    """A rejected upload is audited in its own transaction (the upload's was rolled back)."""
    with db.transaction() as session:
        record(session, viewer, "create", resource, None, patient_id, outcome="rejected",
               detail=detail)  # fmt: skip


def save_lab_csv(
    db: Database, progress: Progress, viewer: Viewer, course_id: int, version: int | None,
    data: bytes, filename: str,
) -> tuple[str, str]:  # fmt: skip
    """Check and save a lab CSV into course ``course_id`` in one transaction."""
    patient_id: int | None = None
    try:
        with db.session() as session:  # read, then no transaction open while parsing
            rec = repo.get_course(session, course_id)
            patient_id, pseudonym = rec.patient_id, rec.patient.pseudonym
        progress.stage(f"reading {filename}")
        labs, rows = parse_lab_csv(data, filename, pseudonym)
        with db.transaction() as session:
            rec = repo.get_course(session, course_id)
            progress.stage(f"checking {len(labs):,} rows with the whole course")
            new = repo.add_labs(
                session, rec, labs, expected_version=version, user=viewer.username,
                source="csv", rows=rows, source_name=filename,
            )  # fmt: skip
            progress.stage(f"saving {len(new):,} lab results")
            record(session, viewer, "create", "observation", None, rec.patient_id,
                   detail=f"course {rec.id}: {len(new)} from CSV")  # fmt: skip
    except (InputError, ConflictError):
        audit_rejected(db, viewer, "observation", patient_id, f"course {course_id}: CSV upload")
        raise
    return f"Saved {len(new)} lab result(s) from {filename}.", patient_url(rec)


def import_course_json(
    db: Database, progress: Progress, viewer: Viewer, data: bytes, filename: str
) -> tuple[str, str]:
    """Check and store a course JSON document in one transaction."""
    try:
        progress.stage(f"checking {filename}")
        course = parse_course(data, source=filename)
        progress.stage("saving the course")
        with db.transaction() as session:
            rec = repo.import_course(session, course, user=viewer.username, source="json")
            record(session, viewer, "create", "course", rec.id, rec.patient_id,
                   detail="JSON upload")  # fmt: skip
    except (InputError, ConflictError):
        audit_rejected(db, viewer, "course", None, "JSON upload")
        raise
    return f"Imported course of {course.patient.id}.", patient_url(rec)
