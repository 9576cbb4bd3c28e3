"""HZ-014-02: grading in chunks or skipping bad rows never drops a lab value silently. By default
a bad row (here an implausible CRP, as in the generator's old 1M cohort) loads nothing; with
--on-bad-row skip every row left out is counted and listed."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from cart_cytopenia.errors import InputError, Problem
from cart_cytopenia.io.tables import read_cohort


def _cohort(tmp_path: Path) -> tuple[Path, Path]:
    pl.DataFrame({"patient_id": ["a"], "infusion_date": ["2024-01-01"]}).write_csv(
        tmp_path / "p.csv"
    )
    pl.DataFrame(
        {
            "patient_id": ["a", "a", "a"],
            "day": [-6, 3, 4],
            "analyte": ["crp", "anc", "anc"],
            "value": [1070.0, 300.0, 250.0],
            "unit": ["mg/L", "/uL", "/uL"],
        }
    ).write_csv(tmp_path / "l.csv")
    return tmp_path / "l.csv", tmp_path / "p.csv"


def test_a_bad_row_fails_by_default(tmp_path: Path) -> None:
    labs, patients = _cohort(tmp_path)
    with pytest.raises(InputError, match="1 bad row"):
        read_cohort(labs, patients)


def test_skipped_rows_are_counted_and_listed(tmp_path: Path) -> None:
    labs, patients = _cohort(tmp_path)
    skipped: list[Problem] = []
    frames = read_cohort(labs, patients, skipped=skipped)
    assert frames.labs.height == 2  # the two ANC values kept
    assert skipped[0].message.endswith("1 bad row(s) left out")
    assert "1070 mg/L" in skipped[1].message and skipped[1].location.row == 2
