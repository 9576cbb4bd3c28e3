"""Web service commands: ``serve``, ``db upgrade|current``, ``users ...``, ``tokens create``,
``demo load``.

Settings come from ``CART_CYTOPENIA_*`` environment variables or ``--config FILE`` (TOML); see
docs/deployment.md.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import typer
from sqlalchemy.orm import Session

from cart_cytopenia.domain.course import Course, parse_course
from cart_cytopenia.errors import InputError, SettingsError
from cart_cytopenia.service.bulk_load import bulk_load, load_job
from cart_cytopenia.service.config import ServiceSettings, load_service_settings
from cart_cytopenia.store import accounts
from cart_cytopenia.store import courses as repo
from cart_cytopenia.store.db import Database
from cart_cytopenia.store.migrate import current_revision, downgrade, head_revision, upgrade
from cart_cytopenia.store.models import User

CONFIG = typer.Option(
    None, "--config", help="Service settings file (TOML); default: $CART_CYTOPENIA_CONFIG"
)
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
# days at which the demo shows each synthetic patient "today": every phase and its decisions
DEMO_DAYS = (3, 8, 11, 14, 19, 24, 29, 35, 42, 50, 60, 75, 90, 110, 140, 180)
REVIEW_CASE_DAYS = {1: 60, 2: 120, 3: 90}
_DATE_KEYS = ("date", "start_date", "end_date", "last_followup_date", "birth_date")


def _settings(config: Path | None, **over: Any) -> ServiceSettings:
    """The service settings; passwords set from the command line get their argon2 cost."""
    settings = load_service_settings(config, **over)
    accounts.configure_hashing(
        settings.hash_parameters(), settings.hash_concurrency or os.cpu_count() or 2
    )
    return settings


def _db(settings: ServiceSettings) -> Database:
    return Database(settings.effective_database_url, pool=settings.pool_options())


def _strip_dates(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_dates(v) for k, v in obj.items() if k not in _DATE_KEYS}
    if isinstance(obj, list):
        return [_strip_dates(v) for v in obj]
    return obj


def shift_course(course: Course, day: int, today: dt.date) -> Course:
    """The course as known on ``day`` (later data left out, later ends open), moved in time so
    that ``day`` is ``today``."""
    view = course.as_of(day)
    doc = _strip_dates(view.model_dump(mode="json", exclude_none=True))
    doc["infusion_date"] = (today - dt.timedelta(days=day)).isoformat()
    for ev in doc.get("events", []):
        if ev.get("end_day") is not None and ev["end_day"] > day:
            del ev["end_day"]  # on that day its end was not yet known: ongoing
    if view.lymphodepletion is not None and "lymphodepletion" in doc:
        doc["lymphodepletion"]["start_day"] = view.ld_start_day
    return parse_course(doc, source=f"demo course {course.patient.id}")


def shift_document(doc: dict[str, Any], day: int, today: dt.date) -> dict[str, Any]:
    """``shift_course`` on a course document given in days only (no dates but the infusion
    date, as the synthetic generator writes them), before it is validated: the same course
    with one validation instead of two (tests/service/test_serve_cmd.py compares them)."""

    def start(ev: dict[str, Any]) -> Any:
        return ev.get("day") if "day" in ev else ev.get("start_day")

    out = dict(doc)
    out["labs"] = [lab for lab in doc.get("labs", []) if lab["day"] <= day]
    out["events"] = [
        {k: v for k, v in ev.items() if not (k == "end_day" and v is not None and v > day)}
        for ev in doc.get("events", [])
        if start(ev) is not None and start(ev) <= day
    ]
    if out.get("last_followup_day") is not None and out["last_followup_day"] > day:
        del out["last_followup_day"]  # not yet known on that day
    out["infusion_date"] = (today - dt.timedelta(days=day)).isoformat()
    return out


DEMO_BLOCK = 1_000  # above this many synthetic courses, each worker draws blocks of this many
# a demonstration store's largest size (bulk load: 10,000 courses in under a minute); checked
# before the store is emptied (99999999999 emptied it, then took all memory and was killed)
DEMO_MAX = 100_000


def demo_documents(n: int, seed: int, today: dt.date) -> list[dict[str, Any]]:
    """The review's three cases plus ``n`` synthetic courses, each at a different day, as
    course documents (not yet validated)."""
    return [doc for part in demo_sources(n, seed, today) for doc in _docs(part)]


def _docs(part: list[dict[str, Any]] | Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return part() if callable(part) else part


def demo_sources(
    n: int, seed: int, today: dt.date
) -> list[list[dict[str, Any]] | Callable[[], list[dict[str, Any]]]]:
    """The demo's courses in parts for ``bulk_load``: the review cases, then the synthetic
    courses, drawn here from one pool (up to ``DEMO_BLOCK``), else drawn by the workers, block
    by block (a picklable call each)."""
    cases: list[dict[str, Any]] = []
    for k, day in REVIEW_CASE_DAYS.items():
        path = EXAMPLES / f"review-case-{k}.json"
        if path.exists():
            case = shift_course(parse_course(path.read_text(), str(path)), day, today)
            cases.append(case.model_dump(mode="json", exclude_none=True))
    if n <= 0:
        return [cases]
    if n <= DEMO_BLOCK:
        return [cases, demo_block(seed, 0, n, 0, today)]
    counts = [min(DEMO_BLOCK, n - lo) for lo in range(0, n, DEMO_BLOCK)]
    return [cases] + [
        partial(demo_block, seed, j + 1, count, j * DEMO_BLOCK, today)
        for j, count in enumerate(counts)
    ]


def demo_block(seed: int, block: int, n: int, first: int, today: dt.date) -> list[dict[str, Any]]:
    """``n`` synthetic courses of pool ``block``, the ``i``-th shown on day ``DEMO_DAYS[(first
    + i) % 16]`` (or its last lab day, if earlier)."""
    from cart_cytopenia.cohort.synthetic_courses import generate_course_documents

    out = []
    for i, doc in enumerate(generate_course_documents(n, seed, block)):
        last = max((lab["day"] for lab in doc.get("labs", [])), default=0)
        day = min(DEMO_DAYS[(first + i) % len(DEMO_DAYS)], max(1, last))
        out.append(shift_document(doc, day, today))
    return out


def demo_courses(n: int, seed: int, today: dt.date) -> list[Course]:
    """The review's three cases plus ``n`` synthetic courses, each at a different day."""
    return [
        parse_course(doc, source=f"demo course {doc['patient']['id']}")
        for doc in demo_documents(n, seed, today)
    ]


def _serve(settings: ServiceSettings, migrate: bool) -> None:
    import uvicorn

    from cart_cytopenia.service.app import create_app

    settings.check_secret()
    db = _db(settings)
    if migrate:
        upgrade(db)
    app = create_app(settings, database=db)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    typer.echo(
        f"cart-cytopenia serving on http://{settings.host}:{settings.port} "
        f"({settings.environment}, database: {db.backend})"
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,  # the app logs route templates only (no patient data in logs)
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_level=settings.log_level,
        server_header=False,
    )


def register(app: typer.Typer) -> None:
    """The web service's commands: ``serve``, ``db``, ``users``, ``demo``."""
    _register_serve(app)
    app.add_typer(_db_commands(), name="db")
    app.add_typer(_users_commands(), name="users")
    app.add_typer(_demo_commands(), name="demo")


def _password(given: str | None) -> str:
    """A new password: given, else $CART_CYTOPENIA_NEW_PASSWORD, standard input or a prompt."""
    if given:
        return given
    env = os.environ.get("CART_CYTOPENIA_NEW_PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise typer.BadParameter("the passwords differ")
    return first


@contextmanager
def _account(config: Path | None, username: str) -> Iterator[tuple[Session, User]]:
    """A transaction on the store with the account ``username`` (refused when there is none)."""
    db = _db(_settings(config))
    with db.transaction() as s:
        u = accounts.get_user_by_name(s, username)
        if u is None:
            raise InputError(f"no user {username!r}")
        yield s, u


def _register_serve(app: typer.Typer) -> None:
    @app.command(name="serve")
    def serve(
        host: str | None = typer.Option(None, help="Address to listen on (default 127.0.0.1)"),
        port: int | None = typer.Option(None, help="Port (default 8000)"),
        config: Path | None = CONFIG,
        migrate: bool = typer.Option(
            False, "--migrate", help="Apply database migrations before serving"
        ),
    ) -> None:
        """Start the web app (worklist, patient pages, JSON API under /api/v1)."""
        _serve(_settings(config, host=host, port=port), migrate)


def _db_commands() -> typer.Typer:
    db_app = typer.Typer(help="Database schema (Alembic migrations shipped in the package).")

    @db_app.command(name="upgrade")
    def db_upgrade(config: Path | None = CONFIG) -> None:
        """Create or update the schema to the newest revision."""
        s = _settings(config)
        db = _db(s)
        before = current_revision(db)
        upgrade(db)
        typer.echo(f"database ({db.backend}): {before or 'empty'} -> {current_revision(db)}")

    @db_app.command(name="current")
    def db_current(config: Path | None = CONFIG) -> None:
        """Show the schema revision of the database and the one this version needs."""
        db = _db(_settings(config))
        typer.echo(
            f"database: {current_revision(db) or 'empty'}; this version needs {head_revision()}"
        )

    return db_app


def _users_commands() -> typer.Typer:
    users_app = typer.Typer(help="Accounts: roles admin, clinician, read-only.")

    @users_app.command(name="create")
    def users_create(
        username: str,
        role: str = typer.Option("clinician", help="admin, clinician or read-only"),
        display_name: str = typer.Option("", help="Name shown in the app"),
        password: str | None = typer.Option(
            None,
            help="Password (else $CART_CYTOPENIA_NEW_PASSWORD, standard input, or a prompt)",
        ),
        config: Path | None = CONFIG,
    ) -> None:
        """Create an account."""
        db = _db(_settings(config))
        with db.transaction() as s:
            u = accounts.create_user(s, username, _password(password), role, display_name)
            typer.echo(f"created {u.username} ({u.role})")

    @users_app.command(name="list")
    def users_list(config: Path | None = CONFIG) -> None:
        """List accounts."""
        db = _db(_settings(config))
        with db.session() as s:
            for u in accounts.list_users(s):
                state = "active" if u.active else "deactivated"
                typer.echo(f"{u.username}\t{u.role}\t{state}\t{u.display_name}")

    @users_app.command(name="set-role")
    def users_set_role(username: str, role: str, config: Path | None = CONFIG) -> None:
        """Change the role of an account."""
        with _account(config, username) as (s, u):
            accounts.set_role(s, u, role)
        typer.echo(f"{username}: role {role}")

    @users_app.command(name="deactivate")
    def users_deactivate(username: str, config: Path | None = CONFIG) -> None:
        """Deactivate an account (its sessions end; its API tokens stop working)."""
        with _account(config, username) as (s, u):
            accounts.set_active(s, u, False)
        typer.echo(f"{username}: deactivated")

    @users_app.command(name="password")
    def users_password(
        username: str, password: str | None = typer.Option(None), config: Path | None = CONFIG
    ) -> None:
        """Set a new password (ends the account's sessions)."""
        with _account(config, username) as (s, u):
            accounts.set_password(s, u, _password(password))
        typer.echo(f"{username}: password changed")

    @users_app.command(name="token")
    def users_token(
        username: str,
        name: str = typer.Option("cli", help="What the token is for"),
        days: int = typer.Option(365, help="Days until it expires"),
        config: Path | None = CONFIG,
    ) -> None:
        """Create an API token for an account and print it (shown once)."""
        with _account(config, username) as (s, u):
            token, _ = accounts.create_api_token(s, u, name, days)
        typer.echo(token)

    return users_app


def _demo_commands() -> typer.Typer:
    demo_app = typer.Typer(help="Demonstration data for the web app (development only).")

    @demo_app.command(name="load")
    def demo_load(
        n: int = typer.Option(
            24,
            min=0,
            max=DEMO_MAX,
            help=f"Synthetic courses besides the review's three cases (0 to {DEMO_MAX:,})",
        ),
        seed: int = typer.Option(20231, help="Seed of the synthetic cohort"),
        reset: bool = typer.Option(False, help="Empty the store first (development only)"),
        username: str = typer.Option("demo", help="Demo account to create"),
        workers: int | None = typer.Option(
            None, min=1, help="Worker processes validating and grading the courses (default: cores)"
        ),
        config: Path | None = CONFIG,
    ) -> None:
        """Load the review cases and a synthetic cohort into the store, create a demo account."""
        s = _settings(config)
        if not s.development:
            raise SettingsError(
                "demo data goes only into a development store: set "
                "CART_CYTOPENIA_ENVIRONMENT=development"
            )
        db = _db(s)
        if reset:
            downgrade(db, "base")
        upgrade(db)
        today = s.today or dt.date.today()
        with db.session() as session:
            if repo.count_patients(session) and not reset:
                raise InputError(
                    "the store already holds patients; use --reset to replace them with demo data"
                )
        parts = demo_sources(n, seed, today)
        job = load_job(s.clinical_settings(), today, "demo-loader", "demo")
        done = bulk_load(db, parts, job, workers=workers)
        password = secrets.token_urlsafe(9)
        with db.transaction() as session:
            existing = accounts.get_user_by_name(session, username)
            if existing is None:
                accounts.create_user(session, username, password, "admin", "Demo administrator")
            else:
                accounts.set_password(session, existing, password)
                accounts.set_active(session, existing, True)
        typer.echo(
            f"loaded {done.courses} courses (3 review cases + {n} synthetic; {done.active} "
            f"active, their worklist rows computed) for {today} in {done.seconds:.1f} s"
        )
        typer.echo(json.dumps({"username": username, "password": password}))
        typer.echo(f"demo account: user name '{username}', password '{password}'")

    return demo_app
