"""The grade table on Spark (issue 14): the existing engine on groups of patients gives the local
engine's rows cell for cell, through the Python API and through `grade --engine spark`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from cart_cytopenia.errors import InputError
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.grading.grade_table import GRADE_SCHEMA
from cart_cytopenia.io.tables import read_cohort
from cart_cytopenia.rules.settings import Settings
from cart_cytopenia.spark import grade
from cart_cytopenia.spark.grading import arrow_schema, spark_schema
from tests.cli.test_cli import run
from tests.conftest import EXAMPLES


def _local(d: Path, suffix: str, as_of: int | None = None) -> pl.DataFrame:
    frames = read_cohort(d / f"labs.{suffix}", d / f"patients.{suffix}", d / f"events.{suffix}")
    return grade_cohort(frames, Settings(), as_of=as_of).sort("patient_id")


def _on_spark(spark: Any, d: Path, suffix: str, **kw: Any) -> pl.DataFrame:
    def read(name: str) -> Any:
        p = str(d / f"{name}.{suffix}")
        return (
            spark.read.option("header", True).csv(p) if suffix == "csv" else spark.read.parquet(p)
        )

    out = grade(spark, read("labs"), read("patients"), read("events"), **kw)
    table = pl.from_arrow(out.toArrow())
    assert isinstance(table, pl.DataFrame)
    return table.sort("patient_id")


def test_the_schema_is_the_local_declaration() -> None:
    assert [f.name for f in arrow_schema()] == list(GRADE_SCHEMA)
    assert spark_schema().count("`") == 2 * len(GRADE_SCHEMA)


def test_spark_equals_local_on_the_example_cohort_csv(spark: Any) -> None:
    """Text columns (CSV read as text, like the local reader), one patient per group."""
    got = _on_spark(spark, EXAMPLES / "cohort", "csv", patients_per_group=1)
    assert got.equals(_local(EXAMPLES / "cohort", "csv"))


def test_spark_equals_local_on_a_generated_cohort(spark: Any, generated: Path) -> None:
    """400 generated patients (Parquet, dated columns, centres' units, events) in groups of 64,
    retrospective and as of day 20."""
    local = _local(generated, "parquet")
    assert local.height == 400
    assert _on_spark(spark, generated, "parquet", patients_per_group=64).equals(local)
    day20 = _on_spark(spark, generated, "parquet", patients_per_group=150, as_of=20)
    assert day20.equals(_local(generated, "parquet", as_of=20))


def test_cli_engine_spark_writes_the_local_table(tmp_path: Path, generated: Path) -> None:
    """`grade --engine spark --master local[2]` (its own session) writes the rows of the local
    command, sorted by patient id: the same CSV bytes once the local one is sorted too."""
    args = [
        "--labs", str(generated / "labs.parquet"),
        "--patients", str(generated / "patients.parquet"),
        "--events", str(generated / "events.parquet"),
    ]  # fmt: skip
    run("grade", *args, "--out", str(tmp_path / "local.csv"))
    r = run(
        "grade",
        *args,
        "--engine",
        "spark",
        "--master",
        "local[2]",
        "--out",
        str(tmp_path / "spark.csv"),
    )
    assert "on Spark" in r.stderr
    local = pl.read_csv(tmp_path / "local.csv", schema=GRADE_SCHEMA).sort("patient_id")
    local.write_csv(tmp_path / "local-sorted.csv")
    assert (tmp_path / "spark.csv").read_bytes() == (tmp_path / "local-sorted.csv").read_bytes()
    # a partitioned data set, by product
    run("grade", *args, "--engine", "spark", "--master", "local[2]",
        "--partition-by", "product", "--out", str(tmp_path / "by-product"))  # fmt: skip
    parts = sorted(p.name for p in (tmp_path / "by-product").iterdir() if p.is_dir())
    assert parts and all(p.startswith("product=") for p in parts)
    back = pl.read_parquet(tmp_path / "by-product" / "**" / "*.parquet", hive_partitioning=True)
    assert back.drop("product").sort("patient_id").equals(local)


def test_bad_input_fails_with_the_local_message(spark: Any, tmp_path: Path) -> None:
    d = EXAMPLES / "cohort"
    labs = pl.read_csv(d / "labs.csv", infer_schema=False)
    labs = labs.with_columns(
        pl.when(pl.int_range(pl.len()) == 3)
        .then(pl.lit("ANC x"))
        .otherwise("analyte")
        .alias("analyte")
    )
    labs.write_csv(tmp_path / "labs.csv")
    r = run(
        "grade", "--labs", str(tmp_path / "labs.csv"), "--patients", str(d / "patients.csv"),
        "--engine", "spark", "--master", "local[2]", "--out", str(tmp_path / "g.csv"),
        check=False,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: labs: 1 bad row(s)") and "ANC x" in last, last
    # a failed task's message goes to Spark's logs: no patient id, no row number there
    assert "review-case-1" not in r.stderr and "row 4" not in r.stderr
    assert not (tmp_path / "g.csv").exists()
    with pytest.raises(InputError, match="patients_per_group"):
        grade(spark, spark.range(1), spark.range(1), patients_per_group=0)


def _with_bad_rows(tmp_path: Path) -> Path:
    """The example cohort with an unknown analyte and an implausible CRP (1070 mg/L)."""
    d = EXAMPLES / "cohort"
    labs = pl.read_csv(d / "labs.csv", infer_schema=False)
    crp = labs.with_row_index("i").filter(pl.col("analyte").str.to_lowercase() == "crp")["i"][0]
    at = pl.int_range(pl.len())
    labs = labs.with_columns(
        pl.when(at == 3).then(pl.lit("ANC x")).otherwise("analyte").alias("analyte"),
        pl.when(at == crp).then(pl.lit("1070")).otherwise("value").alias("value"),
        pl.when(at == crp).then(pl.lit("mg/L")).otherwise("unit").alias("unit"),
    )
    labs.write_csv(tmp_path / "labs.csv")
    return tmp_path / "labs.csv"


def test_on_bad_row_skip_leaves_the_rows_out_and_lists_them(spark: Any, tmp_path: Path) -> None:
    """`--on-bad-row skip` on Spark: the local command's rows and the same problems (patient,
    field, message; rows are numbered within a group on Spark)."""
    from cart_cytopenia.spark.grading import grade_skipping_bad_rows

    labs, patients = _with_bad_rows(tmp_path), EXAMPLES / "cohort" / "patients.csv"
    skipped: list[Any] = []
    want = grade_cohort(read_cohort(labs, patients, None, skipped), Settings())
    csv = spark.read.option("header", True)
    graded, problems = grade_skipping_bad_rows(spark, csv.csv(str(labs)), csv.csv(str(patients)))
    got = pl.from_arrow(graded.toArrow())
    assert isinstance(got, pl.DataFrame)
    assert got.sort("patient_id").equals(want.sort("patient_id"))
    graded.unpersist()

    def what(ps: list[Any]) -> list[tuple[str, str, str]]:
        """(patient, field, message), the local file's name read as the Spark table's."""
        return sorted((p.location.patient_id or "", p.location.field or "", p.message) for p in ps)

    for p in skipped:
        p.message = p.message.replace(str(labs), "labs")

    assert len(problems) >= 3 and what(problems) == what(skipped)
    assert any("1070" in p.message for p in problems)
    out = tmp_path / "g.csv"
    r = run(
        "grade", "--labs", str(labs), "--patients", str(patients), "--engine", "spark",
        "--master", "local[2]", "--on-bad-row", "skip", "--out", str(out),
    )  # fmt: skip
    assert "left out bad lab rows" in r.stderr and "ANC x" in r.stderr and "1070" in r.stderr
    assert pl.read_csv(out, schema=GRADE_SCHEMA).equals(
        want.sort("patient_id").cast(GRADE_SCHEMA)  # type: ignore[arg-type]
    )
