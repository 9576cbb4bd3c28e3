"""The grade table: missing data stay empty (never 0) with a reason, and every column has the one
declared type whatever the data (issue 13, defects 5 and 6)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.grading.grade_table import (
    EMPTIED_BY,
    GRADE_COLUMNS,
    GRADE_SCHEMA,
    LOGICAL_TYPES,
    schema_document,
)
from cart_cytopenia.io.tables import read_cohort, write_table
from cart_cytopenia.rules.settings import Settings
from tests.conftest import EXAMPLES

ROOT = Path(__file__).resolve().parents[2]
EVENT_COLUMNS = EMPTIED_BY["events"]


def _cohort(tmp_path: Path, with_events: bool, ids: tuple[str, ...] = ("a", "b")) -> Path:
    """Patient ids[0] has ANC and platelets in the first weeks, ids[1] has no result at all."""
    pl.DataFrame({"patient_id": list(ids), "infusion_date": ["2024-01-01"] * len(ids)}).write_csv(
        tmp_path / "patients.csv"
    )
    pl.DataFrame(
        {
            "patient_id": [ids[0]] * 4,
            "day": [3, 3, 10, 10],
            "analyte": ["anc", "platelets", "anc", "platelets"],
            "value": [300.0, 40.0, 1800.0, 120.0],
            "unit": ["/uL", "10*3/uL", "/uL", "10*3/uL"],
        }
    ).write_csv(tmp_path / "labs.csv")
    if with_events:
        pl.DataFrame(
            {"patient_id": [ids[0]], "type": ["crs"], "start_day": [2], "grade": [1]}
        ).write_csv(tmp_path / "events.csv")
    return tmp_path


def _grade(d: Path, with_events: bool) -> pl.DataFrame:
    events = d / "events.csv" if with_events else None
    return grade_cohort(read_cohort(d / "labs.csv", d / "patients.csv", events), Settings())


def test_missing_is_empty_in_csv_and_null_in_parquet(tmp_path: Path) -> None:
    t = _grade(_cohort(tmp_path, with_events=True), with_events=True)
    write_table(t, tmp_path / "g.csv")
    write_table(t, tmp_path / "g.parquet")
    line_b = (tmp_path / "g.csv").read_text().splitlines()[2].split(",")
    header = (tmp_path / "g.csv").read_text().splitlines()[0].split(",")
    assert line_b[header.index("crs_max_grade")] == ""
    assert line_b[header.index("days_anc_le_500_d0_60")] == ""
    back = pq.read_table(tmp_path / "g.parquet")
    assert back.column("crs_max_grade").to_pylist() == [1, None]
    # T-ICAHT day counts too: no platelet count is no data, not 0 days below 50/20
    for col in ("early_days_plt_lt_50", "early_days_plt_lt_20", "late_days_plt_lt_20"):
        assert line_b[header.index(col)] == "", col
    assert back.column("early_days_plt_lt_50").to_pylist() == [1, None]


@pytest.mark.parametrize("with_events", [True, False])
def test_every_column_has_its_declared_type(tmp_path: Path, with_events: bool) -> None:
    t = _grade(_cohort(tmp_path, with_events), with_events)
    assert t.schema == pl.Schema(GRADE_SCHEMA)
    examples = read_cohort(
        EXAMPLES / "cohort" / "labs.csv",
        EXAMPLES / "cohort" / "patients.csv",
        EXAMPLES / "cohort" / "events.csv",
    )
    assert grade_cohort(examples, Settings()).schema == pl.Schema(GRADE_SCHEMA)


def test_outputs_of_disjoint_cohorts_concatenate(tmp_path: Path) -> None:
    """Issue 13 defect 6: a cohort whose patients have no data at all (every phase, phenotype,
    G-CSF response ... column all empty) and a cohort with data write the same Parquet schema,
    so the files concatenate as they are (no type promotion) and read as one data set."""
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    pl.DataFrame({"patient_id": ["x1", "x2"], "infusion_date": ["2024-02-01"] * 2}).write_csv(
        empty_dir / "patients.csv"
    )
    # one baseline value only: nothing after infusion to grade
    pl.DataFrame(
        {"patient_id": ["x1"], "day": [-6], "analyte": ["anc"], "value": [900.0], "unit": ["/uL"]}
    ).write_csv(empty_dir / "labs.csv")
    nothing = _grade(empty_dir, with_events=False)
    d = EXAMPLES / "cohort"
    full = grade_cohort(
        read_cohort(d / "labs.csv", d / "patients.csv", d / "events.csv"), Settings()
    )
    assert nothing["phenotype"].null_count() == nothing.height  # an all-empty column
    write_table(nothing, tmp_path / "part-0.parquet")
    write_table(full, tmp_path / "part-1.parquet")
    tables = [pq.read_table(tmp_path / f"part-{i}.parquet") for i in (0, 1)]
    assert tables[0].schema.equals(tables[1].schema)
    assert not any(pa.types.is_null(f.type) for f in tables[0].schema)
    both = pa.concat_tables(tables)  # raises on differing schemas
    assert both.num_rows == nothing.height + full.height
    assert pl.read_parquet(tmp_path / "part-*.parquet").height == both.num_rows
    # and CSV outputs read back with the declared types
    write_table(nothing, tmp_path / "nothing.csv")
    csv = pl.read_csv(tmp_path / "nothing.csv", schema=GRADE_SCHEMA)
    assert csv.height == 2


def test_schema_document_is_current_and_complete() -> None:
    committed = (ROOT / "docs" / "grade-table-schema.json").read_text(encoding="utf-8")
    assert committed == schema_document(), "docs/grade-table-schema.json is stale: run `make docs`"
    doc = json.loads(committed)
    assert [c["name"] for c in doc["columns"]] == [c.name for c in GRADE_COLUMNS]
    assert {c["type"] for c in doc["columns"]} <= set(LOGICAL_TYPES.values())
    data_formats = (ROOT / "docs" / "data-formats.md").read_text(encoding="utf-8")
    assert "grade-table-schema.json" in data_formats
    assert "missing_data" in data_formats
