"""Transfusion support at the institution's thresholds (settings ``[transfusion]``)."""

from __future__ import annotations

from cart_cytopenia.guidance.context import Context, fmt
from cart_cytopenia.guidance.registry import Triggered, trigger

# Lymphodepleting purine analogues (fludarabine, bendamustine, cladribine): after them some national
# transfusion guidelines irradiate cellular products for life (a local policy, settings).
PURINE_ANALOGUES = ("flu", "benda", "cladribine")


def irradiation_note(ctx: Context) -> str:
    """Irradiated cellular products: from 7 days before leukapheresis to at least day 90
    (EHA/EBMT, Rejeski 2023 Table 3: 'Because of the use of fludarabine'), or for life by
    local policy after a purine analogue."""
    t = ctx.settings.transfusion
    lk = ctx.course.leukapheresis
    if lk is not None and lk.day is not None:
        start = f"from day {lk.day - t.irradiated_from_days_before_leukapheresis} ({t.irradiated_from_days_before_leukapheresis} days before leukapheresis on day {lk.day})"
    else:
        start = f"from {t.irradiated_from_days_before_leukapheresis} days before leukapheresis (date not recorded)"
    regimen = ctx.regimen.lower()
    if t.irradiated_indefinitely_after_purine_analogue and any(
        p in regimen for p in PURINE_ANALOGUES
    ):
        return f" Use irradiated products {start} and for life (local policy after a purine analogue: {ctx.regimen})."
    if ctx.day <= t.irradiated_until_day:
        return f" Use irradiated products {start} until at least day {t.irradiated_until_day} (EHA/EBMT)."
    return (
        f" Irradiated products were required until at least day {t.irradiated_until_day} (EHA/EBMT); "
        "beyond it follow local policy (longer after purine analogues in some guidelines)."
    )


def _irradiation_inputs(ctx: Context) -> dict[str, object]:
    t = ctx.settings.transfusion
    lk = ctx.course.leukapheresis
    return {
        "leukapheresis_day": lk.day if lk is not None else None,
        "irradiated_until_day": t.irradiated_until_day,
        "irradiated_indefinitely_after_purine_analogue": t.irradiated_indefinitely_after_purine_analogue,
        "lymphodepletion_regimen": ctx.regimen,
    }


def ticaht_note(ctx: Context) -> str:
    """The thrombocytopenia's severity by T-ICAHT (Rejeski et al., Blood 2025): the early grade,
    and after day 30 the late one, with the days below 50 and 20 x10^9/L."""
    t = ctx.a.ticaht
    early = f"early {t.early.label()}"
    if t.early.grade is not None:
        early += f" ({t.early_days_plt_lt_50} d < 50, {t.early_days_plt_lt_20} d < 20 x10^9/L)"
    text = f" T-ICAHT (Rejeski 2025): {early}"
    if ctx.day > t.early_window[1]:
        late = f"late {t.late.label()}"
        if t.late.grade is not None:
            late += f" ({t.late_days_plt_lt_20} d < 20 x10^9/L"
            late += ", not recovered)" if t.not_recovered else ")"
        text += f"; {late}"
    return text + "."


def ticaht_inputs(ctx: Context) -> dict[str, object]:
    t = ctx.a.ticaht
    return {
        "early_ticaht_grade": t.early.grade,
        "late_ticaht_grade": t.late.grade if ctx.day > t.early_window[1] else None,
        "early_days_plt_lt_20": t.early_days_plt_lt_20,
    }


def _age_note(ctx: Context, day: int | None) -> str:
    if day is not None and ctx.stale(day):
        return f" The value is {ctx.day - day} days old: recheck before transfusing."
    return ""


@trigger("management.transfusion.rbc")
def rbc(ctx: Context) -> Triggered | None:
    threshold = ctx.settings.transfusion.rbc_hb_below_g_dl
    if ctx.hb is None or ctx.hb >= threshold:
        return None
    tx = ctx.red_cells.transfusion
    burden = f" {tx.in_window} RBC transfusions in the last {tx.window_days} days." if tx else ""
    return Triggered(
        rationale=(
            f"Haemoglobin {fmt(ctx.hb)} g/dL on day {ctx.hb_day}, below the institutional threshold "
            f"{fmt(threshold)} g/dL.{burden}{_age_note(ctx, ctx.hb_day)}{irradiation_note(ctx)}"
        ),
        inputs={
            **_irradiation_inputs(ctx),
            "hb_g_dl": ctx.hb,
            "hb_day": ctx.hb_day,
            "threshold_g_dl": threshold,
            "rbc_transfusions_28d": tx.in_window if tx else None,
        },
        values={"hb": fmt(ctx.hb), "hb_day": ctx.hb_day, "threshold": fmt(threshold)},
    )


@trigger("management.transfusion.platelets")
def platelets(ctx: Context) -> Triggered | None:
    s = ctx.settings.transfusion
    if ctx.plt is None:
        return None
    bleeding = ctx.bleeding_recent
    threshold = s.platelets_below_if_bleeding_10e9_l if bleeding else s.platelets_below_10e9_l
    if ctx.plt >= threshold:
        return None
    tx = ctx.platelets.transfusion
    burden = (
        f" {tx.in_window} platelet transfusions in the last {tx.window_days} days." if tx else ""
    )
    return Triggered(
        rationale=(
            f"Platelets {fmt(ctx.plt)} x10^9/L on day {ctx.plt_day}, below the institutional threshold "
            f"{fmt(threshold)} x10^9/L"
            + (" for bleeding (bleeding recorded)" if bleeding else "")
            + f".{burden}{ticaht_note(ctx)}{_age_note(ctx, ctx.plt_day)}{irradiation_note(ctx)}"
        ),
        inputs={
            **_irradiation_inputs(ctx),
            **ticaht_inputs(ctx),
            "platelets_10e9_l": ctx.plt,
            "platelets_day": ctx.plt_day,
            "threshold_10e9_l": threshold,
            "bleeding_recent": bleeding,
            "platelet_transfusions_28d": tx.in_window if tx else None,
        },
        values={"plt": fmt(ctx.plt), "plt_day": ctx.plt_day, "threshold": fmt(threshold)},
        variant="bleeding" if bleeding else "default",
        urgency="critical" if bleeding else None,
    )
