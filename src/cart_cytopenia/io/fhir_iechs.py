"""IEC-HS (ASTCT criteria) with carHLH, and the HScore, as FHIR Observations (project codes
``iec-hs-astct`` and ``hscore``). No grade is exported: the ASTCT grading table was not read."""

from __future__ import annotations

from typing import Any

from cart_cytopenia.grading.assessment import Assessment
from cart_cytopenia.io.fhir_codes import codes, project_coding


def _cc(coding: dict[str, str], text: str | None = None) -> dict[str, Any]:
    return {"coding": [coding], **({"text": text} if text else {})}


def _absent() -> dict[str, Any]:
    return _cc(
        {"system": codes().system("data_absent_reason"), "code": "unknown", "display": "Unknown"}
    )


def iechs_observations(
    subject: dict[str, str], assessment: Assessment, issued: str, effective: str
) -> list[dict[str, Any]]:
    x = assessment.iechs
    survey = [
        _cc(
            {
                "system": codes().system("observation_category"),
                "code": "survey",
                "display": "Survey",
            }
        )
    ]
    base = {"resourceType": "Observation", "category": survey, "subject": subject}
    base |= {"effectiveDateTime": effective, "issued": issued, "method": {"text": x.rule}}
    status_code = "iec-hs-" + x.status.replace(" ", "-")
    astct: dict[str, Any] = {
        **base,
        "status": "final" if x.status in ("met", "not met") else "preliminary",
        "code": _cc(project_coding("iec-hs-astct")),
        "valueCodeableConcept": _cc(project_coding(status_code), text=x.status),
        "component": [{"code": _cc(project_coding("carhlh")), "valueString": x.carhlh}],
        "note": [{"text": x.grade_note}],
    }
    if x.onset_day is not None:
        astct["component"].append(
            {"code": _cc(project_coding("iec-hs-onset-day")), "valueInteger": x.onset_day}
        )
    if x.evidence:
        astct["note"].append({"text": "evidence: " + "; ".join(x.evidence)})
    if x.missing:
        astct["note"].append({"text": "missing: " + "; ".join(x.missing)})
    hs: dict[str, Any] = {
        **base,
        "status": "final" if x.hscore_items == 9 else "preliminary",
        "code": _cc(project_coding("hscore")),
        "component": [
            {"code": _cc(project_coding("hscore-points-present")), "valueInteger": x.hscore},
            {"code": _cc(project_coding("hscore-items")), "valueInteger": x.hscore_items},
        ],
    }
    if x.hscore_items == 9:
        hs["valueInteger"] = x.hscore
    else:
        hs["dataAbsentReason"] = _absent()
        hs["note"] = [
            {
                "text": f"incomplete: {x.hscore_items} of 9 items; points of the items present "
                f"{x.hscore}, at most {x.hscore_max}; not scored: {', '.join(x.hscore_missing)}"
            }
        ]
    if x.hscore_at_cutoff is not None:
        hs["component"].append(
            {"code": _cc(project_coding("hscore-at-cutoff")), "valueBoolean": x.hscore_at_cutoff}
        )
    return [astct, hs]
