"""T-ICAHT (Rejeski et al., Blood 2025, Table 1): both sides of every cut-point, the cumulative
count, censoring, and platelet transfusions that must not make a patient look recovered."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest

from cart_cytopenia.domain.frames import (
    EVENT_SCHEMA,
    PATIENT_SCHEMA,
    CohortFrames,
    empty_events,
    normalise_labs,
)
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.grading.ticaht import transfusion_cover
from cart_cytopenia.rules import tables
from cart_cytopenia.rules.settings import Settings

Points = list[tuple[int, float]]


def frames_of(points: Points, transfusions: list[int] = (), **days: Any) -> CohortFrames:  # type: ignore[assignment]
    n = len(points)
    labs = normalise_labs(
        pl.DataFrame(
            {
                "patient_id": ["p"] * n,
                "day": pl.Series([d for d, _ in points], dtype=pl.Int32),
                "analyte": ["platelets"] * n,
                "value": pl.Series([float(v) for _, v in points], dtype=pl.Float64),
                "unit": ["10*9/L"] * n,
            }
        )
    )
    events = (
        pl.DataFrame(
            [
                {"patient_id": "p", "type": "transfusion", "start_day": d, "product": "platelets"}
                for d in transfusions
            ],
            schema=EVENT_SCHEMA,
        )
        if transfusions
        else empty_events()
    )
    pats = pl.DataFrame([{"patient_id": "p", **days}], schema=PATIENT_SCHEMA, strict=False)
    return CohortFrames(pats, labs, events)


def one(points: Points, transfusions: list[int] = (), **days: Any) -> dict[str, Any]:  # type: ignore[assignment]
    return grade_cohort(frames_of(points, transfusions, **days), Settings()).row(0, named=True)


def daily(start: int, stop: int, value: float) -> Points:
    return [(d, value) for d in range(start, stop + 1)]


def course(low_from: int, low_days: int, low: float, rest: float = 150.0) -> Points:
    """Day 0-100 daily: ``low`` for ``low_days`` days from ``low_from``, ``rest`` otherwise."""
    return [(d, low if low_from <= d < low_from + low_days else rest) for d in range(0, 101)]


# ------------------------------------------------------------------ early T-ICAHT, each cut-point


@pytest.mark.parametrize(
    ("low", "days", "grade"),
    [
        (50.0, 10, 0),  # 50 is not < 50
        (49.9, 1, 1),
        (49.9, 6, 1),
        (49.9, 7, 2),
        (20.0, 20, 2),  # 20 is not < 20: < 50 for 20 days
        (19.9, 1, 3),
        (19.9, 13, 3),
        (19.9, 14, 4),
    ],
)
def test_early_cut_points(low: float, days: int, grade: int) -> None:
    r = one(course(5, days, low))
    assert r["early_ticaht_grade"] == grade
    assert r["early_ticaht_reason"] is None


def test_early_days_are_cumulative_and_unstable_recovery_counts() -> None:
    # two separate runs of 4 days < 50 (4 days >= 50 between them): 8 days cumulative -> grade 2
    two = [(d, 40.0 if (2 <= d < 6 or 10 <= d < 14) else 150.0) for d in range(0, 101)]
    r = one(two)
    assert (r["early_days_plt_lt_50"], r["early_ticaht_grade"]) == (8, 2)
    # 3 days < 50, 2 days >= 50 (not a stable recovery), 2 days < 50: one run of 7 days
    unstable = [(d, 40.0 if (2 <= d < 5 or 7 <= d < 9) else 150.0) for d in range(0, 101)]
    r = one(unstable)
    assert (r["early_days_plt_lt_50"], r["early_ticaht_grade"]) == (7, 2)
    # with 3 days >= 50 between them the recovery is stable: 3 + 2 = 5 days, grade 1
    stable = [(d, 40.0 if (2 <= d < 5 or 8 <= d < 10) else 150.0) for d in range(0, 101)]
    assert one(stable)["early_days_plt_lt_50"] == 5


def test_early_window_is_day_0_to_30_and_censored_at_progression() -> None:
    # < 20 from day 25 to day 40: 6 days inside the early window, then late
    r = one(course(25, 16, 10.0))
    assert (r["early_days_plt_lt_20"], r["early_ticaht_grade"]) == (6, 3)
    assert r["late_days_plt_lt_20"] == 10
    # progression on day 10 censors the window: the counts from day 10 on are not read
    r = one(course(5, 20, 10.0), progression_day=10)
    assert (r["early_days_plt_lt_20"], r["early_ticaht_grade"]) == (5, 3)


def test_no_count_is_not_normal() -> None:
    r = one([(40, 150.0), (60, 150.0)])
    assert r["early_ticaht_grade"] is None
    assert "no platelet count between day 0 and day 30" in r["early_ticaht_reason"]
    r = one(daily(0, 30, 150.0))
    assert r["late_ticaht_grade"] is None
    assert "no platelet count between day 31" in r["late_ticaht_reason"]


# ------------------------------------------------------------------ late T-ICAHT, each cut-point


@pytest.mark.parametrize(
    ("low", "grade"),
    [(100.0, 0), (99.9, 1), (50.0, 1), (49.9, 2), (20.0, 2)],
)
def test_late_depth_cut_points(low: float, grade: int) -> None:
    r = one(daily(0, 30, 150.0) + daily(31, 100, low))
    assert r["late_ticaht_grade"] == grade


@pytest.mark.parametrize(("days", "grade"), [(1, 3), (13, 3), (14, 4)])
def test_late_days_below_20(days: int, grade: int) -> None:
    pts = daily(0, 30, 150.0) + [(d, 19.9 if 40 <= d < 40 + days else 60.0) for d in range(31, 101)]
    r = one(pts)
    assert (r["late_days_plt_lt_20"], r["late_ticaht_grade"]) == (days, grade)


def test_late_needs_two_tests() -> None:
    # one count < 50 among counts >= 100: transient, grade 0
    pts = [*daily(0, 30, 150.0), (40, 45.0), (60, 160.0), (80, 170.0)]
    assert one(pts)["late_ticaht_grade"] == 0
    # the second-lowest < 100 confirms the lowest: grade 2
    pts = [*daily(0, 30, 150.0), (40, 45.0), (60, 99.0), (80, 170.0)]
    r = one(pts)
    assert (r["late_ticaht_grade"], r["late_plt_1"], r["late_plt_2"]) == (2, 45.0, 99.0)


# ------------------------------------------------------------------ transfusions


def test_post_transfusion_count_does_not_recover() -> None:
    """< 20 (12) on each transfusion day, 35 on the 3 days after it, from day 5 to day 20: read
    as they are, the counts make 1-day runs separated by 3-day "recoveries" (grade 3); the
    post-transfusion counts and the 7 days without a transfusion keep one run open to day 24."""
    tx = [5, 9, 13, 17]
    pts = [(d, 150.0) for d in range(0, 5)]
    pts += [(d, 12.0 if (d - 5) % 4 == 0 else 35.0) for d in range(5, 21)]
    pts += [(d, 150.0) for d in range(21, 101)]
    r = one(pts, tx)
    assert (r["early_days_plt_lt_20"], r["early_ticaht_grade"]) == (20, 4)
    assert r["early_days_plt_lt_50"] == 20  # a run < 20 is also a run < 50
    assert r["platelet_recovery_day"] == 25
    # the same counts with no transfusion recorded are read as they are
    r = one(pts)
    assert (r["early_days_plt_lt_20"], r["early_ticaht_grade"]) == (4, 3)


def test_recovery_needs_seven_days_without_transfusion() -> None:
    # < 20 days 5-12, transfused on day 12; counts 25 from day 13: recovery only from day 20
    pts = [(d, 150.0) for d in range(0, 5)] + daily(5, 12, 10.0) + daily(13, 100, 25.0)
    r = one(pts, [12])
    assert r["platelet_recovery_day"] == 20
    assert (r["early_days_plt_lt_20"], r["early_ticaht_grade"]) == (15, 4)
    # without the transfusion: recovered on day 13, 8 days < 20
    r = one(pts)
    assert r["platelet_recovery_day"] == 13
    assert (r["early_days_plt_lt_20"], r["early_ticaht_grade"]) == (8, 3)


def test_transfusion_without_an_open_run_changes_nothing() -> None:
    # a transfusion before a procedure at a count of 60: no run < 20 to continue
    pts = daily(0, 100, 60.0)
    r = one(pts, [10])
    assert (r["early_ticaht_grade"], r["early_days_plt_lt_20"]) == (0, 0)
    assert r["platelet_recovery_day"] is None


def test_transfusion_cover_mask() -> None:
    m = transfusion_cover((2, 8), 0, np.array([0, 1]), np.array([-1, 3]), 2)
    assert m.astype(int).tolist() == [
        [1, 1, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 1, 1, 1, 0, 0],
    ]


def test_table_cites_what_was_read() -> None:
    t = tables.ticaht()
    assert "Blood 2025" in t.meta.source
    assert "not_read" in t.meta.extra and "source_read" in t.meta.extra
    assert (t.moderate_threshold, t.severe_threshold) == (50.0, 20.0)


def test_on_a_synthetic_cohort_runs_below_20_lie_within_runs_below_50() -> None:
    from cart_cytopenia.cohort import synthetic

    g = grade_cohort(synthetic.block_frames(synthetic.generate_cohort(400, seed=5)), Settings())
    assert (g["early_days_plt_lt_20"] <= g["early_days_plt_lt_50"]).all()
    assert g["early_ticaht_grade"].drop_nulls().is_in([0, 1, 2, 3, 4]).all()
    # a grade >= 3 needs days < 20, a grade of 0 none < 50
    early = g.filter(pl.col("early_ticaht_grade").is_not_null())
    assert (early.filter(pl.col("early_ticaht_grade") >= 3)["early_days_plt_lt_20"] >= 1).all()
    assert (early.filter(pl.col("early_ticaht_grade") == 0)["early_days_plt_lt_50"] == 0).all()
