"""Thrombopoietin-receptor agonists: when to start, when to hold back, when to stop.

Timing and doses from the institutional settings ``[tpo_ra]`` (defaults: from day 42, 'well
beyond day 30'; eltrombopag 75 mg up to 150 mg or romiplostim 10 ug/kg weekly; stop after 4-6
weeks without response). Severity and response conventions in ``thresholds.toml``.
"""

from __future__ import annotations

from cart_cytopenia.domain.catalogues import DrugClass
from cart_cytopenia.domain.course import TransfusionProduct
from cart_cytopenia.guidance.context import Context, describe_marrow, fmt
from cart_cytopenia.guidance.recommendations.transfusion import ticaht_inputs, ticaht_note
from cart_cytopenia.guidance.registry import Triggered, trigger


def _platelet_tx_28d(ctx: Context) -> int:
    return ctx.transfusions(TransfusionProduct.PLATELETS, ctx.day - 27, ctx.day)


def _other_causes(ctx: Context) -> list[str]:
    out = list(ctx.other_cause_recorded)
    if ctx.iechs.suspected:
        out.append(f"IEC-HS {ctx.iechs.level_text()}")
    if ctx.tma_suspected:
        out.append("TA-TMA suspected")
    return out


def _given_before(ctx: Context) -> bool:
    """A TPO-RA course already given and stopped (the review's trial of 4-6 weeks was had)."""
    return any(
        m.end_day is not None and m.end_day < ctx.day
        for m in ctx.course.medications_with(DrugClass.TPO_RA)
    )


def _inputs(ctx: Context) -> dict[str, object]:
    return {
        "day": ctx.day,
        "platelets": ctx.plt,
        "platelets_day": ctx.plt_day,
        "platelet_transfusions_28d": _platelet_tx_28d(ctx),
        "platelet_transfusion_dependent": ctx.plt_td,
        "phase": ctx.phase,
        "paediatric": ctx.paediatric,
        **ticaht_inputs(ctx),
    }


@trigger("management.tpo-ra.start")
def tpo_ra_start(ctx: Context) -> Triggered | None:
    s = ctx.settings.tpo_ra
    if ctx.paediatric or ctx.tpo_course is not None or ctx.day < s.consider_from_day:
        return None
    if not ctx.plt_td or _given_before(ctx):
        return None
    n = _platelet_tx_28d(ctx)
    severe = n >= ctx.t.whole("tpo_ra_severe_platelet_transfusions_28d")
    if not severe and not ctx.late:
        return None  # modest needs in the prolonged phase: management.tpo-ra.reserve
    others = _other_causes(ctx)
    if others:
        return None
    if ctx.paediatric is None:
        ctx.missing("Age unknown: the paediatric caution about TPO mimetics cannot be applied.")
    bleeding = ctx.high_bleeding_risk
    if bleeding is None:
        ctx.missing(
            "Bleeding risk not recorded: the review reserves TPO-RA for patients at high risk of "
            "bleeding (record a 'high-bleeding-risk' or 'bleeding' finding)."
        )
    m = ctx.marrow_after_infusion
    marrow_done = m is not None and ctx.marrow_excludes_relapse_and_neoplasm(m)
    variant = "default" if bleeding else "if_bleeding_risk"
    if not marrow_done:
        variant = "await_marrow"
    return Triggered(
        rationale=(
            f"Day {ctx.day} ({ctx.phase}): {n} platelet transfusions in 28 days, platelets "
            f"{fmt(ctx.plt)} x10^9/L on day {ctx.plt_day}.{ticaht_note(ctx)} "
            f"{_etiology_text(ctx, marrow_done)} "
            + (
                "High bleeding risk recorded."
                if bleeding
                else "Bleeding risk not recorded: the review reserves TPO-RA for patients at "
                "high risk of bleeding."
            )
            + ("" if severe else " Needs are modest: forgoing it is also reasonable.")
        ),
        inputs={
            **_inputs(ctx),
            "severe_needs": severe,
            "high_bleeding_risk": bleeding,
            "marrow_excludes_other_causes": marrow_done,
        },
        values={
            "elt_start": s.eltrombopag_start_mg,
            "elt_max": s.eltrombopag_max_mg,
            "romi": s.romiplostim_ug_per_kg_week,
        },
        variant=variant,
        urgency="info" if variant == "await_marrow" else None,
    )


def _etiology_text(ctx: Context, marrow_done: bool) -> str:
    """What is known of a cause other than CAR-T (the review: 'without clear etiology other than
    CAR-T'): a marrow after infusion must have excluded relapse and a myeloid neoplasm."""
    m = ctx.marrow_after_infusion
    if marrow_done and m is not None:
        return f"Marrow day {m.day}: {describe_marrow(m)}; no other cause recorded."
    if m is None:
        return (
            "No marrow after infusion: relapse and MDS are not excluded, so the TPO-RA waits for "
            "the marrow evaluation."
        )
    return (
        f"Marrow day {m.day} ({describe_marrow(m)}) does not state that disease and dysplasia are "
        "absent: the TPO-RA waits until relapse and MDS are excluded."
    )


@trigger("management.tpo-ra.reserve")
def tpo_ra_reserve(ctx: Context) -> Triggered | None:
    s = ctx.settings.tpo_ra
    if ctx.paediatric or ctx.tpo_course is not None or ctx.day < s.consider_from_day:
        return None
    if ctx.phase != "prolonged" or not ctx.plt_td or _given_before(ctx):
        return None
    n = _platelet_tx_28d(ctx)
    if n >= ctx.t.whole("tpo_ra_severe_platelet_transfusions_28d"):
        return None
    return Triggered(
        rationale=f"Day {ctx.day}: {n} platelet transfusions in 28 days (less than weekly); platelets {fmt(ctx.plt)} x10^9/L on day {ctx.plt_day}.{ticaht_note(ctx)}",
        inputs=_inputs(ctx),
        values={"n": n},
    )


@trigger("management.tpo-ra.stop")
def tpo_ra_stop(ctx: Context) -> Triggered | None:
    c = ctx.tpo_course
    if c is None:
        return None
    base = {
        **_inputs(ctx),
        "drug": c.drug,
        "start_day": c.start,
        "weeks": c.weeks,
        "platelets_at_start": c.platelets_at_start.value if c.platelets_at_start else None,
        "platelet_transfusions_28d_before_start": c.transfusions_before,
    }
    if ctx.platelets_recovered and ctx.plt_day is not None and ctx.plt_day > c.start:
        return Triggered(
            rationale=f"On {c.drug} since day {c.start}; platelets {fmt(ctx.plt)} x10^9/L on day {ctx.plt_day}, no longer transfusion-dependent.",
            inputs=base,
            values={"drug": c.drug, "start": c.start, "plt": fmt(ctx.plt)},
        )
    if c.weeks < ctx.settings.tpo_ra.no_response_consider_stop_weeks:
        return None
    response = ctx.tpo_response()
    if response is None:
        ctx.missing(
            f"No platelet count or transfusion record around the start of {c.drug}: its response cannot be judged."
        )
        return None
    if response:
        return None
    if c.weeks >= ctx.settings.tpo_ra.no_response_stop_weeks:
        return None  # one message: from here alert.tpo-ra-no-response says it, as a warning
    return Triggered(
        rationale=_no_response_text(ctx),
        inputs=base,
        values={"drug": c.drug, "weeks": c.weeks, "start": c.start},
        variant="no_response",
    )


def _no_response_text(ctx: Context) -> str:
    c = ctx.tpo_course
    assert c is not None
    start = (
        f"platelets {fmt(c.platelets_at_start.value)} at the start"
        if c.platelets_at_start
        else "no platelet count at the start"
    )
    return (
        f"On {c.drug} since day {c.start} ({c.weeks} weeks): {start}, {fmt(ctx.plt)} x10^9/L on day "
        f"{ctx.plt_day}; platelet transfusions {c.transfusions_last_28} in the last 28 days vs "
        f"{c.transfusions_before} in the 28 days before it."
    )


@trigger("alert.tpo-ra-no-response")
def tpo_ra_no_response(ctx: Context) -> Triggered | None:
    c = ctx.tpo_course
    if c is None or c.weeks < ctx.settings.tpo_ra.no_response_stop_weeks:
        return None
    if ctx.platelets_recovered or ctx.tpo_response() is not False:
        return None
    return Triggered(
        rationale=_no_response_text(ctx),
        inputs={**_inputs(ctx), "drug": c.drug, "start_day": c.start, "weeks": c.weeks},
        values={"drug": c.drug, "weeks": c.weeks, "start": c.start},
    )


@trigger("alert.paediatric-tpo-ra")
def paediatric_tpo_ra(ctx: Context) -> Triggered | None:
    c = ctx.tpo_course
    if c is None or not ctx.paediatric:
        return None
    return Triggered(
        rationale=f"{c.drug} since day {c.start} in a child aged {fmt(ctx.age_years)} years.",
        inputs={"day": ctx.day, "drug": c.drug, "start_day": c.start, "age_years": ctx.age_years},
        values={"drug": c.drug},
    )
