"""HZ-011-01: CAR-HEMATOTOX cut-point values scored on the wrong side (issue 11, finding 1).

Recipe: the authors' published R code, as reported in shared/reference/clinical-definitions.md
section 4, scores every cut-point value 1 point (platelets 75 and 175, ANC <= 1200/uL,
Hb <= 9.0 g/dL, CRP >= 3.0 mg/dL, ferritin 650 and 2000). Before version 2021.2 of
rules/tables/hematotox.toml ANC 1200 and Hb 9.0 scored 0: a patient with both at the cut-point
(and nothing else) was "low risk" instead of "high risk". Each scenario is checked on both sides
and through both paths (one course, the cohort engine).
"""

from __future__ import annotations

import pytest

from tests.conftest import baseline_labs
from tests.safety._grading import both, course

CALM = {"platelets": 200.0, "crp": 1.0, "ferritin": 300.0}


@pytest.mark.parametrize(
    ("anc", "hb", "score", "risk"),
    [
        (1200.0, 9.0, 2, "high"),  # both at the cut-point: 1 point each
        (1201.0, 9.01, 0, "low"),  # just above both
        (1200.0, 9.01, 1, "low"),
        (1201.0, 9.0, 1, "low"),
    ],
)
def test_anc_1200_and_hb_9_each_score_one_point(
    anc: float, hb: float, score: int, risk: str
) -> None:
    c = course([], baseline_labs=baseline_labs(None, anc=anc, hb=hb, **CALM))
    a, row = both(c, day=0)
    assert (a.hematotox.score, a.hematotox.risk) == (score, risk)
    assert (row["hematotox_score"], row["hematotox_risk"]) == (score, risk)
    anc_marker = next(m for m in a.hematotox.markers if m.analyte == "anc")
    assert anc_marker.points == (1 if anc <= 1200 else 0)


@pytest.mark.parametrize(
    ("analyte", "at_cut", "beyond", "points_at", "points_beyond"),
    [
        ("platelets", 75.0, 74.9, 1, 2),
        ("platelets", 175.0, 175.1, 1, 0),
        ("crp", 3.0, 2.99, 1, 0),
        ("ferritin", 650.0, 649.0, 1, 0),
        ("ferritin", 2000.0, 2001.0, 1, 2),
    ],
)
def test_every_other_cut_point_value_scores_one_point(
    analyte: str, at_cut: float, beyond: float, points_at: int, points_beyond: int
) -> None:
    base = {"platelets": 200.0, "anc": 2000.0, "hb": 12.0, "crp": 1.0, "ferritin": 300.0}
    for value, points in ((at_cut, points_at), (beyond, points_beyond)):
        c = course([], baseline_labs=baseline_labs(None, **{**base, analyte: value}))
        a, row = both(c, day=0)
        assert a.hematotox.score == points, (analyte, value)
        assert row["hematotox_score"] == points
