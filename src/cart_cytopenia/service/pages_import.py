"""Uploads and imports: a lab CSV into a course, a course JSON document, and their job pages.

A small file is saved within the request (in the thread pool, like every route). A file larger
than ``background_upload_bytes`` is handed to a background job (``service.jobs``: a worker
process) and the user is sent to its status page, so a 300,000-row export never holds up
anybody else's requests. The work itself is in ``service.uploads``.
Either way the file is checked whole and saved all or none, and the audit log records the
outcome (rejections included) by record id only.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from cart_cytopenia.errors import InputError, Location, ParseError, Problem
from cart_cytopenia.service.deps import (
    DbSession,
    PageWriter,
    Posted,
    ServiceContext,
    SignedIn,
    Viewer,
    check_csrf,
    get_ctx,
    page_router,
    record,
)
from cart_cytopenia.service.jobs import Task
from cart_cytopenia.service.pages import _int, _patient_url, _redirect, render
from cart_cytopenia.service.uploads import audit_rejected, import_course_json, save_lab_csv
from cart_cytopenia.store import courses as repo
from cart_cytopenia.store.errors import ConflictError

router = page_router()


def _upload_bytes(ctx: ServiceContext, upload: Any, what: str) -> tuple[bytes, str]:
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise ParseError(
            f"choose a {what} file to upload",
            [Problem(f"no {what} file was chosen", Location(field="file"))],
        )
    limit = ctx.settings.max_upload_bytes
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise ParseError(
            f"{upload.filename} is larger than {limit:,} bytes",
            [Problem("the file is too large", Location(field="file", source=upload.filename))],
        )
    return data, upload.filename


def _run(request: Request, viewer: Viewer, size: int, job_title: str, back: str, work: Task,
         page: str, **context: Any) -> Response:  # fmt: skip
    """Run ``work`` now (a small file) or as a background job (a large one)."""
    ctx = get_ctx(request)
    if size > ctx.settings.background_upload_bytes:
        job = ctx.jobs.submit(job_title, viewer.user_id, back, work)
        return _redirect(f"/jobs/{job.id}")
    try:
        message, url = ctx.jobs.run_now(work)
    except (InputError, ConflictError) as exc:
        problems = exc.problems if isinstance(exc, InputError) else [Problem(str(exc))]
        summary = exc.message if isinstance(exc, InputError) else str(exc)
        return render(request, page, viewer, status=422, errors=problems, summary=summary,
                      **context)  # fmt: skip
    return _redirect(url, request, message)


@router.get("/courses/{course_id}/labs/upload", response_class=HTMLResponse)
def upload_labs_form(
    request: Request, course_id: int, viewer: PageWriter, session: DbSession
) -> Response:
    rec = repo.get_course(session, course_id)
    record(session, viewer, "read", "course", rec.id, rec.patient_id, detail="upload form")
    return render(request, "upload_labs.html", viewer, title="Upload labs", rec=rec, errors=None)


@router.post("/courses/{course_id}/labs/upload", response_class=HTMLResponse)
def upload_labs(
    request: Request, course_id: int, viewer: PageWriter, form: Posted, session: DbSession
) -> Response:
    check_csrf(form, viewer)
    ctx = get_ctx(request)
    rec = repo.get_course(session, course_id)
    session.commit()  # the job has a transaction of its own
    context = {"title": "Upload labs", "rec": rec}
    try:
        data, filename = _upload_bytes(ctx, form.get("file"), "CSV")
    except InputError as exc:
        audit_rejected(ctx.db, viewer, "observation", rec.patient_id,
                       f"course {rec.id}: CSV upload")  # fmt: skip
        return render(request, "upload_labs.html", viewer, status=422, errors=exc.problems,
                      summary=exc.message, **context)  # fmt: skip
    work = Task(save_lab_csv, (viewer, rec.id, _int(form.get("version")), data, filename))
    back = _patient_url(rec)
    return _run(request, viewer, len(data), f"Lab upload {filename}", back, work,
                "upload_labs.html", **context)  # fmt: skip


@router.get("/import", response_class=HTMLResponse)
def import_form(request: Request, viewer: PageWriter) -> Response:
    return render(request, "import.html", viewer, title="Import a course", errors=None)


@router.post("/import", response_class=HTMLResponse)
def import_course(request: Request, viewer: PageWriter, form: Posted) -> Response:
    check_csrf(form, viewer)
    ctx = get_ctx(request)
    try:
        data, filename = _upload_bytes(ctx, form.get("file"), "course JSON")
    except InputError as exc:
        audit_rejected(ctx.db, viewer, "course", None, "JSON upload")
        return render(request, "import.html", viewer, status=422, title="Import a course",
                      errors=exc.problems, summary=exc.message)  # fmt: skip
    work = Task(import_course_json, (viewer, data, filename))
    return _run(request, viewer, len(data), f"Course import {filename}", "/import", work,
                "import.html", title="Import a course")  # fmt: skip


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str, viewer: SignedIn) -> Response:
    """Where a background upload stands; refreshes itself until it is done."""
    job = get_ctx(request).jobs.get(job_id, viewer.user_id)
    status = 422 if job.state == "failed" else 200
    return render(request, "job.html", viewer, status=status, title=job.title, job=job)
