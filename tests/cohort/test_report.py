"""The cohort report (cohort/report.py, cohort/analysis.py) and its command line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cart_cytopenia.cohort import analysis, report, synthetic
from cart_cytopenia.cohort.survival import aalen_johansen
from cart_cytopenia.domain.frames import CohortFrames
from cart_cytopenia.errors import InputError
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.rules.settings import Settings
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def frames() -> CohortFrames:
    return synthetic.block_frames(synthetic.generate_cohort(800, seed=21))


@pytest.fixture(scope="module")
def built(frames: CohortFrames, tmp_path_factory: pytest.TempPathFactory) -> report.ReportFiles:
    out = tmp_path_factory.mktemp("rep") / "cohort.html"
    return report.build_report(frames, Settings(), out, source="synthetic test cohort")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cart_cytopenia.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_report_is_self_contained_html_with_every_section(built: report.ReportFiles) -> None:
    text = built.html.read_text(encoding="utf-8")
    for section in (
        "characteristics",
        "grades",
        "durations",
        "recovery",
        "counts",
        "published",
        "definitions",
    ):
        assert f'id="{section}"' in text
    # no script, stylesheet or image from anywhere else: everything is embedded
    assert "<script" not in text
    assert not re.search(r'(src|href)="(https?:)?//', text)
    images = re.findall(r'<img src="data:image/png;base64,', text)
    assert len(images) >= 15
    assert "Aalen" in text and "CAR-HEMATOTOX" in text and "synthetic test cohort" in text


def test_tables_beside_the_report(built: report.ReportFiles) -> None:
    names = {p.stem for p in built.tables.iterdir()}
    assert {
        "characteristics",
        "grade_distributions",
        "durations",
        "cumulative_incidence_at_days",
        "cumulative_incidence_curves",
        "recovery_endpoints",
        "published_comparison",
        "grades",
        "easix_by_outcome",
        "tatma_counts",
        "iechs_by_product",
    } <= names
    grades = pl.read_csv(built.tables / "grades.csv", infer_schema_length=None)
    assert grades.height == built.n_patients == 800
    dist = pl.read_csv(built.tables / "grade_distributions.csv", infer_schema=False).with_columns(
        pl.col("share").cast(pl.Float64)
    )
    early = dist.filter((pl.col("measure") == "early ICAHT") & (pl.col("by") == "CAR-HEMATOTOX"))
    shares = early.group_by("group").agg(pl.col("share").sum())
    assert np.allclose(shares["share"].to_numpy(), 1.0, atol=1e-3)
    # T-ICAHT distributions by product and by CAR-HEMATOTOX group, from the engine's grades
    for measure, col in (("early T-ICAHT", "early_ticaht_grade"), ("late T-ICAHT", None)):
        for by in ("product", "CAR-HEMATOTOX"):
            part = dist.filter((pl.col("measure") == measure) & (pl.col("by") == by))
            per_group = part.group_by("group").agg(pl.col("share").sum())
            assert np.allclose(per_group["share"].to_numpy(), 1.0, atol=1e-3)
        if col:
            n3 = int((grades[col] >= 3).sum())
            k3 = part.filter(pl.col("category").is_in(["3", "4"]))["n"].cast(pl.Int64).sum()
            assert k3 == n3 > 0


def test_easix_by_outcome(built: report.ReportFiles) -> None:
    tab = pl.read_csv(built.tables / "easix_by_outcome.csv", infer_schema=False)
    grades = pl.read_csv(built.tables / "grades.csv", infer_schema_length=None)
    crs = tab.filter(
        (pl.col("outcome") == "CRS grade >= 3") & (pl.col("score") == "EASIX before LD")
    )
    assert set(crs["with_outcome"]) == {"yes", "no"}
    n_yes = int(crs.filter(pl.col("with_outcome") == "yes")["n"][0])
    assert n_yes == int((grades["crs_max_grade"] >= 3).sum()) > 0
    with_score = int(crs["n_with_score"].cast(pl.Int64).sum())
    assert with_score == grades["easix_baseline"].drop_nulls().len() > 0
    assert "EASIX and m-EASIX by outcome" in built.html.read_text(encoding="utf-8")


def test_tatma_counts(built: report.ReportFiles) -> None:
    tab = pl.read_csv(built.tables / "tatma_counts.csv", infer_schema_length=None)
    grades = pl.read_csv(built.tables / "grades.csv", infer_schema_length=None)
    (everyone,) = tab.filter(pl.col("by") == "all").iter_rows(named=True)
    assert everyone["n"] == grades.height
    meets = int((grades["tatma_status"] == "meets").sum())
    assert everyone["meets"] == meets > 0  # the synthetic work-up makes some patients meet them
    undecided = everyone["workup_incomplete"] + everyone["not_evaluated"]
    assert everyone["meets"] + everyone["not_met"] + undecided == grades.height
    assert everyone["not_evaluated"] == int((grades["tatma_status"] == "not evaluated").sum())
    allo = tab.filter(pl.col("by") == "prior allo-HCT")
    assert allo["n"].sum() == grades.height
    assert "TA-TMA harmonised criteria" in built.html.read_text(encoding="utf-8")


def test_iechs_by_product(built: report.ReportFiles) -> None:
    tab = pl.read_csv(built.tables / "iechs_by_product.csv")
    grades = pl.read_csv(built.tables / "grades.csv", infer_schema_length=None)
    statuses = ["astct_met", "astct_suspected", "astct_not_met", "astct_not_assessable"]
    assert (tab.select(pl.sum_horizontal(statuses).alias("s"))["s"] == tab["n"]).all()
    every = tab.filter(pl.col("product") == "all").row(0, named=True)
    assert every["n"] == grades.height
    assert every["astct_met"] == int((grades["iechs_astct_status"] == "met").sum())
    assert every["astct_met"] + every["astct_suspected"] > 0  # the generator's IEC-HS patients
    assert tab.filter(pl.col("product") != "all")["n"].sum() == grades.height
    assert "IEC-HS by product" in built.html.read_text(encoding="utf-8")


def test_report_numbers_are_the_engine_s(frames: CohortFrames, built: report.ReportFiles) -> None:
    grades = pl.read_csv(built.tables / "grades.csv", infer_schema_length=None)
    direct = grade_cohort(frames, Settings())
    assert grades["early_icaht_grade"].to_list() == direct["early_icaht_grade"].to_list()
    assert grades["phenotype"].to_list() == direct["phenotype"].to_list()


def test_cumulative_incidence_table_matches_the_estimator(built: report.ReportFiles) -> None:
    ep = pl.read_csv(built.tables / "recovery_endpoints.csv").filter(
        pl.col("endpoint") == "neutrophil"
    )
    at = pl.read_csv(built.tables / "cumulative_incidence_at_days.csv").filter(
        (pl.col("endpoint") == "neutrophil")
        & (pl.col("by") == "all")
        & (pl.col("group") == "all patients")
    )
    c = aalen_johansen(ep["time"].to_numpy(), ep["cause"].to_numpy(), analysis.RECOVERY)
    for day, value in at.select("day", "cumulative_incidence").iter_rows():
        assert abs(c.at(float(day))[0][0] - value) < 1e-4
    # recovery is most likely by day 30 here, and every cause code is a documented one
    assert at.filter(pl.col("day") == 30)["cumulative_incidence"][0] > 0.6
    assert set(ep["cause"].unique()) <= set(analysis.CAUSES)


def test_recovery_end_points_follow_their_definitions(frames: CohortFrames) -> None:
    a = analysis.analyse(frames, Settings(), sample_size=50)
    neut = a.endpoints.filter(pl.col("endpoint") == "neutrophil").join(a.graded, on="patient_id")
    # at risk only when ANC was <= 500 from day 0; recovery on the engine's first recovery day
    assert (neut["anc_nadir"] <= 500).all()
    rec = neut.filter(pl.col("cause") == analysis.RECOVERY)
    same = rec.filter(pl.col("first_recovery_day").is_not_null())
    assert (same["time"] == same["first_recovery_day"]).mean() > 0.95
    assert a.samples["patient_id"].n_unique() == 50
    plt20 = a.endpoints.filter(pl.col("endpoint") == "platelet20").join(a.graded, on="patient_id")
    assert (plt20["platelet_nadir"] < 20).all()


def test_cli_report_and_a_bad_row(tmp_path: Path) -> None:
    files = synthetic.write_cohort(tmp_path / "cohort", 300, seed=5, fmt="csv")
    out = tmp_path / "out" / "r.html"
    out.parent.mkdir()  # (a missing output folder is an error: tests/cli/test_bad_inputs.py)
    ok = run("cohort", "report", str(files.directory), "--out", str(out))
    assert ok.returncode == 0, ok.stderr
    assert out.exists() and (tmp_path / "out" / "r_tables" / "grades.csv").exists()

    # the same cohort with one bad lab row: a clear error naming the row; nothing is written
    labs = files.labs.read_text(encoding="utf-8").splitlines()
    fields = labs[41].split(",")
    fields[3] = "twelve"  # a value that is not a number
    labs[41] = ",".join(fields)
    files.labs.write_text("\n".join(labs) + "\n", encoding="utf-8")
    bad_out = tmp_path / "bad" / "r.html"
    bad_out.parent.mkdir()
    p = run("cohort", "report", str(files.directory), "--out", str(bad_out))
    assert p.returncode == 2
    assert "row 42" in p.stderr and "'twelve' is not a number" in p.stderr
    assert "Traceback" not in p.stderr
    assert not bad_out.exists() and not (tmp_path / "bad" / "r_tables").exists()
    graded = tmp_path / "bad" / "grades.csv"
    g = run(
        "grade",
        "--labs",
        str(files.labs),
        "--patients",
        str(files.patients),
        "--events",
        str(files.events),
        "--out",
        str(graded),
    )
    assert g.returncode == 2 and "row 42" in g.stderr
    assert not graded.exists()
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


def test_an_implausible_value_names_the_patient_row_and_mix_up(tmp_path: Path) -> None:
    files = synthetic.write_cohort(tmp_path / "c", 100, seed=8, fmt="csv")
    labs = pl.read_csv(files.labs, infer_schema=False)
    row = labs.with_row_index().filter(pl.col("unit") == "g/dL")["index"][3]
    pid = labs["patient_id"][row]
    labs = labs.with_columns(
        pl.when(pl.int_range(pl.len()) == row)
        .then(pl.lit("95"))
        .otherwise(pl.col("value"))
        .alias("value")
    )
    labs.write_csv(files.labs)
    out = tmp_path / "r.html"
    p = run("cohort", "report", str(files.directory), "--out", str(out))
    assert p.returncode == 2
    assert f"row {row + 2}" in p.stderr and pid in p.stderr and "g/L" in p.stderr
    assert not out.exists()


def test_report_refuses_a_non_html_name(frames: CohortFrames, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\.html"):
        report.build_report(frames, Settings(), tmp_path / "r.pdf")
    assert not any(tmp_path.iterdir())
    # on the command line: one clear line and exit code 2, not a traceback
    p = run("cohort", "report", str(ROOT / "examples" / "cohort"), "--out", str(tmp_path / "rep"))
    assert p.returncode == 2 and "name it .html" in p.stderr and "Traceback" not in p.stderr


def test_report_on_a_tiny_cohort_without_events(tmp_path: Path) -> None:
    """Groups too small for curves and no event table: the report still builds, with tables."""
    files = synthetic.write_cohort(tmp_path / "tiny", 12, seed=3)
    files.events.unlink()
    out = tmp_path / "tiny.html"
    p = run("cohort", "report", str(files.directory), "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert "12 patients" in out.read_text(encoding="utf-8")
    assert pl.read_csv(tmp_path / "tiny_tables" / "grades.csv").height == 12


def test_easix_by_prolonged_cytopenia(built: report.ReportFiles) -> None:
    """EASIX by prolonged cytopenia (significant cytopenia on or after day 30; 'no' only with
    follow-up to day 30) and by severe neutropenia >= 14 days, counted against the grade table."""
    tab = pl.read_csv(built.tables / "easix_by_outcome.csv", infer_schema=False)
    g = pl.read_csv(built.tables / "grades.csv", infer_schema_length=None)
    phases = g.select(report.LATEST_PHASE_COLUMNS)
    prolonged = phases.select(
        pl.any_horizontal(
            [pl.col(c).is_in(["prolonged", "late"]).fill_null(False) for c in phases.columns]
        )
    ).to_series()
    rows = tab.filter(
        (pl.col("outcome") == "prolonged cytopenia (day >= 30)")
        & (pl.col("score") == "EASIX before LD")
    )
    n = {r["with_outcome"]: int(r["n"]) for r in rows.iter_rows(named=True)}
    assert n["yes"] == int(prolonged.sum()) > 0
    assert 0 < n["no"] <= g.height - n["yes"]
    # the median shown is the median of the grade table's EASIX in that group
    yes = g.filter(prolonged)["easix_baseline"].drop_nulls().to_numpy()
    shown = rows.filter(pl.col("with_outcome") == "yes")["median_iqr"][0]
    assert shown.startswith(f"{np.quantile(yes, 0.5):.1f} (")
    severe = tab.filter(
        (pl.col("outcome") == "severe neutropenia >= 14 days (day 0-60)")
        & (pl.col("score") == "EASIX before LD")
        & (pl.col("with_outcome") == "yes")
    )
    assert int(severe["n"][0]) == int((g["days_anc_le_500_d0_60"] >= 14).sum()) > 0
    assert "above_cutoff" in tab.columns and severe["above_cutoff"][0]


def test_prolonged_cytopenia_unknown_without_follow_up_to_day_30() -> None:
    d = pl.DataFrame(
        {
            "neutropenia_latest_phase": ["prolonged", None, None, "early"],
            "thrombocytopenia_latest_phase": [None, None, None, None],
            "anaemia_latest_phase": [None, "late", None, None],
            "last_followup_day": [20, 200, 20, 120],
            "days_anc_le_500_d0_60": [14, 13, None, 0],
        }
    )
    out = d.select(**report.prolonged_cytopenia_outcomes())
    assert out["prolonged cytopenia (day >= 30)"].to_list() == [True, True, None, False]
    assert out["severe neutropenia >= 14 days (day 0-60)"].to_list() == [True, False, None, False]


def test_the_report_from_its_aggregates_alone_has_the_same_tables(
    built: report.ReportFiles, tmp_path: Path
) -> None:
    """What `cohort report --engine spark` writes on the driver: the report from the aggregate
    tables alone (here read back from the full report's CSVs) gives the same distribution,
    duration and cumulative-incidence files byte for byte, and says what it leaves out."""
    names = ("grade_distributions", "durations", "cumulative_incidence_inputs")
    aggregates = {
        n: pl.read_csv(built.tables / f"{n}.csv", infer_schema_length=None) for n in names
    }
    aggregates["cumulative_incidence_inputs"] = aggregates["cumulative_incidence_inputs"].cast(
        {"time": pl.Float64, "cause": pl.Int8}
    )
    out = report.write_aggregate_report(
        built.n_patients, aggregates, Settings(), tmp_path / "agg.html"
    )
    for n in (*names, "cumulative_incidence_at_days", "cumulative_incidence_curves"):
        assert (out.tables / f"{n}.csv").read_bytes() == (built.tables / f"{n}.csv").read_bytes()
    page = out.html.read_text(encoding="utf-8")
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) >= 4
    assert "need each patient's values" in page and "Aalen" in page
    with pytest.raises(InputError, match="HTML"):
        report.write_aggregate_report(1, aggregates, Settings(), tmp_path / "agg.txt")
