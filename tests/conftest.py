"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PEER_DATA = ROOT.parent / "shared" / "peer-data" / "icaht-synthetic-anc"


def course_dict(labs: list[tuple[int, float]] | None = None, **over: Any) -> dict[str, Any]:
    """A minimal valid course; ``labs`` are (day, ANC cells/uL) pairs."""
    d: dict[str, Any] = {
        "patient": {"id": "t1", "disease": "LBCL", "age_years": 60, "sex": "female"},
        "product": {"name": "axi-cel"},
        "infusion_date": "2024-01-10",
        "labs": [
            {"day": day, "analyte": "anc", "value": v, "unit": "/uL"} for day, v in (labs or [])
        ],
        "events": [],
    }
    d.update(over)
    return d


BASELINE_UNITS = {
    "platelets": "10*3/uL",
    "anc": "/uL",
    "hb": "g/dL",
    "crp": "mg/dL",
    "ferritin": "ng/mL",
}


def baseline_labs(day: int | None, **values: float) -> list[dict[str, Any]]:
    """CAR-HEMATOTOX marker labs drawn on ``day`` (None: undated, i.e. the day before LD)."""
    out = []
    for k, v in values.items():
        lab: dict[str, Any] = {"analyte": k, "value": v, "unit": BASELINE_UNITS[k]}
        if day is not None:
            lab["day"] = day
        out.append(lab)
    return out


@pytest.fixture
def examples() -> Path:
    return EXAMPLES
