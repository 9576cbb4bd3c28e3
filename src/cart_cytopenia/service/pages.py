"""Server-rendered pages: worklist, patient page, data entry, uploads, print view.

Every page needs a signed-in user; every POST checks the session's CSRF token; every read and
write of patient data goes to the audit log. Nothing here computes clinical content: it shows
what ``grading`` and ``guidance`` produce for the stored course (``service.clinical``).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import numpy as np
from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from cart_cytopenia import __version__
from cart_cytopenia.domain.analytes import analyte as analyte_of
from cart_cytopenia.domain.catalogues import products
from cart_cytopenia.domain.course import Course, Dated
from cart_cytopenia.errors import InputError
from cart_cytopenia.grading.ctcae import grade_values
from cart_cytopenia.rules import tables
from cart_cytopenia.service import worklist as wl
from cart_cytopenia.service.clinical import (
    NEEDS_ACTION,
    SECTION_TITLES,
    SECTIONS,
    TO_DECIDE,
    URGENCY_ORDER,
    CourseSnapshot,
    course_story,
    find_item,
    snapshot,
)
from cart_cytopenia.service.deps import (
    DbSession,
    PageReader,
    PageWriter,
    Posted,
    SignedIn,
    Viewer,
    check_csrf,
    get_ctx,
    page_router,
    record,
    set_signed_cookie,
)
from cart_cytopenia.service.forms import (
    EVENT_TYPES,
    FormState,
    apply_errors,
    event_fields,
    form_to_dict,
    lab_fields,
    timing_problems,
)
from cart_cytopenia.service.limits import MAX_DAY
from cart_cytopenia.service.security import CSRF_FIELD, unsign
from cart_cytopenia.service.timeline import timeline_svg
from cart_cytopenia.store import courses as repo
from cart_cytopenia.store.errors import ConflictError, NotFoundError
from cart_cytopenia.store.models import CourseRecord
from cart_cytopenia.store.worklist import WorklistQuery

TEMPLATES = Path(__file__).resolve().parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES))
router = page_router()


GRADE_CLASS = {None: "g-na", 0: "g0", 1: "g1", 2: "g2", 3: "g3", 4: "g4", 5: "g4"}


def fmt_value(v: float | None, analyte_code: str | None = None) -> str:
    if v is None:
        return "—"
    if analyte_code == "hb":
        return f"{v:.1f}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def unit_label(unit: str) -> str:
    return {"/uL": "/µL", "10*3/uL": "×10³/µL", "10*9/L": "×10⁹/L", "mm[Hg]": "mmHg"}.get(
        unit, unit
    )


templates.env.globals.update(
    fmt_value=fmt_value,
    unit_label=unit_label,
    grade_class=lambda g: GRADE_CLASS.get(g, "g-na"),
    version=__version__,
    urgency_order=URGENCY_ORDER,
    section_titles=SECTION_TITLES,
    csrf_field=CSRF_FIELD,
    to_decide=TO_DECIDE,
)


def render(
    request: Request,
    name: str,
    viewer: Viewer | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    ctx = get_ctx(request)
    base = {
        "viewer": viewer,
        "today": ctx.today(),
        "institution": ctx.clinical.institution,
        "development": ctx.settings.development,
    }
    flash = _take_flash(request)
    base["message"] = flash
    base.update({k: v for k, v in context.items() if not (k == "message" and not v)})
    response = templates.TemplateResponse(request, name, base, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE)
    return response


FLASH_COOKIE = "cc_flash"


def _redirect(url: str, request: Request | None = None, flash: str = "") -> RedirectResponse:
    """303 to ``url``; ``flash`` is shown once on the next page. It travels in a short-lived
    signed cookie, never in the URL (URLs end up in proxy logs; messages may hold values)."""
    response = RedirectResponse(url, status_code=303)
    if flash and request is not None:
        token = base64.urlsafe_b64encode(flash[:500].encode()).decode()
        set_signed_cookie(response, request, FLASH_COOKIE, ("flash", token), "lax", 120)
    return response


def _take_flash(request: Request) -> str:
    raw = unsign(get_ctx(request).settings.secret_key, "flash", request.cookies.get(FLASH_COOKIE))
    if not raw:
        return ""
    try:
        return base64.urlsafe_b64decode(raw.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def _course_for_patient(session: Session, patient_id: int, course_id: int | None) -> CourseRecord:
    patient = repo.get_patient(session, patient_id)
    if course_id is not None:
        rec = repo.get_course(session, course_id)
        if rec.patient_id != patient.id:
            raise NotFoundError(f"course {course_id} is not a course of patient {patient_id}")
        return rec
    latest = repo.latest_course(patient)
    if latest is None:
        raise NotFoundError(f"patient {patient_id} has no course")
    return repo.get_course(session, latest.id)


def _snap(request: Request, rec: CourseRecord, day: int | None = None) -> CourseSnapshot:
    ctx = get_ctx(request)
    return snapshot(rec, ctx.today(), ctx.clinical, ctx.cache, day=day)


# --------------------------------------------------------------------------- worklist


@router.get("/", response_class=HTMLResponse)
def home(viewer: SignedIn) -> Response:
    return _redirect("/worklist")


@router.get("/worklist", response_class=HTMLResponse)
def worklist_page(
    request: Request,
    viewer: PageReader,
    session: DbSession,
    product: str = "",
    phase: str = "",
    needs_action: str = "",
    iechs: str = "",
    tatma: str = "",
    sort: str = "urgency",
    dir: str = "",
    page: int = Query(1, ge=1, le=1_000_000),
    per_page: int = 50,
) -> Response:
    """The worklist, filtered by product, phase, "needs action", IEC-HS and TA-TMA (in the URL:
    no patient data).
    A search by pseudonym is posted (``worklist_search``), so that it never appears in a URL,
    a browser history or a proxy's access log."""
    query = wl.query_from(
        product=product, phase=phase, needs_action=needs_action, q="", sort=sort, dir=dir,
        page=page, per_page=per_page, iechs=iechs, tatma=tatma,
    )  # fmt: skip
    return _worklist(request, viewer, session, query)


@router.post("/worklist", response_class=HTMLResponse)
def worklist_search(
    request: Request, viewer: PageReader, form: Posted, session: DbSession
) -> Response:
    """The worklist filtered by a pseudonym (and the URL's filters), sent in the form body."""
    check_csrf(form, viewer)

    def field(name: str) -> str:
        value = form.get(name)
        return value if isinstance(value, str) else ""

    query = wl.query_from(
        product=field("product"), phase=field("phase"), needs_action=field("needs_action"),
        q=field("q"), sort=field("sort") or "urgency", dir=field("dir"),
        page=_int(field("page")) or 1, per_page=_int(field("per_page")) or 50,
        iechs=field("iechs"), tatma=field("tatma"),
    )  # fmt: skip
    return _worklist(request, viewer, session, query)


def _worklist(request: Request, viewer: Viewer, session: Session, query: WorklistQuery) -> Response:
    ctx = get_ctx(request)
    view = wl.view(ctx.worklist, ctx.refresher, session, query)
    totals = view["totals"]
    detail = (
        f"worklist page {query.page} ({len(view['rows'])} of {view['n_match']} rows); "
        f"product={query.product or '-'} phase={query.phase or '-'} "
        f"needs_action={'yes' if query.needs_action else 'no'} "
        f"iechs={query.iechs or '-'} tatma={query.tatma or '-'} "
        f"search={'yes' if query.q.strip() else 'no'} sort={query.sort}"
    )
    record(session, viewer, "read", "worklist", None, None, detail=detail)
    filters = {
        "product": query.product,
        "phase": query.phase,
        "needs_action": "1" if query.needs_action else "",
        "iechs": query.iechs,
        "tatma": query.tatma,
    }

    def url(**change: Any) -> str:
        """The worklist URL with ``change`` (never the pseudonym searched for)."""
        params = {**filters, "sort": query.sort, "dir": "desc" if query.descending else "asc"}
        params.update({k: str(v) for k, v in change.items()})
        if query.per_page != 50:
            params.setdefault("per_page", str(query.per_page))
        return "/worklist?" + urlencode({k: v for k, v in params.items() if v})

    def sort_url(col: str) -> str:
        if query.sort == col:
            return url(sort=col, dir="asc" if query.descending else "desc")
        return url(sort=col, dir="desc" if col == "day" else "asc")

    n_pages = max(1, -(-view["n_match"] // query.per_page))
    _rows_html(view)
    return render(
        request, "worklist.html", viewer, title="Worklist", **view,
        n_total=totals["total"], n_action=totals["action"], n_consider=totals["consider"],
        phases=[p.id for p in tables.timing().phases],
        f={**filters, "q": query.q}, sort=query.sort, reverse=query.descending,
        sort_url=sort_url, page=query.page, n_pages=n_pages, per_page=query.per_page,
        page_url=lambda n: url(page=n), needs_action_set=NEEDS_ACTION,
    )  # fmt: skip


def _rows_html(view: dict[str, Any]) -> Markup:
    """The table rows of a view (``view["rows_html"]``), rendered once and kept with the view
    (``ViewCache``): they show the stored rows only, nothing of the viewer."""
    html = view.get("rows_html")
    if html is None:
        fragment = templates.get_template("_worklist_rows.html")
        html = Markup(fragment.render(rows=view["rows"], needs_action_set=NEEDS_ACTION))
        view["rows_html"] = html
    return html


# --------------------------------------------------------------------------- patient page


def grade_history(course: Course, sex: str | None, ctx_settings: Any) -> list[dict[str, Any]]:
    """Per lab day (latest first): ANC, platelets, Hb daily minimum with CTCAE grades."""
    table = tables.ctcae(ctx_settings.ctcae_version)
    by_day: dict[int, dict[str, float]] = {}
    for lab in course.labs:
        code = lab.analyte_code
        if code not in ("anc", "platelets", "hb") or lab.day is None:
            continue
        value = lab.canonical_value()
        cur = by_day.setdefault(lab.day, {})
        cur[code] = min(value, cur.get(code, value))
    rows = []
    for day in sorted(by_day, reverse=True):
        row: dict[str, Any] = {"day": day}
        for code in ("anc", "platelets", "hb"):
            v = by_day[day].get(code)
            if v is None:
                row[code] = None
                continue
            g = grade_values(
                np.array([v]),
                code,
                table,
                ctx_settings.reference_ranges,
                np.array([sex], dtype=object) if code == "hb" else None,
            )[0]
            row[code] = (v, int(g) if g >= 0 else None)
        rows.append(row)
    return rows


def _events_for_display(course: Course) -> list[dict[str, Any]]:
    out = []
    for e in course.events:
        start = e.day if isinstance(e, Dated) else e.start_day
        end = None if isinstance(e, Dated) else e.end_day
        bits = []
        for k in ("max_grade", "grade", "drug", "dose", "dose_unit", "frequency", "product",
                  "units", "organism", "site", "cellularity", "source", "kind", "finding",
                  "cause", "max_temp_c"):  # fmt: skip
            v = getattr(e, k, None)
            if v is not None and v != "":
                bits.append(f"{k.replace('_', ' ')}: {getattr(v, 'value', v)}")
        out.append({"type": e.type, "start": start, "end": end, "detail": "; ".join(bits)})
    return out


def clinical_context(request: Request, snap: CourseSnapshot) -> dict[str, Any]:
    """What the patient page shows of a course on a day (stored, or read from the EHR)."""
    ctx = get_ctx(request)
    course = snap.course
    sex = course.patient.sex.value
    return {
        "snap": snap,
        "course": course,
        "a": snap.assessment,
        "g": snap.guidance,
        "sections": [(s, snap.section(s)) for s in SECTIONS],
        "svg": timeline_svg(course, snap.day, ctx.clinical),
        "story": course_story(snap),
        "history": grade_history(course.as_of(snap.day), sex, ctx.clinical),
        "events": _events_for_display(course.as_of(snap.day)),
        "product": course.product.catalogue_entry(),
        "settings_in_force": ctx.clinical.in_force(),
        "analyte_label": lambda code: analyte_of(code).label,
    }


def _patient_context(
    request: Request, session: Session, rec: CourseRecord, day: int | None
) -> dict[str, Any]:
    return {
        "rec": rec,
        **clinical_context(request, _snap(request, rec, day)),
        "actions": repo.guidance_actions(session, rec.id),
        "other_courses": [c for c in rec.patient.courses if c.id != rec.id],
    }


def _shown(session: Session, viewer: Viewer, rec: CourseRecord, detail: str) -> CourseRecord:
    """``rec``, its reading by a page written to the audit log as ``detail``."""
    record(session, viewer, "read", "course", rec.id, rec.patient_id, detail=detail)
    return rec


def _posted_course(
    session: Session, course_id: int, viewer: Viewer, form: FormData
) -> CourseRecord:
    """The course a form was posted for, after checking the form's CSRF token."""
    check_csrf(form, viewer)
    return repo.get_course(session, course_id)


def _refused(session: Session, write: Callable[[], object]) -> InputError | ConflictError | None:
    """Run a version-checked write; what refused it (the session rolled back), or None."""
    try:
        write()
    except (ConflictError, InputError) as exc:
        session.rollback()
        return exc
    return None


@dataclass
class PatientView:
    """Which course of the patient (default: the latest) on which day (default: today's; a day
    before the infusion shows day 0, one past ``MAX_DAY`` is refused)."""

    course: int | None = None
    day: Annotated[int | None, Query(le=MAX_DAY)] = None


ShownCourse = Annotated[PatientView, Depends()]


def _patient_view(
    request: Request, session: Session, viewer: Viewer, patient_id: int, view: PatientView
) -> tuple[CourseRecord, dict[str, Any]]:
    """The course shown on the patient page or its print view, and the page's context."""
    rec = _course_for_patient(session, patient_id, view.course)
    day = None if view.day is None else max(0, view.day)
    return rec, _patient_context(request, session, rec, day)


@router.get("/patients/{patient_id}", response_class=HTMLResponse)
def patient_page(
    request: Request, patient_id: int, viewer: PageReader, session: DbSession, view: ShownCourse
) -> Response:
    rec, context = _patient_view(request, session, viewer, patient_id, view)
    _shown(session, viewer, rec, "patient page")
    title = f"Patient {rec.patient.pseudonym}"
    return render(request, "patient.html", viewer, title=title, **context)


@router.get("/patients/{patient_id}/print", response_class=HTMLResponse)
def print_page(
    request: Request, patient_id: int, viewer: PageReader, session: DbSession, view: ShownCourse
) -> Response:
    rec, context = _patient_view(request, session, viewer, patient_id, view)
    _shown(session, viewer, rec, "print view")
    now = dt.datetime.now(dt.UTC)
    title = f"Consult note — {rec.patient.pseudonym}"
    return render(request, "print.html", viewer, title=title, printed_at=now, **context)


@router.get("/patients/{patient_id}/data", response_class=HTMLResponse)
def data_page(
    request: Request,
    patient_id: int,
    viewer: PageReader,
    session: DbSession,
    course: int | None = None,
) -> Response:
    rec = _shown(session, viewer, _course_for_patient(session, patient_id, course), "data page")
    return render(request, "data.html", viewer, title=f"Data — {rec.patient.pseudonym}", rec=rec)


def _patient_url(rec: CourseRecord, anchor: str = "") -> str:
    return f"/patients/{rec.patient_id}?{urlencode({'course': str(rec.id)})}{anchor}"


@router.post("/courses/{course_id}/guidance/{item_id}/ack", response_class=HTMLResponse)
def acknowledge(
    request: Request,
    course_id: int,
    item_id: str,
    viewer: PageWriter,
    form: Posted,
    session: DbSession,
) -> Response:
    rec = _posted_course(session, course_id, viewer, form)
    day_text = str(form.get("day") or "")
    day = int(day_text) if day_text.isdigit() else None
    if day is not None and day > MAX_DAY:
        raise InputError(f"day {day} is more than {MAX_DAY} days after the infusion")
    snap = _snap(request, rec, day)
    state = find_item(snap, item_id)
    action = "dismissed" if form.get("action") == "dismiss" else "acknowledged"
    reason = str(form.get("reason") or "")
    if state is None:
        msg = "That guidance item is no longer shown; nothing was recorded."
        return _redirect(_patient_url(rec), request, msg)
    try:
        ga = repo.record_guidance_action(
            session,
            rec,
            item_id=item_id,
            day=snap.day,
            action=action,
            reason=reason,
            urgency=state.item.urgency,
            summary=state.item.summary,
            user_id=viewer.user_id,
            username=viewer.username,
        )
    except InputError as exc:
        session.rollback()
        context = _patient_context(request, session, rec, day)
        return render(
            request,
            "patient.html",
            viewer,
            status=422,
            title=f"Patient {rec.patient.pseudonym}",
            **context,
            ack_errors={item_id: [p.message for p in exc.problems]},
            message="",
        )
    record(session, viewer, "create", "guidance-action", ga.id, rec.patient_id, detail=item_id)
    return _redirect(
        _patient_url(rec, "#guidance"), request, f"{action.capitalize()}: {state.item.summary}"
    )


@router.post("/courses/{course_id}/status", response_class=HTMLResponse)
def set_status(
    request: Request, course_id: int, viewer: PageWriter, form: Posted, session: DbSession
) -> Response:
    rec = _posted_course(session, course_id, viewer, form)
    status = str(form.get("status") or "")
    refused = _refused(
        session, lambda: repo.set_status(
            session, rec, status, expected_version=_version(form), user=viewer.username
        ),
    )  # fmt: skip
    if refused is not None:
        return _redirect(_patient_url(rec), request, str(refused))
    record(session, viewer, "update", "course", rec.id, rec.patient_id, detail=status)
    return _redirect(_patient_url(rec), request, f"Course {status}.")


def _int(v: Any) -> int | None:
    try:
        return int(str(v))
    except (TypeError, ValueError):
        return None


def _version(form: FormData) -> int | None:
    """The course version the form was made from (optimistic locking: the store refuses a write
    when the course changed since)."""
    return _int(form.get("version"))


# --------------------------------------------------------------------------- data entry


@router.get("/courses/{course_id}/labs/new", response_class=HTMLResponse)
def new_lab(request: Request, course_id: int, viewer: PageWriter, session: DbSession) -> Response:
    rec = _shown(session, viewer, repo.get_course(session, course_id), "lab form")
    today = get_ctx(request).today()
    state = FormState(values={"date": today.isoformat(), "unit": ""})
    return render(
        request, "lab_form.html", viewer, title="Add lab result", rec=rec,
        fields=lab_fields(), state=state, baseline=False,
    )  # fmt: skip


def _save_entry(
    request: Request,
    session: Session,
    viewer: Viewer,
    rec: CourseRecord,
    entry: tuple[str, Callable[[CourseRecord], object], Callable[[], str]],
    form: tuple[FormState, list[Any], dict[str, Any] | None],
    page: str,
    **context: Any,
) -> Response:
    """Add a form's lab result or event to the course unless the form has problems.

    ``entry`` is (audited resource, the store's version-checked add, the message once saved);
    ``form`` (its state, field specs, typed values to show back). Problems of the form, of the
    store or a version conflict give the form again with them (422, audited as rejected)."""
    resource, add, done = entry
    state, specs, typed = form
    if state.ok:
        refused = _refused(session, lambda: add(rec))
        if refused is not None:
            rec = repo.get_course(session, rec.id)
            if isinstance(refused, InputError):
                apply_errors(state, refused, {s.name for s in specs}, typed)
            else:
                state.add(None, str(refused))
    if not state.ok:
        record(session, viewer, "create", resource, None, rec.patient_id,
               outcome="rejected", detail=f"course {rec.id}")  # fmt: skip
        return render(
            request, page, viewer, status=422, rec=rec, fields=specs, state=state, **context
        )
    record(session, viewer, "create", resource, None, rec.patient_id, detail=f"course {rec.id}")
    return _redirect(_patient_url(rec), request, done())


@router.post("/courses/{course_id}/labs/new", response_class=HTMLResponse)
def create_lab(
    request: Request, course_id: int, viewer: PageWriter, form: Posted, session: DbSession
) -> Response:
    rec = _posted_course(session, course_id, viewer, form)
    specs = lab_fields()
    doc, typed = form_to_dict(specs, form)
    baseline = form.get("baseline") == "yes"
    state = FormState(values=typed)
    if "date" in doc and "day" in doc:
        doc.pop("day")  # the date wins; the day is computed from it
    for p in timing_problems(doc, dated=True) if not baseline else []:
        state.add(p.location.field, p.message)

    def add(rec: CourseRecord) -> object:
        return repo.add_labs(
            session, rec, [doc], expected_version=_version(form), user=viewer.username,
            source="form", baseline=baseline,
        )  # fmt: skip

    def done() -> str:
        a = analyte_of(doc["analyte"]).label if doc.get("analyte") else "lab"
        return f"Saved: {a} {typed.get('value')} {typed.get('unit')}."

    return _save_entry(
        request, session, viewer, rec, ("observation", add, done), (state, specs, None),
        "lab_form.html", title="Add lab result", baseline=baseline,
    )  # fmt: skip


@router.get("/courses/{course_id}/events/new", response_class=HTMLResponse)
def new_event(
    request: Request, course_id: int, viewer: PageWriter, session: DbSession, type: str = ""
) -> Response:
    rec = _shown(session, viewer, repo.get_course(session, course_id), "event form")
    fields = event_fields(type) if type in EVENT_TYPES else []
    return render(
        request, "event_form.html", viewer, title="Add event", rec=rec, event_type=type,
        event_types=EVENT_TYPES, fields=fields, state=FormState(),
    )  # fmt: skip


@router.post("/courses/{course_id}/events/new", response_class=HTMLResponse)
def create_event(
    request: Request, course_id: int, viewer: PageWriter, form: Posted, session: DbSession
) -> Response:
    event_type = str(form.get("type") or "")
    rec = _posted_course(session, course_id, viewer, form)
    if event_type not in EVENT_TYPES:
        return _redirect(f"/courses/{rec.id}/events/new")
    specs = event_fields(event_type)
    doc, typed = form_to_dict(specs, form)
    doc["type"] = event_type
    state = FormState(values=typed)
    model, label = EVENT_TYPES[event_type]
    for p in timing_problems(doc, issubclass(model, Dated)):
        state.add(p.location.field, p.message)

    def add(rec: CourseRecord) -> object:
        return repo.add_events(
            session, rec, [doc], expected_version=_version(form), user=viewer.username,
            source="form",
        )  # fmt: skip

    entry = ("event", add, lambda: f"Saved: {label}.")
    return _save_entry(
        request, session, viewer, rec, entry, (state, specs, typed), "event_form.html", title="Add event", event_type=event_type, event_types=EVENT_TYPES,
    )  # fmt: skip


def _delete_item(
    request: Request,
    course_id: int,
    item_id: int,
    kind: str,
    delete: Any,
    done: str,
    viewer: Viewer,
    form: FormData,
    session: Session,
) -> Response:
    """Delete one lab result or event of a course (version-checked) and go back to its data page."""
    rec = _posted_course(session, course_id, viewer, form)
    back = f"/patients/{rec.patient_id}/data?course={rec.id}"
    refused = _refused(
        session,
        lambda: delete(
            session, rec, item_id, expected_version=_version(form), user=viewer.username
        ),
    )
    if refused is not None:
        return _redirect(back, request, str(refused))
    record(session, viewer, "delete", kind, item_id, rec.patient_id)
    return _redirect(back, request, done)


@router.post("/courses/{course_id}/observations/{obs_id}/delete", response_class=HTMLResponse)
def remove_observation(
    request: Request,
    course_id: int,
    obs_id: int,
    viewer: PageWriter,
    form: Posted,
    session: DbSession,
) -> Response:
    return _delete_item(
        request, course_id, obs_id, "observation", repo.delete_observation,
        "Lab result deleted.", viewer, form, session,
    )  # fmt: skip


@router.post("/courses/{course_id}/events/{event_id}/delete", response_class=HTMLResponse)
def remove_event(
    request: Request,
    course_id: int,
    event_id: int,
    viewer: PageWriter,
    form: Posted,
    session: DbSession,
) -> Response:
    return _delete_item(
        request, course_id, event_id, "event", repo.delete_event, "Event deleted.", viewer, form,
        session,
    )  # fmt: skip


@router.get("/help", response_class=HTMLResponse)
def help_page(request: Request, viewer: SignedIn) -> Response:
    return render(
        request, "help.html", viewer, title="Help",
        products=sorted(products().values(), key=lambda p: p.id),
    )  # fmt: skip
