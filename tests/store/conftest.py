"""Store fixtures: every store test runs on SQLite and, when a server is given, on PostgreSQL.

PostgreSQL tests run when ``CART_CYTOPENIA_TEST_POSTGRES_URL`` is set (``.ci/run`` sets it) and
are skipped otherwise. Each test gets an empty schema migrated to the newest revision.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from cart_cytopenia.store.db import Database
from cart_cytopenia.store.migrate import upgrade

PG_ENV = "CART_CYTOPENIA_TEST_POSTGRES_URL"


def reset_postgres(url: str) -> Database:
    db = Database(url)
    with db.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    return db


def make_database(kind: str, tmp_path: Path) -> Database:
    if kind == "sqlite":
        return Database(f"sqlite:///{tmp_path / 'store.db'}")
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set (no PostgreSQL server for this run)")
    return reset_postgres(url)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    db = make_database(request.param, tmp_path)
    yield db
    db.dispose()


@pytest.fixture
def db(empty_db: Database) -> Database:
    upgrade(empty_db)
    return empty_db
