"""Product and drug catalogues (``data/products.toml``, ``data/drugs.toml``)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

from cart_cytopenia.errors import RuleTableError


class DrugClass(StrEnum):
    GCSF = "gcsf"
    GMCSF = "gmcsf"
    TPO_RA = "tpo_ra"
    IL6_BLOCKADE = "il6_blockade"
    IL1_BLOCKADE = "il1_blockade"
    CORTICOSTEROID = "corticosteroid"
    JAK_INHIBITOR = "jak_inhibitor"
    IFNG_BLOCKADE = "ifng_blockade"
    CYTOTOXIC = "cytotoxic"
    ANTIBACTERIAL = "antibacterial"
    ANTIFUNGAL = "antifungal"
    ANTIFUNGAL_MOULD_ACTIVE = "antifungal_mould_active"
    ANTIVIRAL = "antiviral"
    PJP = "pjp"
    MYELOSUPPRESSIVE = "myelosuppressive"
    IMMUNOSUPPRESSANT = "immunosuppressant"
    IVIG = "ivig"
    ANTIHYPERTENSIVE = "antihypertensive"


class Cover(StrEnum):
    """What an anti-infective prevents, as the prophylaxis rules ask it (not the drug's class)."""

    BACTERIA = "bacteria"
    YEAST = "yeast"
    MOULD = "mould"
    HSV_VZV = "hsv-vzv"
    CMV = "cmv"
    PJP = "pjp"


ANTI_INFECTIVE_CLASSES = frozenset(
    {
        DrugClass.ANTIBACTERIAL,
        DrugClass.ANTIFUNGAL,
        DrugClass.ANTIFUNGAL_MOULD_ACTIVE,
        DrugClass.ANTIVIRAL,
        DrugClass.PJP,
    }
)


@dataclass(frozen=True)
class Product:
    id: str
    generic: str
    brand: str
    target: str
    costimulatory: str
    diseases: tuple[str, ...]
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class Drug:
    id: str
    aliases: tuple[str, ...]
    classes: frozenset[DrugClass]
    alternative: str | None = None
    rxnorm: tuple[str, ...] = ()
    rxnorm_verified: bool = False  # the RXCUIs were read in a cited source (rxnorm_source)
    covers: frozenset[Cover] = frozenset()  # what an anti-infective prevents (prophylaxis rules)


def _load(name: str) -> dict[str, Any]:
    text = resources.files("cart_cytopenia.domain").joinpath(f"data/{name}").read_text()
    return tomllib.loads(text)


@cache
def products() -> dict[str, Product]:
    raw = _load("products.toml")
    out = {}
    for p in raw["product"]:
        out[p["id"]] = Product(
            id=p["id"],
            generic=p["generic"],
            brand=p["brand"],
            target=p["target"],
            costimulatory=p["costimulatory"],
            diseases=tuple(p["diseases"]),
            aliases=tuple(a.lower() for a in p.get("aliases", [])),
        )
    return out


def resolve_product(name: str) -> Product | None:
    """The catalogue product named by id, generic or brand name; None when not in the catalogue."""
    key = name.strip().lower()
    for p in products().values():
        if key in (p.id, p.generic.lower(), p.brand.lower(), *p.aliases):
            return p
    return None


@cache
def drugs() -> dict[str, Drug]:
    raw = _load("drugs.toml")
    out = {}
    for d in raw["drug"]:
        try:
            classes = frozenset(DrugClass(c) for c in d["classes"])
            covers = frozenset(Cover(c) for c in d.get("covers", []))
        except ValueError as exc:
            raise RuleTableError(f"drug {d['id']}: {exc}") from exc
        if classes & ANTI_INFECTIVE_CLASSES and not covers:
            raise RuleTableError(
                f"drug {d['id']}: an anti-infective needs 'covers' (what it prevents)"
            )
        out[d["id"]] = Drug(
            id=d["id"],
            aliases=tuple(a.lower() for a in d.get("aliases", [])),
            classes=classes,
            alternative=d.get("alternative"),
            rxnorm=tuple(d.get("rxnorm", [])),
            rxnorm_verified=bool(d.get("rxnorm_verified", False)),
            covers=covers,
        )
    return out


@cache
def _drug_lookup() -> dict[str, Drug]:
    table = {}
    for d in drugs().values():
        for key in (d.id, *d.aliases):
            table[key.lower()] = d
    return table


def drug_by_rxnorm(rxcui: str) -> Drug | None:
    """The catalogue drug whose RxNorm ingredient RXCUI is ``rxcui``, or None."""
    code = rxcui.strip()
    for d in drugs().values():
        if code in d.rxnorm:
            return d
    return None


def resolve_drug(name: str) -> Drug | None:
    """The catalogue drug for a name (generic, brand or common abbreviation), or None.

    A drug outside the catalogue is accepted in a course (not every drug matters to the rules),
    but the assessment lists it as "not reasoned about" so that nobody assumes it was checked.
    """
    return _drug_lookup().get(name.strip().lower())
