"""The engine's result does not depend on row order, chunk size or worker threads."""

from __future__ import annotations

import polars as pl
import pytest

from cart_cytopenia.domain.frames import CohortFrames
from cart_cytopenia.errors import InputError
from cart_cytopenia.grading import cohort_rows, engine, grade_table
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.io.tables import read_cohort
from cart_cytopenia.rules.settings import Settings
from tests.conftest import EXAMPLES


def test_shuffled_rows_chunks_and_threads_give_the_same_grades() -> None:
    d = EXAMPLES / "cohort"
    frames = read_cohort(d / "labs.csv", d / "patients.csv", d / "events.csv")
    base = grade_cohort(frames, Settings(), workers=1)
    shuffled = CohortFrames(
        frames.patients,
        frames.labs.sample(fraction=1.0, shuffle=True, seed=3),
        frames.events.sample(fraction=1.0, shuffle=True, seed=4),
    )
    assert not shuffled.labs["patient_id"].equals(frames.labs["patient_id"])
    assert grade_cohort(shuffled, Settings(), chunk_size=1, workers=2).equals(base)
    reordered = CohortFrames(frames.patients.reverse(), frames.labs, frames.events)
    again = grade_cohort(reordered, Settings()).sort("patient_id")
    assert again.equals(base.sort("patient_id"))
    assert pl.Series(base["early_icaht_grade"]).to_list() == [3, 4, 4]


def test_rows_indexed_in_many_slices_give_the_same_grades(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows are indexed (patient positions, days, codes, baseline markers, last grid day) in
    slices on the worker threads; slices that split a patient's rows, and shuffled rows, change
    nothing, and a lab row of an unknown patient found in any slice is reported."""
    d = EXAMPLES / "cohort"
    frames = read_cohort(d / "labs.csv", d / "patients.csv", d / "events.csv")
    base = grade_cohort(frames, Settings(), workers=1)
    day20 = grade_cohort(frames, Settings(), as_of=20, workers=1)
    monkeypatch.setattr(cohort_rows, "ROWS_PER_TASK", 7)
    assert grade_cohort(frames, Settings(), workers=2).equals(base)
    assert grade_cohort(frames, Settings(), as_of=20, workers=2).equals(day20)
    shuffled = CohortFrames(
        frames.patients, frames.labs.sample(fraction=1.0, shuffle=True, seed=5), frames.events
    )
    assert grade_cohort(shuffled, Settings(), workers=2).equals(base)
    orphan = frames.labs.tail(1).with_columns(pl.lit("NOBODY").alias("patient_id"))
    with_orphan = CohortFrames(frames.patients, pl.concat([orphan, frames.labs]), frames.events)
    with pytest.raises(InputError, match="missing from the patient table") as err:
        grade_cohort(with_orphan, Settings(), workers=2)
    assert [p.location.patient_id for p in err.value.problems if p.location] == ["NOBODY"]


def test_detail_changes_no_grade_table_column() -> None:
    """Without ``detail`` the engine skips only what an assessment reads (current CTCAE grades,
    current episodes, red-cell durations); the grade table is the same."""
    d = EXAMPLES / "cohort"
    frames = read_cohort(d / "labs.csv", d / "patients.csv", d / "events.csv")
    full = list(engine.iter_chunks(frames, Settings(), chunk_size=2, detail=True))
    lean = list(engine.iter_chunks(frames, Settings(), chunk_size=2, detail=False))
    table = pl.concat([grade_table.chunk_table(c, Settings()) for c in full])
    assert table.equals(pl.concat([grade_table.chunk_table(c, Settings()) for c in lean]))
    assert table.equals(grade_cohort(frames, Settings()))
    assert full[0].ctcae_last and not lean[0].ctcae_last
    assert full[0].lineages["platelets"].episode_start is not None
    assert lean[0].lineages["platelets"].episode_start is None
    assert lean[0].lineages["red_cells"].days_severe is None
    assert "hb" in full[0].grids and "hb" not in lean[0].grids
