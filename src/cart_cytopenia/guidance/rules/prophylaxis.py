"""Infection prophylaxis: antibacterial, antifungal (mould-active when needed), antiviral, PJP.

Day numbers and durations from the institutional settings ``[prophylaxis]`` (defaults: PJP from
day 28, antiviral 12 months, CD4 > 200/uL to stop PJP prophylaxis).
"""

from __future__ import annotations

from cart_cytopenia.domain.catalogues import DrugClass
from cart_cytopenia.guidance.context import Context, fmt
from cart_cytopenia.guidance.registry import Triggered, rule


def neutropenia_prophylaxis(ctx: Context) -> tuple[bool, str]:
    """(indicated, why): from day 0 until ANC recovery, and again for severe neutropenia."""
    if ctx.day < 0:
        return False, ""
    if ctx.anc_severe:
        return True, f"ANC {fmt(ctx.anc)}/uL on day {ctx.anc_day}"
    if ctx.phase == "early":
        recovered = ctx.neutropenia_ever_severe and ctx.first_recovery_day is not None
        if not recovered:
            if ctx.anc is None:
                return True, "from day 0; no ANC recorded"
            return True, "from day 0 until ANC recovery"
    return False, ""


def _covered(
    ctx: Context, rec_cls: DrugClass, why: str, inputs_extra: dict[str, object]
) -> Triggered:
    active = ctx.meds_active(rec_cls)
    inputs = {
        "day": ctx.day,
        "anc": ctx.anc,
        "anc_day": ctx.anc_day,
        "first_recovery_day": ctx.first_recovery_day,
        "active": sorted({m.drug_id for m in active}),
        **inputs_extra,
    }
    if active:
        return Triggered(
            rationale=f"Indicated ({why}); on {ctx.med_names(active)} since day {min(m.start for m in active)}.",
            inputs=inputs,
            values={"drugs": ctx.med_names(active), "why": why},
            variant="covered",
            urgency="info",
        )
    return Triggered(
        rationale=f"Indicated ({why}); no {rec_cls.value} agent active on day {ctx.day}.",
        inputs=inputs,
        values={"why": why},
    )


@rule("prophylaxis.antibacterial")
def antibacterial(ctx: Context) -> Triggered | None:
    indicated, why = neutropenia_prophylaxis(ctx)
    if not indicated:
        return None
    return _covered(ctx, DrugClass.ANTIBACTERIAL, why, {})


@rule("prophylaxis.antifungal")
def antifungal(ctx: Context) -> Triggered | None:
    indicated, why = neutropenia_prophylaxis(ctx)
    if not indicated:
        return None
    return _covered(ctx, DrugClass.ANTIFUNGAL, why, {})


@rule("prophylaxis.antifungal-mould-active")
def antifungal_mould_active(ctx: Context) -> Triggered | None:
    if not (ctx.prolonged_or_late and ctx.anc_severe):
        return None
    if ctx.meds_active(DrugClass.ANTIFUNGAL_MOULD_ACTIVE):
        return None
    other = ctx.meds_active(DrugClass.ANTIFUNGAL)
    current = f" instead of {ctx.med_names(other)}" if other else ""
    return Triggered(
        rationale=f"{ctx.phase.capitalize() if ctx.phase else ''} severe neutropenia: ANC {fmt(ctx.anc)}/uL on day {ctx.anc_day}; "
        + (f"on {ctx.med_names(other)} (not mould-active)." if other else "no antifungal active."),
        inputs={
            "day": ctx.day,
            "anc": ctx.anc,
            "anc_day": ctx.anc_day,
            "antifungal": sorted({m.drug_id for m in other}),
        },
        values={
            "anc": fmt(ctx.anc),
            "anc_day": ctx.anc_day,
            "phase": ctx.phase,
            "current": current,
        },
    )


@rule("prophylaxis.antiviral")
def antiviral(ctx: Context) -> Triggered | None:
    end = ctx.antiviral_end_day
    if not 0 <= ctx.day <= end:
        return None
    active = ctx.meds_active(DrugClass.ANTIVIRAL)
    inputs = {"day": ctx.day, "end_day": end, "active": sorted({m.drug_id for m in active})}
    if active:
        return Triggered(
            rationale=f"Day {ctx.day} of {end}; on {ctx.med_names(active)} since day {min(m.start for m in active)}.",
            inputs=inputs,
            values={"drugs": ctx.med_names(active), "end_day": end},
            variant="covered",
            urgency="info",
        )
    return Triggered(
        rationale=f"Day {ctx.day}: antiviral prophylaxis runs from infusion to day {end}; no antiviral active.",
        inputs=inputs,
        values={"end_day": end},
    )


@rule("prophylaxis.pjp")
def pjp(ctx: Context) -> Triggered | None:
    pj = ctx.settings.prophylaxis
    if ctx.day < pj.pjp_start_day:
        return None
    stop = fmt(pj.cd4_stop_above_per_ul)
    cd4 = ctx.cd4
    inputs = {
        "day": ctx.day,
        "pjp_start_day": pj.pjp_start_day,
        "cd4": cd4.value if cd4 else None,
        "cd4_day": cd4.day if cd4 else None,
        "cytopenic_lineages": ctx.cytopenic_lineages,
        "sulfonamide_allergy": ctx.sulfonamide_allergy,
    }
    if cd4 is not None and cd4.value > pj.cd4_stop_above_per_ul:
        return Triggered(
            rationale=f"CD4 {fmt(cd4.value)}/uL on day {cd4.day}, above {stop}/uL.",
            inputs=inputs,
            values={"cd4": fmt(cd4.value), "cd4_day": cd4.day, "cd4_stop": stop},
            variant="may_stop",
            urgency="info",
        )
    active = ctx.meds_active(DrugClass.PJP)
    cd4_text = f"last CD4 {fmt(cd4.value)}/uL on day {cd4.day}" if cd4 else "no CD4 count recorded"
    if active:
        tmp_smx = [m for m in active if DrugClass.MYELOSUPPRESSIVE in m.classes]
        note = (
            " TMP-SMX during cytopenia: pentamidine or atovaquone are acceptable alternatives."
            if tmp_smx and ctx.any_cytopenia
            else ""
        )
        return Triggered(
            rationale=f"On {ctx.med_names(active)} since day {min(m.start for m in active)}; {cd4_text}.{note}",
            inputs=inputs,
            values={"drugs": ctx.med_names(active), "cd4_stop": stop},
            variant="covered",
            urgency="info",
        )
    if ctx.sulfonamide_allergy:
        agent, why = "pentamidine or atovaquone", "sulfonamide allergy recorded"
    elif ctx.any_cytopenia:
        agent, why = (
            "pentamidine or atovaquone",
            f"persistent cytopenia ({ctx.describe_cytopenias()})",
        )
    else:
        agent, why = "TMP-SMX", "no cytopenia or sulfonamide allergy recorded"
    return Triggered(
        rationale=f"Day {ctx.day} (due from day {pj.pjp_start_day}); no PJP agent active; {cd4_text}. {agent}: {why}.",
        inputs={**inputs, "agent": agent},
        values={"agent": agent, "cd4_stop": stop},
    )


@rule("alert.pjp-missing")
def pjp_missing(ctx: Context) -> Triggered | None:
    pj = ctx.settings.prophylaxis
    after = max(ctx.t.whole("pjp_missing_alert_after_day"), pj.pjp_start_day)
    if ctx.day <= after or ctx.cd4_above_stop or ctx.meds_active(DrugClass.PJP):
        return None
    cd4 = ctx.cd4
    cd4_text = f"{fmt(cd4.value)}/uL on day {cd4.day}" if cd4 else "not recorded"
    return Triggered(
        rationale=f"Day {ctx.day}: no PJP agent active (due from day {pj.pjp_start_day}); CD4 {cd4_text}.",
        inputs={
            "day": ctx.day,
            "pjp_start_day": pj.pjp_start_day,
            "cd4": cd4.value if cd4 else None,
        },
        values={"day": ctx.day, "start": pj.pjp_start_day, "cd4": cd4_text},
    )
