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

from cart_cytopenia.cli.clinical import load_course
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


def _write(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "patient"


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

    @imp.command(name="fhir")
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
        result = read_fhir(files)
        print_report(result)
        if report is not None:
            _write(report, result.report())
        docs = [c.model_dump(mode="json", exclude_none=True) for c in result.courses]
        if out is not None:
            for c, doc in zip(result.courses, docs, strict=True):
                _write(out / f"{_safe_name(c.patient.id)}.json", doc)
            typer.echo(f"wrote {len(docs)} course file(s) to {out}", err=True)
        elif len(docs) == 1:
            sys.stdout.write(json.dumps(docs[0], indent=2, ensure_ascii=False) + "\n")
        elif docs:
            raise ParseError(
                f"{len(docs)} patients in the input: give --out DIR to write one file each"
            )
        if not result.courses or result.failed:
            raise typer.Exit(1)

    @exp.command(name="fhir")
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

        settings = load_settings(settings_file)
        course = load_course(course_file)
        guidance = evaluate(course, day, settings)
        bundle = assessment_bundle(
            course, guidance.assessment, guidance.items(), dt.datetime.now(dt.UTC)
        )
        _write(out, bundle)
        if cards is not None:
            deck = patient_view_cards(
                course, guidance.assessment, guidance.items(), [], guidance.missing_data
            )
            _write(cards, {"cards": with_uuids(deck)})
        typer.echo(
            f"wrote {len(bundle['entry'])} resources (day {guidance.day}) to {out}", err=True
        )

    @exp.command(name="fhir-bundle")
    def export_fhir_bundle(
        course_files: list[Path] = typer.Argument(
            None, metavar="COURSE.json...", help="Course files."
        ),
        out: Path = typer.Option(
            ..., "--out", help="Bundle file (one course), NDJSON file, or a directory."
        ),
        bundle_type: BundleType = typer.Option(
            BundleType.COLLECTION, "--type", help="Bundle type."
        ),
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
            from cart_cytopenia.cohort.synthetic import PHENOTYPES, generate_courses

            courses = generate_courses(max(3, len(PHENOTYPES)), seed)
            by_phenotype: dict[str, Any] = {}
            for c in courses:
                ph = assess(c).phenotype.phenotype
                if ph and ph not in by_phenotype:
                    by_phenotype[ph] = c
            out.mkdir(parents=True, exist_ok=True)
            for ph, c in sorted(by_phenotype.items()):
                c = c.as_of(as_of) if as_of is not None else c
                _write(
                    out / f"{ph}-{_safe_name(c.patient.id)}.json",
                    course_to_bundle(c, bundle_type.value),
                )
            typer.echo(
                f"wrote {len(by_phenotype)} Bundles ({', '.join(sorted(by_phenotype))}) to {out}",
                err=True,
            )
            return
        if not course_files:
            raise ParseError("give COURSE.json file(s), or --synthetic")
        courses = [load_course(f) for f in course_files]
        if as_of is not None:
            courses = [c.as_of(as_of) for c in courses]
        if ndjson:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(courses_to_ndjson(courses), encoding="utf-8")
        elif len(courses) == 1 and not out.is_dir():
            _write(out, course_to_bundle(courses[0], bundle_type.value))
        else:
            out.mkdir(parents=True, exist_ok=True)
            for c in courses:
                _write(
                    out / f"{_safe_name(c.patient.id)}.json", course_to_bundle(c, bundle_type.value)
                )
        typer.echo(f"wrote {len(courses)} course(s) as FHIR to {out}", err=True)

    @exp.command(name="fhir-codesystem")
    def export_codesystem(
        out: Path = typer.Option(..., "--out", help="Where to write the CodeSystem (JSON)."),
    ) -> None:
        """The cart-cytopenia code system (concepts without a standard code) as a FHIR CodeSystem."""
        _write(out, project_code_system())
        typer.echo(f"wrote {out}", err=True)
