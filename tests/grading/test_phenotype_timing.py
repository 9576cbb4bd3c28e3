"""Recovery phenotype (Rejeski 2021), timing (the review), transfusion dependence, G-CSF response,
CAR-HEMATOTOX baseline rules: each on both sides of its cut-point."""

from __future__ import annotations

from typing import Any

import pytest

from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.grading.assessment import Assessment, assess
from tests.conftest import baseline_labs, course_dict


def daily(a: int, b: int, v: float) -> list[tuple[int, float]]:
    return [(d, v) for d in range(a, b + 1)]


def run(labs: list[tuple[int, float]], day: int | None = None, **over: Any) -> Assessment:
    return assess(parse_course(course_dict(labs=labs, **over)), day=day)


# ---------------------------------------------------------------- phenotype


@pytest.mark.parametrize(("dip", "phenotype"), [(1000, "intermittent"), (1001, "quick")])
def test_second_dip_threshold_is_1000_inclusive(dip: float, phenotype: str) -> None:
    labs = [*daily(0, 5, 300), *daily(6, 24, 1800), (25, dip), *daily(26, 40, 1800)]
    assert run(labs).phenotype.phenotype == phenotype


@pytest.mark.parametrize(("dip_day", "phenotype"), [(21, "quick"), (22, "intermittent")])
def test_second_dip_must_come_after_day_21(dip_day: int, phenotype: str) -> None:
    labs = [
        *daily(0, 5, 300),
        *daily(6, dip_day - 1, 1800),
        (dip_day, 800),
        *daily(dip_day + 1, 40, 1800),
    ]
    p = run(labs).phenotype
    assert p.phenotype == phenotype
    assert p.first_recovery_day == 6


@pytest.mark.parametrize(("days", "phenotype"), [(13, "quick"), (14, "aplastic")])
def test_aplastic_needs_14_days_at_or_below_500(days: int, phenotype: str) -> None:
    labs = [*daily(0, days - 1, 200), *daily(days, 40, 1800)]
    assert run(labs).phenotype.phenotype == phenotype


def test_quick_is_not_called_before_follow_up_beyond_day_28() -> None:
    labs = [*daily(0, 5, 300), *daily(6, 20, 1800)]
    p = run(labs).phenotype
    assert p.phenotype is None and "second dip cannot be excluded" in (p.reason or "")
    assert run([*labs, (29, 1900)]).phenotype.phenotype == "quick"


def test_never_severe_neutropenia_is_quick_with_follow_up() -> None:
    p = run(daily(0, 35, 1200)).phenotype
    assert p.phenotype == "quick" and p.first_recovery_day is None


# ---------------------------------------------------------------- timing and phases


@pytest.mark.parametrize(
    ("day", "phase"), [(29, "early"), (30, "prolonged"), (90, "prolonged"), (91, "late")]
)
def test_phase_boundaries_day_30_and_90(day: int, phase: str) -> None:
    a = run([(d, 300) for d in range(0, day + 1, 3)] + [(day, 300)], day=day)
    assert a.phase == phase
    neut = next(x for x in a.lineages if x.lineage == "neutrophils")
    assert neut.phase == phase and neut.episode_start_day == 0


def test_significant_cytopenia_cut_points_are_ctcae_grade_3() -> None:
    a = run([(0, 1000), (1, 999)], day=1)
    neut = next(x for x in a.lineages if x.lineage == "neutrophils")
    assert neut.significant
    b = run([(0, 999), (1, 1000)], day=1)
    assert not next(x for x in b.lineages if x.lineage == "neutrophils").significant


# ---------------------------------------------------------------- transfusion dependence


@pytest.mark.parametrize(
    ("days", "dependent"), [([40], False), ([33, 60], True), ([32, 60], False)]
)
def test_transfusion_dependence_two_in_28_days(days: list[int], dependent: bool) -> None:
    d = course_dict(labs=[(60, 1500)])
    d["events"] = [{"type": "transfusion", "product": "platelets", "day": x} for x in days]
    a = assess(parse_course(d), day=60)
    plt = next(x for x in a.lineages if x.lineage == "platelets")
    assert plt.transfusion is not None and plt.transfusion.dependent is dependent


# ---------------------------------------------------------------- G-CSF response


@pytest.mark.parametrize(
    ("anc_after", "on_day", "response"),
    [(501, 17, "responded"), (500, 17, "refractory"), (800, 18, "refractory")],
)
def test_gcsf_response_within_7_days(anc_after: float, on_day: int, response: str) -> None:
    labs = [
        *daily(0, 10, 200),
        *daily(11, on_day - 1, 300),
        (on_day, anc_after),
        *daily(on_day + 1, 20, 300),
    ]
    d = course_dict(labs=labs)
    d["events"] = [{"type": "medication", "drug": "filgrastim", "start_day": 10, "end_day": 20}]
    assert assess(parse_course(d), day=20).gcsf.response == response


def test_gcsf_response_too_early_to_tell() -> None:
    d = course_dict(labs=daily(0, 12, 200))
    d["events"] = [{"type": "medication", "drug": "G-CSF", "start_day": 10}]
    g = assess(parse_course(d), day=12).gcsf
    assert g.response == "too early to tell" and g.active_on_day and g.days_given == 3


# ---------------------------------------------------------------- CAR-HEMATOTOX baseline


def test_hematotox_low_risk_score_0_1_high_2() -> None:
    low = run(
        [],
        day=0,
        baseline_labs=baseline_labs(None, platelets=200, anc=1500, hb=12, crp=3.0, ferritin=300),
    )
    assert (low.hematotox.score, low.hematotox.risk) == (1, "low")
    high = run(
        [],
        day=0,
        baseline_labs=baseline_labs(None, platelets=200, anc=1500, hb=12, crp=3.0, ferritin=650),
    )
    assert (high.hematotox.score, high.hematotox.risk) == (2, "high")


def test_hematotox_after_lymphodepletion_warns() -> None:
    a = run(
        [],
        day=0,
        baseline_labs=baseline_labs(-2, platelets=200, anc=1500, hb=12, crp=1, ferritin=300),
    )
    assert a.hematotox.score == 0
    assert any("after lymphodepletion" in w for w in a.hematotox.warnings)


def test_hematotox_prefers_pre_ld_value_and_ignores_old_values() -> None:
    labs = [
        *baseline_labs(-7, platelets=50, anc=1500, hb=12, crp=1, ferritin=300),
        *baseline_labs(-2, platelets=250),
    ]
    a = run([], day=0, baseline_labs=labs)
    assert a.hematotox.markers[0].value == 50 and a.hematotox.markers[0].points == 2
    old = run(
        [],
        day=0,
        baseline_labs=baseline_labs(-40, platelets=50, anc=1500, hb=12, crp=1, ferritin=300),
    )
    assert old.hematotox.score is None and set(old.hematotox.missing) == {
        "platelets",
        "anc",
        "hb",
        "crp",
        "ferritin",
    }


def test_hematotox_missing_markers_low_cannot_be_told() -> None:
    a = run([], day=0, baseline_labs=baseline_labs(None, platelets=200, anc=1500, hb=12))
    assert a.hematotox.risk is None and a.hematotox.missing == ["crp", "ferritin"]
