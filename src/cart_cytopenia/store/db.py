"""Engine, sessions and transactions.

``Database(url)`` wraps one SQLAlchemy engine: an embedded SQLite file (the default) or
PostgreSQL (``postgresql+psycopg://user:pass@host/db``). Every write goes through
``Database.transaction()``: all of it is committed, or none of it (a failed import leaves
nothing behind).

``PoolOptions`` bound the waiting (docs/deployment.md): the connection pool's size and how long
a request waits for a connection; on PostgreSQL a ``statement_timeout`` and an
``idle_in_transaction_session_timeout`` (a transaction left open is ended by the server, never
hangs the service); on SQLite write-ahead logging and a ``busy_timeout`` for writers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from cart_cytopenia.errors import SettingsError


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` URLs and use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@dataclass(frozen=True)
class PoolOptions:
    """Connection pool and timeouts (the service sets them from its settings)."""

    pool_size: int = 20
    max_overflow: int = 10
    pool_timeout: float = 10.0
    statement_timeout_ms: int = 30_000
    busy_timeout_ms: int = 10_000


def _sqlite_pragmas(busy_timeout_ms: int) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.close()

    return on_connect


def make_engine(url: str, echo: bool = False, pool: PoolOptions | None = None) -> Engine:
    pool = pool or PoolOptions()
    sizes = {
        "pool_size": pool.pool_size,
        "max_overflow": pool.max_overflow,
        "pool_timeout": pool.pool_timeout,
    }
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
        memory = parsed.database in (None, "", ":memory:")
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False},
            **({} if memory else sizes),  # an in-memory database has one connection
        )
        event.listen(engine, "connect", _sqlite_pragmas(pool.busy_timeout_ms))
        return engine
    if backend == "postgresql":
        ms = int(pool.statement_timeout_ms)
        options = f"-c statement_timeout={ms} -c idle_in_transaction_session_timeout={ms}"
        return create_engine(
            url, echo=echo, pool_pre_ping=True, connect_args={"options": options}, **sizes
        )
    raise SettingsError(f"unsupported database '{backend}': use SQLite or PostgreSQL")


class Database:
    """One engine and its session factory."""

    def __init__(self, url: str, echo: bool = False, pool: PoolOptions | None = None) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, echo=echo, pool=pool)
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


def upsert(session: Session, table: Table, rows: list[dict[str, Any]], key: str) -> None:
    """Insert ``rows`` into ``table``, replacing the rows with the same ``key`` (one statement;
    two processes may write the same row at the same moment: the later one wins)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(table).values(rows)
    columns = [k for k in rows[0] if k != key]
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[table.c[key]], set_={k: getattr(stmt.excluded, k) for k in columns}
        )
    )
