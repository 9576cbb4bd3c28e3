"""The dated prophylaxis and monitoring plan (Figure 1 footnotes and the infection section).

Each entry names the recommendation it comes from, its first day, and its last day or the
condition that ends it. Days use the institutional settings; the status is relative to the day
the guidance is for.
"""

from __future__ import annotations

from typing import Literal

from cart_cytopenia.domain.course import Disease
from cart_cytopenia.guidance.context import Context, fmt
from cart_cytopenia.guidance.model import CalendarEntry


def _status(day: int, start: int, end: int | None) -> Literal["past", "current", "upcoming"]:
    if day < start:
        return "upcoming"
    if end is not None and day > end:
        return "past"
    return "current"


Entry = tuple[
    str, str, int, int | None, str | None
]  # item id, text, first day, last day, condition


def _prophylaxis_entries(ctx: Context) -> list[Entry]:
    """Infection prophylaxis, the G-CSF check and the CD4 count that ends PJP prophylaxis."""
    s = ctx.settings
    entries: list[Entry] = []

    recovery = ctx.first_recovery_day if ctx.neutropenia_ever_severe else None
    until = "until ANC recovery (> 500/uL); extend for prolonged or late severe neutropenia"
    entries.append(
        (
            "prophylaxis.antibacterial",
            "Antibacterial prophylaxis (e.g. levofloxacin)",
            0,
            recovery,
            None if recovery is not None else until,
        )
    )
    entries.append(
        (
            "prophylaxis.antifungal",
            "Antifungal prophylaxis (fluconazole or micafungin; mould-active azole if prolonged or late severe neutropenia)",
            0,
            recovery,
            None if recovery is not None else until,
        )
    )
    entries.append(
        (
            "prophylaxis.antiviral",
            f"Antiviral prophylaxis (HSV/VZV, e.g. acyclovir), {s.prophylaxis.antiviral_months} months (review: 6-12)",
            ctx.antiviral_start_day,
            ctx.antiviral_end_day,
            f"and until CD4 > {fmt(s.prophylaxis.cd4_stop_above_per_ul)}/uL (EHA/EBMT)"
            if s.prophylaxis.antiviral_until_cd4_above
            else None,
        )
    )
    g = s.gcsf
    entries += _prophylactic_gcsf_entry(ctx)
    entries.append(
        (
            "management.gcsf.start",
            f"Check ANC: if not > {fmt(g.recovery_anc_per_ul)}/uL, consider G-CSF (not during ongoing CRS unless severe infection; never GM-CSF)",
            g.consider_from_day,
            g.consider_by_day,
            None,
        )
    )
    # the latest post-infusion CD4 decides (as in the PJP rule): a later fall below the level reopens it
    cd4_end = ctx.cd4.day if ctx.cd4 is not None and ctx.cd4_above_stop else None
    stop = fmt(s.prophylaxis.cd4_stop_above_per_ul)
    entries.append(
        (
            "prophylaxis.pjp",
            "PJP prophylaxis (TMP-SMX; pentamidine or atovaquone if cytopenic or sulfonamide-allergic)",
            s.prophylaxis.pjp_start_day,
            cd4_end,
            None if cd4_end is not None else f"until CD4 > {stop}/uL (often 1-2 years or longer)",
        )
    )
    entries.append(
        (
            "workup.cd4",
            "CD4 count (to stop PJP prophylaxis)",
            s.prophylaxis.pjp_start_day,
            cd4_end,
            None if cd4_end is not None else f"repeat until CD4 > {stop}/uL",
        )
    )
    return entries


def _prophylactic_gcsf_entry(ctx: Context) -> list[Entry]:
    """EHA/EBMT prophylactic G-CSF from day +2, only with settings gcsf.prophylactic_high_risk on
    and a CAR-HEMATOTOX high-risk patient (the review's day 7-10 check follows it)."""
    g = ctx.settings.gcsf
    if not g.prophylactic_high_risk or ctx.a.hematotox.risk != "high":
        return []
    return [
        (
            "management.gcsf.prophylactic-high-risk",
            "Prophylactic G-CSF (filgrastim 5 ug/kg daily): CAR-HEMATOTOX high risk (EHA/EBMT; the "
            "review waits to day 7-10); not during CRS or ICANS; never GM-CSF",
            ctx.t.whole("gcsf_prophylactic_from_day"),
            g.consider_from_day - 1,
            None,
        )
    ]


def _monitoring_entries(ctx: Context) -> list[Entry]:
    """IgG and the bone marrow evaluation."""
    entries: list[Entry] = []
    target = (ctx.target or "").upper()
    if target in ("CD19", "BCMA"):
        entries.append(
            (
                "workup.igg",
                f"IgG level ({target} CAR-T: hypogammaglobulinaemia)",
                30,
                None,
                "while hypogammaglobulinaemia persists",
            )
        )
    entries.append(
        (
            "workup.bone-marrow",
            "Bone marrow aspirate and biopsy (cytogenetics, FISH, NGS)",
            30,
            None,
            "if cytopenia persists (prolonged or late) or G-CSF fails",
        )
    )
    return entries


def _management_entries(ctx: Context) -> list[Entry]:
    """TPO-RA, the paediatric branch and follow-up at the treating centre."""
    s = ctx.settings
    entries: list[Entry] = []
    if not ctx.paediatric:
        entries.append(
            (
                "management.tpo-ra.start",
                "TPO-RA (eltrombopag or romiplostim)",
                s.tpo_ra.consider_from_day,
                None,
                "if platelet transfusion-dependent with high bleeding risk and no other cause",
            )
        )
    c = ctx.tpo_course
    if c is not None:
        entries.append(
            (
                "management.tpo-ra.stop",
                f"Review {c.drug} response; stop if no response (4-6 weeks) or once platelets recover",
                c.start + 7 * s.tpo_ra.no_response_consider_stop_weeks,
                c.start + 7 * s.tpo_ra.no_response_stop_weeks,
                None,
            )
        )
    if ctx.paediatric and not ctx.prior_allo:
        entries.append(
            (
                "management.allo-hct",
                "Child: allogeneic HCT if still transfusion- or G-CSF-dependent beyond day 90",
                91,
                None,
                "if still dependent",
            )
        )
    if ctx.paediatric and ctx.disease == Disease.B_ALL:
        entries.append(
            (
                "workup.mrd-lineage",
                "Marrow MRD (NGS) and lineage markers (lineage switch)",
                30,
                None,
                "if cytopenia persists",
            )
        )
    entries.append(
        (
            "management.follow-up",
            f"Restaging visits at the CAR-T centre for at least {s.prophylaxis.follow_up_years} years",
            0,
            ctx.follow_up_end_day,
            None,
        )
    )
    return entries


def build_calendar(ctx: Context) -> list[CalendarEntry]:
    entries = _prophylaxis_entries(ctx) + _monitoring_entries(ctx) + _management_entries(ctx)
    out = [
        CalendarEntry(
            item_id=item_id,
            text=text,
            start_day=start,
            end_day=end,
            condition=cond,
            status=_status(ctx.day, start, end),
        )
        for item_id, text, start, end, cond in entries
    ]
    return sorted(out, key=lambda e: (e.start_day, e.item_id))
