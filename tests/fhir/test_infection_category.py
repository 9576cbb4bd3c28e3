"""io.fhir_codes: the infection category of an ICD-10(-CM) code, from the ordered ranges of
io/data/fhir_codes.toml (the first that holds the code wins)."""

from __future__ import annotations

import pytest

from cart_cytopenia.io.fhir_codes import codes


@pytest.mark.parametrize(
    ("code", "category"),
    [
        ("A15.0", "bacterial"),  # tuberculosis
        ("A41.9", "bacterial"),  # sepsis, unspecified organism (a bacterial block)
        ("A54.9", "bacterial"),  # gonococcal infection
        ("A59.9", "parasitic"),  # trichomoniasis: protozoal, inside the STI block
        ("A60.00", "viral"),  # anogenital herpesviral infection
        ("A63.0", "viral"),  # anogenital warts (HPV)
        ("A630", "viral"),  # the same without the dot
        ("A63.8", "unknown"),  # other specified predominantly sexually transmitted diseases
        ("A64", "unknown"),  # unspecified sexually transmitted disease
        ("A69.20", "bacterial"),  # Lyme disease
        ("B25.1", "viral"),  # CMV hepatitis
        ("B37.0", "fungal"),
        ("B58.9", "parasitic"),  # toxoplasmosis
        ("J12.9", "viral"),
        ("J15.9", "bacterial"),
        ("J18.9", None),  # pneumonia, unspecified organism: no category from the code
        ("A04.7", None),  # outside the ranges: the text decides
    ],
)
def test_icd10_infection_category(code: str, category: str | None) -> None:
    assert codes().infection_category_of_icd(code) == category
