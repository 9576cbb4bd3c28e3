"""Reading FHIR data types (CodeableConcept, dates, Quantity, extensions) and naming what they
code: project concepts, catalogue drugs and CAR-T products, therapy codes."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar

from cart_cytopenia.domain.catalogues import (
    Drug,
    Product,
    drugs,
    products,
)
from cart_cytopenia.io.fhir_codes import SYSTEM_NAMES, Concept, codes
from cart_cytopenia.io.therapy_codes import TherapyCode, therapy_codes


def texts_of(cc: Any) -> list[str]:
    """Text and coding displays of a CodeableConcept (model or None)."""
    if cc is None:
        return []
    out = []
    if getattr(cc, "text", None):
        out.append(cc.text)
    for c in getattr(cc, "coding", None) or []:
        if c.display:
            out.append(c.display)
    return out


def codings_of(cc: Any) -> list[tuple[str | None, str | None]]:
    if cc is None:
        return []
    return [(c.system, c.code) for c in (getattr(cc, "coding", None) or [])]


def as_date(value: Any) -> dt.date | None:
    """A date from a FHIR date/dateTime value (model type); None for partial dates."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return None


def is_partial_date(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def period_dates(p: Any) -> tuple[dt.date | None, dt.date | None]:
    if p is None:
        return None, None
    return as_date(p.start), as_date(p.end)


def as_float(x: Any) -> float:
    return float(x) if isinstance(x, Decimal | int | float) else float(str(x))


_GRADE_TEXT = re.compile(r"\bgrade\s*([0-5])\b|^\s*([0-5])\s*$", re.IGNORECASE)


@cache
def _name_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    alts = sorted({n.lower() for n in names if n}, key=len, reverse=True)
    return re.compile(
        r"(?<![a-z0-9])(" + "|".join(re.escape(a) for a in alts) + r")(?![a-z0-9])", re.I
    )


T = TypeVar("T")


@cache
def _drug_names() -> dict[str, Drug]:
    out: dict[str, Drug] = {}
    for d in drugs().values():
        for n in (d.id, *d.aliases):
            out[n.lower()] = d
    return out


@cache
def _product_names() -> dict[str, Product]:
    out: dict[str, Product] = {}
    for p in products().values():
        for n in (p.id, p.generic, p.brand, *p.aliases):
            out[n.lower()] = p
    return out


def _longest_name(names: Mapping[str, T], texts: Iterable[str]) -> T | None:
    """The entry of ``names`` (lower-case names) named in any of ``texts``; the longest name
    wins (so "pegfilgrastim" beats "filgrastim")."""
    pat = _name_pattern(tuple(names))
    best: str | None = None
    for t in texts:
        for m in pat.finditer(t):
            hit = m.group(1).lower()
            if best is None or len(hit) > len(best):
                best = hit
    return names[best] if best else None


def match_drug_text(texts: Iterable[str]) -> Drug | None:
    """The catalogue drug named in any of ``texts`` (longest name wins), or None."""
    return _longest_name(_drug_names(), texts)


def match_product_text(texts: Iterable[str]) -> Product | None:
    """The CAR-T product named in any of ``texts`` (longest name wins), or None."""
    return _longest_name(_product_names(), texts)


def grade_from_stage(cond: Any) -> int | None:
    cs = codes()
    for st in cond.stage or []:
        for system, code in codings_of(st.summary):
            if system == cs.project_system and code and code.startswith("grade-"):
                return int(code.split("-")[1])
        for t in texts_of(st.summary):
            m = _GRADE_TEXT.search(t)
            if m:
                return int(m.group(1) or m.group(2))
    return None


def extension_of(res: Any, name: str) -> Any:
    url = codes().extension(name)
    for e in getattr(res, "extension", None) or []:
        if e.url == url:
            return e
    return None


def concept_by_code(cc: Any, kinds: tuple[str, ...]) -> tuple[Concept | None, int | None]:
    """The project concept a CodeableConcept names by code: (concept, graded-code grade)."""
    cs = codes()
    for system, code in codings_of(cc):
        if system == cs.project_system and code in cs.concepts and cs.concepts[code].kind in kinds:
            return cs.concepts[code], None
    for concept in cs.concepts.values():
        if concept.kind not in kinds:
            continue
        for m in concept.matches:
            for system, code in codings_of(cc):
                if m.matches(system, code):
                    return concept, m.grade_of(code or "")
    return None, None


def therapy_code_of(system: str | None, code: str | None) -> TherapyCode | None:
    table = therapy_codes()
    return table.lookup(table.system_of_uri(system), code)


def coded_therapy(cc: Any) -> TherapyCode | None:
    """The shared therapy-code entry (CAR-T administration, transfusion) a concept is coded with."""
    return next((h for s, c in codings_of(cc) if (h := therapy_code_of(s, c)) is not None), None)


def code_names(cc: Any) -> list[str]:
    """'CPT 12345'-style names of a concept's codings (system URI when not a known one)."""
    cs, table = codes(), therapy_codes()
    short = {uri: name for name, uri in cs.systems.items()} | table.fhir_systems
    names = {k: SYSTEM_NAMES.get(v, v) for k, v in short.items()}
    return [f"{names.get(s or '', s or 'no system')} {c}" for s, c in codings_of(cc) if c]


def label_of(cc: Any) -> str:
    """What a concept says it is, for a report: its text, else its codes marked as unknown."""
    texts = texts_of(cc)[:1]
    names = code_names(cc)
    if names:
        texts.append(f"code {', '.join(names)} not in the code tables")
    return "; ".join(texts) or "no code or text"


def unidentified_medication(
    res: Any, by_ref: Mapping[str, Any], resolve: Callable[[str | None], str | None]
) -> str:
    """Why the medication of a request/administration cannot be identified."""
    cc = res.medicationCodeableConcept
    if cc is not None:
        names = code_names(cc)
        if names:
            return (
                f"medication coded {', '.join(names)}: not in the drug catalogue or the "
                "clinical-drug code table, and no medication name is given"
            )
        return "medication without a code or name"
    target = res.medicationReference.reference if res.medicationReference else None
    if target and not target.startswith("#") and resolve(target) not in by_ref:
        return (
            f"medicationReference {target!r} is not in the data given (no such Medication "
            "resource), and no medication name is given"
        )
    return "the referenced Medication has no code or name cart-cytopenia recognises"
