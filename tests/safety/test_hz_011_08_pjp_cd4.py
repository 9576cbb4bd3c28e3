"""HZ-011-08: PJP prophylaxis stopped by a CD4 count drawn before the infusion."""

from __future__ import annotations

from cart_cytopenia.guidance import evaluate
from tests.guidance.builders import counts, course, series


def _with_cd4(points: dict[int, float]):
    labs = counts(range(0, 61, 5), anc=2500) + series("cd4", list(points), lambda d: points[d])
    return evaluate(course(labs), 60)


def test_pre_infusion_cd4_does_not_stop_pjp_prophylaxis() -> None:
    g = _with_cd4({-10: 450})
    item = g.item("prophylaxis.pjp")
    assert item is not None and item.inputs["cd4"] is None and "may stop" not in item.summary
    assert "alert.pjp-missing" in g.ids()


def test_latest_post_infusion_cd4_decides_both_ways() -> None:
    up = _with_cd4({-10: 90, 50: 260})
    assert "may stop" in up.item("prophylaxis.pjp").summary
    assert "alert.pjp-missing" not in up.ids()
    down = _with_cd4({40: 260, 55: 150})  # rose, then fell again: the latest value decides
    assert "may stop" not in down.item("prophylaxis.pjp").summary
    assert "alert.pjp-missing" in down.ids()
