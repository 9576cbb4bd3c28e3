"""IEC-HS treatment (the signals are ``Context.iechs``; thresholds in thresholds.toml)."""

from __future__ import annotations

from cart_cytopenia.domain.catalogues import DrugClass
from cart_cytopenia.domain.course import IECHS
from cart_cytopenia.guidance.context import Context
from cart_cytopenia.guidance.registry import Triggered, rule


@rule("management.iec-hs.treat")
def treat(ctx: Context) -> Triggered | None:
    s = ctx.iechs
    if not s.high(ctx.t.whole("iechs_min_supportive")):
        return None
    if ctx.meds_active(DrugClass.IL1_BLOCKADE):
        return None  # already on anakinra: see management.iec-hs.refractory
    features = ", ".join(s.features())
    steroids = ctx.meds_active(DrugClass.CORTICOSTEROID)
    on = f" On {ctx.med_names(steroids)}." if steroids else ""
    return Triggered(
        rationale=(
            (
                f"CRS resolved on day {ctx.crs_resolved_day}; "
                if ctx.crs_resolved_day is not None
                else ""
            )
            + f"{features}.{on}"
        ),
        inputs={"day": ctx.day, **s.as_inputs()},
        values={"features": s.headline()},
        urgency="critical" if s.ferritin_very_high else None,
    )


@rule("management.iec-hs.refractory")
def refractory(ctx: Context) -> Triggered | None:
    s = ctx.iechs
    if not (s.recorded_active or s.high(ctx.t.whole("iechs_min_supportive"))):
        return None
    onsets = [e.start for e in ctx.course.events_of(IECHS) if e.active_on(ctx.day)]
    onset = min(onsets) if onsets else None
    treatments = [
        m
        for m in ctx.meds_active(DrugClass.IL1_BLOCKADE) + ctx.meds_active(DrugClass.CORTICOSTEROID)
        if onset is None or m.start >= onset - 1
    ]
    if not treatments:
        return None
    start = min(m.start for m in treatments)
    days = ctx.day - start
    if days < ctx.t.whole("iechs_refractory_after_days"):
        return None
    drugs = ctx.med_names(treatments)
    return Triggered(
        rationale=(
            f"IEC-HS {'recorded from day ' + str(onset) if onset is not None else 'suspected'}; "
            f"{drugs} since day {start} ({days} days). Emapalumab is a future option (review)."
        ),
        inputs={
            "day": ctx.day,
            "iec_hs_onset": onset,
            "treatment": drugs,
            "treatment_start": start,
        },
        values={"days": days, "drugs": drugs},
    )
