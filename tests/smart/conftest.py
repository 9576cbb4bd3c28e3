"""A test EHR (authorization + FHIR server on 127.0.0.1) and the app registered with it."""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cart_cytopenia.domain.course import parse_course
from tests.live_server import free_port, serve
from tests.service.conftest import Service, login, make_service, neutropenic_course
from tests.smart.ehr import CLIENT_ID, FakeEhr


def ehr_course_doc() -> dict[str, Any]:
    """Day 10 after axi-cel, ANC 300, no G-CSF: a patient who is not in the store."""
    doc = neutropenic_course()
    doc["patient"]["id"] = "ehr-4711"
    return doc


@dataclass
class Launchable:
    ehr: FakeEhr
    svc: Service
    app_base: str  # where the browser reaches the app ("http://testserver" for the test client)
    patient: str  # the EHR's Patient id of the CAR-T patient

    def launch_url(self, patient: str | None = None, iss: str | None = None) -> str:
        launch = self.ehr.new_launch(patient or self.patient)
        return f"/smart/launch?{httpx.QueryParams(iss=iss or self.ehr.fhir, launch=launch)}"


def make_launchable(
    tmp_path: Path,
    app_port: int | None = None,
    standalone: bool = False,
    client_secret: str | None = None,
) -> Iterator[Launchable]:
    ehr_port = free_port()
    app_base = f"http://127.0.0.1:{app_port}" if app_port else "http://testserver"
    ehr = FakeEhr(
        base=f"http://127.0.0.1:{ehr_port}",
        redirect_uris=[app_base + "/smart/callback"],
        client_secret=client_secret,
    )
    patient = ehr.add_course(parse_course(ehr_course_doc()))
    settings: dict[str, Any] = {"client_id": CLIENT_ID, "issuers": [ehr.fhir], "allow_http": True}
    if client_secret:
        settings["client_secret"] = client_secret
    if standalone:
        settings["standalone_issuer"] = ehr.fhir
        ehr.standalone_patient = patient
    svc = make_service(tmp_path, smart=settings)
    with serve(ehr.app(), port=ehr_port):
        yield Launchable(ehr, svc, app_base, patient)
    svc.db.dispose()


@pytest.fixture
def launchable(tmp_path: Path) -> Iterator[Launchable]:
    yield from make_launchable(tmp_path)


@pytest.fixture
def confidential(tmp_path: Path) -> Iterator[Launchable]:
    yield from make_launchable(tmp_path, client_secret="a-shared-secret-of-the-registration")


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[Launchable]:
    yield from make_launchable(tmp_path, standalone=True)


def continue_url(page: Any) -> str:
    """Where the launch's "opening the EHR" page sends the browser (its meta refresh)."""
    assert page.status_code == 200, page.text
    refresh = page.text.split('<meta http-equiv="refresh" content="0;url=')[1].split('"')[0]
    return html.unescape(refresh)


def authorize(page: Any) -> str:
    """The browser at the EHR's authorization endpoint: where the EHR sends it back to."""
    r = httpx.get(continue_url(page), follow_redirects=False)
    assert r.status_code == 302, r.text
    return r.headers["location"]


def signed_in(svc: Service, user: str = "cleo") -> Any:
    return login(svc.client(), user)
