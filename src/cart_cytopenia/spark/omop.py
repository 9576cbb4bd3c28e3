"""An OMOP CDM read on Spark (``cohort omop --engine spark``): the CDM tables of a catalogue
schema (``spark.table("cdm.measurement")``) or of a directory of Parquet/CSV files, read by the
executors with the columns and rows the mapping needs, then mapped by the same code as a local
extract (``io.omop.read_omop``: codes, units, day 0, events) and graded on Spark.

The large tables are cut down where they live: MEASUREMENT to the persons with a CAR-T infusion
(a join with their ids on the executors), CONCEPT to the concept ids the other tables use. Only
those rows travel to the driver, which maps them into the long tables; ``grade_omop`` then hands
the long tables back to Spark to grade them in groups of patients (``spark.grading``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from cart_cytopenia.errors import ParseError
from cart_cytopenia.io.omop import TABLES, OmopCohort, OmopSource, read_omop

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class SparkOmopSource(OmopSource):
    """The CDM tables as Spark DataFrames: ``location`` is a directory (``person.parquet``,
    ``measurement/`` ... or ``.csv``) or a catalogue schema (``cdm`` or ``catalog.cdm``)."""

    def __init__(self, spark: SparkSession, location: str) -> None:
        self.path = Path(location)
        self.schema = None
        self._con = None
        self._once: dict[str, Any] = {}
        self._spark = spark
        self._frames: dict[str, DataFrame] = {}
        self.persons: list[int] | None = None  # (``restrict_to``): MEASUREMENT cut to them
        if self.path.is_dir():
            for f in sorted(self.path.iterdir()):
                stem, suffix = f.stem.lower(), f.suffix.lower()
                if stem in TABLES and (suffix in (".parquet", ".csv") or f.is_dir()):
                    reader = spark.read.option("header", True)
                    self._frames[stem] = (
                        reader.csv(str(f)) if suffix == ".csv" else reader.parquet(str(f))
                    )
        else:
            for t in TABLES:
                if spark.catalog.tableExists(f"{location}.{t}"):
                    self._frames[t] = spark.table(f"{location}.{t}")
        self._names = {t: t for t in self._frames}
        if not self._frames:
            raise ParseError(f"{location}: no OMOP table found (a directory or a catalogue schema)")

    def restrict_to(self, person_ids: list[int]) -> None:
        self.persons = person_ids

    def columns(self, table: str) -> list[str]:
        return [c.lower() for c in self._frames[table].columns]

    def read(
        self,
        table: str,
        wanted: list[str],
        required: list[str],
        only_ids: tuple[str, list[int]] | None = None,
    ) -> pl.DataFrame:
        from pyspark.sql import functions as F

        cols = self.present(table, wanted, required)
        df = self._frames[table]
        df = df.select([F.col(f"`{c}`").alias(c.lower()) for c in df.columns])
        df = df.select(*cols)
        if only_ids is None and table == "measurement" and self.persons is not None:
            only_ids = ("person_id", self.persons)
        if only_ids is not None:
            ids = self._spark.createDataFrame([(int(i),) for i in only_ids[1]], "__id long")
            key = F.col(only_ids[0]).cast("long")
            df = df.join(F.broadcast(ids), key == F.col("__id"), "left_semi")
        try:
            out = pl.from_arrow(df.toArrow())
        except Exception as exc:  # Spark analysis / IO errors: one clear message
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ParseError(f"{self.where(table)} cannot be read: {first}") from None
        assert isinstance(out, pl.DataFrame)
        return out.with_row_index("row", offset=1).with_columns(pl.col("row").cast(pl.Int64))

    def close(self) -> None:
        self._frames.clear()


def read_omop_spark(
    spark: SparkSession, location: str, infusions: str | Path | None = None
) -> OmopCohort:
    """``read_omop`` on a Spark source (the same mapping and checks)."""
    return read_omop(SparkOmopSource(spark, location), infusions=infusions)


def grade_omop(spark: SparkSession, cohort: OmopCohort, **kw: Any) -> DataFrame:
    """The mapped cohort's grade table, computed on Spark (``spark.grading.grade``): the lab
    rows as the mapping read them (analyte, value and unit before normalisation, days) with the
    cohort's patients and events, read again by the same readers on the executors."""
    from cart_cytopenia.spark.grading import grade

    frames = cohort.frames
    labs = cohort.raw_labs.select("patient_id", "day", "analyte", "value", "unit")
    return grade(
        spark,
        spark.createDataFrame(labs.to_arrow()),
        spark.createDataFrame(frames.patients.drop("row", strict=False).to_arrow()),
        spark.createDataFrame(frames.events.to_arrow()),
        **kw,
    )
