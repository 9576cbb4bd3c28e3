"""EASIX and m-EASIX (Korell 2022; Pennisi 2021): a hand-computed example, both sides of the
cut-off, missing values named, the day 0-3 window, and one implementation for assess and grade."""

from __future__ import annotations

from typing import Any

import pytest

from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.domain.frames import course_to_frames
from cart_cytopenia.grading.assessment import assess
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.rules import tables
from cart_cytopenia.rules.settings import Settings

UNITS = {"ldh": "U/L", "creatinine": "mg/dL", "crp": "mg/dL", "platelets": "10*3/uL"}


def lab(day: int, analyte: str, value: float) -> dict[str, Any]:
    return {"day": day, "analyte": analyte, "value": value, "unit": UNITS[analyte]}


def course(baseline: dict[str, float], early: list[dict[str, Any]] = (), ld: int = -5) -> Any:  # type: ignore[assignment]
    return parse_course(
        {
            "patient": {"id": "e1", "disease": "LBCL", "sex": "male", "age_years": 60},
            "product": {"name": "axi-cel"},
            "infusion_date": "2024-03-01",
            "lymphodepletion": {"regimen": "flu-cy", "start_day": ld},
            "baseline_labs": [lab(-6, a, v) for a, v in baseline.items()],
            "labs": [lab(0, "platelets", 150), *early],
        }
    )


BASE = {"ldh": 300, "creatinine": 1.2, "crp": 2.0, "platelets": 80}


def test_hand_computed_example() -> None:
    # EASIX = 300 U/L x 1.2 mg/dL / 80 x10^9/L = 4.5; m-EASIX = 300 x 2.0 / 80 = 7.5
    z = assess(course(BASE), 0).easix
    assert z.easix_baseline == pytest.approx(4.5)
    assert z.m_easix_baseline == pytest.approx(7.5)
    assert z.above_cutoff is False
    assert (z.missing_easix, z.missing_m_easix) == ([], [])


@pytest.mark.parametrize(("ldh", "above"), [(467, False), (468, True)])
def test_cutoff_is_strictly_above(ldh: float, above: bool) -> None:
    # 467 x 1.0 / 100 = 4.67 (the cut-off itself: not above); 468 -> 4.68
    z = assess(course({**BASE, "ldh": ldh, "creatinine": 1.0, "platelets": 100}), 0).easix
    assert z.above_cutoff is above
    assert tables.easix().baseline_cutoff == 4.67


def test_a_missing_value_is_named_never_zero() -> None:
    z = assess(course({k: v for k, v in BASE.items() if k != "creatinine"}), 0).easix
    assert z.easix_baseline is None and z.above_cutoff is None
    assert z.missing_easix == ["creatinine"]
    assert z.m_easix_baseline == pytest.approx(7.5)  # m-EASIX does not need creatinine


def test_day_0_3_takes_the_highest_day_with_all_values() -> None:
    early = [
        lab(1, "ldh", 400),
        lab(1, "creatinine", 1.0),
        lab(1, "platelets", 100),
        lab(1, "crp", 5),
        lab(3, "ldh", 600),
        lab(3, "creatinine", 1.5),
        lab(3, "platelets", 50),
        lab(3, "crp", 10),
        # day 4 is outside the window
        lab(4, "ldh", 2000),
        lab(4, "creatinine", 3.0),
        lab(4, "platelets", 10),
    ]
    z = assess(course(BASE, early), 4).easix
    assert (z.easix_d0_3, z.easix_d0_3_day) == (pytest.approx(18.0), 3)
    assert (z.m_easix_d0_3, z.m_easix_d0_3_day) == (pytest.approx(120.0), 3)
    # on day 2 the day-3 values are not known yet
    z = assess(course(BASE, early), 2).easix
    assert (z.easix_d0_3, z.easix_d0_3_day) == (pytest.approx(4.0), 1)


def test_grade_columns_are_the_assessment_s() -> None:
    c = course(BASE)
    row = grade_cohort(course_to_frames(c), Settings()).row(0, named=True)
    assert row["easix_baseline"] == pytest.approx(4.5)
    assert row["m_easix_baseline"] == pytest.approx(7.5)
    assert row["easix_baseline_above_cutoff"] == 0
    assert row["easix_baseline_missing"] is None


def test_table_cites_what_was_read_and_not() -> None:
    m = tables.easix().meta
    assert "Korell" in m.source and "Pennisi" in m.source
    assert "cut-off" in m.extra["not_read"]
