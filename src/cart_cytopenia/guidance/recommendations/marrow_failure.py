"""Persistent and late cytopenia: expectant care, immunosuppression, stem cell boost, allo-HCT,
the paediatric branch, and follow-up at the treating centre."""

from __future__ import annotations

from dataclasses import replace

from cart_cytopenia.domain.catalogues import DrugClass
from cart_cytopenia.domain.course import HCT, Finding, StemCellBoost
from cart_cytopenia.guidance.context import Context, describe_marrow, fmt
from cart_cytopenia.guidance.registry import Triggered, trigger


def dependent_lineages(ctx: Context) -> list[str]:
    """Lineages the patient depends on support for: transfusions, or severe neutropenia / G-CSF."""
    out = []
    if ctx.rbc_td:
        out.append("red cells (transfusion-dependent)")
    if ctx.plt_td:
        out.append("platelets (transfusion-dependent)")
    if ctx.anc_severe:
        out.append(f"neutrophils (ANC {fmt(ctx.anc)}/uL)")
    elif ctx.gcsf_active and ctx.anc is not None and ctx.neutrophils.significant:
        out.append("neutrophils (on G-CSF)")
    elif ctx.gcsf_active:
        out.append("neutrophils (G-CSF-dependent)")
    return out


def severe_failure(ctx: Context) -> list[str]:
    """Signs that the cytopenia is severe or has failed other measures."""
    out = []
    if ctx.anc_severe:
        out.append(f"ANC {fmt(ctx.anc)}/uL")
    if ctx.plt is not None and ctx.plt <= ctx.severe_platelets:
        out.append(f"platelets {fmt(ctx.plt)} x10^9/L")
    if ctx.hb is not None and ctx.hb <= ctx.severe_hb:
        out.append(f"Hb {fmt(ctx.hb)} g/dL")
    if ctx.gcsf_refractory:
        out.append("no response to G-CSF")
    if ctx.tpo_failed and ctx.tpo_course is not None:
        out.append(f"no response to {ctx.tpo_course.drug}")
    return out


INFECTION_CAVEAT = (
    "Exclude active infection first: a boost, immunosuppression or transplant is held back while "
    "an infection is uncontrolled."
)


def infection_gate(ctx: Context, hit: Triggered) -> Triggered:
    """Every boost, immunosuppression and transplant item carries the active-infection caveat,
    and is held back (variant 'held_infection', information only) while an active infection is
    not recorded as controlled."""
    hold = ctx.infection_hold()
    inputs = {**hit.inputs, "uncontrolled_infection": hold}
    if hold is None:
        return replace(hit, rationale=f"{hit.rationale} {INFECTION_CAVEAT}", inputs=inputs)
    return replace(
        hit,
        rationale=f"Held back: {hold}. {hit.rationale}",
        inputs=inputs,
        values={**hit.values, "hold": hold},
        variant="held_infection",
        urgency="info",
    )


def _boost_given(ctx: Context) -> StemCellBoost | None:
    boosts = [b for b in ctx.course.events_of(StemCellBoost) if b.day is not None and b.day >= 0]
    return boosts[-1] if boosts else None


def _hct_after_infusion(ctx: Context) -> HCT | None:
    hcts = [h for h in ctx.course.events_of(HCT) if h.day is not None and h.day >= 0]
    return hcts[-1] if hcts else None


@trigger("management.stem-cell-boost")
def autologous_boost(ctx: Context) -> Triggered | None:
    if _boost_given(ctx) or not ctx.prolonged_or_late:
        return None
    if ctx.prior_allo and ctx.course.patient.stored_cells.autologous is not True:
        return None  # after allo-HCT: the donor boost (management.stem-cell-boost.allogeneic)
    dep = dependent_lineages(ctx)
    severe = severe_failure(ctx)
    if len(dep) < 2 or not severe:
        return None
    failed_measures = ctx.gcsf_refractory or ctx.tpo_failed
    if not ctx.late and not failed_measures:
        return None
    m = ctx.marrow_after_infusion
    if m is None or ctx.relapse_day is not None:
        if m is None:
            ctx.missing(
                "No marrow after infusion: relapse and a secondary neoplasm must be excluded before a stem cell boost."
            )
        return None
    if not ctx.marrow_excludes_relapse_and_neoplasm(m):
        return None
    if not _recorded_yes(
        ctx,
        ctx.course.patient.stored_cells.autologous,
        "Stored autologous stem cells not recorded (patient.stored_cells.autologous): "
        "whether a stem cell boost is feasible cannot be decided.",
    ):
        return None
    return infection_gate(
        ctx,
        Triggered(
            rationale=(
                f"{ctx.phase.capitalize() if ctx.phase else ''} cytopenia in {len(dep)} lineages: {', '.join(dep)}; "
                f"severe: {', '.join(severe)}. Marrow day {m.day}: {describe_marrow(m)}; no relapse recorded. "
                "Stored autologous cells available. Preferred over allogeneic HCT; caution: the product may "
                "contain tumour cells."
            ),
            inputs={
                "day": ctx.day,
                "phase": ctx.phase,
                "dependent_lineages": dep,
                "severe": severe,
                "marrow_day": m.day,
                "stored_autologous_cells": True,
                "prior_allo_hct": ctx.prior_allo,
            },
            values={"marrow_day": m.day},
        ),
    )


def _recorded_yes(ctx: Context, answer: bool | None, when_unrecorded: str) -> bool:
    """``answer`` is a recorded yes; an unrecorded one is named as missing data (never read as
    no) with ``when_unrecorded``."""
    if answer is None:
        ctx.missing(when_unrecorded)
    return answer is True


def _graft_failure_picture(
    ctx: Context, *, prolonged_if_refractory: bool = False
) -> tuple[bool, str]:
    """Prior allo-HCT, persisting cytopenia, hypocellular marrow after infusion; late, or (for a
    boost) prolonged with severe G-CSF-refractory cytopenia (EHA/EBMT, Rejeski 2023)."""
    refractory_prolonged = (
        prolonged_if_refractory
        and ctx.phase == "prolonged"
        and ctx.gcsf_refractory
        and bool(severe_failure(ctx))
    )
    if not (ctx.prior_allo and (ctx.late or refractory_prolonged) and ctx.any_cytopenia):
        return False, ""
    m = ctx.marrow_after_infusion
    if m is None:
        ctx.missing(
            "No marrow after infusion: graft dysfunction (hypocellularity) behind the late cytopenia cannot be judged."
        )
        return False, ""
    if not ctx.marrow_hypocellular(m) or m.disease_present or ctx.relapse_day is not None:
        return False, ""
    if ctx.myeloid_findings(m):
        return False, ""
    return True, f"marrow day {m.day}: {describe_marrow(m)}"


@trigger("management.stem-cell-boost.allogeneic")
def allogeneic_boost(ctx: Context) -> Triggered | None:
    ok, marrow = _graft_failure_picture(ctx, prolonged_if_refractory=True)
    if not ok or _boost_given(ctx) or _hct_after_infusion(ctx):
        return None
    if not _recorded_yes(
        ctx,
        ctx.course.patient.stored_cells.allogeneic_donor,
        "Donor availability not recorded (patient.stored_cells.allogeneic_donor): an allogeneic "
        "stem cell boost cannot be judged.",
    ):
        return None
    when = (
        f"late cytopenia (day {ctx.day})"
        if ctx.late
        else f"prolonged severe G-CSF-refractory cytopenia (day {ctx.day}; EHA/EBMT: a boost need not wait for day 90)"
    )
    return infection_gate(
        ctx,
        Triggered(
            rationale=(
                f"Prior allogeneic HCT; {when}: {ctx.describe_cytopenias()}; {marrow}. "
                "Original donor or stored CD34+ cells available. Use an ex vivo T-cell-depleted (CD34-selected "
                "or TCRab-depleted) mobilised product."
            ),
            inputs={
                "day": ctx.day,
                "phase": ctx.phase,
                "cytopenic_lineages": ctx.cytopenic_lineages,
                "gcsf_refractory": ctx.gcsf_refractory,
                "donor_available": True,
            },
        ),
    )


@trigger("management.allo-hct.second")
def second_allo_hct(ctx: Context) -> Triggered | None:
    ok, marrow = _graft_failure_picture(ctx)
    if not ok or _hct_after_infusion(ctx):
        return None
    donor = ctx.course.patient.stored_cells.allogeneic_donor
    note = {
        True: "",
        False: ", especially as the original donor is unavailable",
        None: " (donor availability not recorded)",
    }[donor]
    return infection_gate(
        ctx,
        Triggered(
            rationale=f"Prior allogeneic HCT; late cytopenia (day {ctx.day}): {ctx.describe_cytopenias()}; {marrow}.",
            inputs={"day": ctx.day, "donor_available": donor},
            values={"donor": note},
            urgency="info" if donor else None,
        ),
    )


@trigger("management.allo-hct")
def allo_hct(ctx: Context) -> Triggered | None:
    if ctx.prior_allo or _hct_after_infusion(ctx):
        return None
    reasons = []
    m = ctx.marrow_after_infusion
    dep = dependent_lineages(ctx)
    if (
        ctx.prolonged_or_late
        and m is not None
        and ctx.marrow_aplastic(m)
        and len(dep) >= 2
        and m.disease_present is not True
    ):
        reasons.append(
            f"marrow day {m.day} aplastic ({describe_marrow(m)}) with {len(dep)} lineages dependent"
        )
    if ctx.paediatric and ctx.late and (ctx.rbc_td or ctx.plt_td or ctx.gcsf_active):
        what = ", ".join(dep) if dep else "on G-CSF"
        reasons.append(f"transplant-naive child still dependent beyond day 90 ({what})")
    if not reasons:
        return None
    auto_boost_possible = (
        ctx.course.patient.stored_cells.autologous is True
        and not _boost_given(ctx)
        and not ctx.paediatric
    )
    return infection_gate(
        ctx,
        Triggered(
            rationale="; ".join(reasons)
            + (
                ". An autologous boost (stored cells) is preferred first."
                if auto_boost_possible
                else "."
            )
            + " Best available donor.",
            inputs={
                "day": ctx.day,
                "paediatric": ctx.paediatric,
                "marrow_day": m.day if m else None,
                "dependent_lineages": dep,
                "stored_autologous_cells": ctx.course.patient.stored_cells.autologous,
            },
            values={"why": reasons[0].split(" (")[0]},
            urgency="info" if auto_boost_possible else None,
        ),
    )


@trigger("management.immunosuppression.lgl")
def immunosuppression_lgl(ctx: Context) -> Triggered | None:
    lgl = ctx.findings(Finding.LARGE_GRANULAR_LYMPHOCYTOSIS)
    if not lgl or not ctx.any_cytopenia:
        return None
    day = lgl[-1].day
    return infection_gate(
        ctx,
        Triggered(
            rationale=f"Large granular lymphocytosis recorded on day {day}; {ctx.describe_cytopenias()}.",
            inputs={"day": ctx.day, "lgl_day": day, "cytopenic_lineages": ctx.cytopenic_lineages},
            values={"lgl_day": day},
        ),
    )


@trigger("management.immunosuppression.immune-aplasia")
def immunosuppression_immune_aplasia(ctx: Context) -> Triggered | None:
    if not ctx.late or len(ctx.cytopenic_lineages) < 3:  # "severe trilineage aplasia"
        return None
    if ctx.findings(Finding.LARGE_GRANULAR_LYMPHOCYTOSIS):
        return None
    m = ctx.marrow_after_infusion
    if m is None or not ctx.marrow_excludes_relapse_and_neoplasm(m) or m.fibrosis:
        return None
    return infection_gate(
        ctx,
        Triggered(
            rationale=(
                f"Late cytopenia in {len(ctx.cytopenic_lineages)} lineages ({ctx.describe_cytopenias()}); "
                f"marrow day {m.day}: {describe_marrow(m)}. The immune mechanism is speculative."
            ),
            inputs={
                "day": ctx.day,
                "cytopenic_lineages": ctx.cytopenic_lineages,
                "marrow_day": m.day,
            },
        ),
    )


@trigger("management.myeloid-neoplasm.referral")
def myeloid_neoplasm_referral(ctx: Context) -> Triggered | None:
    found = ctx.myeloid_neoplasm_marrow
    if found is None:
        return None
    m, findings = found
    return Triggered(
        rationale=(
            f"Marrow day {m.day}: {'; '.join(findings)} ({describe_marrow(m)}). A secondary myeloid "
            f"neoplasm is not a CAR-T cytopenia to wait out: {ctx.describe_cytopenias()}. Stem cell boost "
            "and TPO-RA are not suggested while it stands."
        ),
        inputs={
            "day": ctx.day,
            "marrow_day": m.day,
            "findings": findings,
            "myeloid_neoplasm_recorded": m.myeloid_neoplasm,
            "cytogenetics": m.cytogenetics,
            "ngs": m.ngs,
        },
        values={"marrow_day": m.day, "what": findings[0]},
    )


@trigger("management.expectant")
def expectant(ctx: Context) -> Triggered | None:
    if not (ctx.prolonged_or_late and ctx.any_cytopenia):
        return None
    m = ctx.marrow_after_infusion
    if m is None or not ctx.marrow_excludes_relapse_and_neoplasm(m) or m.fibrosis:
        return None
    if ctx.relapse_day is not None or ctx.infections_active or ctx.iechs.suspected:
        return None
    if ctx.marrow_aplastic(m) or ctx.gcsf_refractory or ctx.tpo_failed:
        return None  # severe aplasia or failed measures: not the usual slowly recovering course
    return Triggered(
        rationale=(
            f"{ctx.phase.capitalize() if ctx.phase else ''} cytopenia ({ctx.describe_cytopenias()}); marrow day {m.day}: "
            f"{describe_marrow(m)}; no relapse, active infection or IEC-HS recorded. Recovery can take 6-12 months."
        ),
        inputs={"day": ctx.day, "marrow_day": m.day, "cytopenic_lineages": ctx.cytopenic_lineages},
        values={"marrow_day": m.day},
    )


@trigger("management.growth-factors.paediatric-defer")
def paediatric_defer(ctx: Context) -> Triggered | None:
    if not (ctx.paediatric and ctx.prolonged_or_late and ctx.any_cytopenia):
        return None
    gcsf = ctx.meds_active(DrugClass.GCSF)
    gcsf_text = f"; on G-CSF since day {min(m.start for m in gcsf)}" if gcsf else ""
    return Triggered(
        rationale=(
            f"Child aged {fmt(ctx.age_years)} years, {ctx.phase} cytopenia: {ctx.describe_cytopenias()}{gcsf_text}. "
            "Myeloid growth factors might exacerbate CRS; TPO mimetics might trigger clonal evolution."
        ),
        inputs={"day": ctx.day, "age_years": ctx.age_years, "on_gcsf": bool(gcsf)},
        values={"gcsf": gcsf_text},
    )


@trigger("management.follow-up")
def follow_up(ctx: Context) -> Triggered | None:
    end = ctx.follow_up_end_day
    if not ctx.late or ctx.day > end:
        return None
    years = ctx.settings.prophylaxis.follow_up_years
    return Triggered(
        rationale=f"Day {ctx.day} (late phase): many patients return to their referring doctors by now.",
        inputs={"day": ctx.day, "follow_up_end_day": end},
        values={"end_day": end, "years": years},
    )
