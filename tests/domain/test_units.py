"""Units: UCUM codes, documented aliases and exact conversion factors."""

from __future__ import annotations

import pytest

from cart_cytopenia.domain.analytes import analyte, to_canonical
from cart_cytopenia.domain.units import conversion_factor, resolve_unit
from cart_cytopenia.errors import UnitError


@pytest.mark.parametrize(
    ("text", "ucum"),
    [
        ("cells/uL", "/uL"),
        ("cells/mm3", "/uL"),
        ("/µL", "/uL"),
        ("K/uL", "10*3/uL"),
        ("x10^3/uL", "10*3/uL"),
        ("10^9/L", "10*9/L"),
        ("x10E9/L", "10*9/L"),
        ("G/L", "10*9/L"),  # giga per litre (French laboratories)
        ("g/L", "g/L"),  # grams per litre: case matters here
        ("g/dl", "g/dL"),
        ("mmol/l", "mmol/L"),
        ("µmol/L", "umol/L"),
        ("IU/L", "U/L"),
    ],
)
def test_aliases_resolve_to_ucum(text: str, ucum: str) -> None:
    assert resolve_unit(text).ucum == ucum


def test_unknown_and_missing_units_are_errors_naming_the_text() -> None:
    with pytest.raises(UnitError, match="unknown unit 'furlongs'"):
        resolve_unit("furlongs")
    with pytest.raises(UnitError, match="unit is missing"):
        resolve_unit("")


@pytest.mark.parametrize(
    ("name", "value", "unit", "canonical"),
    [
        ("anc", 1.5, "10*9/L", 1500.0),
        ("anc", 0.02, "10^9/L", 20.0),
        ("platelets", 45_000, "/uL", 45.0),
        ("platelets", 45, "G/L", 45.0),
        ("hb", 120, "g/L", 12.0),
        ("hb", 6.2, "mmol/L", 10.0),  # 1 g/dL = 0.6206 mmol/L (haem monomer)
        ("triglycerides", 3.0, "mmol/L", 265.7),  # 88.57 mg/dL per mmol/L
        ("bilirubin", 17.1, "umol/L", 1.0),
        ("creatinine", 88.4, "umol/L", 1.0),
        ("fibrinogen", 1.5, "g/L", 150.0),
        ("crp", 30, "mg/L", 3.0),
        ("ferritin", 650, "ug/L", 650.0),
        ("ldh", 5, "ukat/L", 300.0),
        ("igg", 7, "g/L", 700.0),
    ],
)
def test_conversions_to_canonical_units(
    name: str, value: float, unit: str, canonical: float
) -> None:
    _, got = to_canonical(name, value, unit)
    assert got == pytest.approx(canonical, rel=2e-3)


def test_mass_to_substance_needs_molar_mass() -> None:
    with pytest.raises(UnitError, match="molar mass"):
        conversion_factor(resolve_unit("g/dL"), resolve_unit("mmol/L"))


def test_unit_not_accepted_for_analyte_names_the_accepted_ones() -> None:
    with pytest.raises(UnitError, match="accepted: /uL"):
        analyte("anc").factor_from(resolve_unit("g/dL"))
