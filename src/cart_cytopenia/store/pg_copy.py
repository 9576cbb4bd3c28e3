"""PostgreSQL's ``COPY`` for the bulk insert of many rows that belong to courses (a bulk load's
lab results and events, about 160 rows a course, 1.6 million for 10,000 courses; its worklist
rows).

``copy_course_rows`` writes the rows through psycopg 3's binary ``COPY ... FROM STDIN`` instead
of an ``INSERT`` ``executemany``: every value goes through its column's own SQLAlchemy bind
processing first (so the JSON text and the UTC timestamps are exactly what an ``INSERT`` of the
same rows stores) and is then sent in PostgreSQL's binary format (floats bit for bit). What it
buys, measured on 160,000 lab rows: the loading process's CPU 1.9 -> 0.06 s and the server's
1.6 -> 0.8 s. It runs on the session's own connection, inside its transaction: a failure rolls
the rows back with everything else. SQLite keeps its ``executemany`` (fast there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

import psycopg
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeDecorator, TypeEngine

# SQLAlchemy's column types -> the PostgreSQL types whose binary form COPY sends, checked in
# this order (subclasses first). A column of another type is refused, never guessed.
_BINARY_TYPES: tuple[tuple[type[TypeEngine[Any]], str], ...] = (
    (Boolean, "bool"),
    (BigInteger, "int8"),
    (SmallInteger, "int2"),
    (Integer, "int4"),
    (Float, "float8"),
    (String, "text"),
    (DateTime, "timestamptz"),
    (Date, "date"),
    (JSON, "json"),
    (LargeBinary, "bytea"),
)


Processor = Callable[[Any], Any] | None


def _copy_type(column: Column[Any]) -> str:
    kind = column.type.impl if isinstance(column.type, TypeDecorator) else column.type
    pg_type = next((pg for sa_type, pg in _BINARY_TYPES if isinstance(kind, sa_type)), None)
    exact = {
        "timestamptz": getattr(kind, "timezone", False),  # not a naive TIMESTAMP
        "float8": getattr(kind, "precision", None) is None,  # FLOAT(p) may be a REAL
    }
    if pg_type is None or not exact.get(pg_type, True):
        raise TypeError(f"no COPY type for column {column.table.name}.{column.name} ({kind})")
    return pg_type


def _processor(conn: Connection, column: Column[Any]) -> Processor:
    """The column type's bind processing on this dialect (JSON -> psycopg's Json with the
    engine's serializer; a UTC timestamp checked and converted), as an INSERT applies it."""
    return column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)


def _getter(keys: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A row's values of ``keys`` as a tuple (``itemgetter``: C speed, 1.6 M rows a load)."""
    if len(keys) == 1:
        key = keys[0]
        return lambda row: (row[key],)
    if not keys:
        return lambda row: ()
    return itemgetter(*keys)


def copy_course_rows(
    conn: Connection,
    table: Table,
    common: Mapping[str, Any],
    children: Iterable[tuple[int, Sequence[Mapping[str, Any]]]],
) -> int:
    """COPY the rows of ``children`` (course id, its rows as dicts of column values, all with
    the same keys) into ``table``, each with its ``course_id`` and the ``common`` values (the
    same for every row, e.g. ``created_at``); the number of rows written."""
    rows = ((course_id, row) for course_id, group in children for row in group)
    first = next(rows, None)
    if first is None:
        return 0
    procs = {k: _processor(conn, table.c[k]) for k in first[1]}
    plain = [k for k, p in procs.items() if p is None]
    bound = [(k, p) for k, p in procs.items() if p is not None]
    names = ["course_id", *common, *plain, *(k for k, _ in bound)]
    fixed = tuple(v if (p := _processor(conn, table.c[k])) is None else p(v)
                  for k, v in common.items())  # fmt: skip
    values = _getter(plain)
    raw = conn.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise TypeError("COPY needs a live psycopg 3 connection (postgresql+psycopg://)")
    statement = f"COPY {table.name} ({', '.join(names)}) FROM STDIN (FORMAT BINARY)"
    written = 0
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types([_copy_type(table.c[n]) for n in names])
            for course_id, row in chain((first,), rows):
                copy.write_row((course_id, *fixed, *values(row), *[p(row[k]) for k, p in bound]))
                written += 1
    except dbapi_error as exc:  # raised as an INSERT's error would be (no values in it)
        raise DBAPIError.instance(statement, None, exc, dbapi_error, dialect=conn.dialect) from exc
    return written
