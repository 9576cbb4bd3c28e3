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
