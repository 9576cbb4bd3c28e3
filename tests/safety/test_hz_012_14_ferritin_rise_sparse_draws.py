"""HZ-012-14: a ferritin rise missed because the draws are more than a week apart, or a rise
read from noise between close draws; and two definitions of "rising" (grading and guidance)."""

from __future__ import annotations

import pytest

from cart_cytopenia.grading.assessment import assess
from cart_cytopenia.guidance.context import Context
from cart_cytopenia.rules.settings import Settings
from tests.grading.test_iec_hs import TREND_MISSING, course


def _labs(gap: int, value: float) -> list[tuple[int, str, float]]:
    # 700 ng/mL on the CRS end day 6, the later value `gap` days on, with fibrinogen 100
    return [(6, "ferritin", 700.0), (6 + gap, "ferritin", value), (6 + gap, "fibrinogen", 100.0)]


def test_a_large_rise_between_draws_two_weeks_apart_is_read_not_unknown() -> None:
    # the published case 2 pattern: 100x over 14 days with no draw between
    x = assess(course(_labs(14, 70000.0)), 20).iechs
    assert x.status == "met"
    assert TREND_MISSING not in x.missing


def test_a_sub_rate_change_over_two_weeks_is_unknown_never_not_rising() -> None:
    # 3.9x in 14 days (4x needed): the last week may still have held a doubling
    x = assess(course(_labs(14, 2730.0)), 20).iechs
    assert x.status == "suspected"  # never "not met"
    assert TREND_MISSING in x.missing


def test_a_small_step_between_close_draws_is_no_rise() -> None:
    # 1.5x in 2 days (a rate above a doubling per week, but under the 2x floor of a week)
    x = assess(course(_labs(2, 1050.0)), 8).iechs
    assert x.status == "not met"


@pytest.mark.parametrize(
    ("gap", "value"),
    [(7, 1399.0), (7, 1400.0), (14, 2799.0), (14, 2800.0), (2, 1050.0), (22, 70000.0)],
)
def test_the_guidance_reads_rising_as_the_grading_does(gap: int, value: float) -> None:
    c, day = course(_labs(gap, value)), 6 + gap
    a = assess(c, day)
    rising = Context(c, day, a, Settings()).iechs.ferritin_rising
    assert rising == (TREND_MISSING not in a.iechs.missing and a.iechs.status == "met")
