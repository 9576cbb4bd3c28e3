"""Myeloid growth factors: G-CSF timing, CRS, the biphasic drop, stopping, never GM-CSF.

Timing comes from the institutional settings ``[gcsf]`` (defaults: the review's day 7-10,
ANC > 500/uL, biphasic drop < 750/uL treated until > 1500/uL). Where the sources differ on
prophylactic G-CSF (EHA/EBMT: from day +2 for CAR-HEMATOTOX high risk; the review: from day
7-10), ``gcsf.prophylactic_high_risk`` chooses (default off: the review) and the rationale of a
high-risk patient's G-CSF item names the other source's position.
"""

from __future__ import annotations

from cart_cytopenia.domain.catalogues import DrugClass
from cart_cytopenia.guidance.context import Context, fmt
from cart_cytopenia.guidance.model import Urgency
from cart_cytopenia.guidance.registry import Triggered, trigger


def _inputs(ctx: Context) -> dict[str, object]:
    return {
        "day": ctx.day,
        "anc": ctx.anc,
        "anc_day": ctx.anc_day,
        "anc_nadir": ctx.neutrophils.nadir,
        "anc_nadir_day": ctx.neutrophils.nadir_day,
        "first_recovery_day": ctx.first_recovery_day,
        "crs_active": ctx.crs_active,
        "icans_active": ctx.icans_active,
        "severe_infection_active": ctx.severe_infection_active,
        "on_gcsf": ctx.gcsf_active,
        "paediatric": ctx.paediatric,
    }


def biphasic_pattern(ctx: Context) -> bool:
    """ANC recovered once (sustained > 500/uL), then fell below the biphasic level (750/uL)."""
    g = ctx.settings.gcsf
    return (
        ctx.first_recovery_day is not None
        and ctx.anc is not None
        and ctx.anc_day is not None
        and ctx.anc_day > ctx.first_recovery_day
        and ctx.anc < g.biphasic_below_anc_per_ul
    )


def crs_blocks_gcsf(ctx: Context) -> bool:
    """Ongoing CRS without severe infection: the review avoids G-CSF."""
    return (
        ctx.settings.gcsf.withhold_during_crs and ctx.crs_active and not ctx.severe_infection_active
    )


def iechs_caution(ctx: Context) -> str:
    """The caveat G-CSF carries while IEC-HS is suspected (review ref 17), or ''."""
    s = ctx.iechs
    if not s.suspected:
        return ""
    return (
        f" IEC-HS {s.level_text()} ({s.headline()}): G-CSF only with caution and after discussion; "
        "haemophagocytosis has been reported to worsen with G-CSF (review ref 17)."
    )


def crs_end_caution(ctx: Context) -> str:
    """The caveat when a CRS record has no end day (read as not ongoing after a few days)."""
    if ctx.crs_state != "end-unknown":
        return ""
    return (
        f" {ctx.describe_crs()}: confirm CRS has resolved first (the review avoids G-CSF during "
        "ongoing CRS); record its end day."
    )


def _status(ctx: Context) -> str:
    parts = [
        {
            "active": "CRS active",
            "end-unknown": "CRS end not recorded",
            "resolved": "CRS resolved",
            "none": "no CRS recorded",
        }[ctx.crs_state]
    ]
    if ctx.icans_active:
        parts.append("ICANS active (theoretical concern about G-CSF)")
    if ctx.severe_infection_active:
        parts.append("severe infection: " + ctx.describe_infections(ctx.infections_active))
    return "; ".join(parts)


@trigger("management.gcsf.start")
def gcsf_start(ctx: Context) -> Triggered | None:
    g = ctx.settings.gcsf
    if ctx.day < g.consider_from_day:
        return None
    if ctx.anc is None:
        ctx.missing(f"No ANC up to day {ctx.day}: whether to start G-CSF cannot be decided.")
        return None
    if ctx.anc > g.recovery_anc_per_ul or ctx.gcsf_active or biphasic_pattern(ctx):
        return None
    if crs_blocks_gcsf(ctx):
        return None
    during_crs = ctx.crs_active and ctx.severe_infection_active
    nadir = ctx.neutrophils
    paed = (
        " Child: keep the course short; prolonged growth factors are often deferred."
        if ctx.paediatric
        else ""
    )
    stale = (
        f" The ANC is {ctx.day - ctx.anc_day} days old: recheck."
        if ctx.anc_day is not None and ctx.stale(ctx.anc_day)
        else ""
    )
    caution = iechs_caution(ctx)
    variant, urgency = _start_variant(ctx, during_crs, caution)
    return Triggered(
        rationale=(
            f"ANC {fmt(ctx.anc)}/uL on day {ctx.anc_day} (nadir {fmt(nadir.nadir)}/uL on day {nadir.nadir_day}), "
            f"not recovered above {fmt(g.recovery_anc_per_ul)}/uL by day {ctx.day} "
            f"(consider from day {g.consider_from_day} to {g.consider_by_day}); {_status(ctx)}."
            f"{caution}{crs_end_caution(ctx)}{paed}{stale}{prophylaxis_policy(ctx)}"
        ),
        inputs={**_inputs(ctx), "iec_hs_level": ctx.iechs.level, "crs_state": ctx.crs_state},
        values={
            "anc": fmt(ctx.anc),
            "anc_day": ctx.anc_day,
            "target": fmt(g.recovery_anc_per_ul),
            "by_day": ctx.day,
        },
        variant=variant,
        urgency=urgency,
    )


def _start_variant(ctx: Context, during_crs: bool, caution: str) -> tuple[str, Urgency | None]:
    """(summary variant, urgency) of the G-CSF start item: suspected IEC-HS turns it into
    'use with caution / discuss' (warning); severe infection makes it an action."""
    if caution:
        return "iechs_caution", "warning"
    if during_crs:
        return "infection", "action"
    return "default", "action" if ctx.severe_infection_active else None


REVIEW_TIMING = (
    "the review waits: 'If the ANC has not recovered to >500/mm3 by day 7 to 10, we consider' "
    "G-CSF, with a 'theoretical concern that early use of G-CSF may worsen CRS and ICANS'"
)
EHA_TIMING = (
    "EHA/EBMT (Rejeski 2023, Table 3) considers prophylactic G-CSF (5 ug/kg daily) from day +2 "
    "for CAR-HEMATOTOX high risk"
)


def prophylaxis_policy(ctx: Context) -> str:
    """For a CAR-HEMATOTOX high-risk patient: which source's G-CSF timing is in force, and the
    other's position (settings gcsf.prophylactic_high_risk); '' for other patients."""
    if ctx.a.hematotox.risk != "high":
        return ""
    if ctx.settings.gcsf.prophylactic_high_risk:
        return f" Policy EHA/EBMT (settings gcsf.prophylactic_high_risk on); {REVIEW_TIMING}."
    return f" Policy: the review (settings gcsf.prophylactic_high_risk off); {EHA_TIMING}."


def prophylactic_window(ctx: Context) -> bool:
    """Setting on, CAR-HEMATOTOX high risk, from day +2 until the review's G-CSF check begins."""
    return (
        ctx.settings.gcsf.prophylactic_high_risk
        and ctx.a.hematotox.risk == "high"
        and ctx.t.whole("gcsf_prophylactic_from_day")
        <= ctx.day
        < ctx.settings.gcsf.consider_from_day
    )


def _prophylactic_hold(ctx: Context) -> str:
    """What blocks elective G-CSF now ('CRS', 'ICANS', 'CRS and ICANS'), or ''. Unlike
    therapeutic G-CSF, a severe infection does not lift it: that is the therapeutic item's call."""
    active = [name for name, on in (("CRS", ctx.crs_active), ("ICANS", ctx.icans_active)) if on]
    return " and ".join(active)


def _score_text(ctx: Context) -> str:
    score = ctx.a.hematotox.score
    if score is None:
        return "high risk (score incomplete, but the points present already make it high)"
    return f"{score} (high risk)"


def _prophylactic_variant(hold: str, caution: str) -> tuple[str, Urgency | None]:
    """Held (information) while CRS/ICANS is active; caution (warning) with suspected IEC-HS."""
    if hold:
        return "held", "info"
    if caution:
        return "iechs_caution", "warning"
    return "default", None


@trigger("management.gcsf.prophylactic-high-risk")
def gcsf_prophylactic_high_risk(ctx: Context) -> Triggered | None:
    g = ctx.settings.gcsf
    if not g.prophylactic_high_risk or ctx.day < ctx.t.whole("gcsf_prophylactic_from_day"):
        return None
    if ctx.day >= g.consider_from_day or ctx.gcsf_active:
        return None  # from day 7 the review's check (management.gcsf.start) decides
    if ctx.a.hematotox.risk is None:
        ctx.missing(
            "CAR-HEMATOTOX cannot be scored: prophylactic G-CSF from day +2 (EHA/EBMT, settings "
            "gcsf.prophylactic_high_risk on) cannot be decided; an unscored patient is not low risk."
        )
        return None
    if not prophylactic_window(ctx):
        return None  # low risk: 'G-CSF probably not necessary' (EHA/EBMT)
    hold = _prophylactic_hold(ctx)
    caution = iechs_caution(ctx)
    variant, urgency = _prophylactic_variant(hold, caution)
    paed = " Child: prolonged growth factors are often deferred." if ctx.paediatric else ""
    anc = f"ANC {fmt(ctx.anc)}/uL on day {ctx.anc_day}" if ctx.anc is not None else "no ANC yet"
    return Triggered(
        rationale=(
            f"CAR-HEMATOTOX {_score_text(ctx)}; day {ctx.day}; {anc}; {_status(ctx)}."
            + (f" Held: no G-CSF while {hold} is active." if hold else "")
            + f" Never GM-CSF.{caution}{crs_end_caution(ctx)}{paed}{prophylaxis_policy(ctx)}"
        ),
        inputs={
            **_inputs(ctx),
            "hematotox_score": ctx.a.hematotox.score,
            "hematotox_risk": ctx.a.hematotox.risk,
            "iec_hs_level": ctx.iechs.level,
            "setting_prophylactic_high_risk": g.prophylactic_high_risk,
        },
        values={"day": ctx.day, "why": hold},
        variant=variant,
        urgency=urgency,
    )


@trigger("management.gcsf.withhold-during-crs")
def gcsf_withhold_during_crs(ctx: Context) -> Triggered | None:
    g = ctx.settings.gcsf
    if not crs_blocks_gcsf(ctx):
        return None
    neutropenic = (
        ctx.day >= g.consider_from_day and ctx.anc is not None and ctx.anc <= g.recovery_anc_per_ul
    )
    if not (neutropenic or ctx.gcsf_active):
        return None
    return Triggered(
        rationale=(
            f"CRS active since day {ctx.active_crs_start}; ANC {fmt(ctx.anc)}/uL on day {ctx.anc_day}; "
            "no severe infection recorded"
            + ("; G-CSF is being given" if ctx.gcsf_active else "")
            + ". Reports conflict on whether G-CSF prolongs or worsens CRS."
        ),
        inputs=_inputs(ctx),
        values={"crs_start": ctx.active_crs_start, "anc": fmt(ctx.anc)},
    )


@trigger("management.gcsf.biphasic")
def gcsf_biphasic(ctx: Context) -> Triggered | None:
    g = ctx.settings.gcsf
    if not biphasic_pattern(ctx) or ctx.gcsf_active or crs_blocks_gcsf(ctx):
        return None
    if ctx.paediatric and ctx.prolonged_or_late:
        return None  # children: prolonged growth factors are deferred (paediatric-defer)
    if ctx.paediatric is None:
        ctx.missing(
            "Age unknown: the paediatric caution about prolonged growth factors cannot be applied."
        )
    caution = iechs_caution(ctx)
    return Triggered(
        rationale=(
            f"ANC recovered (> 500/uL) from day {ctx.first_recovery_day}, then fell to {fmt(ctx.anc)}/uL on "
            f"day {ctx.anc_day} (< {fmt(g.biphasic_below_anc_per_ul)}/uL): biphasic course. Transient "
            f"responses are common; dependence on G-CSF usually falls over weeks.{caution}"
            f"{crs_end_caution(ctx)}"
        ),
        variant="iechs_caution" if caution else "default",
        urgency="warning" if caution else None,
        inputs={
            **_inputs(ctx),
            "second_dip_day": ctx.a.phenotype.second_dip_day,
            "iec_hs_level": ctx.iechs.level,
        },
        values={
            "anc": fmt(ctx.anc),
            "anc_day": ctx.anc_day,
            "recovery_day": ctx.first_recovery_day,
            "target": fmt(g.biphasic_target_anc_per_ul),
        },
    )


@trigger("management.gcsf.stop")
def gcsf_stop(ctx: Context) -> Triggered | None:
    g = ctx.settings.gcsf
    active = ctx.meds_active(DrugClass.GCSF)
    if not active or ctx.anc is None or ctx.anc_day is None:
        return None
    start = min(m.start for m in active)
    if ctx.anc_day < start or ctx.anc <= g.biphasic_target_anc_per_ul:
        return None
    return Triggered(
        rationale=f"On {ctx.med_names(active)} since day {start}; ANC {fmt(ctx.anc)}/uL on day {ctx.anc_day}.",
        inputs={**_inputs(ctx), "gcsf_start_day": start},
        values={
            "anc": fmt(ctx.anc),
            "anc_day": ctx.anc_day,
            "target": fmt(g.biphasic_target_anc_per_ul),
        },
    )


@trigger("management.gmcsf.avoid")
def gmcsf_avoid(ctx: Context) -> Triggered | None:
    g = ctx.settings.gcsf
    low = (
        ctx.day >= g.consider_from_day
        and ctx.anc is not None
        and ctx.anc < g.biphasic_below_anc_per_ul
    )
    if not (ctx.gcsf_active or low or prophylactic_window(ctx)):
        return None
    why = (
        "on G-CSF"
        if ctx.gcsf_active
        else f"ANC {fmt(ctx.anc)}/uL on day {ctx.anc_day}"
        if low
        else "prophylactic G-CSF for CAR-HEMATOTOX high risk (EHA/EBMT)"
    )
    return Triggered(
        rationale=f"A myeloid growth factor is in question ({why}). GM-CSF is raised in CRS and ICANS; its blockade abrogates them in animal models.",
        inputs=_inputs(ctx),
    )
