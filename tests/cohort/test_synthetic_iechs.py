"""The synthetic IEC-HS courses and the routine liver / coagulation panel
(cohort/synthetic_iechs.py): graded IEC-HS agrees with what was generated, everyone else's panel
is in range, and generator and validator agree at 100,000 patients."""

from __future__ import annotations

import polars as pl
import pytest

from cart_cytopenia.cohort import synthetic
from cart_cytopenia.cohort.synthetic_iechs import PANEL
from cart_cytopenia.domain.frames import normalise_labs
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.rules.settings import Settings


@pytest.fixture(scope="module")
def cohort() -> synthetic.Block:
    return synthetic.generate_cohort(4000, seed=23)


@pytest.fixture(scope="module")
def graded(cohort: synthetic.Block) -> pl.DataFrame:
    table = grade_cohort(synthetic.block_frames(cohort), Settings())
    return table.join(cohort.truth.select("patient_id", "iec_hs"), on="patient_id")


def test_a_small_literature_plausible_share_develops_iec_hs(cohort: synthetic.Block) -> None:
    truth = cohort.truth.join(
        cohort.patients.select("patient_id", "disease", "prior_allo_hct"), on="patient_id"
    )
    share = truth["iec_hs"].mean()
    assert 0.01 <= share <= 0.04  # about 1-4% after CAR-T (docs/cohort.md, "IEC-HS")
    by = truth.group_by("disease").agg(pl.col("iec_hs").mean()).rows()
    rate = dict(by)
    assert rate["MM"] > rate["LBCL"]  # more with the BCMA products
    assert rate["B-ALL"] > rate["LBCL"]
    allo = truth.group_by("prior_allo_hct").agg(pl.col("iec_hs").mean())
    after = dict(allo.rows())
    assert after[True] > after[False]  # and after an allogeneic HCT


def test_graded_iec_hs_agrees_with_what_was_generated(graded: pl.DataFrame) -> None:
    status = "iechs_astct_status"
    cases = graded.filter(pl.col("iec_hs"))
    others = graded.filter(~pl.col("iec_hs"))
    assert cases.height >= 40
    found = cases[status].is_in(["met", "suspected"]).mean()
    assert found is not None and found >= 0.9  # most generated cases met or suspected
    assert (cases[status] == "met").mean() >= 0.8
    false_met = (others[status] == "met").sum()
    assert false_met <= 0.002 * others.height  # almost no false "met"


def test_iec_hs_course_after_crs_with_its_work_up_and_treatment(cohort: synthetic.Block) -> None:
    frames = synthetic.block_frames(cohort)
    cases = cohort.truth.filter(pl.col("iec_hs")).select("patient_id", "iec_hs_onset_day")
    labs = frames.labs.join(cases, on="patient_id")
    after = labs.filter(pl.col("day") >= pl.col("iec_hs_onset_day"))
    before = labs.filter(pl.col("day") < pl.col("iec_hs_onset_day"))

    def per_patient(df: pl.DataFrame, analyte: str, how: pl.Expr) -> pl.DataFrame:
        return df.filter(pl.col("analyte") == analyte).group_by("patient_id").agg(how)

    peak = per_patient(after, "ferritin", pl.col("value").max().alias("peak"))
    low = per_patient(before, "ferritin", pl.col("value").min().alias("low"))
    ratio = peak.join(low, on="patient_id").select(pl.col("peak") / pl.col("low"))
    assert ratio.to_series().median() > 4  # ferritin rises well past 2x as CRS resolves
    fib = per_patient(after, "fibrinogen", pl.col("value").min())["value"]
    assert (fib < 150).mean() >= 0.6  # falling fibrinogen
    # triglycerides are only drawn in the IEC-HS work-up
    tg = frames.labs.filter(pl.col("analyte") == "triglycerides")["patient_id"].unique()
    assert set(tg.to_list()) <= set(cases["patient_id"].to_list())
    drugs = cohort.events.join(cases, on="patient_id").filter(
        pl.col("start_day") >= pl.col("iec_hs_onset_day")
    )
    assert drugs.filter(pl.col("drug") == "anakinra")["patient_id"].n_unique() >= 0.6 * (
        cases.height
    )
    marrows = cohort.truth.filter(pl.col("iec_hs_marrow_day").is_not_null())
    assert 0 < marrows["iec_hs_haemophagocytosis"].sum() < marrows.height  # sometimes


def test_everyone_else_has_the_routine_panel_in_range(cohort: synthetic.Block) -> None:
    frames = synthetic.block_frames(cohort)
    others = cohort.truth.filter(~pl.col("iec_hs")).select("patient_id")
    labs = frames.labs.join(others, on="patient_id")
    counted = labs.group_by("analyte").agg(
        pl.len(), pl.col("patient_id").n_unique().alias("patients"), pl.col("value").median()
    )
    got = {r["analyte"]: r for r in counted.iter_rows(named=True)}
    for a in ("ast", "alt", "bilirubin", "fibrinogen"):
        assert got[a]["patients"] >= 0.95 * others.height, a  # everyone has the panel
    assert "triglycerides" not in got
    ranges = Settings().reference_ranges
    assert got["ast"]["value"] < ranges.ast_uln_u_l
    assert got["alt"]["value"] < ranges.alt_uln_u_l
    assert got["bilirubin"]["value"] < ranges.bilirubin_uln_mg_dl
    assert 200 <= got["fibrinogen"]["value"] <= 450
    low_fib = labs.filter((pl.col("analyte") == "fibrinogen") & (pl.col("value") < 150))
    assert low_fib.height <= 0.001 * got["fibrinogen"]["len"]


@pytest.mark.slow
def test_generator_and_validator_agree_at_100000_patients() -> None:
    """Every block of the 100,000-patient cohort (every centre's names and units, the panel and
    the IEC-HS courses at their extremes) passes the validator ``grade`` reads files with."""
    seen: set[str] = set()
    for block in synthetic.iter_cohort(100_000, seed=42):
        canonical = normalise_labs(block.labs, source="synthetic labs")  # raises on a bad value
        seen |= set(canonical["analyte"].cast(pl.String).unique().to_list())
    assert set(PANEL) <= seen
