"""Analyte resolution (name, alias, LOINC) and rejection of implausible values with the likely mix-up."""

from __future__ import annotations

import pytest

from cart_cytopenia.domain.analytes import catalogue, resolve_analyte, to_canonical
from cart_cytopenia.errors import ImplausibleValueError, UnknownAnalyteError


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("ANC", "anc"),
        ("751-8", "anc"),
        ("753-4", "anc"),
        ("26499-4", "anc"),
        ("Hgb", "hb"),
        ("718-7", "hb"),
        ("777-3", "platelets"),
        ("PLT", "platelets"),
        ("2276-4", "ferritin"),
        ("30522-7", "crp"),
        ("71693-6", "ipf"),
        ("76039-7", "sil2r"),
        ("60474-4", "retic_abs"),
        ("17849-1", "retic_pct"),
    ],
)
def test_names_aliases_and_loinc_resolve(name: str, code: str) -> None:
    assert resolve_analyte(name).code == code


def test_every_required_analyte_has_a_loinc_code() -> None:
    required = {
        "anc",
        "wbc",
        "alc",
        "hb",
        "platelets",
        "cd4",
        "igg",
        "ferritin",
        "crp",
        "ldh",
        "fibrinogen",
        "triglycerides",
        "ast",
        "alt",
        "bilirubin",
        "creatinine",
        "retic_pct",
        "retic_abs",
        "ipf",
        "haptoglobin",
        "urine_protein",
        "sil2r",
        "il6",
    }
    by_code = catalogue().by_code
    assert required <= set(by_code)
    assert all(by_code[c].loinc for c in required)


def test_unknown_analyte_lists_the_catalogue() -> None:
    with pytest.raises(UnknownAnalyteError, match="unknown analyte 'neutrofils'.*anc"):
        resolve_analyte("neutrofils")


@pytest.mark.parametrize(
    ("name", "value", "unit", "mixup"),
    [
        ("anc", 1500, "10*9/L", "probably 1500 /uL"),  # cells/uL labelled 10^9/L
        (
            "anc",
            1.2,
            "/uL",
            "probably 1.2 10\\*3/uL|probably 1.2 10\\*9/L",
        ),  # 10^9/L labelled cells/uL
        ("hb", 120, "g/dL", "probably 120 g/L"),
        ("platelets", 150000, "10*3/uL", "probably 150000 /uL"),
        ("hb", 12, "g/L", "probably 12 g/dL"),
    ],
)
def test_implausible_values_name_the_likely_mixup(
    name: str, value: float, unit: str, mixup: str
) -> None:
    with pytest.raises(ImplausibleValueError, match=mixup):
        to_canonical(name, value, unit)


def test_negative_count_is_implausible() -> None:
    with pytest.raises(ImplausibleValueError, match="outside the plausible range"):
        to_canonical("platelets", -3, "10*9/L")
