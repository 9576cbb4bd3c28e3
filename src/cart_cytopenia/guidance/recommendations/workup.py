"""Work-up: what to check now, and why (the review's evaluation of cytopenias by phase)."""

from __future__ import annotations

from cart_cytopenia.domain.course import Disease, DiseaseStatus, Finding
from cart_cytopenia.guidance.context import Context, describe_marrow, drug_alternative, fmt
from cart_cytopenia.guidance.recommendations.differential import tma_count, tma_inputs
from cart_cytopenia.guidance.registry import Triggered, trigger


@trigger("workup.medication-review")
def medication_review(ctx: Context) -> Triggered | None:
    active = ctx.myelosuppressive_active
    # during a cytopenia, a drug with a named alternative is already the subject of the alert
    # alert.myelosuppressive-drug: the review does not repeat it (one message per drug)
    covered = (
        sorted({m.drug_id for m in active if drug_alternative(m) is not None})
        if ctx.any_cytopenia
        else []
    )
    meds = [m for m in active if m.drug_id not in covered]
    unknown = ctx.a.based_on.drugs_not_reasoned_about
    inputs = {
        "day": ctx.day,
        "myelosuppressive_active": sorted({m.drug_id for m in active}),
        "in_the_myelosuppressive_drug_alert": covered,
        "drugs_not_in_catalogue": unknown,
        "cytopenic_lineages": ctx.cytopenic_lineages,
    }
    tail = f" Not in the drug catalogue (not checked): {', '.join(unknown)}." if unknown else ""
    if covered:
        tail = f" {', '.join(covered)}: see the alert on myelosuppressive drugs.{tail}"
    if meds:
        since = ", ".join(f"{m.drug_id} from day {m.start}" for m in meds)
        return Triggered(
            rationale=f"Myelosuppressive drugs active on day {ctx.day}: {since}; {ctx.describe_cytopenias()}.{tail}",
            inputs=inputs,
            values={"drugs": ctx.med_names(meds)},
            variant="drugs",
            urgency="action" if ctx.any_cytopenia else "consider",
        )
    if ctx.day < 0:
        return Triggered(
            rationale=f"Day {ctx.day}: before lymphodepletion and infusion.{tail}",
            inputs=inputs,
        )
    if ctx.any_cytopenia:
        other = " other" if covered else ""
        return Triggered(
            rationale=f"{ctx.describe_cytopenias()[0].upper()}{ctx.describe_cytopenias()[1:]}; no{other} myelosuppressive drug of the catalogue is active.{tail}",
            inputs=inputs,
            urgency="info" if not unknown else "consider",
        )
    return None


@trigger("workup.infection")
def infection(ctx: Context) -> Triggered | None:
    fevers = ctx.recent_fevers
    active = ctx.infections_active
    inputs = {
        "day": ctx.day,
        "anc": ctx.anc,
        "anc_day": ctx.anc_day,
        "recent_fever_days": [f.day for f in fevers],
        "recent_fever_max_c": max((f.max_temp_c for f in fevers), default=None),
        "active_infections": [i.organism or i.category.value for i in active],
    }
    if fevers and ctx.anc is not None and ctx.anc < ctx.t.num("febrile_neutropenia_anc_below"):
        f = max(fevers, key=lambda x: x.max_temp_c)
        return Triggered(
            rationale=(
                f"Fever {f.max_temp_c:g} C on day {f.day} with ANC {fmt(ctx.anc)}/uL (day {ctx.anc_day}): "
                "febrile neutropenia (CTCAE: ANC < 1000/uL with fever)."
                + (" Active: " + ctx.describe_infections(active) + "." if active else "")
            ),
            inputs=inputs,
            values={"anc": fmt(ctx.anc), "temp": f"{f.max_temp_c:g}", "fever_day": f.day},
            variant="febrile_neutropenia",
            urgency="critical",
        )
    if fevers or active:
        parts = []
        if fevers:
            f = fevers[-1]
            parts.append(f"fever {f.max_temp_c:g} C on day {f.day}")
        if active:
            parts.append(ctx.describe_infections(active))
        why = "; ".join(parts)
        crs = (
            " CRS is active: fever may be CRS, but infection must be excluded."
            if ctx.crs_active
            else ""
        )
        return Triggered(
            rationale=f"{why[0].upper() + why[1:]}.{crs} Cultures, viral and fungal studies as indicated.",
            inputs=inputs,
            values={"why": why},
            urgency="action",
        )
    if ctx.prolonged_or_late and ctx.any_cytopenia:
        excluded = ctx.infection_excluded
        if excluded is not None:
            return None  # looked for and excluded recently (a negative finding is used)
        return Triggered(
            rationale=f"{ctx.phase.capitalize() if ctx.phase else ''} cytopenia: {ctx.describe_cytopenias()}; no infection recorded.",
            inputs=inputs,
            values={"phase": ctx.phase},
            variant="occult",
        )
    return None


@trigger("workup.iec-hs")
def iec_hs(ctx: Context) -> Triggered | None:
    s = ctx.iechs
    if not s.possible:
        if s.after_crs and s.recurrent_fever and s.ferritin is None and ctx.any_cytopenia:
            ctx.missing(
                "No recent ferritin: IEC-HS cannot be assessed after the fever that followed CRS; "
                "measure ferritin (trend), fibrinogen, triglycerides, AST/ALT and LDH."
            )
        return None
    features = ", ".join(s.features()) or "fever with new cytopenia after CRS"
    if s.ferritin is None:
        ctx.missing("No ferritin in the last 7 days: IEC-HS suspicion cannot be graded.")
    marrow = (
        "Haemophagocytosis in the marrow supports it."
        if s.haemophagocytosis
        else "Haemophagocytosis in a marrow would substantiate it."
    )
    return Triggered(
        rationale=f"IEC-HS {s.level_text()}. {ctx.describe_crs()}; {features}. {marrow} {s.astct_detail}.",
        inputs={"day": ctx.day, **s.as_inputs()},
        values={"features": s.headline(), "level": s.level_text()},
        urgency="warning" if s.suspected else "action",
    )


def _marrow_triggers(ctx: Context) -> tuple[list[str], list[str]]:
    """(triggers, triggers that are new since the last marrow)."""
    p = ctx.course.patient
    m = ctx.marrow_after_infusion
    since = m.day if m is not None and m.day is not None else None
    triggers: list[str] = []
    new: list[str] = []

    def add(text: str, new_after: int | None) -> None:
        triggers.append(text)
        if since is None or (new_after is not None and new_after > since):
            new.append(text)

    if ctx.gcsf_refractory and ctx.neutrophils.significant:
        add(f"no response to G-CSF (from day {ctx.a.gcsf.first_day})", ctx.a.gcsf.first_day)
    if ctx.relapse_day is not None and ctx.any_cytopenia:
        add(f"relapse recorded on day {ctx.relapse_day}", ctx.relapse_day)
    if ctx.prolonged_or_late and ctx.any_cytopenia:
        add(f"{ctx.phase} cytopenia ({ctx.describe_cytopenias()})", None)
        high_relapse = (p.marrow_involvement_pct or 0) >= ctx.t.num("high_marrow_disease_pct") or (
            p.disease_status in (DiseaseStatus.REFRACTORY, DiseaseStatus.PROGRESSIVE)
        )
        if high_relapse:
            add(
                f"high likelihood of relapse ({p.disease_status.value}, marrow involvement "
                f"{fmt(p.marrow_involvement_pct)}% before CAR-T)",
                None,
            )
        if p.pre_existing_dysplasia or p.pre_existing_fibrosis:
            add("dysplasia or fibrosis before CAR-T", None)
    if ctx.iechs.suspected and ctx.any_cytopenia:
        add(f"IEC-HS {ctx.iechs.level_text()} (look for haemophagocytosis)", ctx.iechs.onset_day)
    for text, drop_day in ctx.late_new_drops:
        add(f"late worsening: {text}", drop_day)
    return triggers, new


@trigger("workup.bone-marrow")
def bone_marrow(ctx: Context) -> Triggered | None:
    triggers, new = _marrow_triggers(ctx)
    if not triggers:
        return None
    m = ctx.marrow_after_infusion
    repeat_after = ctx.t.num("marrow_repeat_after_days")
    recent = m is not None and m.day is not None and ctx.day - m.day < repeat_after
    if recent and not new:
        return None
    shown = new if recent else triggers
    why = shown[0].split(" (")[0]
    urgent = (
        ctx.gcsf_refractory
        or ctx.late
        or ctx.relapse_day is not None
        or ctx.iechs.suspected
        or bool(ctx.late_new_drops)
    )
    previous = (
        f" Last marrow day {m.day}: {describe_marrow(m)}."
        if m is not None and m.day is not None
        else " No marrow after infusion recorded."
    )
    paediatric_all = (
        " In paediatric ALL add MRD (NGS) and lineage markers."
        if (ctx.paediatric and ctx.disease == Disease.B_ALL)
        else ""
    )
    return Triggered(
        rationale="; ".join(shown) + "." + previous + paediatric_all,
        inputs={
            "day": ctx.day,
            "phase": ctx.phase,
            "triggers": shown,
            "gcsf_response": ctx.a.gcsf.response,
            "last_marrow_day": m.day if m else None,
        },
        values={"why": why},
        urgency="action" if urgent else "consider",
    )


@trigger("workup.mrd-lineage")
def mrd_lineage(ctx: Context) -> Triggered | None:
    if not (ctx.paediatric and ctx.disease == Disease.B_ALL):
        return None
    if not (ctx.prolonged_or_late and ctx.any_cytopenia):
        return None
    m = ctx.marrow_after_infusion
    recent_mrd = (
        m is not None
        and m.day is not None
        and m.mrd is not None
        and ctx.day - m.day < ctx.t.num("marrow_repeat_after_days")
    )
    if recent_mrd:
        return None
    return Triggered(
        rationale=(
            f"Child (age {fmt(ctx.age_years)}) with B-ALL"
            + (", KMT2A-rearranged" if ctx.kmt2a else "")
            + f"; {ctx.phase} cytopenia: {ctx.describe_cytopenias()}."
        ),
        inputs={
            "day": ctx.day,
            "age_years": ctx.age_years,
            "genetics": ctx.course.patient.genetics,
            "last_marrow_day": m.day if m else None,
        },
    )


@trigger("workup.chimerism")
def chimerism(ctx: Context) -> Triggered | None:
    if not (ctx.prior_allo and ctx.prolonged_or_late and ctx.any_cytopenia):
        return None
    return Triggered(
        rationale=f"Prior allogeneic HCT; {ctx.phase} cytopenia: {ctx.describe_cytopenias()}.",
        inputs={"day": ctx.day, "phase": ctx.phase, "cytopenic_lineages": ctx.cytopenic_lineages},
        values={"phase": ctx.phase},
    )


# what assesses each harmonised criterion that could not be assessed (the review adds
# haptoglobin, reticulocytes and IPF as evidence; they are not criteria)
TMA_TESTS = {
    "ldh": "LDH",
    "schistocytes": "smear",
    "hypertension": "BP/antihypertensives",
    "sc5b9": "sC5b-9",
    "proteinuria": "UPCR",
    "anaemia": "Hb vs baseline",
    "thrombocytopenia": "platelets vs baseline",
}


@trigger("workup.ta-tma")
def ta_tma(ctx: Context) -> Triggered | None:
    if not ctx.tma_suspected:
        return None
    pattern = (
        f"Transfusion-dependent anaemia and thrombocytopenia with ANC {fmt(ctx.anc)}/uL (neutrophil recovery)"
        if ctx.tma_pattern
        else "TMA markers"
    )
    missing = [TMA_TESTS[c.id] for c in ctx.tma.criteria if c.met is None]
    todo = ", ".join(missing) if missing else "all 7 assessed; repeat to confirm"
    return Triggered(
        rationale=f"Prior allogeneic HCT. {pattern}; {tma_count(ctx)}. Not assessable: "
        f"{', '.join(missing) or 'none'}.",
        inputs={"day": ctx.day, "pattern": ctx.tma_pattern, "anc": ctx.anc, **tma_inputs(ctx)},
        values={"todo": todo},
    )


HAEMOLYSIS_TESTS = (
    ("dat", "DAT (direct Coombs)"),
    ("ldh", "LDH"),
    ("haptoglobin", "haptoglobin"),
    ("bilirubin", "bilirubin"),
    ("retic_pct", "reticulocytes"),
)


def _haemolysis_tests(ctx: Context) -> tuple[list[str], list[str]]:
    """(tests still to do, results at hand) for the haemolysis work-up; the smear is done when
    schistocytes were recorded present or absent in the window."""
    window = ctx.t.whole("stale_lab_days")
    todo, have = [], []
    for code, label in HAEMOLYSIS_TESTS:
        v = ctx.latest(code, window)
        if v is None and code == "retic_pct":
            v = ctx.latest("retic_abs", window)
        if v is None:
            todo.append(label)
        elif code == "dat":
            have.append(f"DAT {'positive' if v.value >= 1 else 'negative'} day {v.day}")
        else:
            have.append(f"{label} {fmt(v.value)} day {v.day}")
    smear = ctx.recent_finding(Finding.SCHISTOCYTES) or ctx.recently_absent(Finding.SCHISTOCYTES)
    if smear is None:
        todo.append("blood smear (schistocytes)")
    else:
        have.append(
            f"smear day {smear.day}: {'schistocytes' if smear.present else 'no schistocytes'}"
        )
    return todo, have


@trigger("workup.haemolysis")
def haemolysis(ctx: Context) -> Triggered | None:
    markers = ctx.haemolysis_markers
    if not markers or not ctx.anaemia_grade_2_or_dependent:
        return None
    todo, have = _haemolysis_tests(ctx)
    if not todo:
        return None  # the work-up is complete: the differential weighs it
    negatives = ctx.haemolysis_negatives
    return Triggered(
        rationale=(
            f"Anaemia (Hb {fmt(ctx.hb)} g/dL, day {ctx.hb_day}) with {', '.join(markers)}. "
            f"To do: {', '.join(todo)}."
            + (f" At hand: {'; '.join(have)}." if have else "")
            + (f" Against haemolysis: {', '.join(negatives)}." if negatives else "")
        ),
        inputs={"day": ctx.day, "markers": markers, "to_do": todo, "at_hand": have},
        values={"todo": ", ".join(todo)},
    )


@trigger("workup.viral-reactivation")
def viral_reactivation(ctx: Context) -> Triggered | None:
    found = ctx.viral_reactivations
    if found:
        why = "reactivation recorded: " + ctx.describe_infections(found)
    elif ctx.prior_allo and ctx.any_cytopenia and ctx.day >= 0:
        why = "prior allo-HCT with cytopenia"
    else:
        return None
    return Triggered(
        rationale=f"{why[0].upper() + why[1:]}; {ctx.describe_cytopenias()}. Ganciclovir and rituximab used against them can also worsen cytopenia.",
        inputs={
            "day": ctx.day,
            "prior_allo_hct": ctx.prior_allo,
            "reactivations": [i.organism or i.category.value for i in found],
        },
        values={"why": why},
    )


@trigger("workup.cd4")
def cd4(ctx: Context) -> Triggered | None:
    pj = ctx.settings.prophylaxis
    if ctx.day < pj.pjp_start_day or ctx.cd4_above_stop:
        return None
    last = ctx.cd4
    if last is not None and ctx.day - last.day <= ctx.t.num("cd4_recheck_days"):
        return None
    text = f"last CD4 {fmt(last.value)}/uL on day {last.day}" if last else "no CD4 count recorded"
    if last is None:
        ctx.missing("No CD4 count recorded: when PJP prophylaxis may stop cannot be decided.")
    return Triggered(
        rationale=f"Day {ctx.day}, PJP prophylaxis due from day {pj.pjp_start_day}; {text}.",
        inputs={
            "day": ctx.day,
            "cd4": last.value if last else None,
            "cd4_day": last.day if last else None,
        },
        values={"cd4_stop": fmt(pj.cd4_stop_above_per_ul), "last": text},
    )
