"""HZ-012-21: TA-TMA declared from one time point, or from two time points too far apart (or a
value carried so long that one draw stands for both time points)."""

from __future__ import annotations

from cart_cytopenia.grading.assessment import assess
from tests.grading.test_tatma import MET4, on
from tests.grading.test_tatma import course as make


def test_one_time_point_with_four_criteria_does_not_meet() -> None:
    t = assess(make(on(10, **MET4))).tatma
    assert t.criteria_met == 4 and t.status != "meets" and t.first_met_day is None


def test_two_time_points_13_days_apart_meet_14_days_apart_do_not() -> None:
    assert assess(make({**on(10, **MET4), **on(23, **MET4)})).tatma.status == "meets"
    assert assess(make({**on(10, **MET4), **on(24, **MET4)})).tatma.status != "meets"


def test_a_value_stands_for_7_days_only() -> None:
    # sC5b-9, UPCR and BP once on day 10; LDH and counts again on day 17 / 18
    first = on(10, **MET4)
    at17 = make({**first, 17: {"ldh": 400, "hb": 11.5}})
    at18 = make({**first, 18: {"ldh": 400, "hb": 11.5}})
    assert assess(at17).tatma.status == "meets"  # day 10 + 7: the values still stand
    t = assess(at18).tatma
    assert t.status != "meets"  # 8 days later they no longer do
