"""An OMOP CDM extract read on Spark (`cohort omop --engine spark`): the same mapping, cohort and
grade table as the local reader, MEASUREMENT cut to the infused persons on the executors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from cart_cytopenia.cohort import synthetic
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.io import omop
from cart_cytopenia.rules.settings import Settings
from cart_cytopenia.spark.omop import grade_omop, read_omop_spark
from tests.cli.test_cli import run


def test_omop_on_spark_maps_and_grades_like_the_local_reader(spark: Any, tmp_path: Path) -> None:
    block = synthetic.generate_cohort(120, seed=8)
    tables = omop.to_omop(block.patients, block.labs, block.events)
    src = omop.write_omop(tables, tmp_path / "cdm")
    local = omop.read_omop(src)
    on_spark = read_omop_spark(spark, str(src))
    assert on_spark.summary.persons_with_infusion == local.summary.persons_with_infusion == 120
    assert on_spark.summary.measurements_used == local.summary.measurements_used
    for name in ("patients", "labs", "events"):
        a, b = getattr(on_spark.frames, name), getattr(local.frames, name)
        assert a.sort(a.columns).equals(b.sort(b.columns)), name
    want = grade_cohort(local.frames, Settings()).sort("patient_id")
    got = pl.from_arrow(grade_omop(spark, on_spark, patients_per_group=40).toArrow())
    assert isinstance(got, pl.DataFrame)
    assert got.sort("patient_id").equals(want)
    # the command: a catalogue schema works the same way (here the directory of the extract)
    r = run(
        "cohort", "omop", str(src), "--engine", "spark", "--master", "local[2]",
        "--out", str(tmp_path / "grades.parquet"),
    )  # fmt: skip
    assert "graded 120 patients on Spark" in r.stderr
    assert pl.read_parquet(tmp_path / "grades.parquet").equals(want)
