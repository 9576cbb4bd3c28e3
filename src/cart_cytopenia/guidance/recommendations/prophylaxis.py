"""Infection prophylaxis: antibacterial, antifungal (mould-active when needed), antiviral, PJP.

Day numbers, durations and the policy where the review and the EHA/EBMT consensus differ come
from the institutional settings ``[prophylaxis]`` (defaults: the review; PJP from day 28,
antiviral 12 months, CD4 > 200/uL to stop PJP prophylaxis). Coverage is checked by what a drug
prevents (the drug catalogue's ``covers``), not by its class: letermovir is an antiviral that
prevents CMV only.
"""

from __future__ import annotations

from collections.abc import Mapping

from cart_cytopenia.domain.catalogues import Cover, DrugClass
from cart_cytopenia.domain.course import Medication
from cart_cytopenia.guidance.context import Context, fmt
from cart_cytopenia.guidance.registry import Triggered, trigger

REVIEW_DIFFERS = "the review differs: everyone from day 0 until ANC recovery"
EHA_DIFFERS = "EHA/EBMT differs: only CAR-HEMATOTOX high-risk patients with ANC < 500/uL"


def neutropenia_prophylaxis(ctx: Context) -> tuple[bool, str]:
    """(indicated, why) under the institution's policy (settings prophylaxis.antibacterial_antifungal)."""
    if ctx.day < 0:
        return False, ""
    if ctx.settings.prophylaxis.antibacterial_antifungal == "eha-ebmt":
        return _eha_ebmt_indication(ctx)
    if ctx.anc_severe:
        return True, f"ANC {fmt(ctx.anc)}/uL on day {ctx.anc_day}"
    if ctx.phase == "early":
        recovered = ctx.neutropenia_ever_severe and ctx.first_recovery_day is not None
        if not recovered:
            if ctx.anc is None:
                return True, "from day 0; no ANC recorded"
            return True, "from day 0 until ANC recovery"
    return False, ""


def other_source(ctx: Context) -> str:
    """The position of the source the institution did not choose (said in every rationale)."""
    if ctx.settings.prophylaxis.antibacterial_antifungal == "eha-ebmt":
        return f" Policy EHA/EBMT (settings); {REVIEW_DIFFERS}."
    return f" Policy: the review (settings); {EHA_DIFFERS}."


def _eha_ebmt_indication(ctx: Context) -> tuple[bool, str]:
    """EHA/EBMT (Rejeski 2023, Table 3): high-risk patients once ANC < 500/uL. An unknown risk
    group is not read as low risk."""
    below = ctx.anc is not None and ctx.anc < ctx.t.num("eha_ebmt_prophylaxis_anc_below")
    if not below:
        return False, ""
    risk = ctx.a.hematotox.risk
    if risk == "low":
        return False, ""
    group = (
        "CAR-HEMATOTOX high risk" if risk == "high" else "CAR-HEMATOTOX unknown (not read as low)"
    )
    return (
        True,
        f"EHA/EBMT policy: {group}, ANC {fmt(ctx.anc)}/uL on day {ctx.anc_day}; {REVIEW_DIFFERS}",
    )


def _not_covering(ctx: Context, cls: DrugClass, cover: Cover) -> list[Medication]:
    """Active drugs of the class that do not prevent ``cover`` (e.g. letermovir for HSV/VZV)."""
    return [m for m in ctx.meds_active(cls) if cover not in m.covers]


def _coverage(
    ctx: Context,
    cover: Cover,
    cls: DrugClass,
    inputs: Mapping[str, object],
    values: Mapping[str, object],
    wording: tuple[str, str, str, str, str],
) -> Triggered:
    """The answer of a prophylaxis that is due: "covered" (info) when a drug preventing ``cover``
    is active, else the gap, naming the active drugs of ``cls`` that prevent something else.

    ``wording``: (what opens both rationales, the word before the drugs when covered, the
    sentence when nothing covers, what follows "<drugs> is active but", what closes both);
    ``inputs``, ``values``: the trigger's own (the drugs are added here)."""
    head, on, nothing, but, tail = wording
    active = ctx.meds_covering(cover)
    wrong = _not_covering(ctx, cls, cover)
    inputs = {
        **inputs,
        "active": sorted({m.drug_id for m in active}),
        "active_not_covering": sorted({m.drug_id for m in wrong}),
    }
    if active:
        return Triggered(
            rationale=f"{head}{on} {ctx.med_names(active)} since day {min(m.start for m in active)}.{tail}",
            inputs=inputs,
            values={"drugs": ctx.med_names(active), **values},
            variant="covered",
            urgency="info",
        )
    gap = f" {ctx.med_names(wrong)} is active but {but}." if wrong else ""
    return Triggered(rationale=f"{head}{nothing}{gap}{tail}", inputs=inputs, values=dict(values))


def _neutropenia_coverage(ctx: Context, cover: Cover, cls: DrugClass) -> Triggered | None:
    """Antibacterial or antifungal (yeast) prophylaxis while neutropenia prophylaxis is indicated."""
    indicated, why = neutropenia_prophylaxis(ctx)
    if not indicated:
        return None
    inputs = {
        "day": ctx.day,
        "anc": ctx.anc,
        "anc_day": ctx.anc_day,
        "first_recovery_day": ctx.first_recovery_day,
    }
    wording = (
        f"Indicated ({why}); ",
        "on",
        f"nothing preventing {cover.value} active on day {ctx.day}.",
        f"does not prevent {cover.value}",
        other_source(ctx),
    )
    return _coverage(ctx, cover, cls, inputs, {"why": why}, wording)


@trigger("prophylaxis.antibacterial")
def antibacterial(ctx: Context) -> Triggered | None:
    return _neutropenia_coverage(ctx, Cover.BACTERIA, DrugClass.ANTIBACTERIAL)


@trigger("prophylaxis.antifungal")
def antifungal(ctx: Context) -> Triggered | None:
    return _neutropenia_coverage(ctx, Cover.YEAST, DrugClass.ANTIFUNGAL)


def steroid_days(ctx: Context, lookback: int = 30) -> int:
    """Days of the last ``lookback`` (to the day) with a corticosteroid active."""
    days: set[int] = set()
    for m in ctx.course.medications_with(DrugClass.CORTICOSTEROID):
        last = min(m.end_day if m.end_day is not None else ctx.day, ctx.day)
        days.update(range(max(m.start, ctx.day - lookback + 1), last + 1))
    return len(days)


def _mould_reasons(ctx: Context) -> list[tuple[str, str]]:
    """(short, full) reasons for a mould-active azole."""
    reasons = []
    if ctx.prolonged_or_late and ctx.anc_severe:
        reasons.append((str(ctx.phase), f"{ctx.phase} severe neutropenia"))
    n = steroid_days(ctx)
    if ctx.anc_severe and n >= ctx.t.whole("mould_active_steroid_days"):
        reasons.append(
            (
                "on corticosteroids",
                f"corticosteroids on {n} of the last 30 days during severe neutropenia",
            )
        )
    return reasons


@trigger("prophylaxis.antifungal-mould-active")
def antifungal_mould_active(ctx: Context) -> Triggered | None:
    reasons = _mould_reasons(ctx)
    if not reasons or ctx.meds_covering(Cover.MOULD):
        return None
    other = ctx.meds_covering(Cover.YEAST)
    current = f" instead of {ctx.med_names(other)}" if other else ""
    full = "; ".join(r for _, r in reasons)
    return Triggered(
        rationale=f"{full[0].upper()}{full[1:]}: ANC {fmt(ctx.anc)}/uL on day {ctx.anc_day}; "
        + (f"on {ctx.med_names(other)} (not mould-active)." if other else "no antifungal active."),
        inputs={
            "day": ctx.day,
            "anc": ctx.anc,
            "anc_day": ctx.anc_day,
            "antifungal": sorted({m.drug_id for m in other}),
            "corticosteroid_days_30": steroid_days(ctx),
            "reasons": [r for _, r in reasons],
        },
        values={
            "anc": fmt(ctx.anc),
            "anc_day": ctx.anc_day,
            "phase": ", ".join(short for short, _ in reasons),
            "current": current,
        },
    )


def _antiviral_window(ctx: Context) -> tuple[int, int, bool]:
    """(start day, end day, extended by CD4): the EHA/EBMT setting keeps it on past the months
    while the latest post-infusion CD4 is not above the stop level."""
    start, end = ctx.antiviral_start_day, ctx.antiviral_end_day
    extended = (
        ctx.settings.prophylaxis.antiviral_until_cd4_above
        and ctx.day > end
        and not ctx.cd4_above_stop
    )
    return start, end, extended


@trigger("prophylaxis.antiviral")
def antiviral(ctx: Context) -> Triggered | None:
    start, end, extended = _antiviral_window(ctx)
    if not (start <= ctx.day <= end or extended):
        return None
    since = "lymphodepletion" if start < 0 else "infusion"
    cd4 = ctx.cd4
    cd4_text = f"CD4 {fmt(cd4.value)}/uL on day {cd4.day}" if cd4 else "no CD4 after infusion"
    plan = (
        f"from {since} (day {start}) to day {end}"
        + (
            f", then until CD4 > {fmt(ctx.settings.prophylaxis.cd4_stop_above_per_ul)}/uL ({cd4_text})"
            if extended
            else ""
        )
        + "; the review: 6-12 months; EHA/EBMT: from lymphodepletion to 1 year and/or CD4 > 200/uL"
    )
    inputs = {"day": ctx.day, "start_day": start, "end_day": end, "extended_by_cd4": extended}
    wording = (
        f"Day {ctx.day}: {plan}. ",
        "On",
        "Nothing preventing HSV/VZV active.",
        "covers CMV only, not HSV/VZV",
        "",
    )
    return _coverage(ctx, Cover.HSV_VZV, DrugClass.ANTIVIRAL, inputs, {"end_day": end}, wording)


@trigger("prophylaxis.pjp")
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
    if cd4 is not None and ctx.cd4_above_stop:
        return Triggered(
            rationale=f"Latest CD4 after infusion {fmt(cd4.value)}/uL on day {cd4.day}, above {stop}/uL.",
            inputs=inputs,
            values={"cd4": fmt(cd4.value), "cd4_day": cd4.day, "cd4_stop": stop},
            variant="may_stop",
            urgency="info",
        )
    active = ctx.meds_covering(Cover.PJP)
    cd4_text = (
        f"latest CD4 after infusion {fmt(cd4.value)}/uL on day {cd4.day}"
        if cd4
        else "no CD4 count after infusion"
    )
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


@trigger("alert.pjp-missing")
def pjp_missing(ctx: Context) -> Triggered | None:
    pj = ctx.settings.prophylaxis
    after = max(ctx.t.whole("pjp_missing_alert_after_day"), pj.pjp_start_day)
    if ctx.day <= after or ctx.cd4_above_stop or ctx.meds_covering(Cover.PJP):
        return None
    cd4 = ctx.cd4
    cd4_text = f"{fmt(cd4.value)}/uL on day {cd4.day}" if cd4 else "not recorded after infusion"
    return Triggered(
        rationale=f"Day {ctx.day}: no PJP agent active (due from day {pj.pjp_start_day}); latest CD4 {cd4_text}.",
        inputs={
            "day": ctx.day,
            "pjp_start_day": pj.pjp_start_day,
            "cd4": cd4.value if cd4 else None,
            "cd4_day": cd4.day if cd4 else None,
        },
        values={"day": ctx.day, "start": pj.pjp_start_day, "cd4": cd4_text},
    )
