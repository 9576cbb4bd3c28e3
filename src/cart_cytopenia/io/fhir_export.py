"""Course -> FHIR R4 Bundle (the generator), and assessment / guidance -> FHIR resources.

``course_to_bundle`` writes every part of a course as FHIR resources that ``fhir_import`` reads
back to the same course (tests check the round trip); the resources of a course are made in
``fhir_course_export`` (Patient, Conditions, Observations, MedicationRequests, Procedures), from
the data types and writer of ``fhir_resources``.

``assessment_to_resources`` writes the grades of an ``Assessment`` as Observations (project code
system; MedDRA codings for the CTCAE terms) and ``guidance_to_resources`` the guidance as one
RequestGroup of proposals (nothing is ordered) plus a DetectedIssue per alert.

Resources get deterministic ids (so re-exporting the same course gives the same Bundle) and
``urn:uuid`` full URLs; references inside the Bundle use the full URLs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Protocol

from cart_cytopenia import __version__
from cart_cytopenia.domain.analytes import analyte
from cart_cytopenia.domain.course import Course
from cart_cytopenia.grading.assessment import Assessment, GradeResult, GradeStatus, TicahtResult
from cart_cytopenia.io.fhir_codes import codes, project_coding
from cart_cytopenia.io.fhir_course_export import course_to_resources
from cart_cytopenia.io.fhir_iechs import iechs_observations
from cart_cytopenia.io.fhir_resources import (
    category,
    cc,
    coding,
    fhir_id,
    iso,
    number,
    patient_fhir_id,
    quantity,
)
from cart_cytopenia.io.fhir_tatma import tatma_observation

BundleType = Literal["collection", "transaction", "batch"]


# Analyte display names use the catalogue label. CTCAE terms, in the wording of the version
# graded (``Assessment.ctcae[].term``), map to project codes, so that under CTCAE v6.0 platelets
# carry the v6 term "Thrombocytopenia" and its MedDRA code; a count that is no term of the version
# (lymphocytes under v6.0) is not exported as a CTCAE grade.
CTCAE_CODES = {
    "Neutrophil count decreased": "ctcae-neutrophil-count-decreased",
    "Platelet count decreased": "ctcae-platelet-count-decreased",
    "Thrombocytopenia": "ctcae-thrombocytopenia",
    "Anemia": "ctcae-anemia",
    "White blood cell decreased": "ctcae-white-blood-cell-decreased",
    "Lymphocyte count decreased": "ctcae-lymphocyte-count-decreased",
}

_URGENCY_PRIORITY = {
    "info": "routine",
    "consider": "routine",
    "action": "urgent",
    "warning": "urgent",
    "critical": "asap",
}
_URGENCY_SEVERITY = {
    "info": "low",
    "consider": "low",
    "action": "moderate",
    "warning": "moderate",
    "critical": "high",
}


def to_bundle(
    entries: Iterable[tuple[str, dict[str, Any]]], bundle_type: BundleType = "collection"
) -> dict[str, Any]:
    """A Bundle of ``(fullUrl, resource)`` pairs (PUT requests for transaction/batch)."""
    out = []
    for url, res in entries:
        e: dict[str, Any] = {"fullUrl": url, "resource": res}
        if bundle_type in ("transaction", "batch"):
            e["request"] = {"method": "PUT", "url": f"{res['resourceType']}/{res['id']}"}
        out.append(e)
    return {"resourceType": "Bundle", "type": bundle_type, "entry": out}


def course_to_bundle(course: Course, bundle_type: BundleType = "collection") -> dict[str, Any]:
    """The course as a FHIR R4 Bundle (JSON) that ``fhir_import`` reads back to the same course."""
    return to_bundle(course_to_resources(course), bundle_type)


def courses_to_ndjson(courses: Iterable[Course]) -> str:
    """Several courses as bulk-data NDJSON (one resource per line)."""
    import json

    lines = []
    for c in courses:
        for _url, res in _with_plain_references(course_to_resources(c)):
            lines.append(json.dumps(res, separators=(",", ":"), ensure_ascii=False))
    return "\n".join(lines) + "\n"


def _with_plain_references(
    entries: list[tuple[str, dict[str, Any]]],
) -> list[tuple[str, dict[str, Any]]]:
    """Replace urn:uuid references by ``Type/id`` (NDJSON has no full URLs)."""
    table = {url: f"{res['resourceType']}/{res['id']}" for url, res in entries}

    def fix(x: Any) -> Any:
        if isinstance(x, dict):
            return {
                k: (table.get(v, v) if k == "reference" and isinstance(v, str) else fix(v))
                for k, v in x.items()
            }
        if isinstance(x, list):
            return [fix(i) for i in x]
        return x

    return [(url, fix(res)) for url, res in entries]


# --------------------------------------------------------------------------- assessment -> FHIR


def _grade_value(r: GradeResult) -> dict[str, Any]:
    if r.status == GradeStatus.CANNOT_GRADE:
        out: dict[str, Any] = {
            "dataAbsentReason": cc(coding("data_absent_reason", "unknown", "Unknown")),
        }
        if r.reason:
            out["note"] = [{"text": f"cannot grade: {r.reason}"}]
        return out
    return {"valueInteger": int(r.grade or 0)}


def _grade_observation(
    subject: dict[str, str],
    code: str,
    r: GradeResult,
    issued: str,
    effective: str,
    extra_codings: Sequence[dict[str, str]] = (),
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "preliminary" if r.provisional else "final",
        "category": category("observation_category", "survey", "Survey"),
        "code": cc(project_coding(code), *extra_codings),
        "subject": subject,
        "effectiveDateTime": effective,
        "issued": issued,
        "method": {"text": r.rule},
        **_grade_value(r),
    }


def _days_component(code: str, days: int) -> dict[str, Any]:
    return {"code": cc(project_coding(code)), "valueInteger": int(days)}


def _ticaht_observations(
    subject: dict[str, str], t: TicahtResult, issued: str, effective: str
) -> list[dict[str, Any]]:
    """T-ICAHT early and late grades, with the day counts (and the late nadir) as components."""
    early = _grade_observation(subject, "ticaht-early-grade", t.early, issued, effective)
    late = _grade_observation(subject, "ticaht-late-grade", t.late, issued, effective)
    if t.early.status != GradeStatus.CANNOT_GRADE:
        early["component"] = [
            _days_component("ticaht-days-plt-lt-50", t.early_days_plt_lt_50),
            _days_component("ticaht-days-plt-lt-20", t.early_days_plt_lt_20),
        ]
    if t.late.status != GradeStatus.CANNOT_GRADE:
        late["component"] = [_days_component("ticaht-days-plt-lt-20", t.late_days_plt_lt_20)]
        if t.late_plt_1 is not None:
            late["component"].append(
                {
                    "code": cc(project_coding("ticaht-lowest-platelets")),
                    "valueQuantity": quantity(number(t.late_plt_1), "10*9/L"),
                }
            )
    return [early, late]


def _easix_observations(
    subject: dict[str, str], course: Course, assessment: Assessment, issued: str
) -> list[dict[str, Any]]:
    """EASIX and m-EASIX before lymphodepletion (valueQuantity, UCUM "1": a ratio without unit;
    effective on the day lymphodepletion started),
    the highest of day 0-3 as a component; dataAbsentReason with the analytes missing."""
    z = assessment.easix
    out = []
    for code, value, missing, d03, d03_day in (
        ("easix", z.easix_baseline, z.missing_easix, z.easix_d0_3, z.easix_d0_3_day),
        ("m-easix", z.m_easix_baseline, z.missing_m_easix, z.m_easix_d0_3, z.m_easix_d0_3_day),
    ):
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "final",
            "category": category("observation_category", "survey", "Survey"),
            "code": cc(project_coding(f"{code}-baseline")),
            "subject": subject,
            "effectiveDateTime": iso(course.infusion_date + dt.timedelta(days=course.ld_start_day)),
            "issued": issued,
            "method": {"text": z.rule},
        }
        if value is not None:
            obs["valueQuantity"] = quantity(round(value, 4), "1")
        else:
            obs["dataAbsentReason"] = cc(coding("data_absent_reason", "unknown", "Unknown"))
            obs["note"] = [{"text": "baseline values missing: " + ", ".join(missing)}]
        if d03 is not None:
            obs["component"] = [
                {
                    "code": cc(project_coding(f"{code}-day0-3")),
                    "valueQuantity": quantity(round(d03, 4), "1"),
                }
            ]
            obs.setdefault("note", []).append({"text": f"day 0-3 highest on day {d03_day}"})
        out.append(obs)
    return out


def assessment_to_resources(
    course: Course,
    assessment: Assessment,
    patient_reference: str,
    issued: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """The grades of ``assessment`` as FHIR Observations about ``patient_reference``."""
    subject = {"reference": patient_reference}
    when = issued or dt.datetime.now(dt.UTC)
    issued_s = when.isoformat(timespec="seconds").replace("+00:00", "Z")
    effective = iso(course.infusion_date + dt.timedelta(days=assessment.day))
    out: list[dict[str, Any]] = []
    e, late = assessment.early_icaht, assessment.late_icaht
    out.append(_grade_observation(subject, "icaht-early-grade", e.result, issued_s, effective))
    out.append(_grade_observation(subject, "icaht-late-grade", late.result, issued_s, effective))
    out.extend(_ticaht_observations(subject, assessment.ticaht, issued_s, effective))
    hx = _hematotox_observation(subject, course, assessment, issued_s)
    out.append(hx)
    out.extend(_easix_observations(subject, course, assessment, issued_s))
    out.append(tatma_observation(subject, course, assessment.tatma, issued_s, assessment.day))
    out.extend(iechs_observations(subject, assessment, issued_s, effective))
    ph = assessment.phenotype
    po: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": category("observation_category", "survey", "Survey"),
        "code": cc(project_coding("recovery-phenotype")),
        "subject": subject,
        "effectiveDateTime": effective,
        "issued": issued_s,
        "method": {"text": ph.rule},
    }
    if ph.phenotype:
        po["valueCodeableConcept"] = cc(project_coding(f"phenotype-{ph.phenotype}"))
    else:
        po["dataAbsentReason"] = cc(coding("data_absent_reason", "unknown", "Unknown"))
        if ph.reason:
            po["note"] = [{"text": f"not yet called: {ph.reason}"}]
    out.append(po)
    out.extend(_ctcae_observations(subject, assessment, issued_s, effective))
    return out


def _hematotox_observation(
    subject: dict[str, str], course: Course, assessment: Assessment, issued: str
) -> dict[str, Any]:
    """CAR-HEMATOTOX (effective on the day lymphodepletion started): the score, or
    dataAbsentReason with the baseline values missing; the risk group as a component."""
    h = assessment.hematotox
    hx: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final" if not h.missing else "preliminary",
        "category": category("observation_category", "survey", "Survey"),
        "code": cc(project_coding("car-hematotox-score")),
        "subject": subject,
        "effectiveDateTime": iso(course.infusion_date + dt.timedelta(days=course.ld_start_day)),
        "issued": issued,
        "method": {"text": h.rule},
    }
    if h.score is not None:
        hx["valueInteger"] = h.score
    else:
        hx["dataAbsentReason"] = cc(coding("data_absent_reason", "unknown", "Unknown"))
        hx["note"] = [{"text": "baseline values missing: " + ", ".join(h.missing)}]
    if h.risk is not None:
        hx["component"] = [
            {
                "code": cc(project_coding("car-hematotox-risk")),
                "valueCodeableConcept": cc(project_coding(f"risk-{h.risk}")),
            }
        ]
    return hx


def _ctcae_observations(
    subject: dict[str, str], assessment: Assessment, issued: str, effective: str
) -> list[dict[str, Any]]:
    """The CTCAE grade of each term of the version graded (MedDRA coded): current grade, the
    worst since day 0 as a component, the last value in a note."""
    cs = codes()
    out: list[dict[str, Any]] = []
    for item in assessment.ctcae:
        code = CTCAE_CODES.get(item.term)
        if code is None:
            continue
        meddra = cs.concept(code).meddra
        extra = [coding("meddra", meddra, item.term)] if meddra else []
        obs = _grade_observation(subject, code, item.current, issued, effective, extra)
        obs["method"] = {"text": f"CTCAE v{assessment.ctcae_version}"}
        if item.worst.status != GradeStatus.CANNOT_GRADE:
            obs["component"] = [
                {
                    "code": cc(project_coding("ctcae-worst-grade")),
                    "valueInteger": int(item.worst.grade or 0),
                }
            ]
        if item.last_value is not None and item.last_value_day is not None:
            note = (
                f"last {analyte(item.analyte).label.lower()} {item.last_value:g} {item.unit} "
                f"on day {item.last_value_day}"
            )
            obs.setdefault("note", []).append({"text": note})
        out.append(obs)
    return out


class GuidanceItemLike(Protocol):
    """What the FHIR export needs of a guidance item (cart_cytopenia.guidance.GuidanceItem)."""

    id: str
    kind: str
    summary: str
    rationale: str
    urgency: str


def _citation_text(item: Any) -> str | None:
    c = getattr(item, "citation", None)
    if c is None:
        return None
    if isinstance(c, str):
        return c
    for attr in ("text", "label", "short", "reference"):
        v = getattr(c, attr, None)
        if isinstance(v, str) and v:
            return v
    return str(c)


def guidance_to_resources(
    items: Sequence[Any],
    patient_reference: str,
    authored: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Guidance as one RequestGroup of proposals plus one DetectedIssue per alert.

    RequestGroup.intent is ``proposal``: a suggestion with no authorisation to act. Nothing is
    ordered. Each action carries the item id (guidance-item code system), the rationale and the
    citation (RelatedArtifact).
    """
    cs = codes()
    when = (
        (authored or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds").replace("+00:00", "Z")
    )
    subject = {"reference": patient_reference}
    actions = []
    issues = []
    for it in items:
        urgency = str(getattr(it, "urgency", "info"))
        action: dict[str, Any] = {
            "title": it.summary,
            "description": it.rationale,
            "priority": _URGENCY_PRIORITY.get(urgency, "routine"),
            "code": [cc({"system": cs.guidance_system, "code": it.id}, text=str(it.kind))],
        }
        cite = _citation_text(it)
        if cite:
            action["documentation"] = [{"type": "citation", "citation": cite}]
        actions.append(action)
        if str(it.kind) == "alert" or urgency in ("warning", "critical"):
            issue: dict[str, Any] = {
                "resourceType": "DetectedIssue",
                "status": "preliminary" if getattr(it, "speculative", False) else "final",
                "code": cc({"system": cs.guidance_system, "code": it.id}, text=it.summary),
                "severity": _URGENCY_SEVERITY.get(urgency, "low"),
                "patient": subject,
                "identifiedDateTime": when,
                "author": {"display": f"cart-cytopenia {__version__}"},
                "detail": it.rationale,
            }
            if cite:
                issue["detail"] = f"{it.rationale}\n\nSource: {cite}"
            issues.append(issue)
    group: dict[str, Any] = {
        "resourceType": "RequestGroup",
        "status": "active",
        "intent": "proposal",
        "priority": "routine",
        "code": cc(project_coding("guidance")),
        "subject": subject,
        "authoredOn": when,
        "author": {"display": f"cart-cytopenia {__version__}"},
        "note": [
            {
                "text": (
                    "Decision support proposals from cart-cytopenia; nothing is ordered. Each "
                    "action names its rationale and source."
                )
            }
        ],
    }
    if actions:
        group["action"] = actions
    return [group, *issues]


__all__ = [
    "CTCAE_CODES",
    "BundleType",
    "GuidanceItemLike",
    "assessment_to_resources",
    "course_to_bundle",
    "course_to_resources",
    "courses_to_ndjson",
    "fhir_id",
    "guidance_to_resources",
    "patient_fhir_id",
    "to_bundle",
]
