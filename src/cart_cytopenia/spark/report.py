"""The cohort report's tables aggregated on Spark (``cohort report --engine spark``).

``analysed`` runs the report's own analysis (``cohort.analysis.analyse``: the grade table and
each patient's time to recovery or competing event, for the three recovery end points) on groups
of patients on the executors, as ``spark.grading`` grades them. ``report_aggregates`` then joins
the grade table with the patient columns the report reads, gives every patient the report's
categories (``cohort.report.categories``, batch by batch), and computes on the executors:

- the grade distributions and durations by product, CAR-HEMATOTOX group ... with the report's
  own functions (``distribution``, ``duration_summary``), one group at a time;
- the cumulative-incidence inputs: patients by end point, grouping, group, day and cause
  (``cohort.incidence.endpoint_counts``, counted by Spark).

Only these aggregates (a few thousand rows) come to the driver, which writes the HTML report
and its CSV tables from them (``cohort.report.write_aggregate_report``): the tables equal those
of the local ``cohort report``. Not in it: what needs each patient's values on the driver (the
characteristics' medians, EASIX by outcome, the published comparison, the swimmer plot, heat
map and trajectories): the local ``cohort report`` on a sample or a shard has them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

import polars as pl

from cart_cytopenia.cohort.analysis import analyse
from cart_cytopenia.cohort.incidence import ALL, CURVE_GROUPINGS, tidy_counts
from cart_cytopenia.cohort.report import (
    DISTRIBUTION_BY,
    DURATION_BY,
    MEASURES,
    PATIENT_COLUMNS,
    categories,
    distribution,
    duration_summary,
)
from cart_cytopenia.grading.engine import DEFAULT_CHUNK
from cart_cytopenia.grading.grade_table import GRADE_COLUMNS
from cart_cytopenia.rules.settings import Settings
from cart_cytopenia.spark.grading import grouped, read_group, spark_schema, stacked

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

# a patient's time to recovery or competing event, as rows beside the grade rows
ENDPOINT_COLUMNS = {"__endpoint": "string", "__time": "double", "__cause": "int32"}


def _plain(table: pa.Table) -> pa.Table:
    """Arrow types Spark takes back: plain strings, signed 64-bit counts."""
    import pyarrow as pa

    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_large_string(t):
            t = pa.string()
        elif pa.types.is_unsigned_integer(t):
            t = pa.int64()
        fields.append(pa.field(f.name, t))
    return table.cast(pa.schema(fields))


def _spark_schema(polars_schema: pl.DataFrame) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(_plain(polars_schema.to_arrow()).schema)


def _polars(table: pa.Table) -> pl.DataFrame:
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    return df


def _categorised(spark_df: DataFrame) -> DataFrame:
    """Every row with the report's categories (the local function, on each Arrow batch)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    empty = _polars(to_arrow_schema(spark_df.schema).empty_table())
    out_schema = _spark_schema(categories(empty))

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        for b in batches:
            yield from _plain(
                categories(_polars(pa.Table.from_batches([b]))).to_arrow()
            ).to_batches()

    return spark_df.mapInArrow(run, out_schema)


def _per_group(
    d: DataFrame, by: str, table: Callable[[pl.DataFrame], pl.DataFrame]
) -> pl.DataFrame:
    """``table`` of each group of ``by`` computed on the executors, concatenated on the driver."""
    from pyspark.sql.pandas.types import to_arrow_schema

    empty = _polars(to_arrow_schema(d.schema).empty_table())
    schema = _spark_schema(table(empty))

    def run(t: pa.Table) -> pa.Table:
        return _plain(table(_polars(t)).to_arrow())

    return _polars(d.groupBy(f"`{by}`").applyInArrow(run, schema).toArrow())


def _distribution(g: pl.DataFrame, by: str) -> pl.DataFrame:
    return distribution(g, by, MEASURES)


def _durations(g: pl.DataFrame, by: str) -> pl.DataFrame:
    return duration_summary(g, by)


def _tables(d: DataFrame) -> dict[str, pl.DataFrame]:
    """``grade_distributions`` and ``durations`` of the categorised patients ``d``, in the local
    report's row order (each grouping in turn, sorted as the local functions sort)."""
    dist = [
        _per_group(d, by, partial(_distribution, by=by)).sort("measure", "group", "category")
        for by in DISTRIBUTION_BY
    ]
    durs = [_per_group(d, by, partial(_durations, by=by)).sort("group") for by in DURATION_BY]
    return {
        "grade_distributions": pl.concat(dist, how="vertical_relaxed"),
        "durations": pl.concat(durs, how="vertical_relaxed"),
    }


def _with_categories(grades: DataFrame, patients: DataFrame) -> DataFrame:
    cols = [c for c in PATIENT_COLUMNS if c in patients.columns]
    return _categorised(grades.join(patients.select("patient_id", *cols), "patient_id", "left"))


def report_tables(grades: DataFrame, patients: DataFrame) -> dict[str, pl.DataFrame]:
    """``grade_distributions`` and ``durations`` of a grade table, as the local report's."""
    d = _with_categories(grades, patients).cache()
    try:
        return _tables(d)
    finally:
        d.unpersist()


def _analyse_group(
    settings: Settings, as_of: int | None, with_events: bool
) -> Callable[[pa.Table], pa.Table]:
    """The report's analysis of one group: its grade rows, then its end point rows."""

    def run(table: pa.Table) -> pa.Table:
        a = analyse(read_group(table, with_events), settings, as_of=as_of, sample_size=0)
        ep = a.endpoints
        found = {
            "patient_id": ep["patient_id"].to_list(),
            "__endpoint": ep["endpoint"].to_list(),
            "__time": ep["time"].to_list(),
            "__cause": ep["cause"].to_list(),
        }
        return stacked(a.graded.to_arrow(), found, ENDPOINT_COLUMNS)

    return run


def analysed(
    labs: DataFrame,
    patients: DataFrame,
    events: DataFrame | None,
    settings: Settings,
    as_of: int | None,
    patients_per_group: int,
) -> tuple[DataFrame, DataFrame]:
    """(grade table, end points: patient_id, endpoint, time, cause), computed once (persisted:
    ``unpersist()`` the first when done)."""
    run = _analyse_group(settings, as_of, events is not None)
    both = grouped(labs, patients, events, patients_per_group).applyInArrow(
        run, spark_schema(ENDPOINT_COLUMNS)
    )
    both = both.persist()
    grades = both.filter(both["__endpoint"].isNull()).select(*(c.name for c in GRADE_COLUMNS))
    endpoints = both.filter(both["__endpoint"].isNotNull()).select(
        "patient_id",
        both["__endpoint"].alias("endpoint"),
        both["__time"].alias("time"),
        both["__cause"].alias("cause"),
    )
    return grades, endpoints


def _endpoint_counts(endpoints: DataFrame, d: DataFrame) -> pl.DataFrame:
    """``cohort.incidence.endpoint_counts``, counted by Spark."""
    from pyspark.sql import functions as F

    x = endpoints.join(
        d.select("patient_id", *(f"`{c}`" for c in CURVE_GROUPINGS[1:])), "patient_id"
    )
    parts = []
    for by in CURVE_GROUPINGS:
        group = F.lit(ALL) if by is None else F.col(f"`{by}`").cast("string")
        parts.append(
            x.groupBy("endpoint", group.alias("group"), "time", "cause")
            .count()
            .select(
                "endpoint",
                F.lit(by or "all").alias("by"),
                "group",
                "time",
                "cause",
                F.col("count").alias("n"),
            )
        )
    union = parts[0]
    for p in parts[1:]:
        union = union.unionByName(p)
    return tidy_counts(_polars(union.toArrow()))


def report_aggregates(
    labs: DataFrame, patients: DataFrame, events: DataFrame | None = None, **options: Any
) -> tuple[int, dict[str, pl.DataFrame]]:
    """The number of patients and the report's aggregate tables: ``grade_distributions``,
    ``durations`` and ``cumulative_incidence_inputs``. ``options``: ``settings``, ``as_of``,
    ``patients_per_group`` as for ``spark.grade``."""
    unknown = set(options) - {"settings", "as_of", "patients_per_group"}
    if unknown:
        raise TypeError(f"report_aggregates: unknown option(s) {sorted(unknown)}")
    grades, endpoints = analysed(
        labs,
        patients,
        events,
        options.get("settings") or Settings(),
        options.get("as_of"),
        options.get("patients_per_group", DEFAULT_CHUNK),
    )
    d = _with_categories(grades, patients).cache()
    try:
        tables = _tables(d)
        tables["cumulative_incidence_inputs"] = _endpoint_counts(endpoints, d)
        return int(d.count()), tables
    finally:
        d.unpersist()
        grades.unpersist()
