"""The engine's result does not depend on row order, chunk size or worker threads."""

from __future__ import annotations

import polars as pl

from cart_cytopenia.domain.frames import CohortFrames
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
