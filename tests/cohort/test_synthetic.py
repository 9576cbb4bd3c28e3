"""The synthetic cohort generator (cohort/synthetic.py): determinism, format, content, courses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cart_cytopenia.cohort import synthetic, synthetic_courses, synthetic_labs
from cart_cytopenia.domain.analytes import resolve_analyte
from cart_cytopenia.domain.catalogues import products
from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.domain.units import resolve_unit
from cart_cytopenia.grading.assessment import assess
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.io.tables import read_cohort
from cart_cytopenia.rules.settings import Settings


@pytest.fixture(scope="module")
def cohort() -> synthetic.Block:
    return synthetic.generate_cohort(1500, seed=11)


@pytest.fixture(scope="module")
def canonical(cohort: synthetic.Block) -> pl.DataFrame:
    """The cohort's labs with catalogue codes and canonical values (as the engine sees them)."""
    return synthetic.block_frames(cohort).labs


def test_same_seed_same_cohort_other_seed_other_cohort() -> None:
    a = synthetic.generate_cohort(300, seed=5)
    b = synthetic.generate_cohort(300, seed=5)
    c = synthetic.generate_cohort(300, seed=6)
    for x, y in ((a.patients, b.patients), (a.labs, b.labs), (a.events, b.events)):
        assert x.equals(y)
    assert not a.labs.equals(c.labs)
    assert not a.patients["product"].equals(c.patients["product"])


def test_blocks_cover_every_patient_once() -> None:
    n = synthetic.BLOCK + 7
    blocks = list(synthetic.iter_cohort(n, seed=3))
    assert [b.patients.height for b in blocks] == [synthetic.BLOCK, 7]
    ids = pl.concat([b.patients["patient_id"] for b in blocks])
    assert ids.n_unique() == n
    assert ids[0] == "SYN000001" and ids[-1] == f"SYN{n:06d}"
    for b in blocks:  # no lab or event belongs to another block's patient
        assert set(b.labs["patient_id"].unique()) <= set(b.patients["patient_id"])
        assert set(b.events["patient_id"].unique()) <= set(b.patients["patient_id"])


def test_products_diseases_and_ages(cohort: synthetic.Block) -> None:
    p = cohort.patients
    assert set(p["product"].unique()) == set(products())  # the seven catalogue products
    assert {"LBCL", "FL", "MCL", "CLL", "B-ALL", "MM"} == set(p["disease"].unique())
    for prod, dis in p.select("product", "disease").unique().iter_rows():
        assert dis in products()[prod].diseases, (prod, dis)  # approved combinations only
    children = p.filter(pl.col("age_years") < 18)
    assert children.height > 0
    assert set(children["product"].unique()) == {"tisa-cel"}
    assert set(children["disease"].unique()) == {"B-ALL"}
    assert p["prior_auto_hct"].any() and p["prior_allo_hct"].any()
    mm = p.filter(pl.col("disease") == "MM")
    assert mm["prior_auto_hct"].mean() > 0.7  # most myeloma patients had an autograft


def test_units_and_names_are_a_realistic_mix(cohort: synthetic.Block) -> None:
    labs = cohort.labs
    anc_rows = labs.filter(
        pl.col("analyte").map_elements(lambda a: resolve_analyte(a).code, return_dtype=pl.String)
        == "anc"
    )
    units = {resolve_unit(u).ucum for u in anc_rows["unit"].unique()}
    assert {"/uL", "10*3/uL", "10*9/L"} <= units
    hb_units = {
        resolve_unit(u).ucum
        for a, u in labs.select("analyte", "unit").unique().iter_rows()
        if resolve_analyte(a).code == "hb"
    }
    assert {"g/dL", "g/L", "mmol/L"} <= hb_units
    names = set(labs["analyte"].unique())
    assert "751-8" in names and "ANC" in names and "anc" in names  # LOINC, alias, code
    # cells per microlitre are whole numbers (a fraction would be a unit mix-up)
    per_ul = labs.filter(pl.col("unit").is_in(["/uL", "cells/uL"]))
    assert (per_ul["value"] % 1 == 0).all()


def test_baseline_labs_before_lymphodepletion_score_most_patients(
    cohort: synthetic.Block, canonical: pl.DataFrame
) -> None:
    frames = synthetic.block_frames(cohort)
    base = canonical.filter(pl.col("day") < 0).join(
        frames.patients.select("patient_id", "ld_start_day"), on="patient_id"
    )
    assert (base["day"] <= base["ld_start_day"] + 5).all()
    graded = grade_cohort(frames, Settings())
    complete = graded["hematotox_score"].is_not_null().mean()
    assert complete is not None and complete > 0.93
    assert set(graded["hematotox_risk"].drop_nulls().unique()) == {"low", "high"}


def test_lab_schedule_as_in_practice(canonical: pl.DataFrame) -> None:
    anc_days = canonical.filter(pl.col("analyte") == "anc").select("patient_id", "day").unique()
    per_patient = anc_days.group_by("patient_id").agg(
        pl.col("day").is_between(0, 14).sum().alias("d0_14"),
        pl.col("day").is_between(15, 30).sum().alias("d15_30"),
        pl.col("day").is_between(31, 100).sum().alias("d31_100"),
        pl.col("day").is_between(101, 365).sum().alias("d101_365"),
        pl.col("day").max().alias("last"),
    )
    full = per_patient.filter(pl.col("last") >= 365)
    assert full.height > 100
    assert per_patient["d0_14"].median() >= 12  # daily in the first two weeks (most patients)
    assert 3 <= full["d15_30"].median() <= 8  # two to three times a week to day 30
    assert 8 <= full["d31_100"].median() <= 20  # weekly to day 100 (more while cytopenic)
    assert 6 <= full["d101_365"].median() <= 14  # about monthly after day 100
    # some days carry a repeat draw: the grading takes the day's lowest
    dup = canonical.filter(pl.col("analyte") == "anc").group_by("patient_id", "day").len()
    assert (dup["len"] > 1).any()


def test_transfusions_raise_the_next_count(
    cohort: synthetic.Block, canonical: pl.DataFrame
) -> None:
    plt_labs = canonical.filter(pl.col("analyte") == "platelets").sort("patient_id", "day")
    tx = cohort.events.filter(
        (pl.col("type") == "transfusion") & (pl.col("product") == "platelets")
    )
    assert tx.height > 50
    joined = (
        tx.select("patient_id", pl.col("start_day").alias("tx_day"))
        .join(plt_labs, on="patient_id")
        .filter(pl.col("day").is_between(pl.col("tx_day"), pl.col("tx_day") + 2))
        .group_by("patient_id", "tx_day")
        .agg(
            pl.col("value").filter(pl.col("day") == pl.col("tx_day")).min().alias("before"),
            pl.col("value").filter(pl.col("day") > pl.col("tx_day")).first().alias("after"),
        )
        .drop_nulls()
    )
    assert (joined["before"] < 10.5).all()  # transfused for a count below 10 x10^9/L
    assert (joined["after"] > joined["before"]).mean() > 0.9


def test_events_cover_the_course(cohort: synthetic.Block) -> None:
    ev = cohort.events
    kinds = set(ev["type"].unique())
    assert {
        "crs",
        "icans",
        "medication",
        "transfusion",
        "infection",
        "relapse",
        "next_therapy",
        "death",
        "stem_cell_boost",
    } <= kinds
    drugs = set(ev["drug"].drop_nulls().unique())
    assert {"filgrastim", "tocilizumab", "dexamethasone"} <= drugs
    assert drugs & {"eltrombopag", "romiplostim"}
    crs = ev.filter(pl.col("type") == "crs")
    assert crs["grade"].is_between(1, 4).all()
    assert (crs["end_day"] >= crs["start_day"]).all()


def test_competing_events_and_follow_up(cohort: synthetic.Block) -> None:
    frames = synthetic.block_frames(cohort)
    p = frames.patients
    n = p.height
    assert 0.3 < p["progression_day"].is_not_null().sum() / n < 0.7
    assert 0.05 < p["death_day"].is_not_null().sum() / n < 0.45
    assert (
        p["next_therapy_day"].is_not_null().sum() > 0.7 * p["progression_day"].is_not_null().sum()
    )
    # no lab after death or after the last follow-up; death is the last follow-up when known
    last_lab = frames.labs.group_by("patient_id").agg(pl.col("day").max().alias("last_lab"))
    x = p.join(last_lab, on="patient_id")
    assert (x["last_lab"] <= x["last_followup_day"]).all()
    dead = x.filter(pl.col("death_day").is_not_null())
    assert (dead["death_day"] == dead["last_followup_day"]).all()
    # loss to follow-up: some patients' records stop early although they are alive
    lost = x.filter(pl.col("death_day").is_null() & (pl.col("last_followup_day") < 100))
    assert lost.height > 0


def test_written_files_read_back_and_grade_the_same_in_every_form(tmp_path: Path) -> None:
    pq = synthetic.write_cohort(tmp_path / "pq", 400, seed=2)
    csv = synthetic.write_cohort(tmp_path / "csv", 400, seed=2, fmt="csv", lab_dates=True)
    assert pq.n_labs == csv.n_labs and pq.n_patients == 400
    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == [
        "events.csv",
        "labs.csv",
        "patients.csv",
    ]
    assert "date" in pl.read_csv(csv.labs, n_rows=1).columns
    g1 = grade_cohort(read_cohort(pq.labs, pq.patients, pq.events), Settings())
    g2 = grade_cohort(read_cohort(csv.labs, csv.patients, csv.events), Settings())
    assert g1.height == 400
    cols = ["patient_id", "early_icaht_grade", "late_icaht_grade", "phenotype", "hematotox_score"]
    assert g1.select(cols).equals(g2.select(cols))


def test_a_failed_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = synthetic.iter_cohort

    def broken(n: int, seed: int, block: int = synthetic.BLOCK):  # type: ignore[no-untyped-def]
        yield next(real(n, seed, 50))
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic, "iter_cohort", broken)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk full"):
        synthetic.write_cohort(out, 200, seed=1)
    assert list(out.iterdir()) == []


def test_generate_courses_one_per_phenotype_and_valid_json(tmp_path: Path) -> None:
    courses = synthetic_courses.generate_courses(4, seed=9)
    assert len(courses) == 4
    assert len({c.patient.id for c in courses}) == 4
    phen = {assess(c, None, Settings()).phenotype.phenotype for c in courses}
    assert {"quick", "intermittent", "aplastic"} <= phen
    assert any(c.patient.age_years is not None and c.patient.age_years < 18 for c in courses)
    # a course survives a JSON round trip unchanged
    c = courses[0]
    text = json.dumps(c.model_dump(mode="json", exclude_none=True))
    again = parse_course(text)
    assert again.model_dump() == c.model_dump()
    assert synthetic_courses.generate_courses(4, seed=9)[2].model_dump() == courses[2].model_dump()


def test_outcome_gradient_by_hematotox_score(cohort: synthetic.Block) -> None:
    """Higher baseline scores give longer severe neutropenia (the score's validated use)."""
    graded = grade_cohort(synthetic.block_frames(cohort), Settings())
    by = (
        graded.filter(pl.col("hematotox_score").is_not_null())
        .group_by(pl.col("hematotox_score").clip(0, 4))
        .agg(pl.col("days_anc_le_500_d0_60").median().alias("median"))
        .sort("hematotox_score")
    )
    med = by["median"].to_numpy()
    assert np.all(np.diff(med) >= 0) and med[-1] > med[0] + 5


def test_generated_values_pass_the_validator_at_the_extremes() -> None:
    """Generator and validator agree (issue 14): the 1M-patient seed-11 cohort had a CRP of
    107 mg/dL (1070 mg/L) that `grade` rejects as implausible, so the whole run graded nothing.
    Values past the catalogue's plausible range, in every centre's units, are kept inside it."""
    from cart_cytopenia.domain.frames import normalise_labs

    n_prof = len(synthetic.PROFILES)
    extreme = {"anc": 2e5, "wbc": 2e3, "alc": 1e5, "platelets": 9e3, "hb": 1.0}
    extreme |= {"crp": 107.0, "ferritin": 5e6, "ldh": 1e6, "creatinine": 200.0}
    extreme |= {"ast": 1e6, "alt": 1e6, "bilirubin": 500.0, "fibrinogen": 5e3}
    extreme |= {"triglycerides": 1e5}
    m = 2 * n_prof  # each centre's profile: one draw too high, one too low
    vals = {a: np.r_[np.full(n_prof, v), np.full(n_prof, -1.0)] for a, v in extreme.items()}
    rows = synthetic_labs._lab_rows(
        np.arange(m),
        np.full(m, 5),
        vals,
        {a: np.ones(m, bool) for a in extreme},
        np.zeros(m, bool),
        np.r_[np.arange(n_prof), np.arange(n_prof)],
        np.array([f"p{i}" for i in range(m)], dtype=object),
        np.random.default_rng(0),
    )
    assert rows.height == m * len(extreme)
    normalised = normalise_labs(rows)  # raises on any implausible value
    crp = normalised.filter(pl.col("analyte") == "crp")["value"]
    assert crp.max() <= resolve_analyte("crp").plausible_high
