"""The TA-TMA harmonised criteria of an assessment as one FHIR Observation (``tatma-criteria``).

valueInteger: the criteria met at the reference time point (effective that day); components:
the status, the criteria assessable, each criterion (valueBoolean, or dataAbsentReason
"not-performed" when not assessable: never written as false) and, when the criteria are met, the
high-risk flag. The evidence (day and value of each criterion met) is in a note.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cart_cytopenia.domain.course import Course
from cart_cytopenia.grading import tatma
from cart_cytopenia.grading.tatma_result import TatmaResult
from cart_cytopenia.io.fhir_codes import codes, project_coding


def _cc(*codings: dict[str, str]) -> dict[str, Any]:
    return {"coding": list(codings), "text": codings[0]["display"]}


def _absent(code: str, display: str) -> dict[str, Any]:
    return _cc({"system": codes().system("data_absent_reason"), "code": code, "display": display})


def tatma_observation(
    subject: dict[str, str], course: Course, t: TatmaResult, issued: str, assessed_day: int
) -> dict[str, Any]:
    day = t.reference_day if t.reference_day is not None else assessed_day
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final" if t.status in (tatma.MEETS, tatma.NOT_MET) else "preliminary",
        "category": [
            _cc(
                {
                    "system": codes().system("observation_category"),
                    "code": "survey",
                    "display": "Survey",
                }
            )
        ],
        "code": _cc(project_coding("tatma-criteria")),
        "subject": subject,
        "effectiveDateTime": (course.infusion_date + dt.timedelta(days=day)).isoformat(),
        "issued": issued,
        "method": {"text": t.rule},
    }
    status_code = "tatma-status-" + t.status.replace(" ", "-")
    comps: list[dict[str, Any]] = [
        {
            "code": _cc(project_coding("tatma-status")),
            "valueCodeableConcept": _cc(project_coding(status_code)),
        }
    ]
    if t.criteria_met is None:
        obs["dataAbsentReason"] = _absent("unknown", "Unknown")
        obs["note"] = [{"text": t.summary}]
        obs["component"] = comps
        return obs
    obs["valueInteger"] = t.criteria_met
    comps.append(
        {"code": _cc(project_coding("tatma-assessable")), "valueInteger": int(t.assessable or 0)}
    )
    for c in t.criteria:
        comp: dict[str, Any] = {"code": _cc(project_coding(f"tatma-criterion-{c.id}"))}
        if c.met is None:
            comp["dataAbsentReason"] = _absent("not-performed", "Not Performed")
        else:
            comp["valueBoolean"] = c.met
        comps.append(comp)
    if t.status == "meets":
        hr: dict[str, Any] = {"code": _cc(project_coding("tatma-high-risk"))}
        if t.high_risk is None:
            hr["dataAbsentReason"] = _absent("unknown", "Unknown")
        else:
            hr["valueBoolean"] = t.high_risk
        comps.append(hr)
    obs["component"] = comps
    notes = [t.summary]
    if t.evidence:
        notes.append("Evidence: " + t.evidence)
    if t.high_risk_features:
        notes.append("High-risk features: " + ", ".join(t.high_risk_features))
    obs["note"] = [{"text": n} for n in notes]
    return obs
