"""Terminal and JSON rendering of the guidance (``assess --guidance``) and its replay (``--replay``).

The text output reads as a consult note: who and when, the counts, alerts first, then the
differential (most likely first), work-up, management, prophylaxis, the dated plan, what is
missing, and the settings in force. Every item shows why it appeared and where it comes from.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cart_cytopenia.domain.course import Course
from cart_cytopenia.guidance import Guidance, GuidanceItem, Replay
from cart_cytopenia.rules.settings import Settings

_URGENCY_STYLE = {
    "critical": "bold white on red",
    "warning": "bold red",
    "action": "bold yellow",
    "consider": "cyan",
    "info": "dim",
}
_SECTIONS = (
    ("alerts", "Alerts"),
    ("differential", "Differential (most likely first)"),
    ("workup", "Work-up"),
    ("management", "Management"),
    ("prophylaxis", "Prophylaxis"),
)
_PHASE_TEXT = {
    "early": "early, < 30 days",
    "prolonged": "prolonged, 30-90 days",
    "late": "late, > 90 days",
}


def guidance_json(g: Guidance) -> str:
    """The guidance as JSON: ``items`` (every item, all kinds) plus the sections, calendar,
    missing data, settings in force and the assessment it was built on."""
    data: dict[str, Any] = g.model_dump(mode="json")
    data = {
        "patient_id": data.pop("patient_id"),
        "day": data.pop("day"),
        "phase": data.pop("phase"),
        "items": [i.model_dump(mode="json") for i in g.items()],
        **data,
    }
    return json.dumps(data, indent=2, ensure_ascii=False)


def replay_json(r: Replay) -> str:
    return r.model_dump_json(indent=2)


def _date(course: Course, day: int) -> str:
    return (course.infusion_date + dt.timedelta(days=day)).isoformat()


def _item(console: Console, item: GuidanceItem, show_rank: bool) -> None:
    style = _URGENCY_STYLE[item.urgency]
    lead = f"{item.rank}." if show_rank and item.rank is not None else "•"
    flag = " [magenta](speculative)[/]" if item.speculative else ""
    console.print(
        f" {lead} [{style}]{item.urgency.upper():<8}[/] {escape(item.summary)}{flag}",
        highlight=False,
    )
    console.print(f"      [dim]why:[/] {escape(item.rationale)}", highlight=False)
    console.print(
        f"      [dim]{escape(item.evidence)} — {escape(item.citation)} [{escape(item.id)}][/]",
        highlight=False,
    )


def render_guidance(g: Guidance, course: Course, settings: Settings, console: Console) -> None:
    """The day's consult: who and where the patient is, the guidance by section, the dated
    plan, missing data, the settings in force."""
    _print_patient(g, course, console)
    _print_counts(g, console)
    _print_items(g, console)
    _print_plan(g, course, console)
    _settings(g.settings_in_force, settings, console)
    console.print(
        "[dim]Decision support following Jain, Olson, Locke, Blood 2023 and the standards cited; "
        "it never orders anything. Day 0 = CAR-T infusion.[/]"
    )


def _print_patient(g: Guidance, course: Course, console: Console) -> None:
    p = course.patient
    product = course.product.catalogue_entry()
    prod = (
        f"{product.id} ({product.target}, {product.costimulatory})"
        if product
        else course.product.name
    )
    age = f"{p.age_years:g} y" if p.age_years is not None else "age unknown"
    phase = _PHASE_TEXT.get(g.phase or "", "before infusion")
    console.rule(
        f"[bold]Cytopenia consult — patient {escape(g.patient_id)}, day {g.day} ({phase})[/]"
    )
    console.print(
        f"{p.disease.value}, {age}, {p.sex.value}; {escape(prod)}; infused {course.infusion_date} "
        f"(day 0); today {_date(course, g.day)}.",
        highlight=False,
    )
    if p.prior_hct:
        console.print(
            "Prior HCT: " + ", ".join(f"{h.kind.value} (day {h.day})" for h in p.prior_hct),
            highlight=False,
        )


def _print_counts(g: Guidance, console: Console) -> None:
    """The last count of each lineage, then CRS/ICANS, early ICAHT and CAR-HEMATOTOX."""
    counts = []
    for lin in g.assessment.lineages:
        label = {"neutrophils": "ANC", "platelets": "Platelets", "red_cells": "Hb"}[lin.lineage]
        unit = {"neutrophils": "/µL", "platelets": "×10⁹/L", "red_cells": "g/dL"}[lin.lineage]
        if lin.last_value is None:
            counts.append(f"{label} —")
            continue
        v = f"{lin.last_value:,.0f}" if lin.last_value >= 100 else f"{lin.last_value:g}"
        tx = (
            " [red]transfusion-dependent[/]"
            if lin.transfusion and lin.transfusion.dependent
            else ""
        )
        counts.append(f"{label} {v} {unit} (day {lin.last_value_day}){tx}")
    console.print("Counts: " + "; ".join(counts), highlight=False)
    a = g.assessment
    inf = a.inflammation
    console.print(
        f"CRS max grade {inf.crs_max_grade}{' (active)' if inf.crs_active else ''}; "
        f"ICANS max grade {inf.icans_max_grade}{' (active)' if inf.icans_active else ''}; "
        f"early ICAHT {a.early_icaht.result.label()}; CAR-HEMATOTOX "
        f"{a.hematotox.risk or 'cannot be told'}.",
        highlight=False,
    )


def _print_items(g: Guidance, console: Console) -> None:
    """The guidance items section by section (the differential ranked)."""
    a = g.assessment
    if not g.items():
        console.print("\nNo guidance items today.")
    for attr, title in _SECTIONS:
        items: list[GuidanceItem] = getattr(g, attr)
        if not items:
            continue
        console.print(f"\n[bold underline]{title}[/]")
        for item in items:
            _item(console, item, show_rank=attr == "differential")
    if not g.differential:
        reason = (
            "no cytopenia on the last counts"
            if any(x.last_value is not None for x in a.lineages)
            else "no counts to judge a cytopenia"
        )
        console.print(f"\n[bold underline]Differential[/]\n [dim]none: {reason}[/]")


def _print_plan(g: Guidance, course: Course, console: Console) -> None:
    """The dated prophylaxis and monitoring plan, and the data missing."""
    console.print("\n[bold underline]Plan[/] (dated prophylaxis and monitoring)")
    marks = {"current": "[green]now [/]", "past": "[dim]done[/]", "upcoming": "[dim]next[/]"}
    for e in g.calendar:
        span = f"day {e.start_day}" + (f"–{e.end_day}" if e.end_day is not None else "")
        dates = _date(course, e.start_day) + (
            f" → {_date(course, e.end_day)}" if e.end_day is not None else ""
        )
        cond = f"; {e.condition}" if e.condition else ""
        console.print(
            f" {marks[e.status]} {span:<13} {escape(e.text)}{escape(cond)} [dim]({dates})[/]",
            highlight=False,
        )
    if g.missing_data:
        console.print("\n[bold underline]Missing data[/] (missing is not normal)")
        for m in g.missing_data:
            console.print(f" • {escape(m)}", highlight=False)


def _settings(in_force: dict[str, Any], settings: Settings, console: Console) -> None:
    changed = {k: v for k, v in settings.changed_from_defaults().items() if k != "institution"}
    who = "" if settings.institution == Settings().institution else f"{settings.institution}: "
    what = (
        f"{len(changed)} changed from the review's defaults" if changed else "the review's defaults"
    )
    console.print(f"\n[bold underline]Settings in force[/] ({escape(who + what)})")
    shown = in_force
    width = max(len(k) for k in shown)
    for k, v in shown.items():
        mark = " [yellow](changed)[/]" if k in changed else ""
        console.print(f"  [dim]{k:<{width}}[/] {escape(str(v))}{mark}", highlight=False)


def render_replay(r: Replay, course: Course, settings: Settings, console: Console) -> None:
    console.rule(
        f"[bold]Guidance timeline — patient {escape(r.patient_id)}, days {r.first_day}-{r.last_day}[/]"
    )
    t = Table(show_lines=False)
    for col in ("Item", "Kind", "Shown (days)", "First summary"):
        t.add_column(col)
    for item in sorted(r.items, key=lambda i: (i.first_appeared, i.id)):
        spans = ", ".join(
            f"{e.appeared_day}–{e.cleared_day - 1 if e.cleared_day is not None else '…'}"
            for e in item.episodes
        )
        t.add_row(escape(item.id), item.kind, spans, escape(item.episodes[0].first_summary))
    console.print(t)
    console.print(
        "[dim]Days are inclusive; '…' = still shown on the last day of data. Each day is evaluated "
        "with only the data known on that day.[/]"
    )
    if r.beyond_plausible:
        console.print(
            f"[yellow]Not replayed: {len(r.beyond_plausible)} item(s) recorded after more than a "
            f"year without data (after day {r.last_day}); check their dates:[/]",
            highlight=False,
        )
        for o in r.beyond_plausible[:20]:
            console.print(f"  [yellow]• {escape(o.what)} on day {o.day}[/]", highlight=False)
        if len(r.beyond_plausible) > 20:
            console.print(f"  [yellow]... and {len(r.beyond_plausible) - 20} more[/]")
    _settings(r.settings_in_force, settings, console)


def run(
    course: Course,
    day: int | None,
    settings: Settings,
    guidance: bool,
    replay: bool,
    as_json: bool,
) -> None:
    """``assess --guidance`` / ``--replay`` (both: the day's guidance, then the timeline)."""
    from cart_cytopenia.guidance import evaluate
    from cart_cytopenia.guidance import replay as replay_course

    out = sys.stdout
    console = Console()
    if guidance:
        g = evaluate(course, day, settings)
        if as_json and not replay:
            out.write(guidance_json(g) + "\n")
        elif not as_json:
            render_guidance(g, course, settings, console)
    if replay:
        r = replay_course(course, settings)
        if as_json:
            data: dict[str, Any] = {"replay": json.loads(replay_json(r))}
            if guidance:
                data["guidance"] = json.loads(guidance_json(evaluate(course, day, settings)))
            out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        else:
            render_replay(r, course, settings, console)
