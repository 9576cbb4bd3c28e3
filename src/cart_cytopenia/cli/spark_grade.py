"""``grade --engine spark``: read the tables on Spark, grade them there, write the grade table.

Inputs are paths (CSV with a header row, read as text like the local reader does; Parquet files,
directories or globs) or tables of the session's catalogue (``--labs-table db.labs``). Output:
a ``.parquet`` or ``.csv`` file (the rows brought to the driver and sorted by patient id: for
tables that fit the driver's memory) or a directory (a Parquet data set written by the
executors, partitioned by a patient-table column with ``--partition-by``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cart_cytopenia.errors import InputError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from rich.console import Console

    from cart_cytopenia.cohort.report import ReportFiles
    from cart_cytopenia.errors import Problem
    from cart_cytopenia.rules.settings import Settings


@dataclass(frozen=True)
class SparkInputs:
    labs: Path | None
    patients: Path | None
    events: Path | None
    labs_table: str | None
    patients_table: str | None
    events_table: str | None


def read_input(spark: SparkSession, path: Path | None, table: str | None, what: str) -> DataFrame:
    """One input table from a path (CSV as text, or Parquet) or a catalogue table."""
    if (path is None) == (table is None):
        raise InputError(f"give the {what} as --{what} PATH or --{what}-table NAME (one of them)")
    if table is not None:
        return spark.table(table)
    assert path is not None
    if path.suffix.lower() in (".csv", ".txt"):
        if not path.exists():
            raise InputError(f"{path} does not exist")
        return spark.read.option("header", True).option("inferSchema", False).csv(str(path))
    return spark.read.option("recursiveFileLookup", False).parquet(str(path))


def write_output(
    graded: DataFrame, patients: DataFrame, out: Path, partition_by: str | None
) -> int:
    """Write the grade table; the number of patients graded (one row each)."""
    from cart_cytopenia.io.tables import write_table

    if out.suffix.lower() in (".csv", ".parquet"):
        if partition_by:
            raise InputError("--partition-by writes a directory: give --out a directory name")
        import polars as pl

        table = pl.from_arrow(graded.toArrow())
        assert isinstance(table, pl.DataFrame)
        write_table(table.sort("patient_id"), out)
        return table.height
    if partition_by:
        if partition_by not in patients.columns:
            raise InputError(f"--partition-by {partition_by}: the patient table has no such column")
        keys = patients.select("patient_id", partition_by)
        graded = graded.join(keys, on="patient_id", how="left")
        graded.write.mode("overwrite").partitionBy(partition_by).parquet(str(out))
    else:
        graded.write.mode("overwrite").parquet(str(out))
    return int(patients.count())


def read_inputs(
    spark: SparkSession, inputs: SparkInputs
) -> tuple[DataFrame, DataFrame, DataFrame | None]:
    """The labs, patients and (if given) events, from paths or catalogue tables."""
    labs = read_input(spark, inputs.labs, inputs.labs_table, "labs")
    patients = read_input(spark, inputs.patients, inputs.patients_table, "patients")
    events = None
    if inputs.events is not None or inputs.events_table is not None:
        events = read_input(spark, inputs.events, inputs.events_table, "events")
    return labs, patients, events


def grade_on_spark(
    inputs: SparkInputs,
    out: Path,
    settings: Settings,
    as_of: int | None,
    master: str,
    partition_by: str | None,
    skip_bad_rows: bool = False,
) -> tuple[int, list[Problem]]:
    """The patients graded (one row each) and, with ``skip_bad_rows``, the lab rows left out."""
    from cart_cytopenia.spark import grading
    from cart_cytopenia.spark.session import session

    spark = session(master)
    try:
        labs, patients, events = read_inputs(spark, inputs)
        if not skip_bad_rows:
            graded = grading.grade(spark, labs, patients, events, settings, as_of)
            return write_output(graded, patients, out, partition_by), []
        graded, skipped = grading.grade_skipping_bad_rows(
            spark, labs, patients, events, settings, as_of
        )
        return write_output(graded, patients, out, partition_by), skipped
    except Exception as exc:
        raise _clear(exc) from None
    finally:
        spark.stop()


def grade_omop_on_spark(
    location: str,
    infusions: Path | None,
    out: Path,
    settings: Settings,
    as_of: int | None,
    master: str,
    console: Console,
) -> int:
    """``cohort omop --engine spark``: read and cut the CDM tables on Spark, map them, grade the
    cohort on Spark, write the grade table."""
    from cart_cytopenia.spark.omop import grade_omop, read_omop_spark
    from cart_cytopenia.spark.session import session

    spark = session(master)
    try:
        cohort = read_omop_spark(spark, location, infusions)
        for line in cohort.summary.lines():
            console.print(line, highlight=False)
        graded = grade_omop(spark, cohort, settings=settings, as_of=as_of)
        patients = spark.createDataFrame(cohort.frames.patients.select("patient_id").to_arrow())
        return write_output(graded, patients, out, None)
    except Exception as exc:
        raise _clear(exc) from None
    finally:
        spark.stop()


def report_on_spark(
    inputs: SparkInputs,
    out: Path,
    settings: Settings,
    as_of: int | None,
    master: str,
    title: str,
    source: str,
) -> ReportFiles:
    """``cohort report --engine spark``: the report's tables aggregated on Spark
    (``spark.report.report_aggregates``), the HTML report written here from them."""
    from cart_cytopenia.cohort.report import write_aggregate_report
    from cart_cytopenia.spark.report import report_aggregates
    from cart_cytopenia.spark.session import session

    spark = session(master)
    try:
        labs, patients, events = read_inputs(spark, inputs)
        n, aggregates = report_aggregates(labs, patients, events, settings=settings, as_of=as_of)
    except Exception as exc:
        raise _clear(exc) from None
    finally:
        spark.stop()
    return write_aggregate_report(n, aggregates, settings, out, title=title, source=source)


def _clear(exc: Exception) -> Exception:
    """A failed Spark job's bad-input message as the project's InputError (one clear line,
    no JVM stack), other errors as they are."""
    from cart_cytopenia.spark.grading import input_error_message

    if isinstance(exc, InputError):
        return exc
    message = input_error_message(exc)
    if message is not None:
        return InputError(message)
    text = str(exc)
    if "PATH_NOT_FOUND" in text or "TABLE_OR_VIEW_NOT_FOUND" in text:
        return InputError(text.splitlines()[0])
    return exc
