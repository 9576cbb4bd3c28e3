"""The differential: likely contributors to the cytopenia for this phase and this patient.

Figure 1 of the review orders causes by time since infusion; each rule adds what this patient's
data show. Weight = phase prior (``[phase_prior.*]`` in thresholds.toml) + evidence points
(documented / supported / context). A differential item appears only while a lineage is
cytopenic (below its CTCAE grade-3 cut-point or transfusion-dependent).
"""

from __future__ import annotations

from cart_cytopenia.domain.course import DiseaseStatus, Finding
from cart_cytopenia.guidance.context import Context, describe_marrow, fmt
from cart_cytopenia.guidance.model import Urgency
from cart_cytopenia.guidance.registry import Triggered, trigger


def _cause(
    ctx: Context,
    cause: str,
    level: str,
    rationale: str,
    inputs: dict[str, object],
    values: dict[str, object],
    urgency: Urgency | None = None,
) -> Triggered:
    """A differential item: its inputs after the day, phase and cytopenic lineages; its weight
    the phase prior of ``cause`` plus the points of the evidence ``level``."""
    return Triggered(
        rationale=rationale,
        inputs={
            "day": ctx.day,
            "phase": ctx.phase,
            "cytopenic_lineages": ctx.cytopenic_lineages,
            **inputs,
        },
        values=values,
        urgency=urgency,
        weight=ctx.t.prior(cause, ctx.phase) + ctx.t.weight(level),
    )


@trigger("differential.lymphodepletion")
def lymphodepletion(ctx: Context) -> Triggered | None:
    if ctx.phase != "early" or not ctx.any_cytopenia:
        return None
    ld_day = ctx.course.ld_start_day
    first_week = ctx.day <= ctx.t.whole("lymphodepletion_supported_to_day")
    level = "supported" if first_week else "context"
    return _cause(
        ctx,
        "lymphodepletion",
        level,
        rationale=(
            f"Day {ctx.day} (early phase) after lymphodepletion ({ctx.regimen}) from day {ld_day}: "
            f"{ctx.describe_cytopenias()}."
            + (" Nadir usually falls in the first week." if first_week else "")
        ),
        inputs={"regimen": ctx.regimen, "ld_start_day": ld_day},
        values={"regimen": ctx.regimen},
    )


@trigger("differential.infection")
def infection(ctx: Context) -> Triggered | None:
    if not ctx.any_cytopenia:
        return None
    active = ctx.infections_active
    fevers = ctx.recent_fevers
    if active:
        what, level = ctx.describe_infections(active), "documented"
    elif fevers:
        f = fevers[-1]
        what, level = f"fever {f.max_temp_c:g} C on day {f.day}", "supported"
    elif ctx.prolonged_or_late and ctx.infection_excluded is None:
        what, level = f"occult infection to exclude in {ctx.phase} cytopenia", "context"
    else:
        return None
    return _cause(
        ctx,
        "infection",
        level,
        rationale=f"{what[0].upper() + what[1:]}; {ctx.describe_cytopenias()}.",
        inputs={
            "active_infections": [i.organism or i.category.value for i in active],
            "recent_fever_days": [f.day for f in fevers],
        },
        values={"what": what},
    )


@trigger("differential.iec-hs")
def iec_hs(ctx: Context) -> Triggered | None:
    s = ctx.iechs
    if not ctx.any_cytopenia or not s.suspected:
        return None
    features = ", ".join(s.features())
    # recorded, or substantiated by marrow haemophagocytosis (the review: 'Demonstration of
    # phagocytosis in the bone marrow biopsy will substantiate this rare etiology')
    level = "documented" if s.recorded_active or (s.high and s.haemophagocytosis) else "supported"
    return _cause(
        ctx,
        "iec-hs",
        level,
        rationale=f"IEC-HS {s.level_text()}. {ctx.describe_crs()}; then {features}. {s.astct_detail}.",
        inputs=s.as_inputs(),
        values={"features": s.headline(), "level": s.level_text()},
        urgency="warning",
    )


@trigger("differential.inflammation")
def inflammation(ctx: Context) -> Triggered | None:
    inf = ctx.a.inflammation
    if not ctx.any_cytopenia or ctx.phase not in ("early", "prolonged"):
        return None
    if inf.crs_max_grade < 1 and inf.icans_max_grade < 1:
        return None
    severe = max(inf.crs_max_grade, inf.icans_max_grade) >= 3
    return _cause(
        ctx,
        "inflammation",
        "supported" if severe else "context",
        rationale=(
            f"CRS maximum grade {inf.crs_max_grade}, ICANS maximum grade {inf.icans_max_grade}"
            + (" (grade 3-4 is associated with prolonged cytopenia)" if severe else "")
            + f"; {ctx.describe_cytopenias()}."
        ),
        inputs={
            "crs_max_grade": inf.crs_max_grade,
            "icans_max_grade": inf.icans_max_grade,
            "crs_active": inf.crs_active,
            "icans_active": inf.icans_active,
        },
        values={"crs": inf.crs_max_grade, "icans": inf.icans_max_grade},
    )


@trigger("differential.low-marrow-reserve")
def low_marrow_reserve(ctx: Context) -> Triggered | None:
    if not ctx.any_cytopenia:
        return None
    h = ctx.a.hematotox
    strong: list[str] = []
    weak: list[str] = []
    if h.risk == "high":
        score = f"{h.score}/{h.max_score}" if h.score is not None else "incomplete, already high"
        strong.append(f"CAR-HEMATOTOX high ({score})")
    baseline_low = [
        m.analyte for m in h.markers if m.points and m.analyte in ("anc", "platelets", "hb")
    ]
    if baseline_low:
        weak.append("baseline cytopenia (" + ", ".join(baseline_low) + ")")
    if ctx.prior_allo:
        strong.append("prior allo-HCT")
    elif ctx.prior_auto:
        weak.append("prior auto-HCT")
    pct = ctx.course.patient.marrow_involvement_pct
    if pct is not None and pct >= ctx.t.num("high_marrow_disease_pct"):
        strong.append(f"{fmt(pct)}% marrow disease before CAR-T")
    if not strong and not weak:
        return None
    factors = strong + weak
    what = ", ".join(f.split(" (")[0] for f in factors[:3])
    return _cause(
        ctx,
        "low-marrow-reserve",
        "supported" if strong else "context",
        rationale=f"{', '.join(factors)[0].upper() + ', '.join(factors)[1:]}; {ctx.describe_cytopenias()}.",
        inputs={
            "hematotox_score": h.score,
            "hematotox_risk": h.risk,
            "baseline_low": baseline_low,
            "prior_allo_hct": ctx.prior_allo,
            "prior_auto_hct": ctx.prior_auto,
            "marrow_involvement_pct": pct,
        },
        values={"what": what},
    )


@trigger("differential.marrow-disease")
def marrow_disease(ctx: Context) -> Triggered | None:
    if not ctx.any_cytopenia:
        return None
    p = ctx.course.patient
    documented = []
    if ctx.relapse_day is not None:
        documented.append(f"relapse recorded on day {ctx.relapse_day}")
    m = ctx.marrow_after_infusion
    if m is not None and m.disease_present:
        documented.append(f"disease in the marrow on day {m.day}")
    risks = []
    if p.marrow_involvement_pct:
        risks.append(f"marrow involvement {fmt(p.marrow_involvement_pct)}% before CAR-T")
    if p.disease_status in (DiseaseStatus.REFRACTORY, DiseaseStatus.PROGRESSIVE):
        risks.append(f"{p.disease_status.value} disease")
    if p.disease.value in ("B-ALL", "MM"):
        risks.append(f"{p.disease.value} (marrow-based disease)")
    excluded = m is not None and m.disease_present is False
    if documented:
        level, what = "documented", "; ".join(documented)
    elif risks and not excluded:
        high = (p.marrow_involvement_pct or 0) >= ctx.t.num("high_marrow_disease_pct") or (
            p.disease_status in (DiseaseStatus.REFRACTORY, DiseaseStatus.PROGRESSIVE)
        )
        level, what = ("supported" if high else "context"), ", ".join(risks)
    elif ctx.prolonged_or_late:
        level = "context"
        what = (
            f"not found in the marrow on day {m.day}"
            if excluded and m is not None
            else "not yet excluded"
        )
    else:
        return None
    risk_text = f" Risk: {', '.join(risks)}." if risks else ""
    return _cause(
        ctx,
        "marrow-disease",
        level,
        rationale=f"{p.disease.value}, status {p.disease_status.value}: {what}; {ctx.describe_cytopenias()}.{risk_text}",
        inputs={
            "disease": p.disease.value,
            "disease_status": p.disease_status.value,
            "marrow_involvement_pct": p.marrow_involvement_pct,
            "relapse_day": ctx.relapse_day,
            "marrow_day": m.day if m else None,
            "marrow_disease_present": m.disease_present if m else None,
        },
        values={"what": what},
    )


@trigger("differential.myeloid-neoplasm")
def myeloid_neoplasm(ctx: Context) -> Triggered | None:
    if not ctx.any_cytopenia:
        return None
    p = ctx.course.patient
    m = ctx.marrow_after_infusion
    neoplasm = ctx.myeloid_neoplasm_marrow
    documented = neoplasm is not None or (m is not None and bool(m.dysplasia))
    if not documented and not ctx.prolonged_or_late:
        return None
    risks = []
    if p.chip:
        risks.append("known CHIP" + (f" ({', '.join(p.chip_genes)})" if p.chip_genes else ""))
    if p.pre_existing_dysplasia:
        risks.append("dysplasia before CAR-T")
    if ctx.older_adult:
        risks.append(f"age {fmt(ctx.age_years, 0)}")
    if ctx.prior_auto or ctx.prior_allo:
        risks.append("prior HCT")
    if neoplasm is not None:
        level, what = "documented", f"marrow day {neoplasm[0].day}: {'; '.join(neoplasm[1])}"
    elif documented and m is not None:
        level, what = "documented", f"dysplasia in the marrow on day {m.day}"
    elif p.chip or p.pre_existing_dysplasia:
        level, what = "supported", ", ".join(risks)
    else:
        level = "context"
        what = ", ".join(risks) if risks else f"{ctx.phase} cytopenia"
        if m is not None and m.dysplasia is False:
            what += f"; marrow day {m.day} without dysplasia"
    return _cause(
        ctx,
        "myeloid-neoplasm",
        level,
        rationale=f"{what[0].upper() + what[1:]}; {ctx.describe_cytopenias()}.",
        inputs={
            "chip": p.chip,
            "chip_genes": p.chip_genes,
            "age_years": ctx.age_years,
            "pre_existing_dysplasia": p.pre_existing_dysplasia,
            "marrow_day": m.day if m else None,
            "marrow_dysplasia": m.dysplasia if m else None,
        },
        values={"what": what},
    )


@trigger("differential.drug-effect")
def drug_effect(ctx: Context) -> Triggered | None:
    meds = ctx.myelosuppressive_active
    if not ctx.any_cytopenia or not meds:
        return None
    drugs = ctx.med_names(meds)
    since = ", ".join(f"{m.drug_id} from day {m.start}" for m in meds)
    return _cause(
        ctx,
        "drug-effect",
        "documented",
        rationale=f"Myelosuppressive drugs active on day {ctx.day}: {since}; {ctx.describe_cytopenias()}.",
        inputs={"drugs": sorted({m.drug_id for m in meds})},
        values={"drugs": drugs},
    )


@trigger("differential.viral-reactivation")
def viral_reactivation(ctx: Context) -> Triggered | None:
    if not ctx.any_cytopenia:
        return None
    found = ctx.viral_reactivations
    if found:
        what, level = "recorded: " + ctx.describe_infections(found), "documented"
    elif ctx.prior_allo:
        what, level = "after prior allo-HCT, driven by lymphodepletion and CRS", "context"
    else:
        return None
    return _cause(
        ctx,
        "viral-reactivation",
        level,
        rationale=f"Viral reactivation {what}; {ctx.describe_cytopenias()}.",
        inputs={
            "reactivations": [i.organism or i.category.value for i in found],
            "prior_allo_hct": ctx.prior_allo,
        },
        values={"what": what},
    )


@trigger("differential.graft-dysfunction")
def graft_dysfunction(ctx: Context) -> Triggered | None:
    if not ctx.prior_allo or not ctx.any_cytopenia:
        return None
    m = ctx.marrow_after_infusion
    hypo = m is not None and ctx.marrow_hypocellular(m)
    detail = f"; hypocellular marrow day {m.day}" if hypo and m is not None else ""
    hct = ctx.course.patient.prior_hct[-1]
    return _cause(
        ctx,
        "graft-dysfunction",
        "supported" if hypo else "context",
        rationale=(
            f"Allogeneic HCT on day {hct.day if hct.day is not None else '?'}"
            f"{' (' + hct.donor_type.value + ')' if hct.donor_type else ''} before CAR-T{detail}; "
            f"{ctx.describe_cytopenias()}."
        ),
        inputs={
            "prior_allo_hct": True,
            "marrow_day": m.day if m else None,
            "marrow_hypocellular": hypo,
        },
        values={"detail": detail},
    )


@trigger("differential.gvhd")
def gvhd(ctx: Context) -> Triggered | None:
    if not ctx.prior_allo or not ctx.any_cytopenia:
        return None
    active = ctx.gvhd_active
    if active:
        g = active[0]
        what = f"GVHD{' of ' + g.organ if g.organ else ''} active since day {g.start}"
        level = "documented"
    elif ctx.course.product.donor_derived:
        what = "the CAR T cells are donor-derived, so GVHD can arise (refs 79-81)"
        level = "supported"
    elif ctx.course.product.donor_derived is False:
        return None
    else:
        what = "possible if the CAR T cells are donor-derived (not recorded)"
        level = "context"
    return _cause(
        ctx,
        "gvhd",
        level,
        rationale=f"Prior allogeneic HCT; {what}; {ctx.describe_cytopenias()}.",
        inputs={"gvhd_active": bool(active)},
        values={"what": what},
    )


@trigger("differential.ta-tma")
def ta_tma(ctx: Context) -> Triggered | None:
    if not ctx.tma_suspected:
        return None
    t = ctx.tma
    parts = []
    if ctx.tma_pattern:
        parts.append(f"transfusion-dependent anaemia and thrombocytopenia, ANC {fmt(ctx.anc)}/uL")
    if t.criteria_met is not None:
        parts.append(
            f"harmonised criteria {t.criteria_met}/{t.total} met ({t.assessable} assessable)"
            + (", meets" if t.status == "meets" else "")
        )
    what = "; ".join(parts)
    reached = (t.criteria_met or 0) >= t.required
    level = "supported" if reached or ctx.tma_other_criteria_met >= 2 else "context"
    pattern = (
        f"transfusion-dependent anaemia and thrombocytopenia with ANC {fmt(ctx.anc)}/uL; "
        if ctx.tma_pattern
        else ""
    )
    return _cause(
        ctx,
        "ta-tma",
        level,
        rationale=f"Prior allogeneic HCT; {pattern}{tma_count(ctx)}; {ctx.describe_cytopenias()}.",
        inputs={"pattern": ctx.tma_pattern, **tma_inputs(ctx)},
        values={"what": what},
    )


def tma_count(ctx: Context) -> str:
    """The harmonised criteria count with its evidence, e.g. 'TA-TMA harmonised criteria 4 of 7
    met (6 of 7 assessable) on day 40: meets (first met day 40): LDH > ULN (...), ...'."""
    t = ctx.tma
    if t.criteria_met is None:
        return "TA-TMA harmonised criteria: no value after infusion (not evaluated)"
    text = (
        f"TA-TMA harmonised criteria {t.criteria_met} of {t.total} met ({t.assessable} of "
        f"{t.total} assessable) on day {t.reference_day}: {t.status}"
    )
    if t.first_met_day is not None:
        text += f" (also day {t.prior_day}; first met day {t.first_met_day})"
    met = ctx.tma_criteria_met
    return text + (f" - {', '.join(met)}" if met else "")


def tma_inputs(ctx: Context) -> dict[str, object]:
    t = ctx.tma
    return {
        "tatma_status": t.status,
        "tatma_criteria_met": t.criteria_met,
        "tatma_assessable": t.assessable,
        "tatma_reference_day": t.reference_day,
        "tatma_evidence": ctx.tma_criteria_met,
        "tatma_not_assessable": [c.label for c in t.criteria if c.met is None],
        "tatma_high_risk_features": t.high_risk_features,
    }


@trigger("differential.lineage-switch")
def lineage_switch(ctx: Context) -> Triggered | None:
    if not ctx.any_cytopenia:
        return None
    recorded = ctx.findings(Finding.LINEAGE_SWITCH)
    if recorded:
        what, level = f"lineage switch recorded on day {recorded[-1].day}", "documented"
    elif (
        ctx.paediatric
        and ctx.disease.value == "B-ALL"
        and (ctx.kmt2a or ctx.infant)
        and ctx.prolonged_or_late
    ):
        what = "KMT2A-rearranged B-ALL" if ctx.kmt2a else "B-ALL in an infant"
        level = "supported"
    else:
        return None
    return _cause(
        ctx,
        "lineage-switch",
        level,
        rationale=f"{what[0].upper() + what[1:]}; {ctx.phase} cytopenia: {ctx.describe_cytopenias()}.",
        inputs={
            "age_years": ctx.age_years,
            "genetics": ctx.course.patient.genetics,
            "lineage_switch_recorded": bool(recorded),
        },
        values={"what": what},
    )


@trigger("differential.immune-mediated")
def immune_mediated(ctx: Context) -> Triggered | None:
    if not ctx.any_cytopenia:
        return None
    lgl = ctx.findings(Finding.LARGE_GRANULAR_LYMPHOCYTOSIS)
    m = ctx.marrow_after_infusion
    if lgl:
        what, level = f"large granular lymphocytosis recorded on day {lgl[-1].day}", "documented"
    elif (
        ctx.late
        and len(ctx.cytopenic_lineages) >= 3  # "late cases of severe trilineage aplasia"
        and m is not None
        and ctx.marrow_excludes_relapse_and_neoplasm(m)
    ):
        what = "late trilineage cytopenia, marrow without disease"
        level = "supported" if ctx.paediatric else "context"
    else:
        return None
    detail = f" Marrow day {m.day}: {describe_marrow(m)}." if m is not None else ""
    if ctx.paediatric:
        detail += " Immune-mediated suppression may be more likely in children."
    return _cause(
        ctx,
        "immune-mediated",
        level,
        rationale=f"{what[0].upper() + what[1:]}; {ctx.describe_cytopenias()}.{detail}",
        inputs={
            "lgl_recorded": bool(lgl),
            "marrow_day": m.day if m else None,
            "paediatric": ctx.paediatric,
        },
        values={"what": what},
    )


@trigger("differential.haemolysis")
def haemolysis(ctx: Context) -> Triggered | None:
    markers = ctx.haemolysis_markers
    if len(markers) < 2 or not ctx.anaemia_grade_2_or_dependent:
        return None
    what = ", ".join(markers)
    negatives = ctx.haemolysis_negatives
    against = f" Against: {', '.join(negatives)}." if negatives else ""
    return _cause(
        ctx,
        "haemolysis",
        "supported",
        rationale=f"Anaemia (Hb {fmt(ctx.hb)} g/dL, day {ctx.hb_day}) with {what}.{against}",
        inputs={"markers": markers, "negatives": negatives, "hb": ctx.hb},
        values={"what": what},
    )
