"""``cart-cytopenia grade``: the grade table of a cohort, on this machine (whole, or streamed in
chunks of patients) or on Apache Spark (``--engine spark``). Every way runs the same engine and
writes the same rows (docs/grade-table-schema.json); docs/scale-out.md says which to use when."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cart_cytopenia.errors import InputError

if TYPE_CHECKING:
    from cart_cytopenia.errors import Problem
    from cart_cytopenia.rules.settings import Settings


class Engine(StrEnum):
    LOCAL = "local"
    SPARK = "spark"


class BadRow(StrEnum):
    FAIL = "fail"
    SKIP = "skip"


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``i/K`` -> (i, K), 0 <= i < K."""
    if text is None:
        return None
    try:
        i, k = (int(x) for x in text.split("/"))
    except ValueError:
        raise InputError(f"--shard {text!r}: write it as i/K, e.g. 0/4 (shard 0 of 4)") from None
    if not 0 <= i < k:
        raise InputError(f"--shard {text!r}: i must be 0 to K-1")
    return i, k


def report_skipped(skipped: list[Problem]) -> None:
    """What ``--on-bad-row skip`` left out: counts and the first problems, on standard error."""
    if not skipped:
        return
    summaries = [p for p in skipped if p.message.endswith("left out")]
    typer.echo("left out bad lab rows (--on-bad-row skip):", err=True)
    for p in summaries:
        typer.echo(f"  {p.message}", err=True)
    for p in [p for p in skipped if p not in summaries][:20]:
        typer.echo(f"  - {p}", err=True)


@dataclass(frozen=True)
class _Options:
    """What every way of grading takes besides the tables."""

    settings_file: Path | None
    as_of: int | None
    skip: bool

    def load_settings(self) -> Settings:
        from cart_cytopenia.rules.settings import load_settings

        return load_settings(self.settings_file)


def _grade_whole(
    labs: Path, patients: Path, events: Path | None, out: Path, opts: _Options
) -> tuple[int, int]:
    """The whole cohort in memory at once (the fastest way when it fits)."""
    from concurrent.futures import ThreadPoolExecutor

    from cart_cytopenia.io.tables import read_cohort, write_table

    skipped: list[Problem] | None = [] if opts.skip else None
    # the files are read (mostly outside the GIL) while the engine and the settings load
    with ThreadPoolExecutor(max_workers=1) as pool:
        reading = pool.submit(read_cohort, labs, patients, events, skipped)
        from cart_cytopenia.grading.engine import grade_cohort

        settings = opts.load_settings()
        frames = reading.result()
    table = grade_cohort(frames, settings, as_of=opts.as_of)
    write_table(table, out)
    report_skipped(skipped or [])
    return table.height, frames.labs.height


def _grade_streamed(
    labs: Path,
    patients: Path,
    events: Path | None,
    out: Path,
    opts: _Options,
    chunk_patients: int | None,
    shard: tuple[int, int] | None,
) -> tuple[int, int]:
    """The cohort a chunk of patients at a time (bounded memory), or one shard of it."""
    from cart_cytopenia.io.streaming import DEFAULT_CHUNK_PATIENTS, grade_streaming

    report = grade_streaming(
        labs,
        patients,
        out,
        events,
        opts.load_settings(),
        opts.as_of,
        chunk_patients or DEFAULT_CHUNK_PATIENTS,
        shard,
        opts.skip,
    )
    report_skipped(report.skipped)
    return report.patients, report.lab_rows


def _grade_here(
    labs: Path | None,
    patients: Path | None,
    events: Path | None,
    out: Path,
    opts: _Options,
    chunk_patients: int | None,
    shard: str | None,
) -> str:
    """``--engine local``: whole, or streamed when asked or when the labs are many files."""
    from cart_cytopenia.io.streaming import is_multi_file

    if labs is None or patients is None:
        raise InputError("grade needs --labs and --patients")
    shard_ = parse_shard(shard)
    if chunk_patients is not None or shard_ is not None or is_multi_file(labs):
        n, n_labs = _grade_streamed(labs, patients, events, out, opts, chunk_patients, shard_)
    else:
        n, n_labs = _grade_whole(labs, patients, events, out, opts)
    return f"graded {n} patients ({n_labs} lab values)"


def _check_output(out: Path, engine: Engine, given: tuple[Path | None, ...]) -> None:
    """A file (.csv/.parquet) that is not an input; with Spark, a Parquet data set directory."""
    from cart_cytopenia.cli.paths import output_dir, output_file, parquet_parts
    from cart_cytopenia.io.tables import table_format

    given = (*given, *parquet_parts(*given))
    if engine == Engine.SPARK and out.suffix.lower() not in (".csv", ".parquet"):
        output_dir(out, given)  # (a Parquet data set written by the executors)
    else:
        table_format(output_file(out, given))


Labs = Annotated[
    Path | None,
    typer.Option("--labs", help="Labs: CSV or Parquet file, or a directory/glob of Parquet."),
]
Patients = Annotated[
    Path | None,
    typer.Option("--patients", help="Patient table (CSV or Parquet; directory/glob too)."),
]
Out = Annotated[
    Path,
    typer.Option("--out", help=".csv or .parquet file; with --engine spark also a directory."),
]
Events = Annotated[
    Path | None, typer.Option("--events", help="Optional event table (CSV or Parquet).")
]
AsOf = Annotated[
    int | None,
    typer.Option("--as-of", help="Grade as of this day (default: all data, retrospective)."),
]
SettingsFile = Annotated[
    Path | None, typer.Option("--settings", help="Institutional settings (TOML).")
]
OnBadRow = Annotated[
    BadRow,
    typer.Option(
        "--on-bad-row",
        help="fail: a bad lab row loads nothing; skip: leave bad lab rows out, report them.",
    ),
]
ChunkPatients = Annotated[
    int | None,
    typer.Option(
        "--chunk-patients",
        help="Stream: grade and write this many patients at a time (bounded memory; "
        "Parquet tables grouped by patient in the patient table's order).",
    ),
]
Shard = Annotated[
    str | None,
    typer.Option("--shard", help="i/K: grade only shard i of K (patients by CRC-32 of the id)."),
]
EngineOpt = Annotated[Engine, typer.Option("--engine", help="local or spark.")]
Master = Annotated[str, typer.Option("--master", help="Spark master URL (with --engine spark).")]
LabsTable = Annotated[
    str | None, typer.Option("--labs-table", help="Spark: read the labs from this table.")
]
PatientsTable = Annotated[
    str | None,
    typer.Option("--patients-table", help="Spark: read the patients from this table."),
]
EventsTable = Annotated[
    str | None, typer.Option("--events-table", help="Spark: read the events from this table.")
]
PartitionBy = Annotated[
    str | None,
    typer.Option(
        "--partition-by",
        help="Spark, directory output: partition the Parquet data set by this patient-"
        "table column (e.g. product or centre).",
    ),
]


def register(app: typer.Typer) -> None:
    @app.command(name="grade")
    def grade_cmd(
        out: Out,
        labs: Labs = None,
        patients: Patients = None,
        events: Events = None,
        as_of: AsOf = None,
        settings_file: SettingsFile = None,
        on_bad_row: OnBadRow = BadRow.FAIL,
        chunk_patients: ChunkPatients = None,
        shard: Shard = None,
        engine: EngineOpt = Engine.LOCAL,
        master: Master = "local[*]",
        labs_table: LabsTable = None,
        patients_table: PatientsTable = None,
        events_table: EventsTable = None,
        partition_by: PartitionBy = None,
    ) -> None:
        """Grade many patients at once (same grading code as assess); one row per patient."""
        from cart_cytopenia.cli.clinical import check_cohort_day

        check_cohort_day(as_of)
        _check_output(out, engine, (labs, patients, events, settings_file))
        t0 = time.perf_counter()
        opts = _Options(settings_file, as_of, on_bad_row == BadRow.SKIP)
        if engine == Engine.SPARK:
            from cart_cytopenia.cli.spark_grade import SparkInputs, grade_on_spark

            inputs = SparkInputs(labs, patients, events, labs_table, patients_table, events_table)
            n, skipped = grade_on_spark(
                inputs, out, opts.load_settings(), as_of, master, partition_by, opts.skip
            )
            report_skipped(skipped)
            done = f"graded {n} patients on Spark"
        else:
            if labs_table or patients_table or events_table or partition_by:
                raise InputError(
                    "--labs-table/--patients-table/--events-table/--partition-by need "
                    "--engine spark"
                )
            done = _grade_here(labs, patients, events, out, opts, chunk_patients, shard)
        typer.echo(f"{done} in {time.perf_counter() - t0:.1f} s -> {out}", err=True)
