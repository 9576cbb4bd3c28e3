"""Therapy codes shared by the FHIR importer and the OMOP reader (``io/data/therapy_codes.toml``).

One table says which procedure and drug codes are a CAR-T administration (and which product it
names), a transfusion (and of what), or a clinical drug (and which ingredient it contains), for
CPT, HCPCS, ICD-10-PCS and RxNorm. The FHIR importer looks codes up by the coding's system URI,
the OMOP reader by the concept's ``vocabulary_id`` or by a bare source value; both get the same
answer. Every entry names its source in the data file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from cart_cytopenia.domain.catalogues import products
from cart_cytopenia.errors import RuleTableError

DATA_FILE = "data/therapy_codes.toml"
KINDS = ("car_t", "transfusion")
TRANSFUSION_PRODUCTS = ("rbc", "platelets", "plasma", "granulocytes")


@dataclass(frozen=True)
class TherapyCode:
    """What a procedure/drug code stands for: ``kind`` car_t or transfusion, and the product."""

    kind: str
    system: str  # short name: cpt, hcpcs, icd10pcs
    code: str
    product: str | None
    source: str


@dataclass(frozen=True)
class ClinicalDrug:
    """An RxNorm clinical-drug (or ingredient) code and the ingredient it contains."""

    rxcui: str
    tty: str
    name: str
    ingredient: str
    source: str


@dataclass(frozen=True)
class TherapyCodes:
    version: str
    fhir_systems: dict[str, str]  # FHIR URI -> short name
    omop_vocabularies: dict[str, str]  # upper-case vocabulary_id -> short name
    codes: dict[tuple[str, str], TherapyCode]  # (short system, clean code) -> entry
    clinical_drugs: dict[str, ClinicalDrug]  # rxcui -> entry

    def system_of_uri(self, uri: str | None) -> str | None:
        """The short name (cpt, hcpcs, icd10pcs, rxnorm) of a FHIR coding system, or None."""
        return self.fhir_systems.get(uri or "")

    def system_of_vocabulary(self, vocabulary_id: str | None) -> str | None:
        """The short name of an OMOP vocabulary_id, or None."""
        return self.omop_vocabularies.get((vocabulary_id or "").upper())

    def lookup(self, system: str | None, code: str | None) -> TherapyCode | None:
        """The entry of a code of a known system (short name), or None."""
        if not system or not code:
            return None
        return self.codes.get((system, clean_code(code)))

    def lookup_any(self, code: str | None) -> TherapyCode | None:
        """The entry of a bare code (an OMOP source value) in any procedure system, or None.

        The code sets do not overlap (CPT five digits or four digits and a letter, HCPCS a letter
        and four digits, ICD-10-PCS seven characters), so a bare code names one entry at most."""
        c = clean_code(code)
        return next((e for (_s, k), e in self.codes.items() if k == c), None) if c else None

    def clinical_drug(self, rxcui: str | None) -> ClinicalDrug | None:
        return self.clinical_drugs.get((rxcui or "").strip())


def clean_code(code: Any) -> str:
    """A code as compared: trimmed, upper case, dots removed (ICD-10-PCS/HCPCS are dotless)."""
    return str(code or "").strip().upper().replace(".", "")


def _entries(doc: dict[str, Any], systems: set[str]) -> dict[tuple[str, str], TherapyCode]:
    known_products = set(products())
    out: dict[tuple[str, str], TherapyCode] = {}
    for kind in KINDS:
        for i, e in enumerate(doc.get(kind, [])):
            where = f"{DATA_FILE}: [[{kind}]] #{i + 1}"
            system, product = e.get("system"), e.get("product")
            if system not in systems:
                raise RuleTableError(f"{where}: system {system!r} is not in [systems]")
            if not e.get("source"):
                raise RuleTableError(f"{where}: every code needs its source")
            valid = known_products if kind == "car_t" else set(TRANSFUSION_PRODUCTS)
            if product is not None and product not in valid:
                raise RuleTableError(f"{where}: product {product!r} is not one of {sorted(valid)}")
            for code in e["codes"]:
                key = (system, clean_code(code))
                if key in out:
                    raise RuleTableError(f"{where}: {system} code {code} is listed twice")
                out[key] = TherapyCode(kind, system, clean_code(code), product, e["source"])
    return out


def _clinical_drugs(doc: dict[str, Any]) -> dict[str, ClinicalDrug]:
    out: dict[str, ClinicalDrug] = {}
    for i, e in enumerate(doc.get("clinical_drug", [])):
        where = f"{DATA_FILE}: [[clinical_drug]] #{i + 1}"
        missing = [k for k in ("rxcui", "tty", "name", "ingredient", "source") if not e.get(k)]
        if missing:
            raise RuleTableError(f"{where}: missing {', '.join(missing)}")
        if e["rxcui"] in out:
            raise RuleTableError(f"{where}: RXCUI {e['rxcui']} is listed twice")
        out[e["rxcui"]] = ClinicalDrug(
            e["rxcui"], e["tty"], e["name"], e["ingredient"].lower(), e["source"]
        )
    return out


@cache
def therapy_codes() -> TherapyCodes:
    """The shared therapy code table, loaded and checked once."""
    text = resources.files("cart_cytopenia.io").joinpath(DATA_FILE).read_text()
    doc = tomllib.loads(text)
    systems = doc.get("systems", {})
    fhir = {uri: name for name, s in systems.items() for uri in s.get("fhir", [])}
    omop = {v.upper(): name for name, s in systems.items() for v in s.get("omop", [])}
    return TherapyCodes(
        version=doc["meta"]["version"],
        fhir_systems=fhir,
        omop_vocabularies=omop,
        codes=_entries(doc, set(systems)),
        clinical_drugs=_clinical_drugs(doc),
    )


__all__ = ["ClinicalDrug", "TherapyCode", "TherapyCodes", "clean_code", "therapy_codes"]
