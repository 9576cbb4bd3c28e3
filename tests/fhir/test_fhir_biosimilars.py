"""G-CSF biosimilars coded only by their own RxNorm ingredient are recognised as G-CSF.

Each biosimilar (filgrastim-sndz, pegfilgrastim-cbqv, ...) is its own RxNorm ingredient, so an
order coded at ingredient level does not carry filgrastim 68442 or pegfilgrastim 338036. The
G-CSF rules (response, G-CSF during CRS) must still see it (domain/data/drugs.toml).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from cart_cytopenia.domain.catalogues import DrugClass, drug_by_rxnorm, resolve_drug
from cart_cytopenia.domain.course import Medication
from cart_cytopenia.io.fhir_import import import_text
from tests.fhir.conftest import RXNORM, infusion, lymphoma, patient, searchset

BIOSIMILARS = {
    "1605064": "filgrastim",  # filgrastim-sndz (Zarxio)
    "2057198": "filgrastim",  # filgrastim-aafi (Nivestym)
    "2595942": "filgrastim",  # filgrastim-ayow (Releuko)
    "1433764": "filgrastim",  # tbo-filgrastim (Granix)
    "2048018": "pegfilgrastim",  # pegfilgrastim-jmdb (Fulphila)
    "2102692": "pegfilgrastim",  # pegfilgrastim-cbqv (Udenyca)
    "2260702": "pegfilgrastim",  # pegfilgrastim-bmez (Ziextenzo)
    "2469333": "pegfilgrastim",  # pegfilgrastim-apgf (Nyvepria)
    "2602779": "pegfilgrastim",  # pegfilgrastim-pbbk (Fylnetra)
}


@pytest.mark.parametrize(("rxcui", "drug_id"), sorted(BIOSIMILARS.items()))
def test_biosimilar_ingredient_codes_map_to_gcsf(rxcui: str, drug_id: str) -> None:
    drug = drug_by_rxnorm(rxcui)
    assert drug is not None and drug.id == drug_id
    assert DrugClass.GCSF in drug.classes


def test_originator_code_is_the_one_exported() -> None:
    assert drug_by_rxnorm("68442") is resolve_drug("filgrastim")
    assert resolve_drug("filgrastim").rxnorm[0] == "68442"  # type: ignore[union-attr]
    assert resolve_drug("pegfilgrastim").rxnorm[0] == "338036"  # type: ignore[union-attr]
    assert drug_by_rxnorm("4179") is not None  # etoposide, not a G-CSF
    assert DrugClass.GCSF not in drug_by_rxnorm("4179").classes  # type: ignore[union-attr]


@pytest.mark.parametrize("brand", ["Udenyca", "Fulphila", "Ziextenzo", "Releuko", "Nivestym"])
def test_brand_names_resolve(brand: str) -> None:
    drug = resolve_drug(brand)
    assert drug is not None and DrugClass.GCSF in drug.classes


def test_code_only_administration_of_a_biosimilar_imports_as_gcsf() -> None:
    admin: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": "peg1",
        "status": "completed",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "2102692"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-01-25",
    }
    result = import_text(json.dumps(searchset(patient(), infusion(), lymphoma(), admin)))
    assert len(result.courses) == 1, [str(f) for f in result.failed]
    meds = result.courses[0].events_of(Medication)
    assert [m.drug for m in meds] == ["pegfilgrastim"]
