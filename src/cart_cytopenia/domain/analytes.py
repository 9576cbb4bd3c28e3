"""The analyte catalogue (``data/analytes.toml``): codes, LOINC, canonical units, plausibility.

``resolve_analyte`` accepts a catalogue code, an alias (``ANC``, ``Hgb`` ...) or a LOINC code.
``to_canonical`` converts a value to the analyte's canonical unit and rejects values outside the
plausible range with a message naming the likely unit mix-up.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

from cart_cytopenia.domain.units import Dimension, Unit, conversion_factor, resolve_unit
from cart_cytopenia.errors import (
    ImplausibleValueError,
    RuleTableError,
    UnitError,
    UnknownAnalyteError,
)


@dataclass(frozen=True)
class Analyte:
    code: str
    label: str
    aliases: tuple[str, ...]
    loinc: tuple[str, ...]
    canonical_unit: Unit
    units: tuple[Unit, ...]
    plausible_low: float
    plausible_high: float
    molar_mass: float | None = None

    def factor_from(self, unit: Unit) -> float:
        """Multiplier from ``unit`` to this analyte's canonical unit (UnitError if not accepted)."""
        if unit not in self.units:
            accepted = ", ".join(u.ucum for u in self.units)
            raise UnitError(
                f"unit '{unit.ucum}' is not accepted for {self.label} ({self.code}); "
                f"accepted: {accepted}"
            )
        return conversion_factor(unit, self.canonical_unit, self.molar_mass)

    def is_plausible(self, canonical_value: float) -> bool:
        return self.plausible_low <= canonical_value <= self.plausible_high

    def describe_range(self) -> str:
        return f"{_fmt(self.plausible_low)}–{_fmt(self.plausible_high)} {self.canonical_unit.ucum}"


def _fmt(x: float) -> str:
    if x != 0 and (abs(x) >= 1e9 or abs(x) < 1e-3):
        return f"{x:.3g}"
    return f"{x:,.0f}" if abs(x) >= 10_000 else f"{x:g}"


@dataclass(frozen=True)
class AnalyteCatalogue:
    version: str
    source: str
    analytes: tuple[Analyte, ...]

    @property
    def by_code(self) -> dict[str, Analyte]:
        return {a.code: a for a in self.analytes}


@cache
def catalogue() -> AnalyteCatalogue:
    """Load and validate the analyte catalogue shipped with the package."""
    text = resources.files("cart_cytopenia.domain").joinpath("data/analytes.toml").read_text()
    raw = tomllib.loads(text)
    analytes = []
    seen_keys: dict[str, str] = {}
    for entry in raw["analyte"]:
        try:
            canonical = resolve_unit(entry["canonical_unit"])
            units = tuple(resolve_unit(u) for u in entry["units"])
        except UnitError as exc:
            raise RuleTableError(f"analyte {entry.get('code')}: {exc}") from exc
        if canonical not in units:
            raise RuleTableError(f"analyte {entry['code']}: canonical unit not among its units")
        low, high = entry["plausible"]
        a = Analyte(
            code=entry["code"],
            label=entry["label"],
            aliases=tuple(s.lower() for s in entry.get("aliases", [])),
            loinc=tuple(entry.get("loinc", [])),
            canonical_unit=canonical,
            units=units,
            plausible_low=float(low),
            plausible_high=float(high),
            molar_mass=entry.get("molar_mass"),
        )
        for u in units:  # every accepted unit must be convertible
            try:
                a.factor_from(u)
            except UnitError as exc:
                raise RuleTableError(f"analyte {a.code}: {exc}") from exc
        for key in (a.code, *a.aliases, *a.loinc):
            if key.lower() in seen_keys and seen_keys[key.lower()] != a.code:
                raise RuleTableError(
                    f"analyte key '{key}' names both {seen_keys[key.lower()]} and {a.code}"
                )
            seen_keys[key.lower()] = a.code
        analytes.append(a)
    return AnalyteCatalogue(raw["meta"]["version"], raw["meta"]["source"], tuple(analytes))


@cache
def _lookup() -> dict[str, Analyte]:
    table: dict[str, Analyte] = {}
    for a in catalogue().analytes:
        for key in (a.code, *a.aliases, *a.loinc):
            table[key.lower()] = a
    return table


def analyte(code: str) -> Analyte:
    """The catalogue entry for a catalogue code (e.g. ``"anc"``)."""
    return catalogue().by_code[code]


def resolve_analyte(name: str) -> Analyte:
    """Resolve an analyte by code, alias (case-insensitive) or LOINC code."""
    return _resolve_analyte(name)


@lru_cache(maxsize=4096)  # a course's few hundred values name a handful of analytes
def _resolve_analyte(name: str) -> Analyte:
    key = name.strip().lower()
    found = _lookup().get(key)
    if found is None:
        known = ", ".join(a.code for a in catalogue().analytes)
        raise UnknownAnalyteError(
            f"unknown analyte '{name}'; use a catalogue code ({known}), a common name or a LOINC code"
        )
    return found


RARELY_REPORTED = frozenset({"/L", "10*6/uL", "10*12/L"})


def likely_mixups(a: Analyte, value: float, unit: Unit) -> list[Unit]:
    """Units commonly reported in which ``value`` would be plausible for ``a`` (other than ``unit``)."""
    out = []
    for alt in a.units:
        if alt == unit or (alt.ucum in RARELY_REPORTED and alt != a.canonical_unit):
            continue
        converted = value * a.factor_from(alt)
        if a.is_plausible(converted):
            out.append(alt)
    return out


def implausibility(a: Analyte, value: float, unit: Unit) -> str | None:
    """Why ``value unit`` is implausible for analyte ``a``, or None when it is plausible.

    Counts per microlitre are whole numbers: a fractional cells/uL value is read as a
    10^9/L (or 10^3/uL) value given the wrong unit.
    """
    if math.isnan(value) or math.isinf(value):
        return "the value is not a number"
    canonical = value * a.factor_from(unit)
    fractional_per_ul = (
        unit.ucum == "/uL" and a.canonical_unit.dimension == Dimension.COUNT and value % 1 != 0
    )
    if a.is_plausible(canonical) and not fractional_per_ul:
        return None
    alts = likely_mixups(a, value, unit)
    if fractional_per_ul:
        alts = [u for u in alts if u.ucum in ("10*9/L", "10*3/uL")] or alts
        reason = f"a count per microlitre is a whole number, but {value:g} {unit.ucum} is not"
    else:
        reason = (
            f"{value:g} {unit.ucum} is {_fmt(canonical)} {a.canonical_unit.ucum}, outside the "
            f"plausible range {a.describe_range()}"
        )
    if alts:
        guesses = " or ".join(
            f"{value:g} {u.ucum} (= {_fmt(value * a.factor_from(u))} {a.canonical_unit.ucum})"
            for u in alts[:2]
        )
        return f"{reason}; it is probably {guesses} labelled as {unit.ucum}"
    return f"{reason}; check the value and its unit"


def to_canonical(name: str, value: float, unit_text: str) -> tuple[Analyte, float]:
    """Resolve analyte and unit, convert to canonical, reject implausible values."""
    a = resolve_analyte(name)
    unit = resolve_unit(unit_text)
    why = implausibility(a, value, unit)
    if why is not None:
        raise ImplausibleValueError(f"implausible {a.label}: {why}")
    return a, value * a.factor_from(unit)
