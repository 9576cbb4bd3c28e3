"""The engine's per-chunk lab rows: one row per patient and day, sorted, lowest value kept."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from cart_cytopenia.domain.frames import ANALYTE_CODES, CohortFrames
from cart_cytopenia.grading.cohort_rows import DayRows, _split_by_analyte
from cart_cytopenia.grading.daily import grid_from_cells, interpolate
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.grading.timing import lineage_timing
from cart_cytopenia.io.tables import read_cohort
from cart_cytopenia.rules import tables
from cart_cytopenia.rules.settings import Settings
from tests.conftest import EXAMPLES


def test_split_by_analyte_sorts_and_keeps_the_lowest_value_of_a_day() -> None:
    # (codes: the analytes' positions in the catalogue)
    anc, plt = ANALYTE_CODES.index("anc"), ANALYTE_CODES.index("platelets")
    idx = np.array([1, 0, 1, 0, 0, 1], np.int64)
    day = np.array([3, 5, 3, 2, 5, 1], np.int32)
    code = np.array([anc, anc, anc, plt, anc, anc], np.int16)
    value = np.array([400.0, 900.0, 300.0, 40.0, 800.0, 50.0])
    rows = _split_by_analyte(idx, day, code, value)
    a = rows["anc"]
    assert a.idx.tolist() == [0, 1, 1]
    assert a.day.tolist() == [5, 1, 3]
    assert a.value.tolist() == [800.0, 50.0, 300.0]
    assert rows["platelets"].value.tolist() == [40.0]
    assert rows["hb"].idx.size == 0
    lowest, (last_val, last_day) = a.min_and_last(3)
    assert lowest[:2].tolist() == [800.0, 50.0] and np.isnan(lowest[2])
    assert last_val[:2].tolist() == [800.0, 300.0] and last_day.tolist() == [5, 3, -1]


def test_limited_applies_a_day_or_one_day_per_patient() -> None:
    r = DayRows(np.array([0, 0, 1, 1]), np.array([1, 9, 2, 8], np.int32), np.arange(4.0))
    assert r.limited(5, 730).day.tolist() == [1, 2]
    assert r.limited(np.array([9, 2]), 730).day.tolist() == [1, 9, 2]
    assert r.limited(730, 730) is r


def test_labs_with_text_analyte_codes_grade_like_the_catalogue_enum() -> None:
    d = EXAMPLES / "cohort"
    frames = read_cohort(d / "labs.csv", d / "patients.csv", d / "events.csv")
    base = grade_cohort(frames, Settings())
    text = CohortFrames(
        frames.patients,
        frames.labs.with_columns(pl.col("analyte").cast(pl.String)),
        frames.events,
    )
    assert text.labs.schema["analyte"] == pl.String
    assert grade_cohort(text, Settings()).equals(base)
    assert grade_cohort(text, Settings(), as_of=12).equals(
        grade_cohort(frames, Settings(), as_of=12)
    )


def test_lab_rows_with_a_missing_field_are_left_out() -> None:
    d = EXAMPLES / "cohort"
    frames = read_cohort(d / "labs.csv", d / "patients.csv", d / "events.csv")
    base = grade_cohort(frames, Settings())
    first = frames.patients["patient_id"][0]
    extra = pl.DataFrame(
        {
            "patient_id": [None, first, first],
            "day": [3, None, 4],
            "analyte": ["anc", "anc", "anc"],
            "value": [10.0, 10.0, None],
            "row": [0, 0, 0],
        },
        schema_overrides={"patient_id": pl.String, "day": pl.Int32, "value": pl.Float64},
    ).with_columns(pl.col("analyte").cast(frames.labs.schema["analyte"]))
    labs = pl.concat([frames.labs, extra.select(frames.labs.columns)])
    assert grade_cohort(CohortFrames(frames.patients, labs, frames.events), Settings()).equals(base)


def test_grid_from_cells_knows_the_cells_a_search_would_find() -> None:
    rows = np.array([0, 0, 2], np.intp)
    cols = np.array([1, 4, 0], np.intp)
    grid = grid_from_cells(3, 0, 6, rows, cols, np.array([5.0, 7.0, 9.0]))
    searched = np.nonzero(~np.isnan(grid.values))
    assert [a.tolist() for a in grid.known] == [a.tolist() for a in searched]
    filled = interpolate(grid, 7).values
    assert filled[0, 1:5] == pytest.approx([5.0, 5.0 + 2 / 3, 5.0 + 4 / 3, 7.0])
    assert np.isnan(filled[0, 0]) and np.isnan(filled[1]).all()


def test_lineage_timing_does_not_depend_on_the_order_of_the_rows() -> None:
    tt = tables.timing()
    lin = tt.lineage("neutrophils")
    idx = np.array([0, 0, 0, 1, 1], np.int64)
    day = np.array([2, 5, 9, 3, 4], np.int64)
    val = np.array([400.0, 300.0, 300.0, 1500.0, 800.0])
    grid = grid_from_cells(2, 0, 12, idx, day, val)
    as_of = np.full(2, 100, np.int32)
    a = lineage_timing(grid, grid, lin, as_of, tt, (idx, day, val))
    o = np.array([4, 2, 0, 3, 1])
    b = lineage_timing(grid, grid, lin, as_of, tt, (idx[o], day[o], val[o]))
    assert a.nadir.tolist() == b.nadir.tolist() == [300.0, 800.0]
    assert a.nadir_day.tolist() == b.nadir_day.tolist() == [5, 4]
    assert a.last_significant_day.tolist() == b.last_significant_day.tolist() == [9, 4]
