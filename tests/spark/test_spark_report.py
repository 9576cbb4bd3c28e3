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
from tests.cli.test_cli import run


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
    assert got["grade_distributions"].equals(want_dist.cast(got["grade_distributions"].schema))
    assert got["durations"].equals(want_durs.cast(got["durations"].schema))
    assert got["grade_distributions"]["by"].unique().sort().to_list() == sorted(DISTRIBUTION_BY)


AGGREGATE_TABLES = (
    "grade_distributions",
    "durations",
    "cumulative_incidence_inputs",
    "cumulative_incidence_at_days",
    "cumulative_incidence_curves",
)


def test_the_report_aggregated_on_spark_has_the_local_report_tables(
    spark: Any, generated: Path, tmp_path: Path
) -> None:
    """`cohort report --engine spark` (and its API): the distributions, durations and the
    cumulative-incidence inputs counted on Spark, the curves and tables computed from them here,
    give the local report's CSV files byte for byte."""
    from cart_cytopenia.cohort.report import build_report, write_aggregate_report
    from cart_cytopenia.spark.report import report_aggregates

    names = ("labs", "patients", "events")
    local = build_report(
        read_cohort(*(generated / f"{k}.parquet" for k in names)), Settings(), tmp_path / "l.html"
    )
    labs, patients, events = (spark.read.parquet(str(generated / f"{k}.parquet")) for k in names)
    n, aggregates = report_aggregates(labs, patients, events, patients_per_group=150)
    assert n == local.n_patients == 400
    on_spark = write_aggregate_report(n, aggregates, Settings(), tmp_path / "s.html")
    by_cli = tmp_path / "cli.html"
    r = run("cohort", "report", str(generated), "--engine", "spark", "--master", "local[2]",
            "--out", str(by_cli))  # fmt: skip
    assert "report on 400 patients" in r.stderr
    for name in AGGREGATE_TABLES:
        want = (local.tables / f"{name}.csv").read_bytes()
        assert (on_spark.tables / f"{name}.csv").read_bytes() == want, name
        assert (tmp_path / "cli_tables" / f"{name}.csv").read_bytes() == want, name
    page = by_cli.read_text(encoding="utf-8")
    assert page.count('<img src="data:image/png;base64,') >= 4 and "Aalen" in page
    assert "need each patient's values" in page  # what is left out is said
