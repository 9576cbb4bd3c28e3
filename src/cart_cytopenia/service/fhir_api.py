"""FHIR through the API (``/api/v1/fhir``) and the link target of CDS Hooks cards.

- ``POST /api/v1/fhir/import``: a FHIR R4 Bundle (transaction, batch, collection, searchset), a
  single resource or bulk NDJSON in the body. Returns the courses and the import report (every
  resource not used, with the reason; warnings; patients that did not make a course). With
  ``?store=true`` (role clinician) the courses are stored, all or none.
- ``GET /api/v1/courses/{id}/fhir``: a stored course as a FHIR Bundle (the generator).
- ``GET /api/v1/courses/{id}/fhir/assessment?day=N``: grades as Observations and the guidance as
  a RequestGroup of proposals and DetectedIssues.
- ``GET /api/v1/fhir/CodeSystem/cart-cytopenia``: the project's code system.
- ``GET /fhir/patient-page/{fhir_patient_id}``: signed-in users are sent to the patient's page
  (the link on every CDS Hooks card).

Authentication, audit and errors as the rest of the API (``service/api.py``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from cart_cytopenia.errors import ParseError
from cart_cytopenia.io.fhir import (
    assessment_bundle,
    course_to_bundle,
    import_text,
    project_code_system,
)
from cart_cytopenia.service.clinical import snapshot
from cart_cytopenia.service.deps import (
    RAW_BODY,
    DbSession,
    ServiceRoute,
    SignedIn,
    Viewer,
    api_role,
    get_ctx,
    record,
)
from cart_cytopenia.service.problems import ProblemError
from cart_cytopenia.store import courses as repo
from cart_cytopenia.store.errors import NotFoundError

router = APIRouter(tags=["FHIR"], route_class=ServiceRoute)

READ = api_role("read-only")
WRITE = api_role("clinician")
Reader = Annotated[Viewer, Depends(READ)]
Writer = Annotated[Viewer, Depends(WRITE)]
FHIR_JSON = "application/fhir+json"


def _fhir(doc: Any) -> Response:
    return Response(json.dumps(doc, ensure_ascii=False), media_type=FHIR_JSON)


FHIR_OUT: dict[int | str, dict[str, Any]] = {200: {"content": {FHIR_JSON: {}}}}
IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            media: {"schema": {"type": "string", "minLength": 1}}
            for media in (FHIR_JSON, "application/json", "application/x-ndjson")
        },
    }
}


@router.post(
    "/api/v1/fhir/import",
    summary="Import FHIR R4 (Bundle, resource or NDJSON) into courses, with a report",
    openapi_extra=IMPORT_BODY,
    responses={
        200: {"description": "The courses (or those stored) and the import report"},
        422: {"description": "No course could be made: the report says why"},
    },
)
def fhir_import(
    viewer: Reader,
    session: DbSession,
    store: bool = Query(False, description="Store the courses (all or none); role clinician"),
    body: bytes = RAW_BODY,
) -> Response:
    if not body.strip():
        raise ParseError("the request body is empty: send a FHIR Bundle or NDJSON")
    result = import_text(body, "request body")
    out: dict[str, Any] = {"report": result.report()}
    if store:
        if not viewer.can("clinician"):
            raise ProblemError("forbidden", "storing courses needs the role 'clinician'")
        stored = []
        for course in result.courses:
            rec = repo.import_course(session, course, user=viewer.username, source="fhir")
            record(
                session, viewer, "create", "course", rec.id, rec.patient_id, detail="FHIR import"
            )
            stored.append(
                {"course_id": rec.id, "patient_id": rec.patient_id, "pseudonym": course.patient.id}
            )
        out["stored"] = stored
    else:
        out["courses"] = [c.model_dump(mode="json", exclude_none=True) for c in result.courses]
    status = 200 if result.courses or not result.failed else 422
    return Response(
        json.dumps(out, ensure_ascii=False), status_code=status, media_type="application/json"
    )


@router.get(
    "/api/v1/courses/{course_id}/fhir",
    summary="A stored course as a FHIR R4 Bundle",
    response_class=Response,
    responses=FHIR_OUT,
)
def course_fhir(
    course_id: int,
    viewer: Reader,
    session: DbSession,
    bundle_type: Literal["collection", "transaction", "batch"] = Query("collection", alias="type"),
) -> Response:
    rec = repo.get_course(session, course_id)
    course = repo.load_course(rec)
    record(session, viewer, "export", "course", rec.id, rec.patient_id, detail="FHIR Bundle")
    return _fhir(course_to_bundle(course, bundle_type))


@router.get(
    "/api/v1/courses/{course_id}/fhir/assessment",
    summary="Grades (Observations) and guidance (RequestGroup, DetectedIssue) as a FHIR Bundle",
    response_class=Response,
    responses=FHIR_OUT,
)
def assessment_fhir(
    course_id: int,
    request: Request,
    viewer: Reader,
    session: DbSession,
    day: int | None = Query(None, ge=0, le=3650),
) -> Response:
    ctx = get_ctx(request)
    rec = repo.get_course(session, course_id)
    snap = snapshot(rec, ctx.today(), ctx.clinical, ctx.cache, day=day)
    record(
        session,
        viewer,
        "export",
        "assessment",
        rec.id,
        rec.patient_id,
        detail=f"FHIR day {snap.day}",
    )
    return _fhir(assessment_bundle(snap.course, snap.assessment, snap.guidance.items()))


@router.get(
    "/api/v1/fhir/CodeSystem/cart-cytopenia",
    summary="The cart-cytopenia code system (FHIR CodeSystem)",
    response_class=Response,
    responses=FHIR_OUT,
)
def code_system(viewer: Reader) -> Response:
    return _fhir(project_code_system())


@router.get("/fhir/patient-page/{fhir_patient_id}", include_in_schema=False)
def patient_page(fhir_patient_id: str, viewer: SignedIn, session: DbSession) -> Response:
    """The patient's page for a FHIR patient id (the CDS Hooks card link)."""
    patient = repo.find_patient(session, fhir_patient_id)
    if patient is None:
        raise NotFoundError(
            "this patient is not in cart-cytopenia yet; import the record (Import page or "
            "POST /api/v1/fhir/import) to follow the course here"
        )
    return RedirectResponse(f"/patients/{patient.id}", status_code=303)
