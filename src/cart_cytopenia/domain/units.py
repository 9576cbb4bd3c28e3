"""UCUM units, their aliases, and conversion between them.

Every value in cart-cytopenia carries its unit. Units are resolved to a UCUM code (aliases such
as ``cells/mm3``, ``K/uL``, ``x10^9/L`` are accepted and documented in docs/data-formats.md),
grouped by dimension, and converted with exact factors; conversions between mass and substance
concentration use the analyte's molar mass from the analyte catalogue.

Case matters in one place: ``G/L`` (giga per litre, used by French laboratories) is 10^9/L,
whereas ``g/L`` is grams per litre.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from cart_cytopenia.errors import UnitError


class Dimension(StrEnum):
    COUNT = "count concentration"
    MASS = "mass concentration"
    SUBSTANCE = "substance concentration"
    CATALYTIC = "catalytic concentration"
    PERCENT = "fraction (%)"
    MASS_RATIO = "mass ratio"
    ARBITRARY = "arbitrary units per volume"
    INR = "INR"
    PRESENCE = "presence (1 positive, 0 negative)"
    PRESSURE = "pressure"


@dataclass(frozen=True)
class Unit:
    ucum: str
    label: str
    dimension: Dimension
    factor: float  # multiply a value in this unit by factor to get the dimension's base unit


# Base units: count -> /L ; mass -> g/L ; substance -> mol/L ; catalytic -> U/L.
UNITS: dict[str, Unit] = {
    u.ucum: u
    for u in [
        Unit("/L", "cells/L", Dimension.COUNT, 1.0),
        Unit("/uL", "cells/uL", Dimension.COUNT, 1e6),
        Unit("10*3/uL", "x10^3/uL", Dimension.COUNT, 1e9),
        Unit("10*9/L", "x10^9/L", Dimension.COUNT, 1e9),
        Unit("10*6/uL", "x10^6/uL", Dimension.COUNT, 1e12),
        Unit("10*12/L", "x10^12/L", Dimension.COUNT, 1e12),
        Unit("g/dL", "g/dL", Dimension.MASS, 10.0),
        Unit("g/L", "g/L", Dimension.MASS, 1.0),
        Unit("mg/dL", "mg/dL", Dimension.MASS, 1e-2),
        Unit("mg/L", "mg/L", Dimension.MASS, 1e-3),
        Unit("ug/mL", "ug/mL", Dimension.MASS, 1e-3),
        Unit("ng/mL", "ng/mL", Dimension.MASS, 1e-6),
        Unit("ug/L", "ug/L", Dimension.MASS, 1e-6),
        Unit("pg/mL", "pg/mL", Dimension.MASS, 1e-9),
        Unit("ng/L", "ng/L", Dimension.MASS, 1e-9),
        Unit("mmol/L", "mmol/L", Dimension.SUBSTANCE, 1e-3),
        Unit("umol/L", "umol/L", Dimension.SUBSTANCE, 1e-6),
        Unit("nmol/L", "nmol/L", Dimension.SUBSTANCE, 1e-9),
        Unit("pmol/L", "pmol/L", Dimension.SUBSTANCE, 1e-12),
        Unit("U/L", "U/L", Dimension.CATALYTIC, 1.0),
        Unit("ukat/L", "ukat/L", Dimension.CATALYTIC, 60.0),
        Unit("%", "%", Dimension.PERCENT, 1.0),
        Unit("mg/mg", "mg/mg", Dimension.MASS_RATIO, 1.0),
        Unit("g/g", "g/g", Dimension.MASS_RATIO, 1.0),
        Unit("U/mL", "U/mL", Dimension.ARBITRARY, 1.0),
        Unit("kU/L", "kU/L", Dimension.ARBITRARY, 1.0),
        Unit("{INR}", "INR", Dimension.INR, 1.0),
        Unit("{presence}", "1 = positive, 0 = negative", Dimension.PRESENCE, 1.0),
        # pressure: base mm[Hg]; 1 kPa = 7.50062 mm[Hg] (1 mm[Hg] = 133.322 Pa)
        Unit("mm[Hg]", "mmHg", Dimension.PRESSURE, 1.0),
        Unit("kPa", "kPa", Dimension.PRESSURE, 7.500617),
    ]
}

# Exact (case-sensitive) aliases first, then case-insensitive ones.
_CASE_SENSITIVE_ALIASES: dict[str, str] = {
    "G/L": "10*9/L",
    "T/L": "10*12/L",
    "g/L": "g/L",
}

_ALIASES: dict[str, str] = {
    # counts
    "/ul": "/uL",
    "cells/ul": "/uL",
    "cells/mm3": "/uL",
    "/mm3": "/uL",
    "#/ul": "/uL",
    "/cumm": "/uL",
    "cells/cumm": "/uL",
    "perul": "/uL",
    "cellsperul": "/uL",
    "/mm^3": "/uL",
    "cells/mm^3": "/uL",
    "{cells}/ul": "/uL",
    "10*3/ul": "10*3/uL",
    "10^3/ul": "10*3/uL",
    "x10^3/ul": "10*3/uL",
    "x10e3/ul": "10*3/uL",
    "10e3/ul": "10*3/uL",
    "k/ul": "10*3/uL",
    "thou/ul": "10*3/uL",
    "10^3/mm3": "10*3/uL",
    "x10³/ul": "10*3/uL",
    "10³/ul": "10*3/uL",
    "k/mm3": "10*3/uL",
    "10*3/mm3": "10*3/uL",
    "x10*3/ul": "10*3/uL",
    "1000/ul": "10*3/uL",
    "x1000/ul": "10*3/uL",
    "10*9/l": "10*9/L",
    "10^9/l": "10*9/L",
    "x10^9/l": "10*9/L",
    "x10e9/l": "10*9/L",
    "10e9/l": "10*9/L",
    "x10*9/l": "10*9/L",
    "10⁹/l": "10*9/L",
    "x10⁹/l": "10*9/L",
    "giga/l": "10*9/L",
    "/l": "/L",
    "cells/l": "/L",
    "10*6/ul": "10*6/uL",
    "10^6/ul": "10*6/uL",
    "x10^6/ul": "10*6/uL",
    "m/ul": "10*6/uL",
    "mil/ul": "10*6/uL",
    "10*12/l": "10*12/L",
    "10^12/l": "10*12/L",
    "x10^12/l": "10*12/L",
    # mass
    "g/dl": "g/dL",
    "gm/dl": "g/dL",
    "g/100ml": "g/dL",
    "mg/dl": "mg/dL",
    "mg%": "mg/dL",
    "mg/l": "mg/L",
    "ug/ml": "ug/mL",
    "mcg/ml": "ug/mL",
    "ng/ml": "ng/mL",
    "ug/l": "ug/L",
    "mcg/l": "ug/L",
    "pg/ml": "pg/mL",
    "ng/l": "ng/L",
    # substance
    "mmol/l": "mmol/L",
    "umol/l": "umol/L",
    "micromol/l": "umol/L",
    "nmol/l": "nmol/L",
    "pmol/l": "pmol/L",
    # catalytic
    "u/l": "U/L",
    "iu/l": "U/L",
    "units/l": "U/L",
    "ukat/l": "ukat/L",
    # other
    "%": "%",
    "percent": "%",
    "pct": "%",
    "mg/mg": "mg/mg",
    "g/g": "g/g",
    "u/ml": "U/mL",
    "iu/ml": "U/mL",
    "units/ml": "U/mL",
    "ku/l": "kU/L",
    "{inr}": "{INR}",
    "{presence}": "{presence}",
    "presence": "{presence}",
    "inr": "{INR}",
    "ratio": "{INR}",
    # pressure
    "mmhg": "mm[Hg]",
    "mm[hg]": "mm[Hg]",
    "mmofhg": "mm[Hg]",
    "torr": "mm[Hg]",
    "kpa": "kPa",
}


def _fold(text: str) -> str:
    return text.strip().replace("µ", "u").replace("μ", "u").replace(" ", "").lower()


def resolve_unit(text: str) -> Unit:
    """Return the UCUM unit named by ``text`` (a UCUM code or a documented alias).

    Raises UnitError naming the text when it is not recognised.
    """
    return _resolve_unit(text)


@lru_cache(maxsize=4096)  # the unit texts of a store: a few dozen
def _resolve_unit(text: str) -> Unit:
    raw = text.strip()
    if raw in UNITS:
        return UNITS[raw]
    if raw in _CASE_SENSITIVE_ALIASES:
        return UNITS[_CASE_SENSITIVE_ALIASES[raw]]
    folded = _fold(raw)
    if folded in _ALIASES:
        return UNITS[_ALIASES[folded]]
    for code in UNITS:
        if _fold(code) == folded:
            return UNITS[code]
    if not raw:
        raise UnitError("the unit is missing; every value needs its unit (e.g. '/uL', '10*9/L')")
    raise UnitError(
        f"unknown unit '{text}'; use a UCUM code such as '/uL', '10*9/L', '10*3/uL', 'g/dL', "
        "'g/L', 'mmol/L', 'mg/L', 'mg/dL', 'ng/mL' (see docs/data-formats.md for aliases)"
    )


def conversion_factor(source: Unit, target: Unit, molar_mass: float | None = None) -> float:
    """Factor f such that value_in_target = value_in_source * f.

    Mass <-> substance conversions need the analyte's molar mass (g/mol).
    Raises UnitError when the two units cannot be converted.
    """
    if source.dimension == target.dimension:
        return source.factor / target.factor
    pair = {source.dimension, target.dimension}
    if pair == {Dimension.MASS, Dimension.SUBSTANCE}:
        if molar_mass is None:
            raise UnitError(
                f"cannot convert {source.ucum} to {target.ucum} without the analyte's molar mass"
            )
        if source.dimension == Dimension.SUBSTANCE:  # mol/L -> g/L
            return source.factor * molar_mass / target.factor
        return source.factor / molar_mass / target.factor  # g/L -> mol/L
    raise UnitError(
        f"cannot convert {source.ucum} ({source.dimension}) to {target.ucum} ({target.dimension})"
    )


# Dose units (medication doses, not lab values): common spellings -> the UCUM code. "mcg" is the
# display most EHRs show for micrograms; its UCUM code is "ug" (UCUM has no "mcg").
DOSE_UNITS: dict[str, str] = {
    "mg": "mg",
    "ug": "ug",
    "mcg": "ug",
    "µg": "ug",
    "μg": "ug",
    "g": "g",
    "ml": "mL",
    "l": "L",
    "mg/kg": "mg/kg",
    "ug/kg": "ug/kg",
    "mcg/kg": "ug/kg",
    "µg/kg": "ug/kg",
    "g/kg": "g/kg",
    "mg/m2": "mg/m2",
    "mg/m²": "mg/m2",
    "ug/m2": "ug/m2",
    "mcg/m2": "ug/m2",
    "u": "U",
    "units": "U",
    "[iu]": "[iU]",
    "iu": "[iU]",
    "10*6/kg": "10*6/kg",
    "10^6/kg": "10*6/kg",
}


def dose_ucum(text: str | None) -> str | None:
    """The UCUM code of a dose unit ("mcg" -> "ug", "mg/m²" -> "mg/m2"), or None if unknown."""
    if not text:
        return None
    return DOSE_UNITS.get(text.strip().lower())
