"""Small course builders for guidance tests: counts by day, events, patient fields."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from cart_cytopenia.domain.course import Course, parse_course
from cart_cytopenia.guidance import Guidance, evaluate
from cart_cytopenia.rules.settings import Settings

UNITS = {
    "anc": "/uL",
    "platelets": "10*3/uL",
    "hb": "g/dL",
    "ferritin": "ng/mL",
    "triglycerides": "mg/dL",
    "fibrinogen": "mg/dL",
    "ast": "U/L",
    "alt": "U/L",
    "ldh": "U/L",
    "haptoglobin": "mg/dL",
    "retic_pct": "%",
    "ipf": "%",
    "urine_protein": "mg/dL",
    "upcr": "mg/mg",
    "cd4": "/uL",
    "igg": "mg/dL",
    "dat": "{presence}",
    "bilirubin": "mg/dL",
    "crp": "mg/dL",
}

Value = float | Callable[[int], float]


def series(analyte: str, days: Iterable[int], value: Value) -> list[dict[str, Any]]:
    return [
        {
            "day": d,
            "analyte": analyte,
            "value": value(d) if callable(value) else value,
            "unit": UNITS[analyte],
        }
        for d in days
    ]


def counts(
    days: Iterable[int], anc: Value = 3000, plt: Value = 200, hb: Value = 12.0
) -> list[dict[str, Any]]:
    """ANC, platelets and Hb on each of ``days``."""
    ds = list(days)
    return series("anc", ds, anc) + series("platelets", ds, plt) + series("hb", ds, hb)


def hematotox_baseline(risk: str | None) -> list[dict[str, Any]]:
    """Baseline labs scoring CAR-HEMATOTOX high (platelets 60: 2 points, ANC 900: 1, Hb 8.5: 1),
    low (0 points), or None: no baseline (cannot be scored)."""
    if risk is None:
        return []
    plt, anc, hb = (60, 900, 8.5) if risk == "high" else (250, 4000, 13.0)
    return [
        {"analyte": "platelets", "value": plt, "unit": "10*3/uL"},
        {"analyte": "anc", "value": anc, "unit": "/uL"},
        {"analyte": "hb", "value": hb, "unit": "g/dL"},
        {"analyte": "crp", "value": 0.5, "unit": "mg/dL"},
        {"analyte": "ferritin", "value": 300, "unit": "ng/mL"},
    ]


def med(drug: str, start: int, end: int | None = None, **kw: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"type": "medication", "drug": drug, "start_day": start, **kw}
    if end is not None:
        e["end_day"] = end
    return e


def tx(product: str, days: Iterable[int]) -> list[dict[str, Any]]:
    return [{"type": "transfusion", "product": product, "day": d} for d in days]


def crs(start: int, end: int | None, grade: int = 2) -> dict[str, Any]:
    e: dict[str, Any] = {"type": "crs", "start_day": start, "max_grade": grade}
    if end is not None:
        e["end_day"] = end
    return e


def finding(kind: str, day: int) -> dict[str, Any]:
    return {"type": "finding", "finding": kind, "day": day}


def marrow(day: int, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "bone_marrow",
        "day": day,
        "cellularity": "hypocellular",
        "disease_present": False,
        "dysplasia": False,
        "fibrosis": False,
    }
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


def infection(start: int, end: int | None = None, **kw: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"type": "infection", "start_day": start, **kw}
    if end is not None:
        e["end_day"] = end
    return e


def fever(day: int, temp: float = 38.6) -> dict[str, Any]:
    return {"type": "fever", "day": day, "max_temp_c": temp}


def course(
    labs: list[dict[str, Any]] | None = None,
    events: list[dict[str, Any]] | None = None,
    *,
    age: float | None = 60,
    disease: str = "LBCL",
    product: str = "axi-cel",
    followup: int | None = None,
    **patient: Any,
) -> Course:
    p: dict[str, Any] = {"id": "g1", "disease": disease, "sex": "female", **patient}
    if age is not None:
        p["age_years"] = age
    d: dict[str, Any] = {
        "patient": p,
        "product": {"name": product},
        "infusion_date": "2024-01-10",
        "labs": labs or [],
        "events": events or [],
    }
    if followup is not None:
        d["last_followup_day"] = followup
    return parse_course(d)


def ids(c: Course, day: int, settings: Settings | None = None) -> set[str]:
    return evaluate(c, day, settings).ids()


def guidance(c: Course, day: int, settings: Settings | None = None) -> Guidance:
    return evaluate(c, day, settings)
