"""Cohort commands: ``cohort generate`` (synthetic cohorts and courses), ``cohort report``
(HTML report with figures and CSV tables) and ``cohort omop`` (grade an OMOP CDM extract)."""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cart_cytopenia.cli.clinical import check_cohort_day
from cart_cytopenia.cli.paths import (
    not_an_input,
    output_dir,
    output_file,
    parquet_parts,
    write_text_atomic,
)
from cart_cytopenia.cohort import synthetic, synthetic_courses
from cart_cytopenia.errors import InputError, ParseError
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.io.omop import long_tables, read_omop
from cart_cytopenia.io.tables import read_cohort, table_format, write_table
from cart_cytopenia.rules.settings import load_settings


class FileFormat(StrEnum):
    PARQUET = "parquet"
    CSV = "csv"


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def register(app: typer.Typer) -> None:
    cohort_app = typer.Typer(
        help="Cohorts: synthetic cohorts, cohort reports, OMOP CDM extracts.", no_args_is_help=True
    )
    cohort_app.command(name="generate")(generate_cmd)
    cohort_app.command(name="omop")(omop_cmd)
    cohort_app.command(name="partition")(partition_cmd)
    cohort_app.command(name="report")(report_cmd)
    app.add_typer(cohort_app, name="cohort")


# the largest cohort generated at once (~2.2 billion lab values, ~6 GB of Parquet; the scale
# benchmark grades up to 3,000,000); an unbounded --patients ran until the disk was full
GENERATE_MAX = 10_000_000


def generate_cmd(
    patients: int = typer.Option(
        ...,
        "--patients",
        min=1,
        max=GENERATE_MAX,
        help=f"Number of patients (1 to {GENERATE_MAX:,}: ~220 lab values each).",
    ),
    seed: int = typer.Option(1, "--seed", help="Random seed (same seed and size: same cohort)."),
    out: Path | None = typer.Option(
        None, "--out", help="Directory for patients, labs and events tables."
    ),
    fmt: FileFormat = typer.Option(FileFormat.PARQUET, "--format", help="parquet or csv"),
    lab_dates: bool = typer.Option(
        False, "--dates", help="Write calendar dates (date, start_date ...) instead of days."
    ),
    courses: Path | None = typer.Option(
        None,
        "--courses",
        help="Also (or instead) write full course JSON files (domain Course) to this directory.",
    ),
    n_courses: int | None = typer.Option(
        None,
        "--n-courses",
        min=1,
        max=GENERATE_MAX,
        help="How many course files (default: --patients without --out, else 6).",
    ),
    omop_dir: Path | None = typer.Option(
        None,
        "--omop",
        help="Also write the cohort as an OMOP CDM v5.4 extract (Parquet tables) to this "
        "directory, to try `cohort omop` on.",
    ),
) -> None:
    """Make a synthetic, calibrated CAR-T cohort (see docs/cohort.md)."""
    if out is None and courses is None and omop_dir is None:
        raise typer.BadParameter("give --out DIR (cohort tables), --courses DIR or --omop DIR")
    for folder in (out, courses, omop_dir):
        if folder is not None:
            output_dir(folder)
    console = Console(stderr=True)
    if out is not None:
        t0 = time.perf_counter()
        with _progress(console) as bar:
            task = bar.add_task("generating", total=patients)
            files = synthetic.write_cohort(
                out,
                patients,
                seed,
                fmt=fmt.value,
                lab_dates=lab_dates,
                progress=lambda done, total: bar.update(task, completed=done),
            )
        console.print(
            f"{files.n_patients:,} patients, {files.n_labs:,} lab values, "
            f"{files.n_events:,} events in {time.perf_counter() - t0:.1f} s -> {files.directory}"
        )
        console.print(
            f"grade them: cart-cytopenia grade --patients {files.patients} --labs {files.labs} "
            f"--events {files.events} --out grades.parquet"
        )
    if courses is not None:
        k = n_courses or (patients if out is None else 6)
        docs = synthetic_courses.generate_courses(k, seed)
        courses.mkdir(parents=True, exist_ok=True)
        for c in docs:
            write_text_atomic(
                courses / f"{c.patient.id}.json",
                json.dumps(c.model_dump(mode="json", exclude_none=True), indent=2) + "\n",
            )
        console.print(f"{len(docs)} course files -> {courses}")
    if omop_dir is not None:
        _write_omop_extract(omop_dir, patients, seed, console)


def omop_cmd(
    source: Path = typer.Argument(
        ..., help="OMOP CDM v5.4 extract: a directory of Parquet/CSV tables or a DuckDB file."
    ),
    out: Path = typer.Option(..., "--out", help="Grades, one row per patient (.csv or .parquet)."),
    infusions: Path | None = typer.Option(
        None,
        "--infusions",
        help="Table of day 0 (person_id, infusion_date [, product, progression_date, "
        "next_therapy_date, ld_start_date, disease]); overrides what the extract records.",
    ),
    schema: str | None = typer.Option(None, "--schema", help="DuckDB schema of the CDM tables."),
    export: Path | None = typer.Option(
        None,
        "--export",
        help="Also write the cohort in the long format (CSV) to this directory.",
    ),
    as_of: int | None = typer.Option(None, "--as-of", help="Grade as of this day."),
    settings_file: Path | None = typer.Option(None, "--settings", help="Institutional settings."),
    engine: str = typer.Option(
        "local",
        "--engine",
        help="local, or spark: SOURCE is then a directory or a catalogue schema (e.g. cdm) "
        "read on Spark, and the cohort is graded there (docs/scale-out.md).",
    ),
    master: str = typer.Option("local[*]", "--master", help="Spark master URL."),
) -> None:
    """Grade an OMOP CDM extract with the same engine as `grade` (mapping: docs/cohort.md)."""
    check_cohort_day(as_of)
    inputs = (source, infusions, settings_file, *_omop_tables(source))
    table_format(output_file(out, inputs))
    if export is not None:
        output_dir(export, inputs)
        for name in ("patients", "labs", "events"):
            not_an_input(export / f"{name}.csv", inputs)
    console = Console(stderr=True)
    settings = load_settings(settings_file)
    t0 = time.perf_counter()
    if engine not in ("local", "spark"):
        raise InputError(f"--engine {engine!r}: use local or spark")
    if engine == "spark":
        from cart_cytopenia.cli.spark_grade import grade_omop_on_spark

        n = grade_omop_on_spark(str(source), infusions, out, settings, as_of, master, console)
        console.print(
            f"graded {n:,} patients on Spark in {time.perf_counter() - t0:.1f} s -> {out}",
            highlight=False,
        )
        return
    cohort = read_omop(source, infusions=infusions, schema=schema)
    for line in cohort.summary.lines():
        console.print(line, highlight=False)
    table = grade_cohort(cohort.frames, settings, as_of=as_of)
    if export is not None:
        export.mkdir(exist_ok=True)
        for name, df in long_tables(cohort).items():
            write_table(df, export / f"{name}.csv")
    write_table(table, out)
    console.print(
        f"graded {table.height:,} patients in {time.perf_counter() - t0:.1f} s -> {out}",
        highlight=False,
    )


def partition_cmd(
    labs: Path = typer.Option(..., "--labs", help="Labs: CSV, or Parquet file/directory/glob."),
    patients: Path = typer.Option(..., "--patients", help="Patient table."),
    out: Path = typer.Option(..., "--out", help="Directory for shard=0 ... shard=K-1."),
    into: int = typer.Option(..., "--into", help="K: the number of shards (1: sort only)."),
    events: Path | None = typer.Option(None, "--events", help="Optional event table."),
    memory_limit: str = typer.Option(
        "2GB", "--memory-limit", help="DuckDB's memory limit (it spills to disk past it)."
    ),
) -> None:
    """Split a cohort into K shards of patients, lab rows sorted in patient order (DuckDB,
    out of core), for `grade --chunk-patients` on each shard (docs/scale-out.md)."""
    from cart_cytopenia.io.partition import SHARD, partition_cohort

    output_dir(out, (labs, patients, events, *parquet_parts(labs, patients, events)))
    for f in (labs, patients, events):  # a shard folder of --out is replaced whole
        if f is not None and any(
            d.parent == out.resolve() and SHARD.fullmatch(d.name) for d in f.resolve().parents
        ):
            raise InputError(f"{f} is in a shard folder of --out {out}; choose another --out")
    console = Console(stderr=True)
    t0 = time.perf_counter()
    r = partition_cohort(labs, patients, out, into, events, memory_limit)
    for i in range(r.shards):
        ev = f", {r.event_rows[i]:,} events" if r.event_rows else ""
        console.print(
            f"{out}/shard={i}: {r.patients[i]:,} patients, {r.lab_rows[i]:,} lab rows{ev}",
            highlight=False,
        )
    console.print(f"partitioned in {time.perf_counter() - t0:.1f} s", highlight=False)


def report_cmd(
    directory: Path = typer.Argument(
        ...,
        help="Cohort directory with patients, labs and (optionally) events tables "
        "(.parquet or .csv), e.g. from `cohort generate`.",
    ),
    out: Path = typer.Option(..., "--out", help="Report file (.html); CSV tables go beside it."),
    title: str = typer.Option(
        "Cohort report: cytopenias after CAR T-cell therapy", "--title", help="Report title."
    ),
    as_of: int | None = typer.Option(None, "--as-of", help="Grade as of this day."),
    settings_file: Path | None = typer.Option(None, "--settings", help="Institutional settings."),
    engine: str = typer.Option(
        "local",
        "--engine",
        help="local, or spark: the tables aggregated on Spark, the report written here from "
        "them (docs/scale-out.md).",
    ),
    master: str = typer.Option("local[*]", "--master", help="Spark master URL (--engine spark)."),
) -> None:
    """HTML report (figures embedded) and CSV tables: grades, durations, recovery, calibration."""
    from cart_cytopenia.cohort.report import build_report  # matplotlib: only when reporting

    check_cohort_day(as_of)
    labs = _required_file(directory, "labs")
    patients = _required_file(directory, "patients")
    events = _table_file(directory, "events")
    inputs = (directory, labs, patients, events, settings_file)
    output_file(out, inputs)
    tables = out.with_name(out.stem + "_tables")  # (replaced whole by the report's tables)
    not_an_input(tables, inputs)
    if any(f is not None and tables.resolve() in f.resolve().parents for f in inputs):
        raise InputError(f"{tables} (the report's tables) holds input files; choose another --out")
    if engine not in ("local", "spark"):
        raise InputError(f"--engine {engine!r}: use local or spark")
    console = Console(stderr=True)
    settings = load_settings(settings_file)
    t0 = time.perf_counter()
    if engine == "spark":
        from cart_cytopenia.cli.spark_grade import SparkInputs, report_on_spark

        spark_inputs = SparkInputs(labs, patients, events, None, None, None)
        result = report_on_spark(spark_inputs, out, settings, as_of, master, title, str(directory))
    else:
        frames = read_cohort(labs, patients, events)
        result = build_report(
            frames, settings, out, title=title, source=str(directory), as_of=as_of
        )
    console.print(
        f"report on {result.n_patients:,} patients in {time.perf_counter() - t0:.1f} s -> "
        f"{result.html} (tables: {result.tables})",
        highlight=False,
    )


def _write_omop_extract(target: Path, n: int, seed: int, console: Console) -> None:
    """The synthetic cohort as OMOP CDM tables (day 0 a CAR-T administration procedure, labs
    as MEASUREMENT rows with LOINC and UCUM concepts): what `cohort omop` reads."""
    from cart_cytopenia.io.omop import to_omop, write_omop

    block = synthetic.generate_cohort(n, seed)
    tables = to_omop(block.patients, block.labs, block.events)
    write_omop(tables, target)
    rows = ", ".join(f"{name} {df.height:,}" for name, df in tables.items())
    console.print(f"OMOP CDM extract ({rows}) -> {target}", highlight=False)
    console.print(f"grade it: cart-cytopenia cohort omop {target} --out omop-grades.csv")


def _omop_tables(source: Path) -> list[Path]:
    """The table files of an extract folder (inputs: an output must not replace one)."""
    from cart_cytopenia.io.omop_source import TABLES

    if not source.is_dir():
        return []
    return [f for f in source.iterdir() if f.stem.lower() in TABLES and f.is_file()]


def _required_file(directory: Path, name: str) -> Path:
    found = _table_file(directory, name)
    if found is None:
        raise ParseError(f"{directory}: no {name}.parquet or {name}.csv")
    return found


def _table_file(directory: Path, name: str) -> Path | None:
    """``name``.parquet or ``name``.csv in ``directory`` (a clear error when missing or ambiguous)."""
    if not directory.is_dir():
        raise ParseError(f"{directory} is not a directory (expected patients, labs, events tables)")
    found = [
        directory / f"{name}.{ext}"
        for ext in ("parquet", "csv")
        if (directory / f"{name}.{ext}").exists()
    ]
    if len(found) > 1:
        raise ParseError(f"{directory}: both {found[0].name} and {found[1].name}; keep one")
    return found[0] if found else None
