"""HZ-011-06: a secondary myeloid neoplasm found in the marrow without a referral; late worsening
without a marrow."""

from __future__ import annotations

import pytest

from cart_cytopenia.guidance import evaluate
from tests.guidance.builders import counts, course, marrow, series

LABS = counts(range(0, 121, 3), anc=800, plt=40, hb=8.5)


@pytest.mark.parametrize(
    "fields",
    [
        {"cytogenetics": "45,XY,-7[15]/46,XY[5]"},
        {"cytogenetics": "46,XX,del(7q)[10]"},
        {"cytogenetics": "complex karyotype (5 abnormalities)"},
        {"ngs": "TP53 c.818G>A VAF 22%"},
        {"ngs": "RUNX1 p.R201Q VAF 31%"},
        {"myeloid_neoplasm": True},
    ],
)
def test_high_risk_marrow_finding_gets_an_action_level_referral(fields: dict[str, object]) -> None:
    g = evaluate(course(LABS, [marrow(100, **fields)]), 120)
    item = g.item("management.myeloid-neoplasm.referral")
    assert item is not None and item.urgency == "action"
    assert "allogeneic HCT" in item.summary and "Jain 2023" in item.citation
    assert "management.expectant" not in g.ids()
    assert g.item("differential.myeloid-neoplasm").rationale.startswith("Marrow day 100")


@pytest.mark.parametrize(
    "fields",
    [
        {"cytogenetics": "46,XY[20] normal karyotype"},
        {"ngs": "TP53 wild-type; no RUNX1 mutation"},
        {"myeloid_neoplasm": False},
    ],
)
def test_no_referral_for_a_clean_or_negated_marrow(fields: dict[str, object]) -> None:
    assert (
        "management.myeloid-neoplasm.referral"
        not in evaluate(course(LABS, [marrow(100, **fields)]), 120).ids()
    )


def _late(drop: bool):
    labs = series(
        "anc", range(0, 150, 5), lambda d: 200 if d < 20 else (900 if drop and d >= 130 else 2500)
    )
    labs += series("platelets", range(0, 150, 5), 180) + series("hb", range(0, 150, 5), 12.5)
    return course(labs, [marrow(60)])


def test_late_new_drop_after_recovery_asks_for_a_marrow() -> None:
    item = evaluate(_late(drop=True), 145).item("workup.bone-marrow")
    assert (
        item is not None and "late worsening" in item.rationale.lower() and item.urgency == "action"
    )
    assert "workup.bone-marrow" not in evaluate(_late(drop=False), 145).ids()
