"""A service on a fresh SQLite store, with one account per role and demo courses."""

from __future__ import annotations

import datetime as dt
import secrets
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette >= 1.x prefers the httpx2 package for its test client; httpx works the same
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from cart_cytopenia.cli.serve_cmd import shift_course
from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.service.app import create_app
from cart_cytopenia.service.config import ServiceSettings
from cart_cytopenia.store import accounts
from cart_cytopenia.store import courses as repo
from cart_cytopenia.store.db import Database
from cart_cytopenia.store.migrate import upgrade
from tests.conftest import EXAMPLES, course_dict

TODAY = dt.date(2024, 6, 1)
PASSWORD = "a long test passphrase"


@dataclass
class Service:
    app: object
    db: Database
    settings: ServiceSettings
    tokens: dict[str, str]
    courses: dict[str, int]
    patients: dict[str, int]

    def client(self) -> TestClient:
        return TestClient(self.app, base_url="http://testserver", follow_redirects=False)  # type: ignore[arg-type]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def neutropenic_course() -> dict:
    """Day 10 after axi-cel, ANC 300, CRS resolved, no G-CSF (the issue's worklist example)."""
    labs = [(d, v) for d, v in ((1, 900), (3, 200), (5, 150), (7, 200), (9, 280), (10, 300))]
    events = [
        {"type": "crs", "start_day": 1, "end_day": 4, "max_grade": 2},
        *(
            {"type": "medication", "drug": drug, "start_day": 0, "purpose": "prophylaxis"}
            for drug in ("levofloxacin", "fluconazole", "acyclovir")
        ),
    ]
    doc = course_dict(labs, events=events)
    doc["patient"]["id"] = "wl-neutropenic"
    doc["infusion_date"] = (TODAY - dt.timedelta(days=10)).isoformat()
    doc["labs"] += [
        {"day": 10, "analyte": "platelets", "value": 60, "unit": "10*3/uL"},
        {"day": 10, "analyte": "hb", "value": 9.1, "unit": "g/dL"},
    ]
    return doc


def make_service(tmp_path: Path, **over: object) -> Service:
    values: dict[str, object] = {
        "environment": "production",
        "secret_key": secrets.token_urlsafe(48),
        "database_url": f"sqlite:///{tmp_path / 'service.db'}",
        "cookie_secure": False,
        "today": TODAY,
        "login_max_failures": 3,
    }
    values.update(over)
    settings = ServiceSettings.model_validate(values)
    db = Database(settings.effective_database_url, pool=settings.pool_options())
    upgrade(db)
    tokens: dict[str, str] = {}
    course_ids: dict[str, int] = {}
    patient_ids: dict[str, int] = {}
    with db.transaction() as s:
        for role, name in (("admin", "ada"), ("clinician", "cleo"), ("read-only", "rita")):
            user = accounts.create_user(s, name, PASSWORD, role, name.capitalize())
            tokens[role], _ = accounts.create_api_token(s, user, "tests")
        case1 = parse_course((EXAMPLES / "review-case-1.json").read_text())
        for course in (shift_course(case1, 60, TODAY), parse_course(neutropenic_course())):
            rec = repo.import_course(s, course, user="fixture", source="json")
            course_ids[course.patient.id] = rec.id
            patient_ids[course.patient.id] = rec.patient_id
    app = create_app(settings, database=db)
    return Service(app, db, settings, tokens, course_ids, patient_ids)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = make_service(tmp_path)
    yield svc
    svc.db.dispose()


def login(client: TestClient, username: str, password: str = PASSWORD) -> TestClient:
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    r = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token, "next": "/worklist"},
    )
    assert r.status_code == 303, r.text
    return client


def csrf_of(html: str) -> str:
    return html.split('name="csrf_token" value="')[1].split('"')[0]
