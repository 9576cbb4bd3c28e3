"""Course -> FHIR R4 Bundle (the generator), and assessment / guidance -> FHIR resources.

``course_to_bundle`` writes every part of a course as FHIR resources that ``fhir_import`` reads
back to the same course (tests check the round trip): Patient, the malignancy and ASTCT-graded
complications as Condition, labs (LOINC, UCUM, comparators) and fevers as Observation,
medications as MedicationRequest (RxNorm where known), CAR-T infusion, lymphodepletion,
transfusions, marrow evaluations, stem cell boosts, HCT and next therapy as Procedure. Course
fields without a standard FHIR home use the project code system or a project extension
(docs/interoperability.md lists them).

``assessment_to_resources`` writes the grades of an ``Assessment`` as Observations (project code
system; MedDRA codings for the CTCAE terms) and ``guidance_to_resources`` the guidance as one
RequestGroup of proposals (nothing is ordered) plus a DetectedIssue per alert.

Resources get deterministic ids (so re-exporting the same course gives the same Bundle) and
``urn:uuid`` full URLs; references inside the Bundle use the full URLs.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Protocol

from cart_cytopenia import __version__
from cart_cytopenia.domain.analytes import analyte, resolve_analyte
from cart_cytopenia.domain.catalogues import resolve_drug
from cart_cytopenia.domain.course import (
    CRS,
    GVHD,
    HCT,
    ICANS,
    IECHS,
    BoneMarrow,
    ClinicalFinding,
    Course,
    Death,
    Fever,
    HCTKind,
    Infection,
    LabObservation,
    Medication,
    NextTherapy,
    Relapse,
    StemCellBoost,
    Transfusion,
)
from cart_cytopenia.domain.units import dose_ucum, resolve_unit
from cart_cytopenia.grading.assessment import Assessment, GradeResult, GradeStatus, TicahtResult
from cart_cytopenia.io.fhir_codes import codes, project_coding

BundleType = Literal["collection", "transaction", "batch"]

_NAMESPACE = uuid.UUID("6f0c2a4e-8a54-5c1e-9d0b-6a1f2c3d4e5f")
_ID_SAFE = re.compile(r"[^A-Za-z0-9\-.]")

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


def fhir_id(text: str) -> str:
    """A valid FHIR logical id (``[A-Za-z0-9-.]{1,64}``) derived from ``text``."""
    safe = _ID_SAFE.sub("-", text).strip("-.") or "x"
    if len(safe) > 64:
        digest = uuid.uuid5(_NAMESPACE, text).hex[:12]
        safe = safe[:51] + "-" + digest
    return safe


def patient_fhir_id(patient_id: str) -> str:
    """The FHIR id of a patient: the pseudonym itself when it is a valid id, else ``fhir_id``
    of it with a digest of the pseudonym, so that two patients never share one (``a/b`` and
    ``a_b`` both make ``a-b``: their resources would merge into one patient's on a server)."""
    safe = fhir_id(patient_id)
    if safe == patient_id:
        return safe
    return f"{safe[:51]}-{uuid.uuid5(_NAMESPACE, patient_id).hex[:12]}"


class _Writer:
    """Collects resources with deterministic ids and urn:uuid full URLs."""

    def __init__(self, patient_id: str) -> None:
        self.patient_id = patient_id
        self.prefix = patient_fhir_id(patient_id)
        self.entries: list[tuple[str, dict[str, Any]]] = []
        self.counter: dict[str, int] = {}
        self.patient_url = self.url_for("Patient", self.prefix)

    @staticmethod
    def url_for(resource_type: str, rid: str) -> str:
        return "urn:uuid:" + str(uuid.uuid5(_NAMESPACE, f"{resource_type}/{rid}"))

    def next_id(self, kind: str) -> str:
        n = self.counter.get(kind, 0) + 1
        self.counter[kind] = n
        return fhir_id(f"{self.prefix}-{kind}-{n}")

    def add(self, resource: dict[str, Any], kind: str | None = None) -> str:
        rt = resource["resourceType"]
        if "id" not in resource:
            resource["id"] = self.next_id(kind or rt.lower())
        url = self.url_for(rt, resource["id"])
        self.entries.append((url, resource))
        return url

    @property
    def subject(self) -> dict[str, str]:
        return {"reference": self.patient_url}


def _iso(d: dt.date) -> str:
    return d.isoformat()


def _date_of(course: Course, date: dt.date | None, day: int | None) -> dt.date | None:
    if date is not None:
        return date
    if day is not None:
        return course.infusion_date + dt.timedelta(days=day)
    return None


def _cc(*codings: dict[str, str], text: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"coding": list(codings)}
    if text:
        out["text"] = text
    return out


def _coding(system_name: str, code: str, display: str | None = None) -> dict[str, str]:
    c = {"system": codes().system(system_name), "code": code}
    if display:
        c["display"] = display
    return c


def _ext(name: str, **value: Any) -> dict[str, Any]:
    return {"url": codes().extension(name), **value}


def _category(system_name: str, code: str, display: str) -> list[dict[str, Any]]:
    return [_cc(_coding(system_name, code, display))]


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": codes().system("ucum"), "code": unit}


def _number(x: float) -> float | int:
    return int(x) if float(x).is_integer() and abs(x) < 1e15 else x


# --------------------------------------------------------------------------- course -> Bundle


def _lab_observation(w: _Writer, course: Course, lab: LabObservation) -> dict[str, Any]:
    a = resolve_analyte(lab.analyte)
    unit = resolve_unit(lab.unit)
    q = _quantity(_number(lab.value), unit.ucum)
    if lab.comparator is not None:
        q["comparator"] = lab.comparator.value
    when = _date_of(course, lab.date, lab.day)
    assert when is not None
    coding = [_coding("loinc", code, a.label) for code in a.loinc[:1]]
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": _category("observation_category", "laboratory", "Laboratory"),
        "code": _cc(*coding, text=a.label),
        "subject": w.subject,
        "effectiveDateTime": _iso(when),
        "valueQuantity": q,
    }


def _fact(w: _Writer, course: Course, code: str, **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": _cc(project_coding(code)),
        "subject": w.subject,
        "effectiveDateTime": _iso(course.infusion_date),
        **value,
    }


def _patient(w: _Writer, course: Course) -> dict[str, Any]:
    p = course.patient
    res: dict[str, Any] = {"resourceType": "Patient", "id": w.prefix, "gender": p.sex.value}
    if p.birth_date is not None:
        res["birthDate"] = _iso(p.birth_date)
    ext = []
    if p.age_years is not None:
        ext.append(
            _ext(
                "age-at-infusion",
                valueAge={
                    "value": _number(p.age_years),
                    "unit": "a",
                    "system": codes().system("ucum"),
                    "code": "a",
                },
            )
        )
    if p.weight_kg is not None:
        ext.append(_ext("weight-at-infusion", valueQuantity=_quantity(_number(p.weight_kg), "kg")))
    deaths = course.events_of(Death)
    if deaths:
        d = _date_of(course, deaths[0].date, deaths[0].day)
        if d is not None:
            res["deceasedDateTime"] = _iso(d)
        if deaths[0].cause:
            ext.append(_ext("cause-of-death", valueString=deaths[0].cause))
    if ext:
        res["extension"] = ext
    return res


def _disease_condition(w: _Writer, course: Course) -> dict[str, Any]:
    disease = course.patient.disease.value
    code = "disease-other" if disease == "other" else f"disease-{disease}"
    codings = [project_coding(code)]
    for d in codes().diseases:
        if d.disease == disease and d.icd10_export:
            codings.append(_coding("icd10cm", d.icd10_export))
    return {
        "resourceType": "Condition",
        "clinicalStatus": _cc(_coding("condition_clinical", "active")),
        "verificationStatus": _cc(_coding("condition_verification", "confirmed")),
        "category": _category("condition_category", "problem-list-item", "Problem List Item"),
        "code": _cc(*codings, text=disease),
        "subject": w.subject,
    }


def _span_condition(
    w: _Writer,
    course: Course,
    concept: str,
    start: tuple[dt.date | None, int | None],
    end: tuple[dt.date | None, int | None],
    extra_codings: Sequence[dict[str, str]] = (),
    grade: int | None = None,
    text: str | None = None,
) -> dict[str, Any]:
    onset = _date_of(course, *start)
    abatement = _date_of(course, *end)
    res: dict[str, Any] = {
        "resourceType": "Condition",
        "clinicalStatus": _cc(_coding("condition_clinical", "resolved" if abatement else "active")),
        "verificationStatus": _cc(_coding("condition_verification", "confirmed")),
        "code": _cc(
            project_coding(concept), *extra_codings, text=text or codes().concept(concept).display
        ),
        "subject": w.subject,
    }
    if onset is not None:
        res["onsetDateTime"] = _iso(onset)
    if abatement is not None:
        res["abatementDateTime"] = _iso(abatement)
    if grade is not None:
        res["stage"] = [
            {
                "summary": _cc(project_coding(f"grade-{grade}")),
                "type": _cc(project_coding("astct-grade")),
            }
        ]
    return res


def _graded_icd(concept: str, grade: int) -> list[dict[str, str]]:
    for m in codes().concept(concept).matches:
        for code, g in m.graded.items():
            if g == grade and m.system == codes().system("icd10cm"):
                return [{"system": m.system, "code": code}]
    return []


def _medication(w: _Writer, course: Course, m: Medication) -> dict[str, Any]:
    drug = resolve_drug(m.drug)
    codings = [_coding("rxnorm", c, drug.id) for c in drug.rxnorm[:1]] if drug else []
    start = _date_of(course, m.start_date, m.start_day)
    end = _date_of(course, m.end_date, m.end_day)
    assert start is not None
    bounds: dict[str, str] = {"start": _iso(start)}
    if end is not None:
        bounds["end"] = _iso(end)
    timing: dict[str, Any] = {"repeat": {"boundsPeriod": bounds}}
    freq = (m.frequency or "").strip().lower()
    repeat = {"daily": (1, 1, "d"), "weekly": (1, 1, "wk"), "twice daily": (2, 1, "d")}.get(freq)
    if repeat:
        timing["repeat"].update(frequency=repeat[0], period=repeat[1], periodUnit=repeat[2])
    elif freq == "once":
        timing["repeat"]["count"] = 1
    if m.frequency:
        timing["code"] = {"text": m.frequency}
    dosage: dict[str, Any] = {"timing": timing}
    if m.route:
        dosage["route"] = {"text": m.route}
    if m.dose is not None:
        q: dict[str, Any] = {"value": _number(m.dose)}
        if m.dose_unit:
            q["unit"] = m.dose_unit
            code = dose_ucum(m.dose_unit)
            if code is not None:  # a UCUM unit: system and code, so receivers can compute
                q.update(system=codes().system("ucum"), code=code)
        dosage["doseAndRate"] = [{"doseQuantity": q}]
    res: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "completed" if end is not None else "active",
        "intent": "order",
        "medicationCodeableConcept": _cc(*codings, text=m.drug),
        "subject": w.subject,
        "authoredOn": _iso(start),
        "dosageInstruction": [dosage],
    }
    if m.purpose:
        res["reasonCode"] = [_cc(project_coding(m.purpose))]
    return res


def _procedure(
    w: _Writer,
    course: Course,
    concept: str,
    when: dt.date | None,
    extra_codings: Sequence[dict[str, str]] = (),
    text: str | None = None,
    used: Sequence[dict[str, Any]] = (),
    extensions: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Procedure",
        "status": "completed",
        "code": _cc(
            project_coding(concept), *extra_codings, text=text or codes().concept(concept).display
        ),
        "subject": w.subject,
    }
    if when is not None:
        res["performedDateTime"] = _iso(when)
    if used:
        res["usedCode"] = list(used)
    if extensions:
        res["extension"] = list(extensions)
    return res


def _hct_codings(kind: HCTKind) -> list[dict[str, str]]:
    return [_coding("cpt", "38240" if kind == HCTKind.ALLOGENEIC else "38241")]


def _bone_marrow(w: _Writer, course: Course, bm: BoneMarrow) -> None:
    when = _date_of(course, bm.date, bm.day)
    proc_url = w.add(_procedure(w, course, "bone-marrow-evaluation", when), "bone-marrow")
    comps: list[dict[str, Any]] = []

    def comp(code: str, **value: Any) -> None:
        comps.append({"code": _cc(project_coding(code)), **value})

    if bm.cellularity is not None:
        comp(
            "bm-cellularity",
            valueCodeableConcept=_cc(project_coding(f"cellularity-{bm.cellularity.value}")),
        )
    for code, pct in (
        ("bm-cellularity-pct", bm.cellularity_pct),
        ("bm-disease-pct", bm.disease_pct),
        ("bm-blasts-pct", bm.blasts_pct),
    ):
        if pct is not None:
            comp(code, valueQuantity=_quantity(_number(pct), "%"))
    for code, flag in (
        ("bm-dysplasia", bm.dysplasia),
        ("bm-fibrosis", bm.fibrosis),
        ("bm-disease-present", bm.disease_present),
        ("bm-haemophagocytosis", bm.haemophagocytosis),
    ):
        if flag is not None:
            comp(code, valueBoolean=flag)
    for code, s in (
        ("bm-cytogenetics", bm.cytogenetics),
        ("bm-fish", bm.fish),
        ("bm-ngs", bm.ngs),
        ("bm-mrd", bm.mrd),
    ):
        if s:
            comp(code, valueString=s)
    if not comps and not bm.notes:
        return
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": _cc(project_coding("bone-marrow-findings")),
        "subject": w.subject,
        "partOf": [{"reference": proc_url}],
    }
    if when is not None:
        obs["effectiveDateTime"] = _iso(when)
    if comps:
        obs["component"] = comps
    if bm.notes:
        obs["note"] = [{"text": bm.notes}]
    w.add(obs, "bone-marrow-findings")


def _events(w: _Writer, course: Course) -> None:
    cs = codes()
    for ev in course.events:
        if isinstance(ev, CRS | ICANS):
            concept = "crs" if isinstance(ev, CRS) else "icans"
            w.add(
                _span_condition(
                    w,
                    course,
                    concept,
                    (ev.start_date, ev.start_day),
                    (ev.end_date, ev.end_day),
                    _graded_icd(concept, ev.max_grade),
                    grade=ev.max_grade,
                ),
                concept,
            )
        elif isinstance(ev, IECHS):
            w.add(
                _span_condition(
                    w,
                    course,
                    "iec-hs",
                    (ev.start_date, ev.start_day),
                    (ev.end_date, ev.end_day),
                    grade=ev.grade,
                ),
                "iec-hs",
            )
        elif isinstance(ev, GVHD):
            res = _span_condition(
                w,
                course,
                "gvhd",
                (ev.start_date, ev.start_day),
                (ev.end_date, ev.end_day),
                grade=ev.grade,
            )
            if ev.organ:
                res["bodySite"] = [{"text": ev.organ}]
            w.add(res, "gvhd")
        elif isinstance(ev, Infection):
            extra = [_coding("snomed", cs.infection_snomed[ev.category.value])]
            if ev.reactivation:
                extra.append(project_coding("viral-reactivation"))
            res = _span_condition(
                w,
                course,
                "infection",
                (ev.start_date, ev.start_day),
                (ev.end_date, ev.end_day),
                extra,
                text=f"{ev.category.value} infection" + (f": {ev.organism}" if ev.organism else ""),
            )
            if ev.organism:
                res["extension"] = [_ext("infection-organism", valueString=ev.organism)]
            if ev.site:
                res["bodySite"] = [{"text": ev.site}]
            if ev.severity is not None:
                res["severity"] = _cc(
                    _coding("snomed", cs.severity_snomed[ev.severity.value], ev.severity.value)
                )
            w.add(res, "infection")
        elif isinstance(ev, Medication):
            w.add(_medication(w, course, ev), "medication")
        elif isinstance(ev, Fever):
            when = _date_of(course, ev.date, ev.day)
            assert when is not None
            w.add(
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "category": _category("observation_category", "vital-signs", "Vital Signs"),
                    "code": _cc(
                        _coding("loinc", "8310-5", "Body temperature"), text="Body temperature"
                    ),
                    "subject": w.subject,
                    "effectiveDateTime": _iso(when),
                    "valueQuantity": _quantity(_number(ev.max_temp_c), "Cel"),
                },
                "fever",
            )
        elif isinstance(ev, Transfusion):
            w.add(
                _procedure(
                    w,
                    course,
                    "transfusion",
                    _date_of(course, ev.date, ev.day),
                    [_coding("snomed", "116859006")],
                    used=[_cc(project_coding(f"transfusion-{ev.product.value}"))],
                    extensions=[_ext("transfusion-units", valueInteger=ev.units)],
                ),
                "transfusion",
            )
        elif isinstance(ev, BoneMarrow):
            _bone_marrow(w, course, ev)
        elif isinstance(ev, StemCellBoost):
            ext = [_ext("graft-source", valueCode=ev.source.value)]
            if ev.cd34_dose_per_kg is not None:
                ext.append(
                    _ext(
                        "cd34-dose",
                        valueQuantity=_quantity(_number(ev.cd34_dose_per_kg), "10*6/kg"),
                    )
                )
            if ev.manipulation:
                ext.append(_ext("graft-manipulation", valueCode=ev.manipulation))
            extra = [_coding("cpt", "38243")] if ev.source == HCTKind.ALLOGENEIC else []
            w.add(
                _procedure(
                    w,
                    course,
                    "stem-cell-boost",
                    _date_of(course, ev.date, ev.day),
                    extra,
                    extensions=ext,
                ),
                "boost",
            )
        elif isinstance(ev, HCT):
            ext = [_ext("graft-source", valueCode=ev.kind.value)]
            if ev.donor_type is not None:
                ext.append(_ext("donor-type", valueCode=ev.donor_type.value))
            w.add(
                _procedure(
                    w,
                    course,
                    "hct",
                    _date_of(course, ev.date, ev.day),
                    _hct_codings(ev.kind),
                    extensions=ext,
                ),
                "hct",
            )
        elif isinstance(ev, Relapse):
            res = _span_condition(w, course, "relapse", (ev.date, ev.day), (None, None))
            if ev.site:
                res["bodySite"] = [{"text": ev.site}]
            if ev.notes:
                res["note"] = [{"text": ev.notes}]
            w.add(res, "relapse")
        elif isinstance(ev, NextTherapy):
            w.add(
                _procedure(
                    w,
                    course,
                    "next-therapy",
                    _date_of(course, ev.date, ev.day),
                    text=ev.description or None,
                ),
                "next-therapy",
            )
        elif isinstance(ev, ClinicalFinding):
            onset = _date_of(course, ev.date, ev.day)
            assert onset is not None
            res = {
                "resourceType": "Condition",
                "clinicalStatus": _cc(_coding("condition_clinical", "active")),
                # a finding looked for and absent ("present": false) is exported as refuted
                "verificationStatus": _cc(
                    _coding("condition_verification", "confirmed" if ev.present else "refuted")
                ),
                "code": _cc(project_coding(f"finding-{ev.finding.value}"), text=ev.finding.value),
                "subject": w.subject,
                "onsetDateTime": _iso(onset),
            }
            if ev.detail:
                res["note"] = [{"text": ev.detail}]
            w.add(res, "finding")
        elif isinstance(ev, Death):
            continue  # written on the Patient (deceasedDateTime, cause-of-death extension)
        else:  # pragma: no cover - every event type is handled above
            raise TypeError(f"no FHIR mapping for event {type(ev).__name__}")


def course_to_resources(course: Course) -> list[tuple[str, dict[str, Any]]]:
    """Every resource of ``course`` as ``(fullUrl, resource)`` pairs, Patient first."""
    w = _Writer(course.patient.id)
    p = course.patient
    w.add(_patient(w, course))
    w.add(_disease_condition(w, course), "disease")
    w.add(
        _fact(
            w,
            course,
            "disease-status",
            valueCodeableConcept=_cc(project_coding(f"disease-status-{p.disease_status.value}")),
        ),
        "fact",
    )
    if p.marrow_involvement_pct is not None:
        w.add(
            _fact(
                w,
                course,
                "marrow-involvement",
                valueQuantity=_quantity(_number(p.marrow_involvement_pct), "%"),
            ),
            "fact",
        )
    if p.chip is not None or p.chip_genes:
        res = _fact(w, course, "clonal-haematopoiesis")
        if p.chip is not None:
            res["valueBoolean"] = p.chip
        if p.chip_genes:
            res["component"] = [
                {"code": _cc(project_coding("chip-gene")), "valueString": g} for g in p.chip_genes
            ]
        w.add(res, "fact")
    for code, flag in (
        ("pre-existing-dysplasia", p.pre_existing_dysplasia),
        ("pre-existing-fibrosis", p.pre_existing_fibrosis),
        ("allogeneic-donor-available", p.stored_cells.allogeneic_donor),
    ):
        if flag is not None:
            w.add(_fact(w, course, code, valueBoolean=flag), "fact")
    if p.stored_cells.autologous is not None or p.stored_cells.notes:
        stored = _fact(w, course, "stored-autologous-cells")
        if p.stored_cells.autologous is not None:
            stored["valueBoolean"] = p.stored_cells.autologous
        if p.stored_cells.notes:
            stored["note"] = [{"text": p.stored_cells.notes}]
        w.add(stored, "fact")
    for g in p.genetics:
        w.add(_fact(w, course, "disease-genetics", valueString=g), "fact")
    for h in p.prior_hct:
        ext = [_ext("graft-source", valueCode=h.kind.value)]
        if h.donor_type is not None:
            ext.append(_ext("donor-type", valueCode=h.donor_type.value))
        w.add(
            _procedure(
                w,
                course,
                "hct",
                _date_of(course, h.date, h.day),
                _hct_codings(h.kind),
                extensions=ext,
            ),
            "hct",
        )

    prod = course.product
    entry = prod.catalogue_entry()
    product_ext = []
    if entry is None:
        if prod.target:
            product_ext.append(_ext("product-target", valueString=prod.target))
        if prod.costimulatory:
            product_ext.append(_ext("product-costimulatory", valueString=prod.costimulatory))
    if prod.donor_derived is not None:
        product_ext.append(_ext("product-donor-derived", valueBoolean=prod.donor_derived))
    product_text = entry.generic if entry else prod.name
    w.add(
        _procedure(
            w,
            course,
            "car-t-infusion",
            course.infusion_date,
            [_coding("cpt", "38228")],
            text=f"CAR T-cell infusion: {product_text}",
            used=[{"text": product_text}],
            extensions=product_ext,
        ),
        "car-t-infusion",
    )
    ld = course.lymphodepletion
    if ld is not None:
        w.add(
            _procedure(
                w,
                course,
                "lymphodepletion",
                _date_of(course, ld.start_date, ld.start_day),
                used=[{"text": ld.regimen}],
            ),
            "lymphodepletion",
        )
    for lab in [*course.baseline_labs, *course.labs]:
        w.add(_lab_observation(w, course, lab), "lab")
    _events(w, course)
    fu = _date_of(course, course.last_followup_date, course.last_followup_day)
    if fu is not None:
        w.add(_fact(w, course, "last-follow-up", valueDateTime=_iso(fu)), "fact")
    return w.entries


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
            "dataAbsentReason": _cc(_coding("data_absent_reason", "unknown", "Unknown")),
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
        "category": _category("observation_category", "survey", "Survey"),
        "code": _cc(project_coding(code), *extra_codings),
        "subject": subject,
        "effectiveDateTime": effective,
        "issued": issued,
        "method": {"text": r.rule},
        **_grade_value(r),
    }


def _days_component(code: str, days: int) -> dict[str, Any]:
    return {"code": _cc(project_coding(code)), "valueInteger": int(days)}


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
                    "code": _cc(project_coding("ticaht-lowest-platelets")),
                    "valueQuantity": _quantity(_number(t.late_plt_1), "10*9/L"),
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
            "category": _category("observation_category", "survey", "Survey"),
            "code": _cc(project_coding(f"{code}-baseline")),
            "subject": subject,
            "effectiveDateTime": _iso(
                course.infusion_date + dt.timedelta(days=course.ld_start_day)
            ),
            "issued": issued,
            "method": {"text": z.rule},
        }
        if value is not None:
            obs["valueQuantity"] = _quantity(round(value, 4), "1")
        else:
            obs["dataAbsentReason"] = _cc(_coding("data_absent_reason", "unknown", "Unknown"))
            obs["note"] = [{"text": "baseline values missing: " + ", ".join(missing)}]
        if d03 is not None:
            obs["component"] = [
                {
                    "code": _cc(project_coding(f"{code}-day0-3")),
                    "valueQuantity": _quantity(round(d03, 4), "1"),
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
    cs = codes()
    subject = {"reference": patient_reference}
    when = issued or dt.datetime.now(dt.UTC)
    issued_s = when.isoformat(timespec="seconds").replace("+00:00", "Z")
    effective = _iso(course.infusion_date + dt.timedelta(days=assessment.day))
    out: list[dict[str, Any]] = []
    e, late = assessment.early_icaht, assessment.late_icaht
    out.append(_grade_observation(subject, "icaht-early-grade", e.result, issued_s, effective))
    out.append(_grade_observation(subject, "icaht-late-grade", late.result, issued_s, effective))
    out.extend(_ticaht_observations(subject, assessment.ticaht, issued_s, effective))
    h = assessment.hematotox
    hx: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final" if not h.missing else "preliminary",
        "category": _category("observation_category", "survey", "Survey"),
        "code": _cc(project_coding("car-hematotox-score")),
        "subject": subject,
        "effectiveDateTime": _iso(course.infusion_date + dt.timedelta(days=course.ld_start_day)),
        "issued": issued_s,
        "method": {"text": h.rule},
    }
    if h.score is not None:
        hx["valueInteger"] = h.score
    else:
        hx["dataAbsentReason"] = _cc(_coding("data_absent_reason", "unknown", "Unknown"))
        hx["note"] = [{"text": "baseline values missing: " + ", ".join(h.missing)}]
    if h.risk is not None:
        hx["component"] = [
            {
                "code": _cc(project_coding("car-hematotox-risk")),
                "valueCodeableConcept": _cc(project_coding(f"risk-{h.risk}")),
            }
        ]
    out.append(hx)
    out.extend(_easix_observations(subject, course, assessment, issued_s))
    ph = assessment.phenotype
    po: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": _category("observation_category", "survey", "Survey"),
        "code": _cc(project_coding("recovery-phenotype")),
        "subject": subject,
        "effectiveDateTime": effective,
        "issued": issued_s,
        "method": {"text": ph.rule},
    }
    if ph.phenotype:
        po["valueCodeableConcept"] = _cc(project_coding(f"phenotype-{ph.phenotype}"))
    else:
        po["dataAbsentReason"] = _cc(_coding("data_absent_reason", "unknown", "Unknown"))
        if ph.reason:
            po["note"] = [{"text": f"not yet called: {ph.reason}"}]
    out.append(po)
    for item in assessment.ctcae:
        code = CTCAE_CODES.get(item.term)
        if code is None:
            continue
        meddra = cs.concept(code).meddra
        extra = [_coding("meddra", meddra, item.term)] if meddra else []
        obs = _grade_observation(subject, code, item.current, issued_s, effective, extra)
        obs["method"] = {"text": f"CTCAE v{assessment.ctcae_version}"}
        if item.worst.status != GradeStatus.CANNOT_GRADE:
            obs["component"] = [
                {
                    "code": _cc(project_coding("ctcae-worst-grade")),
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
            "code": [_cc({"system": cs.guidance_system, "code": it.id}, text=str(it.kind))],
        }
        cite = _citation_text(it)
        if cite:
            action["documentation"] = [{"type": "citation", "citation": cite}]
        actions.append(action)
        if str(it.kind) == "alert" or urgency in ("warning", "critical"):
            issue: dict[str, Any] = {
                "resourceType": "DetectedIssue",
                "status": "preliminary" if getattr(it, "speculative", False) else "final",
                "code": _cc({"system": cs.guidance_system, "code": it.id}, text=it.summary),
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
        "code": _cc(project_coding("guidance")),
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
