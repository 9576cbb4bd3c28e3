"""HZ-003: a value in the wrong unit read as real (ANC /uL labelled 10^9/L, platelets /uL ...)."""

from __future__ import annotations

import pytest

from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.errors import InputError


def _course(value: float, unit: str, analyte: str = "anc") -> dict[str, object]:
    return {
        "patient": {"id": "u1", "disease": "LBCL"},
        "product": {"name": "axi-cel"},
        "infusion_date": "2024-01-10",
        "labs": [{"day": 5, "analyte": analyte, "value": value, "unit": unit}],
    }


@pytest.mark.parametrize(
    ("value", "unit", "analyte", "hint"),
    [(1500, "10*9/L", "anc", "probably 1500 /uL"), (45000, "10*9/L", "platelets", "probably")],
)
def test_implausible_value_is_refused_naming_the_mixup(
    value: float, unit: str, analyte: str, hint: str
) -> None:
    with pytest.raises(InputError) as exc:
        parse_course(_course(value, unit, analyte))
    assert hint in str(exc.value)


def test_the_same_value_in_its_own_unit_is_accepted_and_converted() -> None:
    c = parse_course(_course(1.5, "10*9/L"))
    assert c.labs[0].canonical_value() == pytest.approx(1500)
