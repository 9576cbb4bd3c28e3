"""HZ-012-13: IEC-HS criteria "met" from CRS's own inflammation, or at a written limit."""

from __future__ import annotations

from cart_cytopenia.grading.assessment import assess
from tests.grading.test_iec_hs import CRS, ONSET, course


def test_a_ferritin_rise_during_crs_is_at_most_suspected() -> None:
    crs = {**CRS, "end_day": 12}  # CRS still going on day 9
    x = assess(course([*ONSET, (10, "fibrinogen", 100.0)], [crs]), 10).iechs
    assert x.status == "suspected"
    assert x.onset_relative_to_crs is not None and x.onset_relative_to_crs.startswith("during CRS")


def test_no_crs_end_day_is_at_most_suspected() -> None:
    crs = {k: v for k, v in CRS.items() if k != "end_day"}
    x = assess(course([*ONSET, (10, "fibrinogen", 100.0)], [crs]), 10).iechs
    assert x.status == "suspected"


def test_a_value_equal_to_a_written_multiple_is_not_above_it() -> None:
    # creatinine ULN 1.2 mg/dL: 3 x 1.2 = 3.6 (3.5999999999999996 in floating point)
    labs = [(4, "ferritin", 12000.0), (8, "ast", 201.0), (8, "bilirubin", 1.0)]
    at = assess(course([*labs, (8, "creatinine", 3.6)]), 10).iechs
    above = assess(course([*labs, (8, "creatinine", 3.61)]), 10).iechs
    assert at.carhlh == "incomplete" and above.carhlh == "met"
