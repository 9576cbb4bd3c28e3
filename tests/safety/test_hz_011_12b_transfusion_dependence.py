"""HZ-011-12b: regular transfusions not recognised as transfusion dependence (issue 11, finding 12).

Recipe: rules/tables/timing.toml [transfusion_dependence.regular] (IWG 2018 transfusion burden,
red cells: >= 3 units in >= 2 episodes over 16 weeks, the last less than 8 weeks ago) beside the
28-day rule (>= 2 episodes in 28 days). Red cells given monthly for months were "not dependent"
under the 28-day rule alone, so TPO-RA, TA-TMA and marrow rules that need transfusion dependence
stayed silent. Each scenario is checked on both sides, and the per-day replay (the cohort engine
run over a cohort of days) agrees with the one-day assessment.
"""

from __future__ import annotations

from typing import Any

import pytest

from cart_cytopenia.grading.assessment import LineageStatus, assess_days
from tests.safety._grading import both, course, daily


def _rbc(*days_units: tuple[int, int]) -> list[dict[str, Any]]:
    return [{"type": "transfusion", "product": "rbc", "day": d, "units": u} for d, u in days_units]


def _red_cells(events: list[dict[str, Any]], day: int) -> LineageStatus:
    c = course(daily(0, day, 2000), events=events)
    a, _ = both(c, day=day)
    (replayed,) = assess_days(c, [day])
    lin = next(x for x in a.lineages if x.lineage == "red_cells")
    assert lin == next(x for x in replayed.lineages if x.lineage == "red_cells")
    return lin


def test_monthly_red_cells_for_months_are_transfusion_dependence() -> None:
    lin = _red_cells(_rbc((30, 1), (60, 1), (90, 1), (120, 1)), day=125)
    tx = lin.transfusion
    assert tx is not None and tx.dependent
    assert tx.in_window == 1  # the 28-day rule alone would not see it
    assert (tx.units_in_long_window, tx.episodes_in_long_window) == (4, 4)
    assert tx.basis is not None and "IWG 2018" in tx.basis
    assert tx.dependent_by == "regular"


def test_two_monthly_units_are_not_yet_dependence() -> None:
    tx = _red_cells(_rbc((90, 1), (120, 1)), day=125).transfusion
    assert tx is not None and not tx.dependent and tx.basis is None


@pytest.mark.parametrize(("day", "dependent"), [(195, True), (196, False)])
def test_dependence_ends_8_weeks_after_the_last_transfusion(day: int, dependent: bool) -> None:
    tx = _red_cells(_rbc((100, 1), (120, 1), (140, 1)), day=day).transfusion
    assert tx is not None and tx.dependent is dependent


@pytest.mark.parametrize(
    ("events", "dependent"),
    [
        (_rbc((70, 2), (120, 1)), True),  # 3 units in 2 episodes, 50 days apart
        (_rbc((120, 3)), False),  # 3 units in one episode is not regular
        (_rbc((70, 1), (120, 1)), False),  # 2 episodes, 2 units
    ],
)
def test_units_and_episodes_both_count(events: list[dict[str, Any]], dependent: bool) -> None:
    tx = _red_cells(events, day=125).transfusion
    assert tx is not None and tx.dependent is dependent


def test_the_28_day_rule_still_holds_for_both_products() -> None:
    events = [
        {"type": "transfusion", "product": p, "day": d}
        for p in ("rbc", "platelets")
        for d in (100, 110)
    ]
    c = course(daily(0, 112, 2000), events=events)
    a, _ = both(c, day=112)
    for lin in a.lineages:
        if lin.transfusion is not None:
            assert lin.transfusion.dependent
            assert lin.transfusion.basis and "in the last 28 days" in lin.transfusion.basis


def test_monthly_platelets_are_not_counted_by_the_red_cell_definition() -> None:
    events = [{"type": "transfusion", "product": "platelets", "day": d} for d in (30, 60, 90)]
    c = course(daily(0, 95, 2000), events=events)
    a, _ = both(c, day=95)
    plt = next(x for x in a.lineages if x.lineage == "platelets").transfusion
    assert plt is not None and not plt.dependent and plt.units_in_long_window is None
