"""HZ-012-22: a child's blood pressure read against the adult cut-offs (140/90 mmHg): the harmonised
criterion is > 99th percentile for age, so a child's hypertension would be missed (a normal adult
reading read as "no hypertension")."""

from __future__ import annotations

from cart_cytopenia.grading.assessment import assess
from tests.grading.test_tatma import course as make
from tests.grading.test_tatma import crit, on


def test_a_child_s_reading_is_not_assessable_treatment_still_counts() -> None:
    child = assess(make(on(10, sbp=125, dbp=80), age=9)).tatma
    assert crit(child, "hypertension") is None  # not "not met"
    treated = make(
        on(10, sbp=125, dbp=80),
        [{"type": "medication", "drug": "nifedipine", "start_day": 8}],
        age=9,
    )
    assert crit(assess(treated).tatma, "hypertension") is True


def test_adult_cut_offs_apply_from_18_and_to_unknown_ages_only_when_high() -> None:
    assert crit(assess(make(on(10, sbp=125, dbp=80), age=18)).tatma, "hypertension") is False
    assert crit(assess(make(on(10, sbp=125, dbp=80), age=None)).tatma, "hypertension") is None
    assert crit(assess(make(on(10, sbp=141, dbp=80), age=None)).tatma, "hypertension") is True
