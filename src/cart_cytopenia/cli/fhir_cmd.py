"""FHIR commands: ``import fhir``, ``export fhir``, ``export fhir-bundle``, ``export fhir-codesystem``.

    cart-cytopenia import fhir BUNDLE.json|EXPORT.ndjson|DIR ... [--out DIR] [--report FILE]
    cart-cytopenia export fhir COURSE.json [--day N] --out FILE [--cards FILE]
    cart-cytopenia export fhir-bundle COURSE.json ... --out FILE [--type transaction] [--ndjson]
    cart-cytopenia export fhir-bundle --synthetic --seed 7 --out DIR   (a Bundle per phenotype)

The ``import`` and ``export`` groups are shared with other formats: a module registering later
adds its commands to the same group.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from cart_cytopenia.cli.clinical import check_day, load_course
from cart_cytopenia.cli.paths import (
    not_an_input,
    output_dir,
    output_file,
    unique_names,
    write_json,
    write_text_atomic,
)
from cart_cytopenia.errors import ParseError
from cart_cytopenia.grading.assessment import assess
from cart_cytopenia.io.fhir import (
    FhirImport,
    assessment_bundle,
    course_to_bundle,
    courses_to_ndjson,
    project_code_system,
    read_fhir,
)
from cart_cytopenia.io.fhir_cards import patient_view_cards, with_uuids
from cart_cytopenia.rules.settings import load_settings


class BundleType(StrEnum):
    COLLECTION = "collection"
    TRANSACTION = "transaction"
    BATCH = "batch"


def group(app: typer.Typer, name: str, help_text: str) -> typer.Typer:
    """The sub-command group ``name`` of ``app`` (created when no module has made it yet)."""
    for info in app.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    sub = typer.Typer(help=help_text, no_args_is_help=True)
    app.add_typer(sub, name=name)
    return sub


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "patient"


def _file_names(stems: list[str], out: Path, inputs: list[Path]) -> list[Path]:
    """One file in ``out`` per patient: distinct names (``a/b`` and ``a_b`` are two patients,
    two files), none of them an input of the command (or a file in an input folder)."""
    paths = [out / name for name in unique_names(stems)]
    in_folders = [f for p in inputs if p.is_dir() for f in p.iterdir()]
    not_an_input(paths, [*inputs, *in_folders])
    return paths


def print_report(result: FhirImport, out: Any = None) -> None:
    """A short summary of an import on stderr (the full report is written with --report)."""
    err = out or sys.stderr
    read = sum(result.resources_read.values())
    err.write(
        f"read {read} resources ({', '.join(f'{n} {k}' for k, n in sorted(result.resources_read.items()))}); "
        f"{len(result.courses)} course(s)\n"
    )
    if result.unmapped:
        err.write(f"{len(result.unmapped)} not used:\n")
        for reason, n in list(result.unmapped_by_reason().items())[:12]:
            err.write(f"  {n:>5} × {reason}\n")
    for w in result.warnings[:20]:
        err.write(f"warning: {w}\n")
    if len(result.warnings) > 20:
        err.write(f"... and {len(result.warnings) - 20} more warnings (see --report)\n")
    for f in result.failed:
        err.write(f"no course: {f}\n")


def register(app: typer.Typer) -> None:
    imp = group(app, "import", "Import patient data into course documents.")
    exp = group(app, "export", "Export courses, assessments and guidance in standard formats.")
    imp.command(name="fhir")(import_fhir)
    exp.command(name="fhir")(export_fhir)
    exp.command(name="fhir-bundle")(export_fhir_bundle)
    exp.command(name="fhir-codesystem")(export_codesystem)


def import_fhir(
    files: list[Path] = typer.Argument(
        ...,
        metavar="FILE...",
        help="FHIR JSON (Bundle or resource), NDJSON, or directories of them.",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Directory for the course files (<patient>.json); default: stdout (one course).",
    ),
    report: Path | None = typer.Option(
        None,
        "--report",
        help="Write the full import report (JSON): every resource not used, with why.",
    ),
) -> None:
    """FHIR R4 Bundle(s) or bulk NDJSON -> course files, reporting everything not used."""
    if out is not None:
        output_dir(out, files)
    if report is not None:
        output_file(report, files)
    result = read_fhir(files)
    docs = [c.model_dump(mode="json", exclude_none=True) for c in result.courses]
    targets = (
        _file_names([_safe_name(c.patient.id) for c in result.courses], out, files)
        if out is not None
        else []
    )
    if out is None and len(docs) > 1:
        raise ParseError(
            f"{len(docs)} patients in the input: give --out DIR to write one file each"
        )
    print_report(result)
    if report is not None:
        write_json(report, result.report())
    if out is not None:
        out.mkdir(exist_ok=True)
        for path, doc in zip(targets, docs, strict=True):
            write_json(path, doc)
        typer.echo(f"wrote {len(docs)} course file(s) to {out}", err=True)
    elif len(docs) == 1:
        sys.stdout.write(json.dumps(docs[0], indent=2, ensure_ascii=False) + "\n")
    if not result.courses or result.failed:
        raise typer.Exit(1)


def export_fhir(
    course_file: Path = typer.Argument(..., metavar="COURSE.json"),
    out: Path = typer.Option(..., "--out", help="The FHIR Bundle to write (JSON)."),
    day: int | None = typer.Option(
        None, "--day", help="Assess as of this day (default: last day with data)."
    ),
    settings_file: Path | None = typer.Option(
        None, "--settings", help="Institutional settings (TOML)."
    ),
    cards: Path | None = typer.Option(
        None, "--cards", help="Also write the CDS Hooks cards (JSON)."
    ),
) -> None:
    """Grades (Observations) and guidance (RequestGroup of proposals, DetectedIssue) as FHIR."""
    from cart_cytopenia.guidance import evaluate

    inputs = (course_file, settings_file)
    output_file(out, inputs)
    if cards is not None:
        output_file(cards, (*inputs, out))
    settings = load_settings(settings_file)
    course = load_course(course_file)
    check_day(course, day)
    guidance = evaluate(course, day, settings)
    bundle = assessment_bundle(
        course, guidance.assessment, guidance.items(), dt.datetime.now(dt.UTC)
    )
    write_json(out, bundle)
    if cards is not None:
        deck = patient_view_cards(
            course, guidance.assessment, guidance.items(), [], guidance.missing_data
        )
        write_json(cards, {"cards": with_uuids(deck)})
    typer.echo(f"wrote {len(bundle['entry'])} resources (day {guidance.day}) to {out}", err=True)


def export_fhir_bundle(
    course_files: list[Path] = typer.Argument(None, metavar="COURSE.json...", help="Course files."),
    out: Path = typer.Option(
        ..., "--out", help="Bundle file (one course), NDJSON file, or a directory."
    ),
    bundle_type: BundleType = typer.Option(BundleType.COLLECTION, "--type", help="Bundle type."),
    ndjson: bool = typer.Option(
        False, "--ndjson", help="Write bulk-data NDJSON (all courses, one file)."
    ),
    synthetic: bool = typer.Option(
        False,
        "--synthetic",
        help="Generate synthetic courses: one Bundle per recovery phenotype in --out DIR.",
    ),
    seed: int = typer.Option(7, "--seed", help="Seed of the synthetic generator."),
    as_of: int | None = typer.Option(None, "--as-of", help="Only what was known on this day."),
) -> None:
    """Course(s) as FHIR R4 (the generator): what `import fhir` reads back to the same course."""
    if synthetic:
        _synthetic_bundles(out, bundle_type, seed, as_of)
        return
    if not course_files:
        raise ParseError("give COURSE.json file(s), or --synthetic")
    one_file = ndjson or (len(course_files) == 1 and not out.is_dir())
    (output_file if one_file else output_dir)(out, course_files)
    courses = [load_course(f) for f in course_files]
    for c in courses:
        check_day(c, as_of, "--as-of")
    if as_of is not None:
        courses = [c.as_of(as_of) for c in courses]
    if ndjson:
        write_text_atomic(out, courses_to_ndjson(courses))
    elif one_file:
        write_json(out, course_to_bundle(courses[0], bundle_type.value))
    else:
        targets = _file_names([_safe_name(c.patient.id) for c in courses], out, course_files)
        out.mkdir(exist_ok=True)
        for path, c in zip(targets, courses, strict=True):
            write_json(path, course_to_bundle(c, bundle_type.value))
    typer.echo(f"wrote {len(courses)} course(s) as FHIR to {out}", err=True)


def export_codesystem(
    out: Path = typer.Option(..., "--out", help="Where to write the CodeSystem (JSON)."),
) -> None:
    """The cart-cytopenia code system (concepts without a standard code) as a FHIR CodeSystem."""
    write_json(output_file(out), project_code_system())
    typer.echo(f"wrote {out}", err=True)


def _synthetic_bundles(out: Path, bundle_type: BundleType, seed: int, as_of: int | None) -> None:
    """One Bundle per recovery phenotype, from the synthetic generator, in ``out``."""
    from cart_cytopenia.cohort.synthetic import PHENOTYPES
    from cart_cytopenia.cohort.synthetic_courses import generate_courses

    output_dir(out)
    courses = generate_courses(max(3, len(PHENOTYPES)), seed)
    by_phenotype: dict[str, Any] = {}
    for c in courses:
        ph = assess(c).phenotype.phenotype
        if ph and ph not in by_phenotype:
            by_phenotype[ph] = c
    out.mkdir(exist_ok=True)
    for ph, c in sorted(by_phenotype.items()):
        c = c.as_of(as_of) if as_of is not None else c
        write_json(
            out / f"{ph}-{_safe_name(c.patient.id)}.json",
            course_to_bundle(c, bundle_type.value),
        )
    typer.echo(
        f"wrote {len(by_phenotype)} Bundles ({', '.join(sorted(by_phenotype))}) to {out}",
        err=True,
    )
