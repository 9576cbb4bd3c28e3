"""A 5,000-patient synthetic cohort, graded by the real engine, against the published aggregates.

Targets and tolerances: cart_cytopenia.cohort.calibration (Rejeski et al., Blood 2021, Tables 2
and 3; tolerance = half-width of the published estimate's 95% confidence interval, or 2-3 days
for medians, 0.05 for the AUC). Measured on the synthetic patients of the published setting
(LBCL treated with axi-cel or tisa-cel), written to Parquet and read back as a user would.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from cart_cytopenia.cohort import calibration, synthetic
from cart_cytopenia.domain.frames import CohortFrames
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.io.tables import read_cohort
from cart_cytopenia.rules.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, CohortFrames]:
    files = synthetic.write_cohort(tmp_path_factory.mktemp("cal"), 5000, seed=2026)
    frames = read_cohort(files.labs, files.patients, files.events)
    return grade_cohort(frames, Settings()), frames


def test_every_published_aggregate_within_tolerance(
    graded: tuple[pl.DataFrame, CohortFrames],
) -> None:
    table = calibration.measure(*graded)
    assert table.height == len(calibration.TARGETS)
    assert (table["n_synthetic"] > 300).all()  # enough patients behind every figure
    off = table.filter(~pl.col("within_tolerance"))
    assert off.height == 0, off.select("id", "published", "tolerance", "synthetic").to_dicts()


def test_the_calibration_check_can_fail(graded: tuple[pl.DataFrame, CohortFrames]) -> None:
    """Shorten every neutropenia: the duration targets must then be reported as missed."""
    g, frames = graded
    shorter = g.with_columns((pl.col("days_anc_le_500_d0_60") // 3).alias("days_anc_le_500_d0_60"))
    table = calibration.measure(shorter, frames)
    missed = set(table.filter(~pl.col("within_tolerance"))["id"])
    assert {"median_severe_days", "severe_14d", "severe_14d_high"} <= missed


def test_phenotype_mix_follows_the_review(graded: tuple[pl.DataFrame, CohortFrames]) -> None:
    """The review: intermittent recovery is common; an aplastic course is a minority."""
    g, frames = graded
    sub = calibration.calibration_subset(g, frames.patients)
    share = sub["phenotype"].drop_nulls().value_counts(normalize=True)
    s = dict(zip(share["phenotype"], share["proportion"], strict=True))
    assert s["intermittent"] > 0.25
    assert s["aplastic"] < s["intermittent"] and s["aplastic"] < s["quick"]
    assert 0.1 < s["aplastic"] < 0.3


def test_tolerances_are_the_published_confidence_intervals() -> None:
    t = {x.id: x for x in calibration.TARGETS}
    assert t["anc_le_500"].tolerance == 0.04  # 1.96 * sqrt(.91 * .09 / 235) = 0.037
    assert t["severe_14d_high"].tolerance == 0.11  # n = 83
    assert t["median_severe_days"].tolerance == 2


def test_calibration_subset_is_the_published_setting(
    graded: tuple[pl.DataFrame, CohortFrames], tmp_path: Path
) -> None:
    g, frames = graded
    sub = calibration.calibration_subset(g, frames.patients)
    kinds = sub.join(frames.patients, on="patient_id").select("disease", "product").unique()
    assert set(kinds["disease"]) == {"LBCL"}
    assert set(kinds["product"]) == {"axi-cel", "tisa-cel"}
