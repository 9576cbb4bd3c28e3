"""The cohort report's distribution and duration tables aggregated on Spark equal the local
report's tables (issue 14)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from cart_cytopenia.cohort.report import (
    DISTRIBUTION_BY,
    DURATION_BY,
    MEASURES,
    categories,
    distribution,
    duration_summary,
)
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.io.tables import read_cohort
from cart_cytopenia.rules.settings import Settings
from cart_cytopenia.spark import grade
from cart_cytopenia.spark.report import report_tables


def test_report_tables_on_spark_equal_the_local_report(spark: Any, generated: Path) -> None:
    names = ("labs", "patients", "events")
    frames = read_cohort(*(generated / f"{k}.parquet" for k in names))
    d = categories(
        grade_cohort(frames, Settings()).join(
            frames.patients.select("patient_id", "product", "disease"), on="patient_id"
        )
    )
    want_dist = pl.concat([distribution(d, by, MEASURES) for by in DISTRIBUTION_BY])
    want_durs = pl.concat([duration_summary(d, by) for by in DURATION_BY])

    labs, patients, events = (spark.read.parquet(str(generated / f"{k}.parquet")) for k in names)
    got = report_tables(grade(spark, labs, patients, events, patients_per_group=100), patients)
    dist_keys = ["by", "measure", "group", "category"]
    assert got["grade_distributions"].equals(
        want_dist.cast(got["grade_distributions"].schema).sort(dist_keys, nulls_last=True)
    )
    assert got["durations"].equals(want_durs.cast(got["durations"].schema).sort("by", "group"))
    assert got["grade_distributions"]["by"].unique().sort().to_list() == sorted(DISTRIBUTION_BY)
