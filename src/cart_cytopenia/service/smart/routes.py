"""The SMART on FHIR launch pages: launch, callback, the EHR patient's page, reload and save.

Every route needs a signed-in cart-cytopenia user (the login page comes first and then the
launch goes on); the launch, its callback and the EHR patient are bound to that user. Routes
that talk to the EHR are plain ``def`` (run in the worker thread pool), and the two POSTs
check the CSRF token on the event loop, then do their work in the thread pool. URLs carry no
patient data (the EHR patient's page is addressed by a random id); tokens never leave the server.
"""

from __future__ import annotations

import time
from dataclasses import astuple, dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from cart_cytopenia.errors import EhrAccessError, InputError, TokenRefusedError
from cart_cytopenia.io.fhir_server_source import EhrCourse, read_course
from cart_cytopenia.service.cds_hooks import prefetch_templates
from cart_cytopenia.service.clinical import unsaved_snapshot
from cart_cytopenia.service.deps import (
    DbSession,
    PageReader,
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
from cart_cytopenia.service.pages import _redirect, clinical_context, render
from cart_cytopenia.service.smart import oauth
from cart_cytopenia.service.smart.launches import (
    EhrPatient,
    LaunchStore,
    PendingLaunch,
    new_context_id,
)
from cart_cytopenia.service.smart.settings import SmartSettings
from cart_cytopenia.store import courses as repo
from cart_cytopenia.store.errors import ConflictError

router = page_router("/smart")


def new_launch_store(settings: SmartSettings) -> LaunchStore:
    """The app's store of launches and opened EHR patients (``app.state.smart_launches``)."""
    return LaunchStore(settings.launch_minutes * 60, settings.context_minutes * 60)


def launch_store(request: Request) -> LaunchStore:
    store: LaunchStore = request.app.state.smart_launches
    return store


STORE = Depends(launch_store)
Store = Annotated[LaunchStore, STORE]


@dataclass
class EhrLaunch:
    """The query of an EHR launch (SMART App Launch): the EHR's FHIR base URL and its launch."""

    iss: str = ""
    launch: str = ""


Launch = Annotated[EhrLaunch, Depends()]


@dataclass
class AuthorizationReply:
    """The query of the authorization server's redirect back to ``/smart/callback``."""

    state: str = ""
    code: str = ""
    error: str = ""
    error_description: str = ""


Reply = Annotated[AuthorizationReply, Depends()]


def patient_queries(patient_id: str) -> dict[str, str]:
    """The CDS Hooks prefetch queries, for one patient (the same data the cards are based on)."""
    pid = quote(patient_id, safe="")
    return {k: q.replace("{{context.patientId}}", pid) for k, q in prefetch_templates().items()}


def _refused(request: Request, viewer: Viewer, status: int, title: str, detail: str) -> Response:
    return render(request, "error.html", viewer, status=status, title=title, detail=detail)


def _redirect_uri(request: Request, settings: SmartSettings) -> str:
    base = settings.public_url or str(request.base_url)
    return base.rstrip("/") + "/smart/callback"


def _read(settings: SmartSettings, ehr_iss: str, token: dict[str, Any], pid: str) -> EhrCourse:
    return read_course(
        ehr_iss,
        str(token["access_token"]),
        pid,
        patient_queries(pid),
        allow_http=settings.allow_http,
        timeout=settings.timeout_seconds,
        max_pages=settings.max_pages,
    )


def _read_fresh(
    settings: SmartSettings, config: oauth.SmartConfiguration, token: dict[str, Any], pid: str
) -> tuple[EhrCourse, dict[str, Any]]:
    """The course read with ``token``, refreshed first when it has expired, and once more when
    the FHIR server refuses it (revoked early); returns the token used."""
    if _expired(token):
        token = oauth.refresh(settings, config, token)
    try:
        return _read(settings, config.iss, token, pid), token
    except TokenRefusedError:
        if not token.get("refresh_token"):
            raise
    token = oauth.refresh(settings, config, token)
    return _read(settings, config.iss, token, pid), token


def _expired(token: dict[str, Any], leeway: float = 30) -> bool:
    expires_at = token.get("expires_at")
    return expires_at is not None and float(expires_at) - leeway <= time.time()


# Why a launch is refused before anything is sent to the EHR (the page's text).
NOT_SET_UP = (
    "This cart-cytopenia has no SMART on FHIR client registration "
    "(settings [smart] client_id and issuers)."
)
NO_STANDALONE = (
    "No EHR is set for the standalone launch ([smart] standalone_issuer); "
    "open cart-cytopenia from the EHR instead."
)
ISSUER_NOT_ALLOWED = (
    "The EHR that launched cart-cytopenia (its 'iss') is not on this installation's list of "
    "allowed EHRs; nothing was sent to it. Ask the administrator to add it to [smart] issuers "
    "if it should be."
)
NO_LAUNCH = (
    "An EHR launch needs the EHR's 'launch' parameter; open cart-cytopenia from the EHR again."
)


def _start(
    request: Request,
    viewer: Viewer,
    session: Session,
    store: LaunchStore,
    flow: str,
    iss: str,
    launch: str,
) -> Response:
    """Check the issuer, discover its endpoints and send the browser to its authorization."""
    settings = get_ctx(request).settings.smart
    if not settings.enabled:
        return _refused(request, viewer, 404, "SMART launch is not set up", NOT_SET_UP)
    if flow == "standalone" and not iss:
        return _refused(request, viewer, 404, "Standalone launch is not set up", NO_STANDALONE)
    allowed = settings.allowed(iss)
    if allowed is None:
        record(session, viewer, "read", "smart-launch", None, outcome="refused",
               detail=f"issuer not allow-listed: {iss[:180]}")  # fmt: skip
        return _refused(request, viewer, 400, "Launch refused", ISSUER_NOT_ALLOWED)
    if flow == "ehr" and not launch:
        return _refused(request, viewer, 400, "Launch refused", NO_LAUNCH)
    try:
        config = oauth.discover(allowed, flow, settings)
        redirect_uri = _redirect_uri(request, settings)
        auth = oauth.authorization_request(settings, config, flow, redirect_uri, launch)
    except EhrAccessError as exc:
        return _refused(request, viewer, 502, "The EHR cannot be used", str(exc))
    store.add_pending(
        PendingLaunch(auth.state, auth.code_verifier, viewer.user_id, flow, config, redirect_uri)
    )
    # a page that moves on by itself, not a redirect: a launch that had to pass the sign-in
    # form would otherwise be stopped by the CSP form-action 'self' on the way to the EHR
    return render(request, "smart_continue.html", viewer, title="Opening the EHR",
                  url=auth.url, issuer=allowed)  # fmt: skip


@router.get("/launch", response_class=HTMLResponse)
def ehr_launch(
    request: Request, viewer: PageReader, session: DbSession, ehr: Launch, store: Store
) -> Response:
    """EHR launch: the EHR opens this URL with its FHIR base URL ('iss') and 'launch'."""
    return _start(request, viewer, session, store, "ehr", ehr.iss, ehr.launch)


@router.get("/standalone", response_class=HTMLResponse)
def standalone_launch(
    request: Request, viewer: PageReader, session: DbSession, store: Store
) -> Response:
    """Standalone launch: the user picks the patient at the EHR's authorization server."""
    issuer = get_ctx(request).settings.smart.standalone_issuer
    return _start(request, viewer, session, store, "standalone", issuer, "")


@router.get("/callback", response_class=HTMLResponse)
def callback(
    request: Request, viewer: PageReader, session: DbSession, reply: Reply, store: Store
) -> Response:
    """The authorization server sends the browser back here with a code (or an error)."""
    state, code, error, error_description = astuple(reply)
    launch = store.take_pending(state, viewer.user_id) if state else None
    if launch is None:
        record(session, viewer, "read", "smart-launch", None, outcome="refused",
               detail="unknown, used or expired state")  # fmt: skip
        return _refused(request, viewer, 400, "Launch not recognised",
                        "This answer from the EHR does not belong to a launch started here "
                        "by you in the last minutes (unknown, used or expired 'state'). Open "
                        "cart-cytopenia from the EHR again.")  # fmt: skip
    if error or not code:
        why = error or "no authorization code"
        detail = f"{why}: {error_description[:300]}" if error_description else why
        record(session, viewer, "read", "smart-launch", None, outcome="refused", detail=why[:200])
        return _refused(request, viewer, 403, "The EHR did not authorize the launch", detail)
    try:
        ehr = _complete(get_ctx(request), launch, code)
    except EhrAccessError as exc:
        record(session, viewer, "read", "smart-launch", None, outcome="failed",
               detail=str(exc)[:255])  # fmt: skip
        return _refused(request, viewer, 502, "The EHR launch failed", str(exc))
    except InputError as exc:
        record(session, viewer, "read", "smart-launch", None, outcome="rejected",
               detail="the EHR record does not make a course")  # fmt: skip
        return _refused(request, viewer, 422, "No CAR-T course to show", str(exc))
    store.open(ehr)
    record(session, viewer, "read", "ehr-patient", ehr.patient_id[:64], outcome="ok",
           detail=_audit_detail(ehr, launch.flow))  # fmt: skip
    return _redirect(f"/smart/patients/{ehr.id}")


@router.get("/patients/{context_id}", response_class=HTMLResponse)
def ehr_patient_page(
    request: Request,
    context_id: str,
    viewer: PageReader,
    session: DbSession,
    store: Store,
    day: int | None = None,
) -> Response:
    """The patient page of the course read from the EHR (not in the store)."""
    ehr = store.patient(context_id, viewer.user_id)
    if ehr is None:
        return _gone(request, viewer)
    ctx = get_ctx(request)
    snap = unsaved_snapshot(
        ehr.read.course, ctx.today(), ctx.clinical, None if day is None else max(0, day)
    )
    stored = repo.find_patient(session, ehr.patient_id)
    return render(
        request, "patient.html", viewer, title=f"Patient {ehr.patient_id} (EHR)",
        rec=None, ehr=ehr, stored_patient=stored, actions=[], other_courses=[],
        read_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ehr.read_at)),
        **clinical_context(request, snap),
    )  # fmt: skip


def _opened_patient(
    request: Request, context_id: str, viewer: SignedIn, form: Posted
) -> EhrPatient | None:
    """The user's open EHR patient a form was posted for, once the form's CSRF token is checked
    (None: the user has no such patient open, or not any more)."""
    check_csrf(form, viewer)
    return launch_store(request).patient(context_id, viewer.user_id)


Opened = Annotated[EhrPatient | None, Depends(_opened_patient)]


@router.post("/patients/{context_id}/reload", response_class=HTMLResponse)
def reload(request: Request, viewer: PageReader, session: DbSession, ehr: Opened) -> Response:
    """Read the patient's record from the EHR again (refreshing an expired access token)."""
    return _gone(request, viewer) if ehr is None else _reload(request, session, viewer, ehr)


@router.post("/patients/{context_id}/save", response_class=HTMLResponse)
def save(request: Request, viewer: PageWriter, session: DbSession, ehr: Opened) -> Response:
    """Store the course read from the EHR (a new patient, or a new course of one)."""
    return _gone(request, viewer) if ehr is None else _save(request, session, viewer, ehr)


def _complete(ctx: ServiceContext, launch: PendingLaunch, code: str) -> EhrPatient:
    """Code -> token (PKCE) -> the patient in context -> the course read from the EHR."""
    settings = ctx.settings.smart
    token = oauth.exchange_code(
        settings, launch.config, launch.redirect_uri, code, launch.code_verifier
    )
    patient_id = token.get("patient")
    if not isinstance(patient_id, str) or not patient_id.strip():
        raise EhrAccessError(
            "the EHR gave no patient context with the token ('patient'); cart-cytopenia opens "
            "one patient at a time and never guesses which"
        )
    fhir_user = None
    if token.get("id_token"):
        claims = oauth.verify_id_token(settings, launch.config, str(token["id_token"]))
        fhir_user = str(claims["fhirUser"]) if claims.get("fhirUser") else None
    if "expires_in" in token and "expires_at" not in token:
        token["expires_at"] = int(time.time()) + int(token["expires_in"])
    read, token = _read_fresh(settings, launch.config, token, patient_id)
    return EhrPatient(
        new_context_id(), launch.user_id, launch.config, token, patient_id, fhir_user, read,
        time.time(),
    )  # fmt: skip


def _reload(request: Request, session: Session, viewer: Viewer, ehr: EhrPatient) -> Response:
    settings = get_ctx(request).settings.smart
    try:
        with ehr.lock:
            ehr.read, ehr.token = _read_fresh(settings, ehr.config, ehr.token, ehr.patient_id)
            ehr.read_at = time.time()
    except (EhrAccessError, InputError) as exc:
        return _redirect(f"/smart/patients/{ehr.id}", request, f"Not read again: {exc}")
    record(session, viewer, "read", "ehr-patient", ehr.patient_id[:64], detail="reload")
    return _redirect(f"/smart/patients/{ehr.id}", request, "Read again from the EHR.")


def _save(request: Request, session: Session, viewer: Viewer, ehr: EhrPatient) -> Response:
    try:
        rec = repo.import_course(session, ehr.read.course, user=viewer.username, source="fhir")
    except ConflictError as exc:
        session.rollback()
        return _redirect(f"/smart/patients/{ehr.id}", request, f"Not saved: {exc}")
    record(session, viewer, "create", "course", rec.id, rec.patient_id, detail="SMART launch")
    return _redirect(
        f"/patients/{rec.patient_id}?course={rec.id}", request,
        f"Saved the EHR course of {rec.patient.pseudonym} to cart-cytopenia.",
    )  # fmt: skip


def _gone(request: Request, viewer: Viewer) -> Response:
    minutes = get_ctx(request).settings.smart.context_minutes
    return _refused(request, viewer, 404, "EHR patient no longer open",
                    f"A patient opened from the EHR stays open for {minutes} minutes, for the "
                    "user who opened it, in this server process. Open cart-cytopenia from the "
                    "EHR again.")  # fmt: skip


def _audit_detail(ehr: EhrPatient, flow: str) -> str:
    who = f", fhirUser {ehr.fhir_user}" if ehr.fhir_user else ""
    return f"SMART {flow} launch from {ehr.config.iss}{who}"[:255]
