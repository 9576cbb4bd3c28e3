"""Transfusion support at the institution's thresholds (settings ``[transfusion]``)."""

from __future__ import annotations

from cart_cytopenia.guidance.context import Context, fmt
from cart_cytopenia.guidance.registry import Triggered, rule


def _age_note(ctx: Context, day: int | None) -> str:
    if day is not None and ctx.stale(day):
        return f" The value is {ctx.day - day} days old: recheck before transfusing."
    return ""


@rule("management.transfusion.rbc")
def rbc(ctx: Context) -> Triggered | None:
    threshold = ctx.settings.transfusion.rbc_hb_below_g_dl
    if ctx.hb is None or ctx.hb >= threshold:
        return None
    tx = ctx.red_cells.transfusion
    burden = f" {tx.in_window} RBC transfusions in the last {tx.window_days} days." if tx else ""
    return Triggered(
        rationale=(
            f"Haemoglobin {fmt(ctx.hb)} g/dL on day {ctx.hb_day}, below the institutional threshold "
            f"{fmt(threshold)} g/dL.{burden}{_age_note(ctx, ctx.hb_day)}"
        ),
        inputs={
            "hb_g_dl": ctx.hb,
            "hb_day": ctx.hb_day,
            "threshold_g_dl": threshold,
            "rbc_transfusions_28d": tx.in_window if tx else None,
        },
        values={"hb": fmt(ctx.hb), "hb_day": ctx.hb_day, "threshold": fmt(threshold)},
    )


@rule("management.transfusion.platelets")
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
            + f".{burden}{_age_note(ctx, ctx.plt_day)}"
        ),
        inputs={
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
