"""IgG: monitoring after CD19/BCMA CAR-T and IgG replacement (IVIG) with recurrent or serious
infections.

The review links "longstanding hypogammaglobulinemia" to severe infections (refs 7-10) but gives
no IgG level for replacement; the level (IgG < 400 mg/dL, strict) and its sources are in
``thresholds.toml`` (``igg_replacement_below``). IgG values arrive in mg/dL whatever unit was
recorded (g/L, g/dL and mg/L are converted when the course is read). An IgG that was not measured
is "not measured": it asks for a level (``workup.igg``) and a missing-data note, never "normal".
"""

from __future__ import annotations

from cart_cytopenia.domain.catalogues import DrugClass
from cart_cytopenia.domain.course import Infection, Severity
from cart_cytopenia.guidance.context import Context, LabValue, fmt
from cart_cytopenia.guidance.registry import Triggered, trigger

SERIOUS = (Severity.SEVERE, Severity.LIFE_THREATENING)


def window_infections(ctx: Context) -> list[Infection]:
    """Infections that started within the look-back window up to the day (before infusion too)."""
    lookback = ctx.t.num("ivig_infection_lookback_days")
    return sorted(
        (
            i
            for i in ctx.course.events_of(Infection)
            if i.start <= ctx.day and ctx.day - i.start <= lookback
        ),
        key=lambda i: i.start,
    )


def infection_indication(ctx: Context) -> str | None:
    """'recurrent infections (...)' or 'a serious infection (...)' when the infections in the
    window make IgG replacement a question, else None."""
    found = window_infections(ctx)
    serious = [i for i in found if i.severity in SERIOUS]
    if len(found) >= ctx.t.whole("ivig_recurrent_infections"):
        return f"{len(found)} infections: {ctx.describe_infections(found)}"
    if serious:
        return f"a serious infection: {ctx.describe_infections(serious)}"
    return None


def recent_igg(ctx: Context) -> LabValue | None:
    """The latest IgG (mg/dL) when measured within the re-check interval, else None."""
    return ctx.latest("igg", within_days=ctx.t.whole("igg_recheck_days"))


@trigger("management.ivig")
def ivig(ctx: Context) -> Triggered | None:
    infections = infection_indication(ctx)
    if infections is None:
        return None  # a low IgG without infections is not an indication
    if ctx.meds_recent(DrugClass.IVIG, ctx.t.whole("ivig_recent_days")):
        return None  # replacement under way; the IgG measured now is not the patient's own
    last = recent_igg(ctx)
    below = ctx.t.num("igg_replacement_below")
    if last is None:
        ctx.missing(
            f"No IgG within {ctx.t.whole('igg_recheck_days')} days with {infections}: "
            "whether IgG replacement is indicated cannot be decided (IgG not measured, not normal)."
        )
        return None
    if last.value >= below:
        return None
    return Triggered(
        rationale=(
            f"IgG {fmt(last.value)} mg/dL on day {last.day} (< {fmt(below)} mg/dL) with "
            f"{infections}. The review: prolonged hypogammaglobulinaemia 'poses a high risk of "
            "acquiring infections' (no IgG level given there); the level is the AAAAI/NCCN one "
            "(Hill et al. for CAR-T: <= 400 mg/dL)."
        ),
        inputs={
            "day": ctx.day,
            "igg_mg_dl": last.value,
            "igg_day": last.day,
            "infections": [i.organism or i.category.value for i in window_infections(ctx)],
            "igg_replacement_below_mg_dl": below,
        },
        values={
            "igg": fmt(last.value),
            "igg_day": last.day,
            "below": fmt(below),
            "infections": infections.split(":")[0],
        },
    )


@trigger("workup.igg")
def igg(ctx: Context) -> Triggered | None:
    infections = infection_indication(ctx)
    target = ctx.target
    by_product = ctx.prolonged_or_late and target is not None and target.upper() in ("CD19", "BCMA")
    if not by_product and infections is None:
        if ctx.prolonged_or_late and target is None:
            ctx.missing(
                "Product target unknown: hypogammaglobulinaemia monitoring (CD19, BCMA) cannot be decided."
            )
        return None
    if recent_igg(ctx) is not None:
        return None
    last = ctx.latest("igg")
    text = f"last IgG {fmt(last.value)} mg/dL on day {last.day}" if last else "no IgG recorded"
    why = f"{target}-directed CAR-T ({ctx.course.product.id})" if by_product else ""
    if infections is not None:
        why = "; ".join(x for x in (why, infections) if x)
    return Triggered(
        rationale=f"{why}; {text}.",
        inputs={
            "day": ctx.day,
            "target": target,
            "igg": last.value if last else None,
            "igg_day": last.day if last else None,
        },
        values={
            "target": target,
            "last": text,
            "infections": (infections or "").split(":")[0],
            "below": fmt(ctx.t.num("igg_replacement_below")),
        },
        variant="default" if by_product else "infections",
    )
