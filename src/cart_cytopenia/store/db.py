"""Engine, sessions and transactions.

``Database(url)`` wraps one SQLAlchemy engine: an embedded SQLite file (the default) or
PostgreSQL (``postgresql+psycopg://user:pass@host/db``). Every write goes through
``Database.transaction()``: all of it is committed, or none of it (a failed import leaves
nothing behind).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from cart_cytopenia.errors import SettingsError


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` URLs and use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str, echo: bool = False) -> Engine:
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except Exception:
        raise SettingsError(
            "database URL cannot be parsed; use sqlite:///path/to/file.db or "
            "postgresql://user:password@host:5432/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        return create_engine(url, echo=echo, pool_pre_ping=True)
    raise SettingsError(f"unsupported database '{backend}': use SQLite or PostgreSQL")


class Database:
    """One engine and its session factory."""

    def __init__(self, url: str, echo: bool = False) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, echo=echo)
        self._factory = sessionmaker(self.engine, expire_on_commit=False, autoflush=True)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        return self._factory()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any exception."""
        with self._factory() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
