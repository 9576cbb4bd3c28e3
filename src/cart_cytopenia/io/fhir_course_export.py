"""Course -> FHIR R4 resources (the generator): what ``fhir_import`` reads back to the same course.

Patient, the malignancy and ASTCT-graded complications as Condition, labs (LOINC, UCUM,
comparators) and fevers as Observation, medications as MedicationRequest (RxNorm where known),
CAR-T infusion, lymphodepletion, transfusions, marrow evaluations, stem cell boosts, HCT and next
therapy as Procedure; course fields without a standard FHIR home use the project code system or
a project extension (docs/interoperability.md lists them)."""

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from cart_cytopenia.domain.analytes import resolve_analyte
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
    PriorHCT,
    Relapse,
    StemCellBoost,
    Transfusion,
)
from cart_cytopenia.domain.units import dose_ucum, resolve_unit
from cart_cytopenia.io.fhir_codes import codes, project_coding
from cart_cytopenia.io.fhir_resources import (
    ResourceWriter,
    category,
    cc,
    coding,
    date_of,
    extension,
    iso,
    number,
    quantity,
)


def _lab_observation(w: ResourceWriter, course: Course, lab: LabObservation) -> dict[str, Any]:
    a = resolve_analyte(lab.analyte)
    unit = resolve_unit(lab.unit)
    q = quantity(number(lab.value), unit.ucum)
    if lab.comparator is not None:
        q["comparator"] = lab.comparator.value
    when = date_of(course, lab.date, lab.day)
    assert when is not None
    loinc = [coding("loinc", code, a.label) for code in a.loinc[:1]]
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": category("observation_category", "laboratory", "Laboratory"),
        "code": cc(*loinc, text=a.label),
        "subject": w.subject,
        "effectiveDateTime": iso(when),
        "valueQuantity": q,
    }


def _fact(w: ResourceWriter, course: Course, code: str, **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": cc(project_coding(code)),
        "subject": w.subject,
        "effectiveDateTime": iso(course.infusion_date),
        **value,
    }


def _patient(w: ResourceWriter, course: Course) -> dict[str, Any]:
    p = course.patient
    res: dict[str, Any] = {"resourceType": "Patient", "id": w.prefix, "gender": p.sex.value}
    if p.birth_date is not None:
        res["birthDate"] = iso(p.birth_date)
    ext = []
    if p.age_years is not None:
        ext.append(
            extension(
                "age-at-infusion",
                valueAge={
                    "value": number(p.age_years),
                    "unit": "a",
                    "system": codes().system("ucum"),
                    "code": "a",
                },
            )
        )
    if p.weight_kg is not None:
        ext.append(
            extension("weight-at-infusion", valueQuantity=quantity(number(p.weight_kg), "kg"))
        )
    deaths = course.events_of(Death)
    if deaths:
        d = date_of(course, deaths[0].date, deaths[0].day)
        if d is not None:
            res["deceasedDateTime"] = iso(d)
        if deaths[0].cause:
            ext.append(extension("cause-of-death", valueString=deaths[0].cause))
    if ext:
        res["extension"] = ext
    return res


def _disease_condition(w: ResourceWriter, course: Course) -> dict[str, Any]:
    disease = course.patient.disease.value
    code = "disease-other" if disease == "other" else f"disease-{disease}"
    codings = [project_coding(code)]
    for d in codes().diseases:
        if d.disease == disease and d.icd10_export:
            codings.append(coding("icd10cm", d.icd10_export))
    return {
        "resourceType": "Condition",
        "clinicalStatus": cc(coding("condition_clinical", "active")),
        "verificationStatus": cc(coding("condition_verification", "confirmed")),
        "category": category("condition_category", "problem-list-item", "Problem List Item"),
        "code": cc(*codings, text=disease),
        "subject": w.subject,
    }


def _span_condition(
    w: ResourceWriter,
    course: Course,
    concept: str,
    start: tuple[dt.date | None, int | None],
    end: tuple[dt.date | None, int | None],
    extra_codings: Sequence[dict[str, str]] = (),
    grade: int | None = None,
    text: str | None = None,
) -> dict[str, Any]:
    onset = date_of(course, *start)
    abatement = date_of(course, *end)
    res: dict[str, Any] = {
        "resourceType": "Condition",
        "clinicalStatus": cc(coding("condition_clinical", "resolved" if abatement else "active")),
        "verificationStatus": cc(coding("condition_verification", "confirmed")),
        "code": cc(
            project_coding(concept), *extra_codings, text=text or codes().concept(concept).display
        ),
        "subject": w.subject,
    }
    if onset is not None:
        res["onsetDateTime"] = iso(onset)
    if abatement is not None:
        res["abatementDateTime"] = iso(abatement)
    if grade is not None:
        res["stage"] = [
            {
                "summary": cc(project_coding(f"grade-{grade}")),
                "type": cc(project_coding("astct-grade")),
            }
        ]
    return res


def _graded_icd(concept: str, grade: int) -> list[dict[str, str]]:
    for m in codes().concept(concept).matches:
        for code, g in m.graded.items():
            if g == grade and m.system == codes().system("icd10cm"):
                return [{"system": m.system, "code": code}]
    return []


def _medication(w: ResourceWriter, course: Course, m: Medication) -> dict[str, Any]:
    drug = resolve_drug(m.drug)
    codings = [coding("rxnorm", c, drug.id) for c in drug.rxnorm[:1]] if drug else []
    start = date_of(course, m.start_date, m.start_day)
    end = date_of(course, m.end_date, m.end_day)
    assert start is not None
    bounds: dict[str, str] = {"start": iso(start)}
    if end is not None:
        bounds["end"] = iso(end)
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
        q: dict[str, Any] = {"value": number(m.dose)}
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
        "medicationCodeableConcept": cc(*codings, text=m.drug),
        "subject": w.subject,
        "authoredOn": iso(start),
        "dosageInstruction": [dosage],
    }
    if m.purpose:
        res["reasonCode"] = [cc(project_coding(m.purpose))]
    return res


def _procedure(
    w: ResourceWriter,
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
        "code": cc(
            project_coding(concept), *extra_codings, text=text or codes().concept(concept).display
        ),
        "subject": w.subject,
    }
    if when is not None:
        res["performedDateTime"] = iso(when)
    if used:
        res["usedCode"] = list(used)
    if extensions:
        res["extension"] = list(extensions)
    return res


def _hct_codings(kind: HCTKind) -> list[dict[str, str]]:
    return [coding("cpt", "38240" if kind == HCTKind.ALLOGENEIC else "38241")]


def _bone_marrow(w: ResourceWriter, course: Course, bm: BoneMarrow) -> None:
    when = date_of(course, bm.date, bm.day)
    proc_url = w.add(_procedure(w, course, "bone-marrow-evaluation", when), "bone-marrow")
    comps: list[dict[str, Any]] = []

    def comp(code: str, **value: Any) -> None:
        comps.append({"code": cc(project_coding(code)), **value})

    if bm.cellularity is not None:
        comp(
            "bm-cellularity",
            valueCodeableConcept=cc(project_coding(f"cellularity-{bm.cellularity.value}")),
        )
    for code, pct in (
        ("bm-cellularity-pct", bm.cellularity_pct),
        ("bm-disease-pct", bm.disease_pct),
        ("bm-blasts-pct", bm.blasts_pct),
    ):
        if pct is not None:
            comp(code, valueQuantity=quantity(number(pct), "%"))
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
        "code": cc(project_coding("bone-marrow-findings")),
        "subject": w.subject,
        "partOf": [{"reference": proc_url}],
    }
    if when is not None:
        obs["effectiveDateTime"] = iso(when)
    if comps:
        obs["component"] = comps
    if bm.notes:
        obs["note"] = [{"text": bm.notes}]
    w.add(obs, "bone-marrow-findings")


def _events(w: ResourceWriter, course: Course) -> None:
    """Every event of the course as its resource(s), in the course's order."""
    for ev in course.events:
        if isinstance(ev, Death):
            continue  # written on the Patient (deceasedDateTime, cause-of-death extension)
        write = next((f for t, f in _EVENT_WRITERS if isinstance(ev, t)), None)
        if write is None:  # pragma: no cover - every event type has a writer
            raise TypeError(f"no FHIR mapping for event {type(ev).__name__}")
        write(w, course, ev)


def _crs_icans(w: ResourceWriter, course: Course, ev: CRS | ICANS) -> None:
    """CRS or ICANS: a Condition with its ASTCT grade (stage) and the graded ICD-10-CM code."""
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


def _iechs(w: ResourceWriter, course: Course, ev: IECHS) -> None:
    """IEC-HS: a Condition with its grade when given."""
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


def _gvhd(w: ResourceWriter, course: Course, ev: GVHD) -> None:
    """GVHD: a Condition with its grade and organ (body site)."""
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


def _infection(w: ResourceWriter, course: Course, ev: Infection) -> None:
    """An infection: a Condition coded by category (SNOMED CT), organism, site and severity."""
    cs = codes()
    extra = [coding("snomed", cs.infection_snomed[ev.category.value])]
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
        res["extension"] = [extension("infection-organism", valueString=ev.organism)]
    if ev.site:
        res["bodySite"] = [{"text": ev.site}]
    if ev.severity is not None:
        res["severity"] = cc(
            coding("snomed", cs.severity_snomed[ev.severity.value], ev.severity.value)
        )
    w.add(res, "infection")


def _medication_event(w: ResourceWriter, course: Course, ev: Medication) -> None:
    w.add(_medication(w, course, ev), "medication")


def _fever(w: ResourceWriter, course: Course, ev: Fever) -> None:
    """A fever: a body temperature Observation (LOINC 8310-5, Cel)."""
    when = date_of(course, ev.date, ev.day)
    assert when is not None
    w.add(
        {
            "resourceType": "Observation",
            "status": "final",
            "category": category("observation_category", "vital-signs", "Vital Signs"),
            "code": cc(coding("loinc", "8310-5", "Body temperature"), text="Body temperature"),
            "subject": w.subject,
            "effectiveDateTime": iso(when),
            "valueQuantity": quantity(number(ev.max_temp_c), "Cel"),
        },
        "fever",
    )


def _transfusion(w: ResourceWriter, course: Course, ev: Transfusion) -> None:
    """A transfusion: a Procedure with the product (usedCode) and units (extension)."""
    w.add(
        _procedure(
            w,
            course,
            "transfusion",
            date_of(course, ev.date, ev.day),
            [coding("snomed", "116859006")],
            used=[cc(project_coding(f"transfusion-{ev.product.value}"))],
            extensions=[extension("transfusion-units", valueInteger=ev.units)],
        ),
        "transfusion",
    )


def _stem_cell_boost(w: ResourceWriter, course: Course, ev: StemCellBoost) -> None:
    """A stem cell boost: a Procedure with graft source, CD34+ dose and manipulation."""
    ext = [extension("graft-source", valueCode=ev.source.value)]
    if ev.cd34_dose_per_kg is not None:
        ext.append(
            extension(
                "cd34-dose",
                valueQuantity=quantity(number(ev.cd34_dose_per_kg), "10*6/kg"),
            )
        )
    if ev.manipulation:
        ext.append(extension("graft-manipulation", valueCode=ev.manipulation))
    extra = [coding("cpt", "38243")] if ev.source == HCTKind.ALLOGENEIC else []
    w.add(
        _procedure(
            w,
            course,
            "stem-cell-boost",
            date_of(course, ev.date, ev.day),
            extra,
            extensions=ext,
        ),
        "boost",
    )


def _hct(w: ResourceWriter, course: Course, ev: HCT | PriorHCT) -> None:
    """An HCT (after day 0, or a prior one): a Procedure with graft source and donor type."""
    ext = [extension("graft-source", valueCode=ev.kind.value)]
    if ev.donor_type is not None:
        ext.append(extension("donor-type", valueCode=ev.donor_type.value))
    w.add(
        _procedure(
            w,
            course,
            "hct",
            date_of(course, ev.date, ev.day),
            _hct_codings(ev.kind),
            extensions=ext,
        ),
        "hct",
    )


def _relapse(w: ResourceWriter, course: Course, ev: Relapse) -> None:
    """Relapse or progression: a Condition with its site and notes."""
    res = _span_condition(w, course, "relapse", (ev.date, ev.day), (None, None))
    if ev.site:
        res["bodySite"] = [{"text": ev.site}]
    if ev.notes:
        res["note"] = [{"text": ev.notes}]
    w.add(res, "relapse")


def _next_therapy(w: ResourceWriter, course: Course, ev: NextTherapy) -> None:
    """The next line of therapy: a Procedure described by its text."""
    w.add(
        _procedure(
            w,
            course,
            "next-therapy",
            date_of(course, ev.date, ev.day),
            text=ev.description or None,
        ),
        "next-therapy",
    )


def _finding(w: ResourceWriter, course: Course, ev: ClinicalFinding) -> None:
    """A clinical finding: a Condition (refuted when looked for and absent)."""
    onset = date_of(course, ev.date, ev.day)
    assert onset is not None
    res: dict[str, Any] = {
        "resourceType": "Condition",
        "clinicalStatus": cc(coding("condition_clinical", "active")),
        # a finding looked for and absent ("present": false) is exported as refuted
        "verificationStatus": cc(
            coding("condition_verification", "confirmed" if ev.present else "refuted")
        ),
        "code": cc(project_coding(f"finding-{ev.finding.value}"), text=ev.finding.value),
        "subject": w.subject,
        "onsetDateTime": iso(onset),
    }
    if ev.detail:
        res["note"] = [{"text": ev.detail}]
    w.add(res, "finding")


# Each event type and the function writing it (Death is written on the Patient).
_EVENT_WRITERS: tuple[tuple[type, Callable[[ResourceWriter, Course, Any], None]], ...] = (
    (CRS, _crs_icans),
    (ICANS, _crs_icans),
    (IECHS, _iechs),
    (GVHD, _gvhd),
    (Infection, _infection),
    (Medication, _medication_event),
    (Fever, _fever),
    (Transfusion, _transfusion),
    (BoneMarrow, _bone_marrow),
    (StemCellBoost, _stem_cell_boost),
    (HCT, _hct),
    (Relapse, _relapse),
    (NextTherapy, _next_therapy),
    (ClinicalFinding, _finding),
)


def course_to_resources(course: Course) -> list[tuple[str, dict[str, Any]]]:
    """Every resource of ``course`` as ``(fullUrl, resource)`` pairs, Patient first."""
    w = ResourceWriter(course.patient.id)
    w.add(_patient(w, course))
    w.add(_disease_condition(w, course), "disease")
    _patient_facts(w, course)
    _prior_hcts(w, course)
    _car_t_infusion(w, course)
    ld = course.lymphodepletion
    if ld is not None:
        w.add(
            _procedure(
                w,
                course,
                "lymphodepletion",
                date_of(course, ld.start_date, ld.start_day),
                used=[{"text": ld.regimen}],
            ),
            "lymphodepletion",
        )
    for lab in [*course.baseline_labs, *course.labs]:
        w.add(_lab_observation(w, course, lab), "lab")
    _events(w, course)
    fu = date_of(course, course.last_followup_date, course.last_followup_day)
    if fu is not None:
        w.add(_fact(w, course, "last-follow-up", valueDateTime=iso(fu)), "fact")
    return w.entries


def _patient_facts(w: ResourceWriter, course: Course) -> None:
    """What the course knows of the patient before CAR-T that has no FHIR home, as project-coded
    Observations: disease status, marrow involvement, CHIP, dysplasia, fibrosis, stored cells,
    donor, genetics."""
    p = course.patient
    w.add(
        _fact(
            w,
            course,
            "disease-status",
            valueCodeableConcept=cc(project_coding(f"disease-status-{p.disease_status.value}")),
        ),
        "fact",
    )
    if p.marrow_involvement_pct is not None:
        w.add(
            _fact(
                w,
                course,
                "marrow-involvement",
                valueQuantity=quantity(number(p.marrow_involvement_pct), "%"),
            ),
            "fact",
        )
    if p.chip is not None or p.chip_genes:
        res = _fact(w, course, "clonal-haematopoiesis")
        if p.chip is not None:
            res["valueBoolean"] = p.chip
        if p.chip_genes:
            res["component"] = [
                {"code": cc(project_coding("chip-gene")), "valueString": g} for g in p.chip_genes
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


def _prior_hcts(w: ResourceWriter, course: Course) -> None:
    """Transplants before CAR-T: a Procedure each, with graft source and donor type."""
    for h in course.patient.prior_hct:
        _hct(w, course, h)


def _car_t_infusion(w: ResourceWriter, course: Course) -> None:
    """Day 0: the CAR-T infusion Procedure naming the product (CPT 38228), a construct outside
    the catalogue described by its target and costimulatory domain."""
    prod = course.product
    entry = prod.catalogue_entry()
    product_ext = []
    if entry is None:
        if prod.target:
            product_ext.append(extension("product-target", valueString=prod.target))
        if prod.costimulatory:
            product_ext.append(extension("product-costimulatory", valueString=prod.costimulatory))
    if prod.donor_derived is not None:
        product_ext.append(extension("product-donor-derived", valueBoolean=prod.donor_derived))
    product_text = entry.generic if entry else prod.name
    w.add(
        _procedure(
            w,
            course,
            "car-t-infusion",
            course.infusion_date,
            [coding("cpt", "38228")],
            text=f"CAR T-cell infusion: {product_text}",
            used=[{"text": product_text}],
            extensions=product_ext,
        ),
        "car-t-infusion",
    )
