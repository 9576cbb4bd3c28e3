"""HZ-012-01: a post-transfusion platelet count read as recovery (T-ICAHT graded too low)."""

from __future__ import annotations

from cart_cytopenia.grading.assessment import assess
from cart_cytopenia.guidance import evaluate
from tests.guidance.builders import counts, course, tx


def _plt(d: int) -> float:
    """< 20 on each transfusion day (every 4th day from day 5), 35 on the 3 days after it."""
    if d < 5 or d > 20:
        return 150.0
    return 12.0 if (d - 5) % 4 == 0 else 35.0


def test_counts_after_a_platelet_transfusion_do_not_end_the_run() -> None:
    labs = counts(range(0, 41), plt=_plt)
    transfused = assess(course(labs, tx("platelets", [5, 9, 13, 17])), 40).ticaht
    # the run < 20 stays open from day 5 until 7 days after the last transfusion (day 24)
    assert (transfused.early.grade, transfused.early_days_plt_lt_20) == (4, 20)
    assert transfused.recovery_day == 25
    assert transfused.post_transfusion_counts > 0
    # the same counts without transfusions are separate 1-day runs: grade 3, as read
    plain = assess(course(labs), 40).ticaht
    assert (plain.early.grade, plain.early_days_plt_lt_20) == (3, 4)


def test_the_thrombocytopenia_items_name_the_t_icaht_grade() -> None:
    labs = counts(range(0, 61, 2), plt=lambda d: 8.0 if d >= 4 else 150.0)
    g = evaluate(course(labs, tx("platelets", range(4, 61, 4))), 60)
    item = g.item("management.transfusion.platelets")
    assert item is not None
    assert "T-ICAHT (Rejeski 2025): early grade 4" in item.rationale
    assert "late grade 4" in item.rationale
    assert item.inputs["early_ticaht_grade"] == 4
