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

from cart_cytopenia.errors import InputError
from cart_cytopenia.grading.engine import DEFAULT_CHUNK, grade_cohort
from cart_cytopenia.grading.grade_table import GRADE_COLUMNS, LOGICAL_TYPES
from cart_cytopenia.io.tables import FrameSource, read_cohort
from cart_cytopenia.rules.settings import Settings

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

KIND, GROUP = "__table", "__group"
PREFIXES = {"labs": "l__", "patients": "p__", "events": "e__"}
# the marker that lets the driver find a bad-input message in a failed task's Python traceback
INPUT_ERROR = "cart-cytopenia input error: "
SPARK_TYPES = {"string": "string", "int32": "int", "double": "double", "boolean": "boolean"}


def spark_schema() -> str:
    """The grade table's schema as Spark DDL, from the one declaration (``GRADE_COLUMNS``)."""
    return ", ".join(f"`{c.name}` {SPARK_TYPES[LOGICAL_TYPES[c.dtype]]}" for c in GRADE_COLUMNS)


def arrow_schema() -> pa.Schema:
    """The grade table's schema as Arrow types Spark accepts (plain ``string``, not large)."""
    import pyarrow as pa

    types = {"string": pa.string(), "int32": pa.int32(), "double": pa.float64()}
    types["boolean"] = pa.bool_()
    return pa.schema([(c.name, types[LOGICAL_TYPES[c.dtype]]) for c in GRADE_COLUMNS])


def _tagged(df: DataFrame, kind: str, groups: int) -> DataFrame:
    from pyspark.sql import functions as F

    if "patient_id" not in df.columns:
        raise InputError(f"the {kind} table needs a 'patient_id' column (found: {df.columns})")
    group = F.pmod(F.xxhash64(F.col("patient_id").cast("string")), F.lit(groups))
    cols = [F.col(f"`{c}`").alias(PREFIXES[kind] + c) for c in df.columns]
    return df.select(F.lit(kind).alias(KIND), group.alias(GROUP), *cols)


def _split(table: pa.Table) -> dict[str, pl.DataFrame]:
    """One group's union back into its tables, each with its own column names."""
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    out = {}
    for kind, prefix in PREFIXES.items():
        cols = [c for c in df.columns if c.startswith(prefix)]
        rows = df.filter(pl.col(KIND) == kind).select(cols)
        out[kind] = rows.rename({c: c[len(prefix) :] for c in cols})
    return out


def _grade_group(
    settings: Settings, as_of: int | None, with_events: bool
) -> Callable[[pa.Table], pa.Table]:
    """The function Spark runs on each group (pickled with its arguments to the executors)."""

    def run(table: pa.Table) -> pa.Table:
        parts = _split(table)
        try:
            frames = read_cohort(
                FrameSource("labs", parts["labs"]),
                FrameSource("patients", parts["patients"]),
                FrameSource("events", parts["events"]) if with_events else None,
            )
            graded = grade_cohort(frames, settings, as_of=as_of, workers=1)
        except InputError as exc:
            raise RuntimeError(INPUT_ERROR + _without_patients(exc)) from None
        return graded.to_arrow().cast(arrow_schema())

    return run


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
    if patients_per_group < 1:
        raise InputError("patients_per_group must be at least 1")
    groups = max(1, math.ceil(patients.count() / patients_per_group))
    tables = [_tagged(labs, "labs", groups), _tagged(patients, "patients", groups)]
    if events is not None:
        tables.append(_tagged(events, "events", groups))
    union = tables[0]
    for t in tables[1:]:
        union = union.unionByName(t, allowMissingColumns=True)
    run = _grade_group(settings or Settings(), as_of, events is not None)
    return union.groupBy(GROUP).applyInArrow(run, spark_schema())


def input_error_message(exc: BaseException) -> str | None:
    """The bad-input message inside a failed Spark job's exception, if that is why it failed."""
    text = str(exc)
    at = text.find(INPUT_ERROR)
    if at < 0:
        return None
    return text[at + len(INPUT_ERROR) :].splitlines()[0]
