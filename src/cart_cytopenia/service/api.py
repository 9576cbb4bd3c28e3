"""The JSON API, ``/api/v1``: patients, courses, observations, events, assessments, cohorts.

Authentication: ``Authorization: Bearer <API token>``. Errors: RFC 9457 problem details
(``application/problem+json``). Writes take the course ``version`` that was read (optimistic
locking; ``409 Conflict`` when it changed). Every read and write of patient data is audited.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from cart_cytopenia import __version__
from cart_cytopenia.domain.course import SCHEMA_VERSION, parse_course
from cart_cytopenia.errors import InputError, Location, ParseError, Problem
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.io.tables import read_cohort
from cart_cytopenia.service import worklist as wl
from cart_cytopenia.service.answers import AssessmentOut, GuidanceActionOut, assessment_body
from cart_cytopenia.service.clinical import CourseSnapshot, find_item, snapshot
from cart_cytopenia.service.deps import (
    DbSession,
    ServiceContext,
    ServiceRoute,
    Viewer,
    api_role,
    get_ctx,
    record,
)
from cart_cytopenia.service.limits import MAX_DAY
from cart_cytopenia.service.problems import PROBLEM_TYPES, ProblemError
from cart_cytopenia.service.timeline import timeline_svg
from cart_cytopenia.service.worklist import Row
from cart_cytopenia.store import accounts, audit
from cart_cytopenia.store import courses as repo
from cart_cytopenia.store.accounts import MIN_PASSWORD, USERNAME
from cart_cytopenia.store.models import (
    AuditEvent,
    CourseRecord,
    EventRecord,
    Patient,
)
from cart_cytopenia.store.worklist import WorklistQuery

router = APIRouter(prefix="/api/v1", tags=["api"], route_class=ServiceRoute)

READ = api_role("read-only")
WRITE = api_role("clinician")
ADMIN = api_role("admin")
Reader = Annotated[Viewer, Depends(READ)]
Writer = Annotated[Viewer, Depends(WRITE)]
Admin = Annotated[Viewer, Depends(ADMIN)]
Version = Annotated[int | None, Query()]  # the course version read (optimistic locking)
Day = Annotated[int | None, Query(ge=0, le=MAX_DAY)]  # day since infusion; default: today's


# --------------------------------------------------------------------------- models

M = TypeVar("M", bound=BaseModel)
STRICT = ConfigDict(extra="forbid")  # input models: a misspelt field is an error, not ignored
FROM_RECORD = ConfigDict(from_attributes=True)  # output models read from a stored record


class CourseSummary(BaseModel):
    id: int
    patient_id: int
    status: str
    infusion_date: dt.date
    product: str
    disease: str
    version: int
    n_observations: int
    n_events: int
    updated_at: dt.datetime
    updated_by: str | None


class PatientOut(BaseModel):
    id: int
    pseudonym: str = Field(description="The local pseudonymous id (Course.patient.id)")
    created_at: dt.datetime
    courses: list[CourseSummary]


class CourseOut(BaseModel):
    id: int
    patient_id: int
    status: str
    version: int
    document: dict[str, Any] = Field(description=f"The course (schema {SCHEMA_VERSION})")


class ObservationOut(BaseModel):
    model_config = FROM_RECORD

    id: int
    baseline: bool
    day: int
    analyte: str
    value: float
    unit: str
    comparator: str | None
    source: str
    created_at: dt.datetime
    created_by: str | None


class EventOut(BaseModel):
    id: int
    type: str
    start_day: int
    end_day: int | None
    event: dict[str, Any]
    source: str
    created_at: dt.datetime
    created_by: str | None


class ObservationsIn(BaseModel):
    model_config = STRICT

    version: int | None = Field(None, description="The course version you read (recommended)")
    baseline: bool = Field(False, description="Pre-lymphodepletion labs (CAR-HEMATOTOX)")
    observations: list[dict[str, Any]] = Field(
        min_length=1,
        description="Lab results as in the course JSON: date or day, analyte, value, unit",
    )


class EventsIn(BaseModel):
    model_config = STRICT

    version: int | None = None
    events: list[dict[str, Any]] = Field(min_length=1, description="Events as in the course JSON")


class WriteResult(BaseModel):
    course_id: int
    version: int
    ids: list[int]


class StatusIn(BaseModel):
    model_config = STRICT

    version: int | None = None
    status: Literal["active", "closed"]


class GuidanceActionIn(BaseModel):
    model_config = STRICT

    action: Literal["acknowledged", "dismissed"]
    reason: str = Field(min_length=1, max_length=2000)
    day: int | None = Field(
        None, ge=0, le=MAX_DAY, description="Day the item was shown; default: today"
    )


class WorklistRow(BaseModel):
    course_id: int
    patient_id: int
    pseudonym: str
    day: int
    product: str
    phase: str | None
    phenotype: str | None
    icaht: str
    ticaht: str = Field(description="T-ICAHT (platelets): early or late grade, * provisional")
    iechs_status: str | None = Field(
        description="IEC-HS by the ASTCT criteria (Hines 2023): met, suspected, not met or not "
        "assessable (data missing); null while the row waits to be computed"
    )
    iechs_level: str | None = Field(
        description="The guidance level IEC-HS sets (met: high, suspected: possible)"
    )
    tatma_status: str | None = Field(
        description="TA-TMA harmonised criteria (Schoettler 2023): meets, not met, work-up "
        "incomplete or not evaluated"
    )
    tatma_criteria_met: int | None = Field(description="Criteria met (of 7) at the best time point")
    tatma_assessable: int | None = Field(description="Criteria assessable (of 7) there")
    counts: dict[str, dict[str, Any]]
    needs_action: bool
    open_items: list[dict[str, Any]]
    as_of: dt.date = Field(description="The day the row was computed for")
    up_to_date: bool = Field(description="False while the row waits to be computed again")


class UserIn(BaseModel):
    model_config = STRICT

    username: str = Field(pattern=USERNAME.pattern, description="2-64 letters, digits, . _ @ -")
    password: str = Field(min_length=MIN_PASSWORD, max_length=1024)
    role: Literal["admin", "clinician", "read-only"]
    display_name: str = ""


class UserOut(BaseModel):
    model_config = FROM_RECORD

    id: int
    username: str
    display_name: str
    role: str
    active: bool
    created_at: dt.datetime


class AuditOut(BaseModel):
    model_config = FROM_RECORD

    id: int
    at: dt.datetime
    username: str
    action: str
    resource: str
    resource_id: str | None
    patient_id: int | None
    channel: str
    client: str | None
    outcome: str
    detail: str | None


# --------------------------------------------------------------------------- helpers


def _stored(model: type[M], record: object, **computed: Any) -> M:
    """``model`` from the stored ``record``'s attributes of the same names, plus ``computed``."""
    names = [n for n in model.model_fields if n not in computed]
    return model(**{n: getattr(record, n) for n in names}, **computed)


def _summary(c: CourseRecord, counts: tuple[int, int]) -> CourseSummary:
    """The course's summary; ``counts`` (lab results, events) from ``repo.record_counts`` (the
    database counts them: no row is loaded)."""
    n_obs, n_events = counts
    return _stored(CourseSummary, c, n_observations=n_obs, n_events=n_events)


def _patient_out(p: Patient, counts: dict[int, tuple[int, int]]) -> PatientOut:
    return _stored(PatientOut, p, courses=[_summary(c, counts[c.id]) for c in p.courses])


def _patients_out(session: Session, patients: list[Patient]) -> list[PatientOut]:
    counts = repo.record_counts(session, [c.id for p in patients for c in p.courses])
    return [_patient_out(p, counts) for p in patients]


def _event_out(e: EventRecord) -> EventOut:
    return _stored(EventOut, e, event=e.payload)


def _version(if_match: str | None, version: int | None) -> int | None:
    if version is not None:
        return version
    if if_match:
        tag = if_match.strip().removeprefix("W/").strip('"')
        try:
            return int(tag)
        except ValueError:
            raise InputError(
                "If-Match must carry the course version",
                [Problem(f"cannot read a version from {if_match!r}", Location(field="If-Match"))],
            ) from None
    return None


def _course(session: Session, course_id: int) -> CourseRecord:
    """The stored course (404 problem when there is none): every course route loads it here."""
    return repo.get_course(session, course_id)


def _course_rows(
    session: Session,
    viewer: Viewer,
    course_id: int,
    resource: str,
    rows: Callable[[CourseRecord], Iterable[Any]],
    out: Callable[[Any], BaseModel],
) -> list[Any]:
    """The lab results or events of a course (``rows``) as ``out`` models; the read audited."""
    rec = _course(session, course_id)
    record(session, viewer, "read", resource, None, rec.patient_id, detail=f"course {rec.id}")
    return [out(r) for r in rows(rec)]


def _add_to_course(
    session: Session,
    viewer: Viewer,
    course_id: int,
    resource: str,
    add: Callable[..., Sequence[Any]],
    items: list[dict[str, Any]],
    version: int | None,
    **options: Any,
) -> WriteResult:
    """Add lab results or events (all or none) to the course at the version read; audited."""
    rec = _course(session, course_id)
    new = add(
        session, rec, items, expected_version=version, user=viewer.username, source="api",
        **options,
    )  # fmt: skip
    record(
        session, viewer, "create", resource, None, rec.patient_id,
        detail=f"course {rec.id}: {len(new)} added",
    )  # fmt: skip
    return WriteResult(course_id=rec.id, version=rec.version, ids=[x.id for x in new])


def _delete_from_course(
    session: Session,
    viewer: Viewer,
    course_id: int,
    resource: str,
    delete: Callable[..., Any],
    item_id: int,
    version: int | None,
) -> WriteResult:
    """Delete one lab result or event of the course at the version read; audited."""
    rec = _course(session, course_id)
    delete(session, rec, item_id, expected_version=version, user=viewer.username)
    record(session, viewer, "delete", resource, item_id, rec.patient_id)
    return WriteResult(course_id=rec.id, version=rec.version, ids=[item_id])


def _course_snapshot(
    request: Request, session: Session, course_id: int, day: int | None
) -> tuple[ServiceContext, CourseRecord, CourseSnapshot]:
    """The course with its grades and guidance on ``day`` (default: today's day)."""
    ctx = get_ctx(request)
    rec = _course(session, course_id)
    return ctx, rec, snapshot(rec, ctx.today(), ctx.clinical, ctx.cache, day=day)


def worklist_row(r: Row) -> WorklistRow:
    e, d = r.entry, r.entry.display
    return WorklistRow(
        course_id=e.course_id,
        patient_id=r.patient_id,
        pseudonym=r.pseudonym,
        day=e.day,
        product=r.product,
        phase=e.phase,
        phenotype=e.phenotype,
        icaht=e.icaht_label,
        ticaht=e.ticaht_label,
        iechs_status=e.iechs_status,
        iechs_level=e.iechs_level,
        tatma_status=e.tatma_status,
        tatma_criteria_met=e.tatma_met,
        tatma_assessable=e.tatma_assessable,
        counts=d.get("counts", {}),
        needs_action=e.needs_action,
        open_items=d.get("open_items", []),
        as_of=e.as_of,
        up_to_date=r.up_to_date,
    )


# --------------------------------------------------------------------------- routes


@router.get("/me", summary="The account behind the token")
def me(viewer: Reader) -> dict[str, Any]:
    return {"username": viewer.username, "role": viewer.role, "display_name": viewer.display_name}


@router.get("/worklist", summary="Active courses with their counts, grades and open items")
def worklist(
    request: Request,
    viewer: Reader,
    session: DbSession,
    limit: int = Query(200, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10_000_000),
    iechs: Literal["met", "suspected", "flagged"] | None = Query(
        None, description="IEC-HS (ASTCT): met, suspected, or flagged (met or suspected)"
    ),
    tatma: Literal["meets"] | None = Query(
        None, description="TA-TMA: only courses meeting the harmonised criteria"
    ),
) -> list[WorklistRow]:
    """The stored worklist rows (most urgent first), ``limit`` rows from ``offset``."""
    query = WorklistQuery(per_page=limit, page=1, iechs=iechs or "", tatma=tatma or "")
    ctx = get_ctx(request)
    view = wl.view(ctx.worklist, ctx.refresher, session, query, offset=offset)
    record(session, viewer, "read", "worklist", None, None,
           detail=f"api offset {offset}: {len(view['rows'])} of {view['n_match']} rows; "
                  f"iechs={iechs or '-'} tatma={tatma or '-'}")  # fmt: skip
    return [worklist_row(r) for r in view["rows"]]


@router.get("/patients", summary="Patients and their courses")
def list_patients(
    viewer: Reader,
    session: DbSession,
    limit: int = Query(500, ge=1, le=5000),
    offset: int = Query(0, ge=0, le=10_000_000),  # bounded: a 64-bit overflow was a 500
) -> list[PatientOut]:
    out = _patients_out(session, repo.list_patients(session, limit, offset))
    audit.record_reads(
        session, user_id=viewer.user_id, username=viewer.username, resource="patient",
        ids=[p.id for p in out], channel=viewer.channel, client=viewer.client, detail="list",
    )  # fmt: skip
    return out


@router.get("/patients/{patient_id}", summary="One patient and their courses")
def get_patient(patient_id: int, viewer: Reader, session: DbSession) -> PatientOut:
    p = repo.get_patient(session, patient_id)
    record(session, viewer, "read", "patient", p.id, p.id)
    return _patients_out(session, [p])[0]


@router.get("/patients/{patient_id}/courses", summary="The courses of one patient")
def get_patient_courses(patient_id: int, viewer: Reader, session: DbSession) -> list[CourseSummary]:
    p = repo.get_patient(session, patient_id)
    record(session, viewer, "read", "patient", p.id, p.id, detail="courses")
    counts = repo.record_counts(session, [c.id for c in p.courses])
    return [_summary(c, counts[c.id]) for c in p.courses]


def _course_out(rec: Any, response: Response) -> CourseOut:
    """The course document with its version, also sent as the ETag (for If-Match)."""
    response.headers["ETag"] = f'"{rec.version}"'
    return CourseOut(
        id=rec.id,
        patient_id=rec.patient_id,
        status=rec.status,
        version=rec.version,
        document=repo.course_document(rec),
    )


@router.post(
    "/courses",
    status_code=201,
    summary="Store a course document (a new patient, or a new course of a known patient)",
)
def create_course(
    document: dict[str, Any], response: Response, viewer: Writer, session: DbSession
) -> CourseOut:
    course = parse_course(document, source="request body")
    rec = repo.import_course(session, course, user=viewer.username, source="api")
    record(session, viewer, "create", "course", rec.id, rec.patient_id)
    response.headers["Location"] = f"/api/v1/courses/{rec.id}"
    return _course_out(rec, response)


@router.get("/courses/{course_id}", summary="A course document with its version (ETag)")
def get_course(course_id: int, response: Response, viewer: Reader, session: DbSession) -> CourseOut:
    rec = _course(session, course_id)
    record(session, viewer, "read", "course", rec.id, rec.patient_id)
    return _course_out(rec, response)


@router.put("/courses/{course_id}", summary="Replace a course document (needs its version)")
def replace_course(
    course_id: int,
    document: dict[str, Any],
    response: Response,
    viewer: Writer,
    session: DbSession,
    version: int | None = Query(None, description="The version you read (or If-Match)"),
    if_match: str | None = Header(None),
) -> CourseOut:
    expected = _version(if_match, version)
    if expected is None:
        raise ProblemError(
            "conflict",
            "replacing a course needs the version you read: send If-Match or ?version=",
            status=428,
        )
    rec = _course(session, course_id)
    course = parse_course(document, source="request body")
    repo.replace_course(
        session, rec, course, expected_version=expected, user=viewer.username, source="api"
    )
    record(session, viewer, "update", "course", rec.id, rec.patient_id, detail="replaced")
    return _course_out(rec, response)


@router.post("/courses/{course_id}/status", summary="Close or reopen a course")
def set_course_status(
    course_id: int, body: StatusIn, viewer: Writer, session: DbSession
) -> CourseSummary:
    rec = repo.get_course_row(session, course_id)
    repo.set_status(session, rec, body.status, expected_version=body.version, user=viewer.username)
    record(session, viewer, "update", "course", rec.id, rec.patient_id, detail=body.status)
    return _summary(rec, repo.record_counts(session, [rec.id])[rec.id])


@router.delete("/courses/{course_id}", status_code=204, summary="Delete a course (admin)")
def delete_course(course_id: int, viewer: Admin, session: DbSession) -> Response:
    rec = _course(session, course_id)
    pid = rec.patient_id
    repo.delete_course(session, rec)
    record(session, viewer, "delete", "course", course_id, pid)
    return Response(status_code=204)


@router.get("/courses/{course_id}/observations", summary="Lab results of a course")
def list_observations(course_id: int, viewer: Reader, session: DbSession) -> list[ObservationOut]:
    return _course_rows(
        session, viewer, course_id, "observation", lambda rec: rec.observations,
        ObservationOut.model_validate,
    )  # fmt: skip


@router.post(
    "/courses/{course_id}/observations", status_code=201, summary="Add lab results (all or none)"
)
def add_observations(
    course_id: int, body: ObservationsIn, viewer: Writer, session: DbSession
) -> WriteResult:
    return _add_to_course(
        session, viewer, course_id, "observation", repo.add_labs, body.observations,
        body.version, baseline=body.baseline, source_name="observations",
    )  # fmt: skip


@router.delete(
    "/courses/{course_id}/observations/{observation_id}",
    summary="Delete a lab result",
)
def delete_observation(
    course_id: int, observation_id: int, viewer: Writer, session: DbSession, version: Version = None
) -> WriteResult:
    return _delete_from_course(
        session, viewer, course_id, "observation", repo.delete_observation, observation_id,
        version,
    )  # fmt: skip


@router.get("/courses/{course_id}/events", summary="Events of a course")
def list_events(course_id: int, viewer: Reader, session: DbSession) -> list[EventOut]:
    return _course_rows(session, viewer, course_id, "event", lambda rec: rec.events, _event_out)


@router.post("/courses/{course_id}/events", status_code=201, summary="Add events (all or none)")
def add_events(course_id: int, body: EventsIn, viewer: Writer, session: DbSession) -> WriteResult:
    return _add_to_course(
        session, viewer, course_id, "event", repo.add_events, body.events, body.version,
        source_name="events",
    )  # fmt: skip


@router.delete("/courses/{course_id}/events/{event_id}", summary="Delete an event")
def delete_event(
    course_id: int, event_id: int, viewer: Writer, session: DbSession, version: Version = None
) -> WriteResult:
    return _delete_from_course(
        session, viewer, course_id, "event", repo.delete_event, event_id, version
    )


@router.get(
    "/courses/{course_id}/assessment",
    summary="Grades and guidance for a day (default: today's day since infusion)",
    response_model=AssessmentOut,
)
def get_assessment(
    course_id: int, request: Request, viewer: Reader, session: DbSession, day: Day = None
) -> Response:
    """Serialised once by pydantic (the model built from the snapshot is already valid: FastAPI
    would validate the whole assessment a second time, about half of the request's CPU)."""
    cid, patient_id, shown, body = assessment_body(get_ctx(request), session, course_id, day)
    record(session, viewer, "read", "assessment", cid, patient_id, detail=f"day {shown}")
    return Response(body, media_type="application/json")


@router.get(
    "/courses/{course_id}/timeline.svg",
    summary="The timeline figure (SVG)",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}},
)
def get_timeline(
    course_id: int, request: Request, viewer: Reader, session: DbSession, day: Day = None
) -> Response:
    ctx, rec, snap = _course_snapshot(request, session, course_id, day)
    record(session, viewer, "read", "course", rec.id, rec.patient_id, detail="timeline")
    return Response(timeline_svg(snap.course, snap.day, ctx.clinical), media_type="image/svg+xml")


@router.get("/courses/{course_id}/guidance/actions", summary="Acknowledgements and dismissals")
def list_guidance_actions(
    course_id: int, viewer: Reader, session: DbSession
) -> list[GuidanceActionOut]:
    rec = _course(session, course_id)
    record(session, viewer, "read", "guidance-action", None, rec.patient_id)
    return [GuidanceActionOut.model_validate(a) for a in repo.guidance_actions(session, rec.id)]


@router.post(
    "/courses/{course_id}/guidance/{item_id}/actions",
    status_code=201,
    summary="Acknowledge or dismiss a guidance item, with the reason",
)
def act_on_item(
    course_id: int,
    item_id: str,
    body: GuidanceActionIn,
    request: Request,
    viewer: Writer,
    session: DbSession,
) -> GuidanceActionOut:
    _ctx, rec, snap = _course_snapshot(request, session, course_id, body.day)
    state = find_item(snap, item_id)
    if state is None:
        raise ProblemError(
            "not-found",
            f"guidance item {item_id!r} is not shown for course {rec.id} on day {snap.day}",
        )
    ga = repo.record_guidance_action(
        session,
        rec,
        item_id=item_id,
        day=snap.day,
        action=body.action,
        reason=body.reason,
        urgency=state.item.urgency,
        summary=state.item.summary,
        user_id=viewer.user_id,
        username=viewer.username,
    )
    record(session, viewer, "create", "guidance-action", ga.id, rec.patient_id, detail=item_id)
    return GuidanceActionOut.model_validate(ga)


def _rename(exc: InputError, tmp: Path, names: dict[str, str]) -> InputError:
    """Replace temporary paths in messages by the names of the uploaded files."""

    def fix(text: str | None) -> str | None:
        if text is None:
            return None
        for path, name in names.items():
            text = text.replace(path, name)
        return text.replace(str(tmp) + "/", "")

    problems = [
        Problem(
            fix(p.message) or "",
            Location(
                p.location.patient_id, p.location.row, p.location.field, fix(p.location.source)
            ),
            p.kind,
        )
        for p in exc.problems
    ]
    return type(exc)(fix(exc.message) or "", problems)


@router.post(
    "/cohort/grade",
    summary="Grade a cohort file (labs + patients [+ events]; CSV or Parquet), one row per patient",
)
def grade_uploaded_cohort(
    request: Request,
    viewer: Reader,
    session: DbSession,
    labs: UploadFile = File(description="Long-format labs (CSV or Parquet)"),
    patients: UploadFile = File(description="Patient table (CSV or Parquet)"),
    events: UploadFile | None = File(None, description="Optional event table"),
    as_of: int | None = Form(None, description="Grade as of this day (default: all data)"),
) -> JSONResponse:
    ctx: ServiceContext = get_ctx(request)
    with tempfile.TemporaryDirectory(prefix="cc-cohort-") as tmp_name:
        tmp = Path(tmp_name)
        paths: dict[str, Path] = {}
        names: dict[str, str] = {}
        for role, upload in (("labs", labs), ("patients", patients), ("events", events)):
            if upload is None:
                continue
            suffix = Path(upload.filename or "").suffix.lower() or ".csv"
            if suffix not in (".csv", ".parquet", ".txt"):
                raise ParseError(
                    f"{role}: unsupported file type '{suffix}' (use .csv or .parquet)",
                    [Problem("use .csv or .parquet", Location(source=upload.filename, field=role))],
                )
            data = upload.file.read(ctx.settings.max_upload_bytes + 1)
            if len(data) > ctx.settings.max_upload_bytes:
                raise ProblemError(
                    "too-large", f"{role} exceeds {ctx.settings.max_upload_bytes} bytes"
                )
            path = tmp / f"{role}{suffix}"
            path.write_bytes(data)
            paths[role] = path
            names[str(path)] = upload.filename or role
        try:
            frames = read_cohort(paths["labs"], paths["patients"], paths.get("events"))
            table = grade_cohort(frames, ctx.clinical, as_of=as_of)
        except InputError as exc:
            raise _rename(exc, tmp, names) from None
    record(
        session, viewer, "export", "cohort-grading", None, None, detail=f"{table.height} patients"
    )
    return JSONResponse(
        {
            "n_patients": table.height,
            "as_of": as_of,
            "software": f"cart-cytopenia {__version__}",
            "settings": ctx.clinical.in_force(),
            "columns": table.columns,
            "rows": table.to_dicts(),
        }
    )


@router.get("/users", summary="Accounts (admin)")
def list_users(viewer: Admin, session: DbSession) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in accounts.list_users(session)]


@router.post("/users", status_code=201, summary="Create an account (admin)")
def create_user(body: UserIn, viewer: Admin, session: DbSession) -> UserOut:
    u = accounts.create_user(session, body.username, body.password, body.role, body.display_name)
    record(session, viewer, "create", "user", u.id)
    return UserOut.model_validate(u)


@router.get("/audit", summary="The audit log (admin)")
def get_audit(
    viewer: Admin,
    session: DbSession,
    patient_id: int | None = Query(None, ge=1, le=2**63 - 1),  # database integer range
    username: str | None = Query(None),
    limit: int = Query(200, ge=1, le=5000),
) -> list[AuditOut]:
    rows: list[AuditEvent] = audit.entries(
        session, limit=limit, patient_id=patient_id, username=username
    )
    return [AuditOut.model_validate(r) for r in rows]


@router.get("/problems", summary="The problem types this API answers with (RFC 9457)")
def problem_types() -> dict[str, Any]:
    return {
        slug: {"status": status, "title": title, "description": text}
        for slug, (status, title, text) in PROBLEM_TYPES.items()
    }
