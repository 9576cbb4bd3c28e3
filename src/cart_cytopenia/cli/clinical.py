"""Clinical commands: ``assess`` (one course), ``schema`` (``grade`` is in grade_cmd.py)."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cart_cytopenia.cli.paths import input_file
from cart_cytopenia.errors import ParseError, SchemaError

if TYPE_CHECKING:
    from rich.console import Console

    from cart_cytopenia.domain.course import Course
    from cart_cytopenia.grading.assessment import Assessment, GradeResult

# The commands import what only they need when they run (the guidance engine, the one-course
# assessment, rich's tables; the cohort engine and readers): ``grade`` on a large file does not
# pay for the guidance engine's import, nor ``assess`` for the cohort reader's.


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


def load_course(path: Path) -> Course:
    """A course JSON file (UTF-8, with or without a byte-order mark), validated."""
    from cart_cytopenia.domain.course import parse_course

    input_file(path, "course JSON file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ParseError(f"{path} is not a UTF-8 text file (expected a course JSON)") from None
    except OSError as exc:
        raise ParseError(f"{path} cannot be read: {exc.strerror or exc}") from None
    return parse_course(text, source=str(path))


def check_day(course: Course, day: int | None, option: str = "--day") -> None:
    """A day to assess as of must be a calendar date counted from this course's infusion."""
    from cart_cytopenia.domain.course import is_calendar_day

    if day is not None and not is_calendar_day(course.infusion_date, day):
        raise SchemaError(
            f"{option} {day}: not a calendar date counted from the infusion on "
            f"{course.infusion_date} (day 0); give a day since infusion"
        )


def note_implausible_last_day(course: Course) -> None:
    """Say on stderr when the default day (the last day with data) lies after more than a year
    without data: most often a mistyped day or date (guidance/plausible.py). The assessment is
    still made as of that day, as asked; ``--day`` chooses another."""
    from cart_cytopenia.guidance.plausible import MAX_GAP_DAYS, plausible_range

    last, outliers = plausible_range(course)
    if outliers:
        listed = "; ".join(str(o) for o in outliers[:5])
        more = f" and {len(outliers) - 5} more" if len(outliers) > 5 else ""
        sys.stderr.write(
            f"note: {len(outliers)} item(s) recorded after more than {MAX_GAP_DAYS} days without "
            f"data ({listed}{more}); this assessment is as of day {outliers[-1].day}, the last "
            f"day with data. Check the dates, or choose a day with --day (the data before the "
            f"gap end on day {last}).\n"
        )


def check_cohort_day(day: int | None, option: str = "--as-of") -> None:
    """A day since infusion for a whole cohort: one that can be a date for some infusion."""
    from cart_cytopenia.domain.course import MAX_CALENDAR_DAYS

    if day is not None and abs(day) > MAX_CALENDAR_DAYS:
        raise SchemaError(f"{option} {day}: no day since an infusion is that far from it")


def _grade_text(r: GradeResult) -> str:
    return r.label()


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "—"
    text = f"{v:,.0f}" if abs(v) >= 100 else f"{v:g}"
    return f"{text} {unit}".strip()


def render_assessment(a: Assessment, course: Course, console: Console) -> None:
    """The assessment as a clinician reads it: the patient, counts and CTCAE grades, ICAHT and
    T-ICAHT, the baseline scores, each lineage's cytopenia, G-CSF and CRS/ICANS, then the notes
    and what it was based on."""
    _print_patient(a, course, console)
    _print_counts(a, console)
    _print_icaht(a, console)
    _print_ticaht(console, a)
    _print_scores_and_phenotype(a, console)
    _print_lineages(a, console)
    _print_treatment_and_notes(a, console)


def _print_patient(a: Assessment, course: Course, console: Console) -> None:
    p = course.patient
    product = course.product.catalogue_entry()
    prod = (
        f"{product.id} ({product.target}, {product.costimulatory})"
        if product
        else course.product.name
    )
    age = f"{p.age_years:g} y" if p.age_years is not None else "age unknown"
    console.rule(
        f"[bold]Patient {a.patient_id}[/] — day {a.day} after CAR-T ({a.phase or 'before infusion'})"
    )
    console.print(
        f"{p.disease.value}, {age}, {p.sex.value}; product {prod}; infusion {course.infusion_date} (day 0)"
    )
    if p.prior_hct:
        console.print(
            "Prior HCT: " + ", ".join(f"{h.kind.value} (day {h.day})" for h in p.prior_hct)
        )


def _print_counts(a: Assessment, console: Console) -> None:
    from rich.table import Table

    t = Table(title=f"Blood counts and CTCAE v{a.ctcae_version} grades", show_lines=False)
    for col in ("Term", "Last value", "Day", "Current grade", "Worst since day 0"):
        t.add_column(col)
    for c in a.ctcae:
        t.add_row(
            c.term,
            _fmt(c.last_value, c.unit),
            str(c.last_value_day if c.last_value_day is not None else "—"),
            _grade_text(c.current),
            _grade_text(c.worst),
        )
    console.print(t)


def _print_icaht(a: Assessment, console: Console) -> None:
    from rich.table import Table

    e, lt = a.early_icaht, a.late_icaht
    t = Table(title="EHA/EBMT ICAHT")
    for col in ("", "Grade", "Basis"):
        t.add_column(col)
    t.add_row(
        f"Early (day {e.window[0]}–{e.window[1]})",
        _grade_text(e.result),
        f"ANC ≤500/µL {e.days_anc_le_500} d, ≤100/µL {e.days_anc_le_100} d"
        + ("; never recovered" if e.never_recovered else ""),
    )
    t.add_row(
        f"Late (day {lt.window_start}–{lt.window_end}, to {lt.window_end_reason})",
        _grade_text(lt.result),
        f"lowest ANC {_fmt(lt.anc_1, '/µL')}, second {_fmt(lt.anc_2, '/µL')} ({lt.n_values} values)",
    )
    console.print(t)


def _print_scores_and_phenotype(a: Assessment, console: Console) -> None:
    h = a.hematotox
    risk = {"high": "[red]HIGH risk[/]", "low": "[green]low risk[/]"}.get(
        h.risk or "", "risk cannot be told"
    )
    score = (
        f"{h.score}/{h.max_score}"
        if h.score is not None
        else f"incomplete ({h.points_counted} points counted)"
    )
    console.print(f"[bold]CAR-HEMATOTOX[/] (baseline): {score} — {risk}")
    for m in h.markers:
        console.print(
            f"   {m.analyte:<10} {_fmt(m.value, m.unit):<16} day {m.day if m.day is not None else '—':<5} {m.points if m.points is not None else '—'} pt  {m.band or 'missing'}"
        )
    for w in h.warnings:
        console.print(f"   [yellow]⚠ {w}[/]")
    console.print(_easix_text(a))
    _print_tatma(console, a)

    ph = a.phenotype
    if ph.phenotype:
        console.print(
            f"[bold]Neutrophil recovery phenotype[/]: {ph.phenotype} (first recovery day {ph.first_recovery_day or '—'}, "
            f"second dip day {ph.second_dip_day or '—'}, sustained recovery day {ph.sustained_recovery_day or '—'})"
        )
    else:
        console.print(f"[bold]Neutrophil recovery phenotype[/]: not yet called — {ph.reason}")


def _print_lineages(a: Assessment, console: Console) -> None:
    from rich.table import Table

    t = Table(title="Cytopenias by lineage")
    for col in (
        "Lineage",
        "Last",
        "CTCAE",
        "Phase (episode since)",
        "Nadir (day)",
        "Days <G3 cut d0–60",
        "Transfusions",
    ):
        t.add_column(col)
    for lin in a.lineages:
        tx = "—"
        if lin.transfusion:
            t_ = lin.transfusion
            tx = f"{t_.in_window} in {t_.window_days} d"
            if t_.units_in_long_window is not None:
                tx += f"; {t_.units_in_long_window} units in {t_.long_window_days} d"
            if t_.dependent:
                # (regular transfusions can make a lineage dependent with few in 28 days)
                tx += " — [red]dependent[/]" + (
                    " (regular)" if t_.dependent_by == "regular" else ""
                )
        phase = (
            f"{lin.phase} (day {lin.episode_start_day})"
            if lin.episode_start_day is not None
            else ("not cytopenic" if lin.last_value is not None else "unknown")
        )
        t.add_row(
            lin.lineage,
            _fmt(lin.last_value, lin.unit),
            str(lin.ctcae_grade if lin.ctcae_grade is not None else "—"),
            phase,
            f"{_fmt(lin.nadir, lin.unit)} ({lin.nadir_day if lin.nadir_day is not None else '—'})",
            str(lin.days_significant_d0_60),
            tx,
        )
    console.print(t)


def _print_treatment_and_notes(a: Assessment, console: Console) -> None:
    g = a.gcsf
    if g.first_day is not None:
        console.print(
            f"G-CSF: first day {g.first_day}, {g.days_given} days given, response: {g.response}"
            + (" (on G-CSF today)" if g.active_on_day else "")
        )
    inf = a.inflammation
    console.print(
        f"CRS max grade {inf.crs_max_grade}{' (active)' if inf.crs_active else ''}; ICANS max grade {inf.icans_max_grade}{' (active)' if inf.icans_active else ''}"
    )
    for line in iechs_lines(a):
        console.print(line)
    if a.notes:
        console.print("[bold]Notes[/]")
        for n in a.notes:
            console.print(f"  • {n}")
    b = a.based_on
    console.print(
        f"[dim]Based on {b.n_labs} lab values (days {b.lab_days[0] if b.lab_days else '—'}–{b.lab_days[1] if b.lab_days else '—'}) and {b.n_events} events; "
        f"rules: {', '.join(b.rule_tables)}; {b.software}.[/]"
    )
    changed = b.settings_changed
    console.print(
        "[dim]Settings in force: "
        + ("review defaults" if not changed else ", ".join(f"{k}={v}" for k, v in changed.items()))
        + "[/]"
    )


def register(app: typer.Typer) -> None:
    @app.command(name="assess")
    def assess_cmd(
        course_file: Path = typer.Argument(
            ..., metavar="COURSE.json", help="A course file (see docs/data-formats.md)."
        ),
        day: int | None = typer.Option(
            None, "--day", help="Assess as of this day (default: last day with data)."
        ),
        fmt: OutputFormat = typer.Option(OutputFormat.TEXT, "--format", help="text or json"),
        settings_file: Path | None = typer.Option(
            None, "--settings", help="Institutional settings (TOML)."
        ),
        guidance: bool = typer.Option(
            False, "--guidance", help="The day's guidance (differential, work-up, management ...)."
        ),
        replay: bool = typer.Option(
            False, "--replay", help="The guidance timeline: every day from 0 to the last data."
        ),
    ) -> None:
        """Grade one course as of a day: CTCAE, ICAHT, CAR-HEMATOTOX, phenotype, phases."""
        from rich.console import Console

        from cart_cytopenia.cli import guidance_output
        from cart_cytopenia.grading.assessment import assess
        from cart_cytopenia.rules.settings import load_settings

        settings = load_settings(settings_file)
        course = load_course(course_file)
        check_day(course, day)
        if day is None and not replay:
            note_implausible_last_day(course)
        if guidance or replay:
            guidance_output.run(course, day, settings, guidance, replay, fmt == OutputFormat.JSON)
            return
        result = assess(course, day, settings)
        if fmt == OutputFormat.JSON:
            sys.stdout.write(result.model_dump_json(indent=2) + "\n")
        else:
            render_assessment(result, course, Console())

    schema_app = typer.Typer(
        help="Publish JSON Schemas of the input documents.", no_args_is_help=True
    )

    @schema_app.command(name="patient")
    def schema_patient() -> None:
        """JSON Schema of a patient course file (COURSE.json)."""
        from cart_cytopenia.domain.course import Course

        sys.stdout.write(json.dumps(Course.model_json_schema(), indent=2) + "\n")

    @schema_app.command(name="settings")
    def schema_settings() -> None:
        """JSON Schema of the institutional settings (TOML)."""
        from cart_cytopenia.rules.settings import Settings

        sys.stdout.write(json.dumps(Settings.model_json_schema(), indent=2) + "\n")

    app.add_typer(schema_app, name="schema")


def _print_ticaht(console: Console, a: Assessment) -> None:
    """T-ICAHT (Rejeski et al., Blood 2025) beside ICAHT."""
    from rich.table import Table

    x = a.ticaht
    t = Table(title="T-ICAHT (thrombocytopenia)")
    for col in ("", "Grade", "Basis"):
        t.add_column(col)
    t.add_row(
        f"Early (day {x.early_window[0]}–{x.early_window[1]})",
        _grade_text(x.early),
        f"platelets <50 ×10⁹/L {x.early_days_plt_lt_50} d, <20 {x.early_days_plt_lt_20} d"
        " (cumulative)",
    )
    recovery = (
        "not recovered (<20 ongoing)"
        if x.not_recovered
        else (f"recovered ≥20 from day {x.recovery_day}" if x.recovery_day is not None else "")
    )
    t.add_row(
        f"Late (day {x.late_window_start}–{x.late_window_end})",
        _grade_text(x.late),
        f"lowest {_fmt(x.late_plt_1, '×10⁹/L')}, second {_fmt(x.late_plt_2, '×10⁹/L')}; "
        f"<20 {x.late_days_plt_lt_20} d" + (f"; {recovery}" if recovery else ""),
    )
    console.print(t)


def easix_value(v: float | None, missing: list[str]) -> str:
    return f"{v:.2f}" if v is not None else "not computed (" + ", ".join(missing) + " missing)"


def _easix_text(a: Assessment) -> str:
    """EASIX and m-EASIX beside CAR-HEMATOTOX: the published cut-off only where one was read."""
    z = a.easix
    cut = (
        ""
        if z.above_cutoff is None
        else (
            f" — [red]above {z.cutoff:g}[/] ({z.cutoff_outcome}, {z.cutoff_source.split(' (')[0]})"
            if z.above_cutoff
            else f" — not above {z.cutoff:g}"
        )
    )
    early = []
    if z.easix_d0_3 is not None:
        early.append(f"EASIX {z.easix_d0_3:.2f} (day {z.easix_d0_3_day})")
    if z.m_easix_d0_3 is not None:
        early.append(f"m-EASIX {z.m_easix_d0_3:.2f} (day {z.m_easix_d0_3_day})")
    return (
        f"[bold]EASIX[/] (baseline): {easix_value(z.easix_baseline, z.missing_easix)}{cut}; "
        f"m-EASIX {easix_value(z.m_easix_baseline, z.missing_m_easix)} (no cut-off applied)"
        + (f"; day 0–3 highest: {', '.join(early)}" if early else "")
    )


def _print_tatma(console: Console, a: Assessment) -> None:
    """TA-TMA harmonised criteria: the count, each criterion with its evidence, high risk."""
    from rich.table import Table

    x = a.tatma
    colour = {"meets": "red", "not met": "green"}.get(x.status, "yellow")
    t = Table(title=f"TA-TMA harmonised criteria ([{colour}]{x.status}[/])")
    for col in ("Criterion", "Result", "Day", "Value", "How"):
        t.add_column(col)
    for c in x.criteria:
        result = "not assessable" if c.met is None else ("[red]met[/]" if c.met else "not met")
        t.add_row(
            c.label,
            result,
            str(c.day) if c.day is not None else "—",
            _fmt(c.value, c.unit or ""),
            c.how or "no value within the carry-forward days",
        )
    console.print(t)
    console.print(x.summary)
    if x.status == "meets":
        hr = ", ".join(x.high_risk_features) or "none found"
        unknown = (
            f" (not assessed: {', '.join(x.high_risk_not_assessed)})"
            if x.high_risk_not_assessed
            else ""
        )
        console.print(f"   High-risk features: {hr}{unknown}")


def iechs_lines(a: Assessment) -> list[str]:
    """IEC-HS by the ASTCT criteria, then carHLH and the HScore, with what is missing."""
    x = a.iechs
    colour = {"met": "red", "suspected": "yellow"}.get(x.status, "default")
    onset = (
        f", onset day {x.onset_day} ({x.onset_relative_to_crs})" if x.onset_day is not None else ""
    )
    out = [
        f"[bold]IEC-HS (ASTCT)[/]: [{colour}]{x.status}[/]{onset}; grade not computed ({x.rule})"
    ]
    out += [f"   • {e}" for e in x.evidence]
    if x.missing:
        out.append("   missing: " + "; ".join(x.missing))
    out.append(
        f"   carHLH: {x.carhlh}"
        + (f" (missing: {'; '.join(x.carhlh_missing)})" if x.carhlh_missing else "")
    )
    at = {True: f">= {x.hscore_cutoff}", False: f"< {x.hscore_cutoff}"}.get(
        x.hscore_at_cutoff,  # type: ignore[arg-type]
        f"cut-off {x.hscore_cutoff} undecided",
    )
    items = (
        ""
        if x.hscore_items == 9
        else f"incomplete: {x.hscore_items} of 9 items, at most {x.hscore_max}; "
    )
    out.append(
        f"   HScore {x.hscore} ({items}{at})"
        + (f"; not scored: {', '.join(x.hscore_missing)}" if x.hscore_missing else "")
    )
    return out
