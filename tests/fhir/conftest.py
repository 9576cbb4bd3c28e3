"""Helpers for the FHIR tests: spec-shaped resources and course normalisation."""

from __future__ import annotations

import json
from typing import Any

from cart_cytopenia.domain.course import Course

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
CPT = "http://www.ama-assn.org/go/cpt"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"


def patient(pid: str = "p1", **kw: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "gender": "female",
        "birthDate": "1960-05-01",
        **kw,
    }


def infusion(
    pid: str = "p1", date: str = "2024-01-10", product: str = "axicabtagene ciloleucel"
) -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": f"{pid}-cart",
        "status": "completed",
        "code": {"coding": [{"system": CPT, "code": "38228"}], "text": "CAR T-cell administration"},
        "subject": {"reference": f"Patient/{pid}"},
        "performedDateTime": date,
        "usedCode": [{"text": product}],
    }


def lymphoma(pid: str = "p1") -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": f"{pid}-dlbcl",
        "code": {
            "coding": [{"system": ICD10CM, "code": "C83.38"}],
            "text": "Diffuse large B-cell lymphoma",
        },
        "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": "2022-06-01",
    }


def lab(
    rid: str,
    loinc: str,
    value: float,
    unit: str,
    date: str,
    pid: str = "p1",
    comparator: str | None = None,
    **kw: Any,
) -> dict[str, Any]:
    q: dict[str, Any] = {"value": value, "unit": unit, "system": UCUM, "code": unit}
    if comparator:
        q["comparator"] = comparator
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": date,
        "valueQuantity": q,
        **kw,
    }


def searchset(
    *resources: dict[str, Any], base: str = "https://ehr.example.org/fhir"
) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r.get('id', i)}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for i, r in enumerate(resources)
        ],
    }


def dumps(doc: Any) -> str:
    return json.dumps(doc)


def normalised(c: Course) -> tuple[Any, ...]:
    """A course in a form two equivalent courses share (days, catalogue codes, canonical values)."""
    d = c.model_dump(mode="json", exclude_none=True)
    d.pop("description", None)
    labs = sorted(
        (
            (lab.day, lab.analyte_code, round(lab.canonical_value(), 6), lab.comparator)
            for lab in [*c.labs, *c.baseline_labs]
        ),
        key=str,
    )
    d.pop("labs")
    d.pop("baseline_labs")

    def event(e: dict[str, Any]) -> str:
        return json.dumps({k: v for k, v in e.items() if not k.endswith("date")}, sort_keys=True)

    events = sorted(event(e) for e in d.pop("events"))
    for h in d["patient"].get("prior_hct", []):
        h.pop("date", None)
    d["patient"].pop("birth_date", None)
    if "lymphodepletion" in d:
        d["lymphodepletion"].pop("start_date", None)
    d.pop("last_followup_date", None)
    return d, labs, events
