"""The grade table computed on Spark by the existing engine, one group of patients at a time.

``grade`` tags every row of the three tables with its patient's group (a hash of the patient id
into ``ceil(patients / patients_per_group)`` groups), unions them (each table's columns under
their own prefix, so that their names and types never meet) and hands each group, as one Arrow
table, to ``_grade_group`` (``groupBy(...).applyInArrow``). That reads the group's rows with the
same readers and checks as ``cart-cytopenia grade`` (``read_cohort`` on in-memory tables) and
grades them with ``grade_cohort``: no clinical rule is implemented here. A patient's lab rows,
events and patient row always land in the same group, so each patient is graded on all his data,
and the result is the local grade table's rows, in ``GRADE_SCHEMA``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import polars as pl

from cart_cytopenia.domain.frames import CohortFrames
from cart_cytopenia.errors import InputError, Location, Problem
from cart_cytopenia.grading.engine import DEFAULT_CHUNK, grade_cohort
from cart_cytopenia.grading.grade_table import GRADE_COLUMNS, LOGICAL_TYPES
from cart_cytopenia.io.tables import FrameSource, read_cohort
from cart_cytopenia.rules.settings import Settings

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame
    from pyspark.sql.group import GroupedData

KIND, GROUP = "__table", "__group"
PREFIXES = {"labs": "l__", "patients": "p__", "events": "e__"}
# the marker that lets the driver find a bad-input message in a failed task's Python traceback
INPUT_ERROR = "cart-cytopenia input error: "
SPARK_TYPES = {"string": "string", "int32": "int", "double": "double", "boolean": "boolean"}
SPARK_TYPES["int64"] = "bigint"
# a lab row left out by ``on_bad_row="skip"``: its problem, as rows beside the grade rows
PROBLEM_COLUMNS = {
    "__problem": "string",
    "__problem_patient": "string",
    "__problem_row": "int64",
    "__problem_field": "string",
    "__problem_source": "string",
}


def _columns(extra: dict[str, str] | None) -> list[tuple[str, str]]:
    """(name, logical type) of the grade table, then of ``extra`` columns (rows of another kind
    returned beside the grade rows: ``PROBLEM_COLUMNS`` ...)."""
    cols = [(c.name, LOGICAL_TYPES[c.dtype]) for c in GRADE_COLUMNS]
    return cols + list((extra or {}).items())


def spark_schema(extra: dict[str, str] | None = None) -> str:
    """The grade table's schema as Spark DDL, from the one declaration (``GRADE_COLUMNS``)."""
    return ", ".join(f"`{n}` {SPARK_TYPES[t]}" for n, t in _columns(extra))


def arrow_schema(extra: dict[str, str] | None = None) -> pa.Schema:
    """The grade table's schema as Arrow types Spark accepts (plain ``string``, not large)."""
    import pyarrow as pa

    types = {"string": pa.string(), "int32": pa.int32(), "double": pa.float64()}
    types |= {"boolean": pa.bool_(), "int64": pa.int64()}
    return pa.schema([(n, types[t]) for n, t in _columns(extra)])


def _tagged(df: DataFrame, kind: str, groups: int) -> DataFrame:
    from pyspark.sql import functions as F

    if "patient_id" not in df.columns:
        raise InputError(f"the {kind} table needs a 'patient_id' column (found: {df.columns})")
    group = F.pmod(F.xxhash64(F.col("patient_id").cast("string")), F.lit(groups))
    cols = [F.col(f"`{c}`").alias(PREFIXES[kind] + c) for c in df.columns]
    return df.select(F.lit(kind).alias(KIND), group.alias(GROUP), *cols)


def split(table: pa.Table) -> dict[str, pl.DataFrame]:
    """One group's union back into its tables, each with its own column names."""
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    out = {}
    for kind, prefix in PREFIXES.items():
        cols = [c for c in df.columns if c.startswith(prefix)]
        rows = df.filter(pl.col(KIND) == kind).select(cols)
        out[kind] = rows.rename({c: c[len(prefix) :] for c in cols})
    return out


def read_group(
    table: pa.Table, with_events: bool, skipped: list[Problem] | None = None
) -> CohortFrames:
    """One group's rows read and checked by the local readers (``read_cohort``); bad input
    fails the task with a message without patient data (``_without_patients``)."""
    parts = split(table)
    try:
        return read_cohort(
            FrameSource("labs", parts["labs"]),
            FrameSource("patients", parts["patients"]),
            FrameSource("events", parts["events"]) if with_events else None,
            skipped,
        )
    except InputError as exc:
        raise RuntimeError(INPUT_ERROR + _without_patients(exc)) from None


def _grade_group(
    settings: Settings, as_of: int | None, with_events: bool, skip: bool = False
) -> Callable[[pa.Table], pa.Table]:
    """The function Spark runs on each group (pickled with its arguments to the executors);
    ``skip``: bad lab rows left out and returned as rows of ``PROBLEM_COLUMNS``."""

    def run(table: pa.Table) -> pa.Table:
        skipped: list[Problem] | None = [] if skip else None
        frames = read_group(table, with_events, skipped)
        graded = grade_cohort(frames, settings, as_of=as_of, workers=1).to_arrow()
        if not skip:
            return graded.cast(arrow_schema())
        return _with_problems(graded, skipped or [])

    return run


def _with_problems(graded: pa.Table, problems: list[Problem]) -> pa.Table:
    """The grade rows followed by one row per problem (``PROBLEM_COLUMNS``)."""
    found: dict[str, list[Any]] = {
        "__problem": [p.message for p in problems],
        "__problem_patient": [p.location.patient_id for p in problems],
        "__problem_row": [p.location.row for p in problems],
        "__problem_field": [p.location.field for p in problems],
        "__problem_source": [p.location.source for p in problems],
    }
    return stacked(graded, found, PROBLEM_COLUMNS)


def stacked(graded: pa.Table, extra: dict[str, list[Any]], types: dict[str, str]) -> pa.Table:
    """The grade rows (``types``' columns empty), then rows of ``extra`` (a column of each of
    ``types``, and grade columns it names such as ``patient_id``; the others empty)."""
    import pyarrow as pa

    n_extra = len(next(iter(extra.values())))
    graded = graded.cast(arrow_schema())
    columns = []
    for f in arrow_schema(types):
        head = (
            graded.column(f.name).combine_chunks()
            if f.name in graded.column_names
            else pa.nulls(graded.num_rows, f.type)
        )
        tail = pa.array(extra[f.name], f.type) if f.name in extra else pa.nulls(n_extra, f.type)
        columns.append(pa.concat_arrays([head, tail]))
    return pa.Table.from_arrays(columns, schema=arrow_schema(types))


def _without_patients(exc: InputError) -> str:
    """The bad-input message for the driver, without patient ids or row numbers: a failed task's
    message is written to Spark's logs, where patient data never go (the local command names the
    rows: docs/scale-out.md)."""
    kinds = []
    for p in exc.problems:
        pid = p.location.patient_id
        text = p.message if not pid or pid not in p.message else None
        if text and text not in kinds:
            kinds.append(text)
    shown = "; ".join(kinds[:5])
    hint = (
        "patients are not named in Spark's logs: grade the cohort with --engine local, or "
        "--on-bad-row skip locally, to list the rows"
    )
    return f"{exc.message}" + (f": {shown}" if shown else "") + f" ({hint})"


def grade(
    spark: Any,
    labs: DataFrame,
    patients: DataFrame,
    events: DataFrame | None = None,
    settings: Settings | None = None,
    as_of: int | None = None,
    patients_per_group: int = DEFAULT_CHUNK,
) -> DataFrame:
    """The grade table of ``cart-cytopenia grade`` as a Spark DataFrame (one row per patient,
    ``GRADE_SCHEMA``; rows in no particular order).

    ``labs``, ``patients``, ``events``: Spark DataFrames with the columns of the long-format
    tables (docs/data-formats.md), as read from CSV (text) or Parquet (typed). Bad input fails
    the job with the local reader's message (patient and field; rows are numbered within a
    group, not as in the file). ``patients_per_group``: patients handed to the engine at once
    (memory per task: docs/scale-out.md)."""
    del spark  # (the DataFrames carry their session; kept for the documented signature)
    run = _grade_group(settings or Settings(), as_of, events is not None)
    return grouped(labs, patients, events, patients_per_group).applyInArrow(run, spark_schema())


def grouped(
    labs: DataFrame,
    patients: DataFrame,
    events: DataFrame | None,
    patients_per_group: int = DEFAULT_CHUNK,
) -> GroupedData:
    """The three tables' rows tagged with their patient's group and grouped by it (a group's
    Arrow table is split back into the tables by ``split``)."""
    if patients_per_group < 1:
        raise InputError("patients_per_group must be at least 1")
    groups = max(1, math.ceil(patients.count() / patients_per_group))
    tables = [_tagged(labs, "labs", groups), _tagged(patients, "patients", groups)]
    if events is not None:
        tables.append(_tagged(events, "events", groups))
    union = tables[0]
    for t in tables[1:]:
        union = union.unionByName(t, allowMissingColumns=True)
    return union.groupBy(GROUP)


def grade_skipping_bad_rows(
    spark: Any,
    labs: DataFrame,
    patients: DataFrame,
    events: DataFrame | None = None,
    settings: Settings | None = None,
    as_of: int | None = None,
    patients_per_group: int = DEFAULT_CHUNK,
) -> tuple[DataFrame, list[Problem]]:
    """``grade`` with ``--on-bad-row skip``: lab rows that cannot be read as a value (missing,
    unknown analyte or unit, implausible) are left out, as the local command does, and returned
    as problems (to the driver, not to Spark's logs; rows numbered within a group). The grade
    table is persisted (computed once with the problems): ``unpersist()`` it when done."""
    del spark
    run = _grade_group(settings or Settings(), as_of, events is not None, skip=True)
    both = grouped(labs, patients, events, patients_per_group).applyInArrow(
        run, spark_schema(PROBLEM_COLUMNS)
    )
    both = both.persist()
    found = both.filter(both["__problem"].isNotNull()).select(*PROBLEM_COLUMNS).collect()
    problems = [
        Problem(r[0], Location(patient_id=r[1], row=r[2], field=r[3], source=r[4])) for r in found
    ]
    grades = both.filter(both["__problem"].isNull()).select(*(c.name for c in GRADE_COLUMNS))
    return grades, problems


def input_error_message(exc: BaseException) -> str | None:
    """The bad-input message inside a failed Spark job's exception, if that is why it failed."""
    text = str(exc)
    at = text.find(INPUT_ERROR)
    if at < 0:
        return None
    return text[at + len(INPUT_ERROR) :].splitlines()[0]
