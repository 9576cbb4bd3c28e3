"""The cohort report's tables aggregated on Spark from a grade table that lives there.

``report_tables`` joins the grade table with the patient columns the report reads, gives every
patient the report's categories (``cohort.report.categories``, applied batch by batch on the
executors), then computes each grouping's table on the executors with the report's own functions
(``distribution``, ``duration_summary``), one group (a product, a CAR-HEMATOTOX group ...) at a
time: the tables equal those of ``cart-cytopenia cohort report``. Only the aggregates (a few
hundred rows) come to the driver, which writes them as CSV.

Not here: the cumulative-incidence tables and the figures need each patient's daily ANC and
platelet course (``cohort.analysis``), not only the grade table; they are made by the local
``cohort report`` (on a sample or a shard, docs/scale-out.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

import polars as pl

from cart_cytopenia.cohort.report import (
    DISTRIBUTION_BY,
    DURATION_BY,
    MEASURES,
    PATIENT_COLUMNS,
    categories,
    distribution,
    duration_summary,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame


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


def report_tables(grades: DataFrame, patients: DataFrame) -> dict[str, pl.DataFrame]:
    """``grade_distributions`` and ``durations``, as the local report writes them."""
    cols = [c for c in PATIENT_COLUMNS if c in patients.columns]
    d = _categorised(grades.join(patients.select("patient_id", *cols), "patient_id", "left"))
    d = d.cache()
    try:
        dist = [_per_group(d, by, partial(_distribution, by=by)) for by in DISTRIBUTION_BY]
        durs = [_per_group(d, by, partial(_durations, by=by)) for by in DURATION_BY]
    finally:
        d.unpersist()
    return {
        "grade_distributions": pl.concat(dist, how="vertical_relaxed").sort(
            "by", "measure", "group", "category", nulls_last=True
        ),
        "durations": pl.concat(durs, how="vertical_relaxed").sort("by", "group"),
    }
