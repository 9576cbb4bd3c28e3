"""IEC-HS treatment (the signals and the one suspicion level are ``Context.iechs``)."""

from __future__ import annotations

from cart_cytopenia.domain.catalogues import DrugClass
from cart_cytopenia.domain.course import IECHS
from cart_cytopenia.guidance.context import Context
from cart_cytopenia.guidance.registry import Triggered, trigger

# The review's options for refractory IEC-HS, in its order, with the class that marks them given.
REFRACTORY_OPTIONS = (
    ("ruxolitinib", DrugClass.JAK_INHIBITOR),
    ("cyclophosphamide", DrugClass.CYTOTOXIC),
    ("etoposide", DrugClass.CYTOTOXIC),
)


@trigger("management.iec-hs.treat")
def treat(ctx: Context) -> Triggered | None:
    s = ctx.iechs
    if not s.high:
        return None
    if ctx.meds_active(DrugClass.IL1_BLOCKADE):
        return None  # already on anakinra: see management.iec-hs.refractory
    features = ", ".join(s.features())
    steroids = ctx.meds_active(DrugClass.CORTICOSTEROID)
    on = f" On {ctx.med_names(steroids)}." if steroids else ""
    return Triggered(
        rationale=f"IEC-HS: {s.level_text()}. {ctx.describe_crs()}; {features}.{on} {s.astct_detail}.",
        inputs={"day": ctx.day, **s.as_inputs()},
        values={"features": s.headline()},
        urgency="critical" if s.ferritin_very_high else None,
    )


def _given_since(ctx: Context, start: int) -> set[str]:
    """Catalogue drug ids given from ``start`` (IEC-HS treatment, not lymphodepletion)."""
    classes = {cls for _, cls in REFRACTORY_OPTIONS} | {DrugClass.IFNG_BLOCKADE}
    return {
        m.drug_id
        for cls in classes
        for m in ctx.course.medications_with(cls)
        if m.start >= start and m.start <= ctx.day
    }


@trigger("management.iec-hs.refractory")
def refractory(ctx: Context) -> Triggered | None:
    s = ctx.iechs
    if not s.high:
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
    given = _given_since(ctx, max(0, start))
    left = [name for name, _ in REFRACTORY_OPTIONS if name not in given]
    options = " or ".join(left) if left else "no listed option left untried"
    tried = f" Already given: {', '.join(sorted(given))}." if given else ""
    emapalumab = "" if "emapalumab" in given else " Emapalumab is a future option (review)."
    return Triggered(
        rationale=(
            f"IEC-HS {'recorded from day ' + str(onset) if onset is not None else s.level_text()}; "
            f"{drugs} since day {start} ({days} days).{tried}{emapalumab}"
        ),
        inputs={
            "day": ctx.day,
            "iec_hs_level": s.level,
            "iec_hs_onset": onset,
            "treatment": drugs,
            "treatment_start": start,
            "already_given": sorted(given),
        },
        values={"days": days, "drugs": drugs, "options": options},
    )
