"""HZ-012-04: EASIX computed with a missing value (read as 0 or normal): a false "below the cut-off"."""

from __future__ import annotations

from cart_cytopenia.grading.assessment import assess
from cart_cytopenia.io.fhir import assessment_to_resources
from tests.grading.test_easix import BASE, course


def test_without_creatinine_easix_is_not_computed_and_says_what_is_missing() -> None:
    c = course({k: v for k, v in BASE.items() if k != "creatinine"})
    a = assess(c, 0)
    assert a.easix.easix_baseline is None
    assert a.easix.above_cutoff is None  # unknown, not "below"
    assert a.easix.missing_easix == ["creatinine"]
    obs = assessment_to_resources(c, a, "Patient/p")
    e = next(o for o in obs if o["code"]["coding"][0]["code"] == "easix-baseline")
    assert "valueQuantity" not in e and "dataAbsentReason" in e
    assert "creatinine" in e["note"][0]["text"]


def test_with_every_value_it_is_computed() -> None:
    a = assess(course(BASE), 0)
    assert a.easix.easix_baseline is not None and a.easix.above_cutoff is not None
