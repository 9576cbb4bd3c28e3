"""The web service commands (cli/serve_cmd.py): db, users, tokens, demo load, serve refusal."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from typer.testing import CliRunner

from cart_cytopenia.cli.main import app
from cart_cytopenia.cli.serve_cmd import shift_course
from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.store import accounts
from cart_cytopenia.store import courses as repo
from cart_cytopenia.store.db import Database
from cart_cytopenia.store.migrate import head_revision
from tests.conftest import EXAMPLES


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "CART_CYTOPENIA_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "CART_CYTOPENIA_SECRET_KEY": "",
        "CART_CYTOPENIA_ENVIRONMENT": "production",
        "CART_CYTOPENIA_CONFIG": "",
        **extra,
    }


def test_db_users_and_tokens(tmp_path: Path) -> None:
    runner = CliRunner()
    env = _env(tmp_path)
    r = runner.invoke(app, ["db", "current"], env=env)
    assert "database: empty" in r.output
    r = runner.invoke(app, ["db", "upgrade"], env=env)
    assert r.exit_code == 0, r.output
    assert f"empty -> {head_revision()}" in r.output
    r = runner.invoke(
        app,
        ["users", "create", "boss", "--role", "admin"],
        env={**env, "CART_CYTOPENIA_NEW_PASSWORD": "a long admin passphrase"},
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app, ["users", "create", "doc", "--role", "clinician"], input="another long one\n", env=env
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["users", "list"], env=env)
    assert "boss\tadmin\tactive" in r.output
    r = runner.invoke(app, ["users", "token", "doc", "--name", "feed"], env=env)
    token = r.output.strip()
    assert token.startswith("cct_")
    db = Database(env["CART_CYTOPENIA_DATABASE_URL"])
    with db.transaction() as s:
        _, user = accounts.user_for_api_token(s, token)
        assert user.username == "doc"
    r = runner.invoke(app, ["users", "set-role", "doc", "read-only"], env=env)
    assert r.exit_code == 0
    r = runner.invoke(app, ["users", "deactivate", "doc"], env=env)
    assert r.exit_code == 0
    r = runner.invoke(app, ["users", "set-role", "nobody", "admin"], env=env)
    assert r.exit_code != 0


def test_serve_refuses_the_default_secret(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["serve", "--port", "8999"], env=_env(tmp_path))
    assert r.exit_code != 0
    assert "SECRET_KEY" in str(r.exception) + r.output


def test_demo_load_only_in_development(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["demo", "load", "--n", "2"], env=_env(tmp_path))
    assert r.exit_code != 0
    env = _env(
        tmp_path, CART_CYTOPENIA_ENVIRONMENT="development", CART_CYTOPENIA_TODAY="2024-06-01"
    )
    r = runner.invoke(app, ["demo", "load", "--n", "3"], env=env)
    assert r.exit_code == 0, r.output
    assert "demo account: user name 'demo'" in r.output
    password = r.output.split("password '")[1].split("'")[0]
    db = Database(env["CART_CYTOPENIA_DATABASE_URL"])
    with db.transaction() as s:
        assert repo.count_patients(s) == 6
        limits = accounts.LoginLimits()
        assert accounts.authenticate(s, "demo", password, "cli", limits) is not None
        days = sorted(
            (dt.date(2024, 6, 1) - c.infusion_date).days for c in repo.list_courses(s, status=None)
        )
    assert 60 in days  # review case 1 shown at day 60
    r = runner.invoke(app, ["demo", "load", "--n", "1"], env=env)
    assert r.exit_code != 0  # the store holds patients: --reset needed
    r = runner.invoke(app, ["demo", "load", "--n", "1", "--reset"], env=env)
    assert r.exit_code == 0, r.output
    with db.session() as s:
        assert repo.count_patients(s) == 4


def test_shift_course_keeps_days_and_moves_dates() -> None:
    course = parse_course((EXAMPLES / "review-case-2.json").read_text())
    today = dt.date(2030, 1, 15)
    moved = shift_course(course, 100, today)
    assert moved.infusion_date == dt.date(2029, 10, 7)
    assert moved.last_data_day is not None
    assert moved.last_data_day <= 100
    assert [lab.day for lab in moved.labs] == [lab.day for lab in course.labs if lab.day <= 100]
