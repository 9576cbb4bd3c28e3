"""The command line as a user meets it: assess, grade, schema, docs; bad input included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cart_cytopenia.cli.rule_reference import rule_reference
from tests.conftest import EXAMPLES, PEER_DATA, ROOT


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(
        [sys.executable, "-m", "cart_cytopenia.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}\nstdout:{p.stdout}\nstderr:{p.stderr}")
    return p


def test_assess_text_on_review_case_1() -> None:
    out = run("assess", str(EXAMPLES / "review-case-1.json"), "--day", "60").stdout
    assert "Patient review-case-1" in out
    assert "day 60" in out
    assert "EHA/EBMT ICAHT" in out
    assert "grade 3" in out
    assert "CAR-HEMATOTOX" in out
    assert "HIGH risk" in out
    assert "intermittent" in out
    assert "Settings in force" in out


def test_assess_json_has_every_result() -> None:
    data = json.loads(
        run("assess", str(EXAMPLES / "review-case-2.json"), "--format", "json").stdout
    )
    for key in (
        "ctcae",
        "early_icaht",
        "late_icaht",
        "hematotox",
        "phenotype",
        "lineages",
        "based_on",
    ):
        assert key in data
    assert data["early_icaht"]["result"]["grade"] == 4


def test_assess_bad_file_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "patient": {"id": "z", "disease": "LBCL"},
                "product": {"name": "axi-cel"},
                "infusion_date": "2024-02-01",
                "labs": [{"day": 3, "analyte": "ANC", "value": 1500, "unit": "10^9/L"}],
            }
        )
    )
    p = run("assess", str(bad), check=False)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert "labs[0]" in p.stderr
    assert "probably 1500 /uL" in p.stderr
    missing = run("assess", str(tmp_path / "nope.json"), check=False)
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr


@pytest.mark.skipif(not PEER_DATA.exists(), reason="shared peer data not present")
def test_grade_peer_data_to_csv(tmp_path: Path) -> None:
    out = tmp_path / "grades.csv"
    run(
        "grade",
        "--labs",
        str(PEER_DATA / "labs.csv"),
        "--patients",
        str(PEER_DATA / "patients.csv"),
        "--out",
        str(out),
    )
    df = pl.read_csv(out)
    assert df.height == 10
    for col in (
        "patient_id",
        "early_icaht_grade",
        "late_icaht_grade",
        "early_days_anc_le_500",
        "early_days_anc_le_100",
        "late_anc_1",
        "late_anc_2",
        "ctcae_worst_neutrophils",
        "phenotype",
    ):
        assert col in df.columns


def _synthetic_cohort(tmp_path: Path, n: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(7)
    days = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 17, 21, 24, 28, 35, 42, 56, 70, 90])
    pid = np.repeat(np.arange(n), days.size)
    day = np.tile(days, n)
    depth = rng.uniform(10, 900, n)[pid]
    recovery = rng.integers(5, 40, n)[pid]
    anc = np.where(day < recovery, depth, 1800 + 300 * rng.standard_normal(pid.size)).clip(0)
    labs = pl.DataFrame(
        {
            "patient_id": [f"P{i:05d}" for i in pid],
            "day": day,
            "analyte": "ANC",
            "value": np.round(anc),
            "unit": "cells/uL",
        }
    )
    pats = pl.DataFrame(
        {
            "patient_id": [f"P{i:05d}" for i in range(n)],
            "infusion_date": ["2024-01-01"] * n,
            "disease": "LBCL",
            "product": "axi-cel",
        }
    )
    lp, pp = tmp_path / "labs.parquet", tmp_path / "patients.csv"
    labs.write_parquet(lp)
    pats.write_csv(pp)
    return lp, pp


def test_grade_ten_thousand_patients_parquet(tmp_path: Path) -> None:
    lp, pp = _synthetic_cohort(tmp_path, 10_000)
    out = tmp_path / "grades.parquet"
    p = run("grade", "--labs", str(lp), "--patients", str(pp), "--out", str(out))
    assert "graded 10000 patients" in p.stderr
    df = pl.read_parquet(out)
    assert df.height == 10_000
    assert df["early_icaht_grade"].null_count() == 0
    assert set(df["early_icaht_grade"].unique().to_list()) <= {0, 1, 2, 3, 4}


def test_grade_bad_row_names_the_row_and_writes_nothing(tmp_path: Path) -> None:
    labs = tmp_path / "labs.csv"
    labs.write_text(
        "patient_id,day,analyte,value,unit\nA,1,ANC,300,/uL\nA,2,ANC,abc,/uL\nA,3,ANC,0.4,10^9/L\n"
    )
    pats = tmp_path / "patients.csv"
    pats.write_text("patient_id,infusion_date\nA,2024-01-01\n")
    out = tmp_path / "out.csv"
    p = run("grade", "--labs", str(labs), "--patients", str(pats), "--out", str(out), check=False)
    assert p.returncode == 2
    assert "row 3" in p.stderr
    assert "'abc' is not a number" in p.stderr
    assert not out.exists()


def test_grade_unknown_unit_and_orphan_patient(tmp_path: Path) -> None:
    labs = tmp_path / "labs.csv"
    labs.write_text("patient_id,day,analyte,value,unit\nA,1,ANC,300,furlongs\n")
    pats = tmp_path / "patients.csv"
    pats.write_text("patient_id,infusion_date\nA,2024-01-01\n")
    p = run(
        "grade",
        "--labs",
        str(labs),
        "--patients",
        str(pats),
        "--out",
        str(tmp_path / "o.csv"),
        check=False,
    )
    assert p.returncode == 2
    assert "unknown unit 'furlongs'" in p.stderr
    assert "row 2" in p.stderr
    labs.write_text("patient_id,day,analyte,value,unit\nB,1,ANC,300,/uL\n")
    p = run(
        "grade",
        "--labs",
        str(labs),
        "--patients",
        str(pats),
        "--out",
        str(tmp_path / "o.csv"),
        check=False,
    )
    assert p.returncode == 2
    assert "patient 'B', who is not in the patient table" in p.stderr


def test_schema_patient_is_json_schema() -> None:
    schema = json.loads(run("schema", "patient").stdout)
    assert schema["title"] == "Course"
    assert "patient" in schema["properties"]


def test_rule_reference_is_not_stale() -> None:
    committed = (ROOT / "docs" / "rule-reference.md").read_text(encoding="utf-8")
    assert committed == rule_reference(), "docs/rule-reference.md is stale: run `make docs`"


def test_cohort_path_and_assess_agree_on_the_review_cases(tmp_path: Path) -> None:
    """`grade` on the example cohort and `assess` on each course run the same engine."""
    out = tmp_path / "g.csv"
    cohort = EXAMPLES / "cohort"
    run(
        "grade",
        "--labs",
        str(cohort / "labs.csv"),
        "--patients",
        str(cohort / "patients.csv"),
        "--events",
        str(cohort / "events.csv"),
        "--out",
        str(out),
    )
    table = {r["patient_id"]: r for r in pl.read_csv(out).iter_rows(named=True)}
    for n in (1, 2, 3):
        a = json.loads(
            run("assess", str(EXAMPLES / f"review-case-{n}.json"), "--format", "json").stdout
        )
        row = table[f"review-case-{n}"]
        assert row["early_icaht_grade"] == a["early_icaht"]["result"]["grade"]
        assert row["late_icaht_grade"] == a["late_icaht"]["result"]["grade"]
        assert row["phenotype"] == a["phenotype"]["phenotype"]
        assert row["hematotox_risk"] == a["hematotox"]["risk"]
        assert row["gcsf_response"] == a["gcsf"]["response"]
