"""OWASP "CSV Injection": text cells a spreadsheet would run as formulas are written as text."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from cart_cytopenia.cohort.csv_safety import spreadsheet_safe
from cart_cytopenia.io.tables import write_table


def test_every_formula_start_is_prefixed_and_numbers_are_left_alone(tmp_path: Path) -> None:
    df = pl.DataFrame(
        {
            "patient_id": ['=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\tx", "ok"],
            "value": [-3.5, 1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    out = write_table(df, tmp_path / "grades.csv")
    back = pl.read_csv(out)
    assert back["patient_id"].to_list() == [
        "'=HYPERLINK(\"http://x\")", "'+1", "'-2+3", "'@SUM(A1)", "'\tx", "ok",
    ]  # fmt: skip
    assert back["value"].to_list()[0] == -3.5


def test_parquet_keeps_the_values_as_they_are(tmp_path: Path) -> None:
    df = pl.DataFrame({"patient_id": ["=1+1"]})
    assert pl.read_parquet(write_table(df, tmp_path / "g.parquet"))["patient_id"][0] == "=1+1"
    assert spreadsheet_safe(pl.DataFrame({"n": [1]})).equals(pl.DataFrame({"n": [1]}))


def test_a_grade_table_written_in_chunks_is_neutralised_too(tmp_path: Path) -> None:
    """`grade --chunk-patients` (and --shard, a Parquet data set) writes its CSV chunk by chunk:
    the same neutralisation as a whole table (it was missing there)."""
    from tests.cli.invoke import invoke
    from tests.conftest import EXAMPLES

    evil = '=HYPERLINK("http://evil.example/x","click")'
    for name in ("labs", "patients", "events"):
        df = pl.read_csv(EXAMPLES / "cohort" / f"{name}.csv", infer_schema_length=0)
        df = df.with_columns(pl.col("patient_id").replace("review-case-1", evil))
        df.write_parquet(tmp_path / f"{name}.parquet")
    files = [f"--{n}={tmp_path / f'{n}.parquet'}" for n in ("labs", "patients", "events")]
    out = tmp_path / "grades.csv"
    r = invoke("grade", *files, "--out", str(out), "--chunk-patients", "2")
    assert r.code == 0, r.stderr
    ids = pl.read_csv(out)["patient_id"].to_list()
    assert "'" + evil in ids and evil not in ids
