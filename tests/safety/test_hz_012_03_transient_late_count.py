"""HZ-012-03: late T-ICAHT from one transient low count, or a count at a cut-point read as below."""

from __future__ import annotations

from cart_cytopenia.grading.assessment import assess
from tests.guidance.builders import course, series


def _late(values: dict[int, float]) -> int | None:
    labs = series("platelets", range(0, 31, 2), 150)
    for d, v in values.items():
        labs += series("platelets", [d], v)
    return assess(course(labs), 100).ticaht.late.grade


def test_one_low_count_among_normal_ones_is_transient() -> None:
    assert _late({40: 45, 60: 160, 80: 170}) == 0
    assert _late({40: 45, 60: 99, 80: 170}) == 2  # confirmed by a second count < 100


def test_cut_points_are_strict() -> None:
    assert _late({40: 100, 60: 100}) == 0
    assert _late({40: 99.9, 60: 99.9}) == 1
    assert _late({40: 50, 60: 50}) == 1
    assert _late({40: 49.9, 60: 49.9}) == 2
