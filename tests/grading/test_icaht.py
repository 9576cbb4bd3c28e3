"""EHA/EBMT ICAHT (Rejeski et al., Blood 2023;142:865) with Liang's operational conventions."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.domain.frames import PATIENT_SCHEMA, CohortFrames, empty_events, normalise_labs
from cart_cytopenia.grading.assessment import assess
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.io.tables import read_cohort
from cart_cytopenia.rules.settings import Settings, settings_from_dict
from tests.conftest import PEER_DATA, course_dict
from tests.grading import reference_icaht


def frames_of(
    series: dict[str, list[tuple[int, float]]], **patient_days: dict[str, int]
) -> CohortFrames:
    rows = [
        {"patient_id": pid, "day": d, "analyte": "anc", "value": v, "unit": "/uL"}
        for pid, pts in series.items()
        for d, v in pts
    ]
    labs = normalise_labs(
        pl.DataFrame(
            rows,
            schema={
                "patient_id": pl.String,
                "day": pl.Int32,
                "analyte": pl.String,
                "value": pl.Float64,
                "unit": pl.String,
            },
        )
    )
    pats = [{"patient_id": pid, **patient_days.get(pid, {})} for pid in series]
    return CohortFrames(
        pl.DataFrame(pats, schema=PATIENT_SCHEMA, strict=False), labs, empty_events()
    )


def one(points: list[tuple[int, float]], **days: Any) -> dict[str, Any]:
    out = grade_cohort(frames_of({"p": points}, p=days), Settings())
    return out.row(0, named=True)


def daily(start: int, stop: int, value: float) -> list[tuple[int, float]]:
    return [(d, value) for d in range(start, stop + 1)]


# ---------------------------------------------------------------- early ICAHT, both sides of each cut


@pytest.mark.parametrize(
    ("days_le_500", "grade"), [(0, 0), (1, 1), (6, 1), (7, 2), (13, 2), (14, 3)]
)
def test_early_grade_by_duration_of_anc_le_500(days_le_500: int, grade: int) -> None:
    pts = [(0, 2000), *daily(1, days_le_500, 400), *daily(days_le_500 + 1, 40, 1800)]
    r = one(pts)
    assert r["early_days_anc_le_500"] == days_le_500
    assert r["early_icaht_grade"] == grade


@pytest.mark.parametrize(("days_le_100", "grade"), [(6, 1), (7, 3), (13, 3), (14, 4)])
def test_early_grade_by_duration_of_anc_le_100(days_le_100: int, grade: int) -> None:
    pts = [(0, 2000), *daily(1, days_le_100, 50), *daily(days_le_100 + 1, 40, 1800)]
    assert one(pts)["early_icaht_grade"] == grade


def test_500_is_severe_for_icaht_but_501_is_not() -> None:
    assert one([(0, 2000), *daily(1, 7, 500), *daily(8, 40, 2000)])["early_icaht_grade"] == 2
    assert one([(0, 2000), *daily(1, 7, 501), *daily(8, 40, 2000)])["early_icaht_grade"] == 0


def test_runs_join_unless_three_consecutive_days_above_500() -> None:
    # 5 days <=500, 2 days above, 5 days <=500: one run of 12 days -> grade 2
    joined = [*daily(0, 4, 300), *daily(5, 6, 900), *daily(7, 11, 300), *daily(12, 40, 2000)]
    assert one(joined)["early_days_anc_le_500"] == 12
    assert one(joined)["early_icaht_grade"] == 2
    # 3 days above separate the runs: longest 5 days -> grade 1
    split = [*daily(0, 4, 300), *daily(5, 7, 900), *daily(8, 12, 300), *daily(13, 40, 2000)]
    assert one(split)["early_days_anc_le_500"] == 5
    assert one(split)["early_icaht_grade"] == 1


def test_gaps_up_to_seven_days_are_interpolated() -> None:
    # ANC 300 on day 1 and day 9 (7 missing days between): interpolated, one 9-day run
    seven = [(0, 2000), (1, 300), (9, 300), *daily(10, 40, 2000)]
    assert one(seven)["early_days_anc_le_500"] == 9
    # 8 missing days: not interpolated; the unknown days neither extend nor break the run
    eight = [(0, 2000), (1, 300), (10, 300), *daily(11, 40, 2000)]
    assert one(eight)["early_days_anc_le_500"] == 10


def test_several_values_on_one_day_use_the_lowest() -> None:
    pts = [(0, 2000), (1, 900), (1, 450), *daily(2, 40, 2000)]
    assert one(pts)["early_days_anc_le_500"] == 1


@pytest.mark.parametrize(("onset", "grade"), [(3, 4), (4, 2)])
def test_never_recovering_neutropenia_from_day_3_is_grade_4(onset: int, grade: int) -> None:
    pts = [(0, 2000), *daily(1, onset - 1, 2000), *daily(onset, onset + 8, 300)]
    r = one(pts, death_day=onset + 8)
    assert bool(r["early_never_recovered"]) is (grade == 4)
    assert r["early_icaht_grade"] == grade


def test_no_anc_in_window_cannot_grade_with_reason() -> None:
    r = one([(45, 800), (50, 700)])
    assert r["early_icaht_grade"] is None
    assert "no ANC value between day 0 and day 30" in r["early_icaht_reason"]


# ---------------------------------------------------------------- late ICAHT


def test_late_grade_needs_a_second_value_at_or_below_1500() -> None:
    base = [*daily(0, 30, 2000)]
    assert one([*base, (40, 400), (60, 1400)])["late_icaht_grade"] == 3
    assert one([*base, (40, 400), (60, 1600)])["late_icaht_grade"] == 0  # transient
    assert one([*base, (40, 400)])["late_icaht_grade"] == 3  # a single value grades alone


def test_late_window_ends_before_relapse_and_next_therapy() -> None:
    pts = [*daily(0, 30, 2000), (40, 1800), (55, 90), (56, 95)]
    assert one(pts)["late_icaht_grade"] == 4
    r = one(pts, progression_day=55)
    assert r["late_icaht_grade"] == 0
    assert r["late_window_end_day"] == 54
    assert r["late_window_end_reason"] == "relapse/progression"


def test_late_window_empty_when_follow_up_ends_early() -> None:
    r = one(daily(0, 20, 400), last_followup_day=25)
    assert r["late_icaht_grade"] is None
    assert "ends on day 25 (last follow-up) before day 31" in r["late_icaht_reason"]


def test_conventions_are_configurable() -> None:
    pts = [(0, 2000), (1, 300), (9, 300), *daily(10, 40, 2000)]  # 7 missing days
    strict = settings_from_dict({"icaht": {"max_interpolation_gap_days": 3}})
    out = grade_cohort(frames_of({"p": pts}), strict).row(0, named=True)
    assert out["early_days_anc_le_500"] == 9  # joined across unknown days, not interpolated
    joined = [*daily(0, 4, 300), *daily(5, 7, 900), *daily(8, 12, 300), *daily(13, 40, 2000)]
    four = settings_from_dict({"icaht": {"join_min_recovered_days": 4}})
    assert (
        grade_cohort(frames_of({"p": joined}), four).row(0, named=True)["early_days_anc_le_500"]
        == 13
    )


# ---------------------------------------------------------------- provisional grading on a day


def test_as_of_day_10_is_provisional_and_does_not_apply_never_recovered() -> None:
    c = parse_course(course_dict(labs=[(0, 1500), *[(d, 200) for d in range(1, 11)]]))
    a = assess(c, day=10)
    assert a.early_icaht.result.provisional
    assert a.early_icaht.result.grade == 2
    assert not a.early_icaht.never_recovered


# ---------------------------------------------------------------- cross-check against a plain reference


def _check_against_reference(
    series: dict[str, list[tuple[int, float]]], pdays: dict[str, dict[str, int]]
) -> None:
    out = grade_cohort(frames_of(series, **pdays), Settings())
    for row in out.iter_rows(named=True):
        pid = row["patient_id"]
        d = pdays.get(pid, {})
        ref = reference_icaht.grade(
            series[pid],
            d.get("progression_day"),
            d.get("next_therapy_day"),
            d.get("last_followup_day"),
            d.get("death_day"),
        )
        assert row["early_icaht_grade"] == ref.early, (pid, series[pid])
        assert row["early_days_anc_le_500"] == ref.days500, pid
        assert row["early_days_anc_le_100"] == ref.days100, pid
        assert row["late_icaht_grade"] == ref.late, (pid, series[pid])
        assert row["late_anc_1"] == ref.late1
        assert row["late_anc_2"] == ref.late2


anc_values = st.sampled_from([0, 50, 100, 101, 300, 500, 501, 750, 1000, 1001, 1500, 1501, 3000])
series_st = st.lists(st.tuples(st.integers(0, 110), anc_values), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(st.lists(series_st, min_size=1, max_size=6), st.data())
def test_vectorised_engine_matches_plain_reference(
    all_series: list[list[tuple[int, float]]], data: st.DataObject
) -> None:
    series = {f"p{i}": s for i, s in enumerate(all_series)}
    pdays = {}
    for pid in series:
        if data.draw(st.booleans()):
            pdays[pid] = {"progression_day": data.draw(st.integers(20, 120))}
    _check_against_reference(series, pdays)


@pytest.mark.skipif(not PEER_DATA.exists(), reason="shared peer data not present")
def test_peer_data_from_liangs_published_example_matches_reference() -> None:
    """Ten synthetic patients transcribed from E. C. Liang's ICAHT example data set (../shared)."""
    frames = read_cohort(PEER_DATA / "labs.csv", PEER_DATA / "patients.csv")
    out = grade_cohort(frames, Settings())
    assert out.height == 10
    pats = frames.patients
    for row in out.iter_rows(named=True):
        pid = row["patient_id"]
        pts = [
            (d, v)
            for d, v in frames.labs.filter(pl.col("patient_id") == pid)
            .select("day", "value")
            .iter_rows()
        ]
        p = pats.filter(pl.col("patient_id") == pid).row(0, named=True)
        ref = reference_icaht.grade(
            pts, p["progression_day"], p["next_therapy_day"], p["last_followup_day"], p["death_day"]
        )
        assert (row["early_icaht_grade"], row["late_icaht_grade"]) == (ref.early, ref.late), pid


def test_never_above_500_through_day_30_is_grade_4_even_if_it_recovers_later() -> None:
    """Liang's implementation: a run covering all of day 0-30 is 'never recovering' (grade 4)."""
    pts = [(0, 2000), *daily(1, 34, 300), *daily(35, 60, 2000)]
    r = one(pts)
    assert r["early_never_recovered"]
    assert r["early_icaht_grade"] == 4
    shorter = [(0, 2000), *daily(1, 29, 300), *daily(30, 60, 2000)]
    assert one(shorter)["early_icaht_grade"] == 3
