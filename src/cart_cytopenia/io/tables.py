"""Read and write the long-format cohort tables (CSV or Parquet, by file extension).

LABS: ``patient_id``, ``date`` (ISO) or ``day`` (days since infusion), ``analyte`` (name or LOINC),
``value``, ``unit``. PATIENTS: ``patient_id``, ``infusion_date`` (required when labs or dates use
calendar dates), optional ``progression_date``, ``next_therapy_date``, ``last_followup_date``,
``death_date``, ``ld_start_date`` (or the same as ``*_day``), and baseline / descriptive fields
(``age_years``, ``sex``, ``disease``, ``product``, ``prior_allo_hct``, ``prior_auto_hct`` ...).
EVENTS (optional): ``patient_id``, ``type``, ``start_date``/``start_day``, ``end_date``/``end_day``,
``grade``, ``drug``, ``product``. Parquet files are scanned lazily (only the columns needed).

Every error names the file, the row and the field; a file with any bad row loads nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Container, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from cart_cytopenia.cohort.csv_safety import spreadsheet_safe
from cart_cytopenia.domain.frames import (
    EVENT_SCHEMA,
    MAX_PROBLEMS_LISTED,
    PATIENT_SCHEMA,
    CohortFrames,
    conform,
    course_to_frames,
    empty_events,
    normalise_labs,
)
from cart_cytopenia.errors import InputError, Location, ParseError, Problem, SchemaError
from cart_cytopenia.io.files import atomic_path

if TYPE_CHECKING:
    from cart_cytopenia.domain.course import Course

DATE_FIELDS = ("progression", "next_therapy", "last_followup", "death", "ld_start")


@dataclass(frozen=True)
class FrameSource:
    """A table already in memory (one Spark group's rows, say), read and checked exactly like a
    file; ``name`` stands for the file in messages. Rows are numbered from 1 (as in Parquet)."""

    name: str
    frame: pl.DataFrame
    suffix: str = ".parquet"

    def __str__(self) -> str:
        return self.name


Source = str | Path | FrameSource


def _source(path: Source) -> Path | FrameSource:
    return path if isinstance(path, FrameSource) else Path(path)


def _scan(path: Path | FrameSource) -> pl.LazyFrame:
    if isinstance(path, FrameSource):
        return path.frame.lazy()
    if not path.exists():
        raise ParseError(f"{path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pl.scan_parquet(path)
        if suffix in (".csv", ".txt"):
            return pl.scan_csv(path, infer_schema=False)  # everything as text; we cast explicitly
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise ParseError(f"{path} cannot be read: {exc}") from None
    raise ParseError(f"{path}: unsupported file type '{suffix}' (use .csv or .parquet)")


def _unreadable(path: Path | FrameSource, exc: Exception) -> ParseError:
    if isinstance(exc, pl.exceptions.NoDataError):
        return ParseError(f"{path} is empty: a table needs a header row and data rows")
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ParseError(f"{path} cannot be parsed: {first}")


def _collect(lf: pl.LazyFrame, path: Path | FrameSource) -> pl.DataFrame:
    try:
        return lf.collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _unreadable(path, exc) from None


def _schema(lf: pl.LazyFrame, path: Path | FrameSource) -> pl.Schema:
    """The columns of a table (reading a Parquet footer or a CSV header: a corrupt or empty file
    is a clear error here)."""
    try:
        return lf.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _unreadable(path, exc) from None


def _cast_checked(
    df: pl.DataFrame, col: str, dtype: Any, path: Path | FrameSource, what: str
) -> pl.DataFrame:
    """Cast a text column, reporting the rows that do not parse."""
    out, bad = _cast_rows(df, col, dtype, path, what)
    if bad.height:
        raise SchemaError(
            f"{path}: {bad.height} row(s) with an unreadable {col}; nothing was loaded",
            _cast_problems(bad, col, path, what),
        )
    return out


def _cast_problems(
    bad: pl.DataFrame, col: str, path: Path | FrameSource, what: str
) -> list[Problem]:
    return [
        Problem(
            f"'{r[col]}' is not {what}",
            Location(patient_id=r.get("patient_id"), row=r.get("row"), field=col, source=str(path)),
        )
        for r in bad.head(MAX_PROBLEMS_LISTED).iter_rows(named=True)
    ]


def _cast_rows(
    df: pl.DataFrame, col: str, dtype: Any, path: Path | FrameSource, what: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A text column cast to ``dtype``: (the table with the column cast, its cells that do not
    parse left null; the rows whose cell did not parse, as they were)."""
    source = df.schema[col]
    if source == dtype:
        return df, df.clear()
    if source.is_numeric() and dtype.is_numeric():
        casted = pl.col(col).cast(dtype, strict=False)  # (out of range: null, reported)
        if dtype.is_integer() and source.is_float():
            casted = pl.when(pl.col(col) % 1 == 0).then(casted)  # a fractional day is no day
    elif dtype == pl.Date and source.is_temporal():
        casted = pl.col(col).cast(pl.Date, strict=False)
    elif dtype == pl.Date:
        casted = pl.col(col).cast(pl.String).str.strip_chars().str.to_date("%Y-%m-%d", strict=False)
    else:
        casted = pl.col(col).cast(pl.String).str.strip_chars().cast(dtype, strict=False)
    out = df.with_columns(casted.alias("__cast"))
    bad = out.filter(
        pl.col("__cast").is_null()
        & pl.col(col).is_not_null()
        & (pl.col(col).cast(pl.String).str.strip_chars() != "")
    )
    return out.with_columns(pl.col("__cast").alias(col)).drop("__cast"), bad.drop("__cast")


def read_patients(path: Source) -> pl.DataFrame:
    """The patient table with day-based columns (dates converted against infusion_date)."""
    p = _source(path)
    df = _collect(_scan(p), p)
    df = df.with_row_index("row", offset=2 if p.suffix.lower() == ".csv" else 1).with_columns(
        pl.col("row").cast(pl.Int64)
    )
    _require_patient_id(df, p)
    df = df.with_columns(pl.col("patient_id").cast(pl.String))
    missing_id = df.filter(
        pl.col("patient_id").is_null() | (pl.col("patient_id").str.strip_chars() == "")
    )
    if missing_id.height:
        raise SchemaError(
            f"{p}: {missing_id.height} row(s) without a patient_id; nothing was loaded",
            [
                Problem("missing patient_id", Location(row=r, source=str(p)))
                for r in missing_id["row"].head(20)
            ],
        )
    has_dates = any(f"{f}_date" in df.columns for f in DATE_FIELDS)
    if "infusion_date" in df.columns:
        df = _cast_checked(df, "infusion_date", pl.Date, p, "an ISO date (YYYY-MM-DD)")
        nulls = df.filter(pl.col("infusion_date").is_null())
        if nulls.height:
            raise SchemaError(
                f"{p}: {nulls.height} patient(s) without an infusion date (day 0); nothing was loaded",
                [
                    Problem(
                        "missing infusion_date",
                        Location(patient_id=r["patient_id"], row=r["row"], source=str(p)),
                    )
                    for r in nulls.head(20).iter_rows(named=True)
                ],
            )
    elif has_dates:
        raise SchemaError(f"{p}: dates are given but 'infusion_date' (day 0) is missing")
    for f in DATE_FIELDS:
        dcol, daycol = f"{f}_date", f"{f}_day"
        if dcol in df.columns:
            df = _cast_checked(df, dcol, pl.Date, p, "an ISO date (YYYY-MM-DD)")
            df = df.with_columns(
                (pl.col(dcol) - pl.col("infusion_date"))
                .dt.total_days()
                .cast(pl.Int32)
                .alias(daycol)
            )
        elif daycol in df.columns:
            df = _cast_checked(df, daycol, pl.Int32, p, "a whole number of days")
    df = _checked_descriptions(df, p)
    bad_order = df.filter(pl.col("death_day") < 0) if "death_day" in df.columns else df.clear()
    if bad_order.height:
        raise SchemaError(
            f"{p}: death before infusion; nothing was loaded",
            [
                Problem(
                    "death_date is before infusion_date",
                    Location(patient_id=r["patient_id"], row=r["row"], source=str(p)),
                )
                for r in bad_order.head(20).iter_rows(named=True)
            ],
        )
    return conform(df, PATIENT_SCHEMA)


# the words read as yes and no in a patient table (those the course JSON reads for a
# true/false field); an empty cell is unknown
YES = ("true", "yes", "y", "t", "1", "on")
NO = ("false", "no", "n", "f", "0", "off")
AGE_RANGE = (0, 120)  # years, as the course JSON's patient.age_years


def _checked_descriptions(df: pl.DataFrame, p: Path | FrameSource) -> pl.DataFrame:
    """``age_years`` a number from 0 to 120 and ``prior_allo_hct``/``prior_auto_hct`` yes or no
    (or empty: unknown), as the course JSON requires; every bad cell is reported."""
    problems: list[Problem] = []

    def report(bad: pl.DataFrame, col: str, what: str) -> None:
        problems.extend(_cast_problems(bad, col, p, what))

    if "age_years" in df.columns:
        lo, hi = AGE_RANGE
        what = f"an age from {lo} to {hi} years"
        df, bad = _cast_rows(df, "age_years", pl.Float64, p, what)
        report(bad, "age_years", what)
        out_of_range = df.filter(pl.col("age_years").is_not_null()).filter(
            ~pl.col("age_years").is_between(lo, hi)
        )
        report(out_of_range, "age_years", what)
    for col in ("prior_allo_hct", "prior_auto_hct"):
        if col not in df.columns or df.schema[col] == pl.Boolean:
            continue
        word = pl.col(col).cast(pl.String).str.strip_chars().str.to_lowercase()
        df = df.with_columns(
            pl.when(word.is_in(YES)).then(True).when(word.is_in(NO)).then(False).alias(f"__{col}")
        )
        bad = df.filter(pl.col(f"__{col}").is_null() & (word.fill_null("") != ""))
        report(bad, col, "yes or no (true/false, 1/0; empty: unknown)")
        df = df.with_columns(pl.col(f"__{col}").alias(col)).drop(f"__{col}")
    if problems:
        raise SchemaError(f"{p}: bad patient rows; nothing was loaded", problems)
    return df


CodedTexts = dict[str, tuple[list[str], NDArray[np.unsignedinteger]]]


def _codable(
    path: Path | FrameSource, schema: pl.Schema, columns: tuple[str, ...] = ("analyte", "unit")
) -> tuple[str, ...]:
    """Which of ``columns`` of a Parquet lab table hold text, plain or dictionary-encoded (read
    as codes by ``_parquet_coded``; a table in memory has none)."""
    if isinstance(path, FrameSource) or path.suffix.lower() != ".parquet":
        return ()
    return tuple(c for c in columns if schema.get(c) in (pl.String, pl.Categorical))


def _start_coded_read(
    path: Path | FrameSource, pool: ThreadPoolExecutor
) -> Future[CodedTexts] | None:
    """``_parquet_coded`` of a lab table started on ``pool`` (None: nothing to read so)."""
    if isinstance(path, FrameSource):
        return None
    try:
        codable = _codable(path, _scan(path).collect_schema())
    except (ParseError, pl.exceptions.PolarsError, OSError):
        return None  # (reported when the table is read)
    return pool.submit(_parquet_coded, path, codable) if codable else None


def read_labs(
    path: Source,
    patients: pl.DataFrame,
    infusion: pl.DataFrame | None = None,
    coded_read: Future[CodedTexts] | None = None,
    skipped: list[Problem] | None = None,
) -> pl.DataFrame:
    """Canonical lab rows (``normalise_labs``), dates converted to days using infusion_date.

    ``coded_read``: the table's analyte and unit codes, already being read (``read_cohort``
    starts it before reading the patients). ``skipped``: bad rows are left out and reported
    into it instead of failing (``normalise_labs``)."""
    p = _source(path)
    lf = _scan(p)
    schema = _schema(lf, p)
    cols = schema.names()
    need = ["patient_id", "analyte", "value", "unit"]
    missing = [c for c in need if c not in cols]
    if "date" not in cols and "day" not in cols:
        missing.append("date or day")
    if missing:
        raise SchemaError(
            f"{p}: the lab table lacks column(s): {', '.join(missing)} (found: {', '.join(cols)})"
        )

    def read_other_columns(coded: Container[str]) -> pl.DataFrame:
        keep = [
            c
            for c in ("patient_id", "date", "day", "analyte", "value", "unit")
            if c in cols and c not in coded
        ]
        # the row number is made in the same query as the columns, so that every column has the
        # same chunks: a frame whose columns are chunked differently is copied whole by every
        # select
        return _collect(
            lf.select(keep)
            .with_row_index("row", offset=2 if p.suffix.lower() == ".csv" else 1)
            .with_columns(pl.col("row").cast(pl.Int64), pl.col("patient_id").cast(pl.String)),
            p,
        )

    # analyte and unit texts of a Parquet file come as codes into their few distinct texts, read
    # by pyarrow in a second thread while polars reads the other columns
    codable = _codable(p, schema)
    coded: CodedTexts = {}
    if codable and isinstance(p, Path):
        with ThreadPoolExecutor(max_workers=1) as pool:
            texts_read = coded_read or pool.submit(_parquet_coded, p, codable)
            df = read_other_columns(codable)
            coded = texts_read.result()
        if len(coded) < len(codable):  # missing values (reported by the text path) or unreadable
            df = read_other_columns(coded)
    else:
        df = read_other_columns(())
    if coded:
        if any(len(codes) != df.height for _, codes in coded.values()):
            raise ParseError(f"{p} cannot be parsed: its columns differ in length")
        # the codes cut like the other columns' chunks (a frame whose columns are chunked
        # differently is copied whole by every select)
        bounds = np.cumsum([0, *df["row"].chunk_lengths()]).tolist()
        df = df.with_columns(
            pl.concat(
                [pl.Series(name, codes[a:b]) for a, b in itertools.pairwise(bounds)],
                rechunk=False,
            )
            for name, (_, codes) in coded.items()
        )
    if df.height == 0 and not isinstance(p, FrameSource):  # (a group or chunk may have none)
        raise ParseError(f"{p} has a header but no lab rows: nothing to grade")
    coded_texts: dict[str, Sequence[str]] = {name: texts for name, (texts, _) in coded.items()}
    return _checked_lab_rows(df, p, infusion, coded_texts, skipped)


def _checked_lab_rows(
    df: pl.DataFrame,
    p: Path | FrameSource,
    infusion: pl.DataFrame | None,
    coded: dict[str, Sequence[str]],
    skipped: list[Problem] | None = None,
) -> pl.DataFrame:
    """The lab rows read, cast and normalised; every bad row of the file is reported at once
    (unreadable values, dates and days, unknown analytes and units, implausible values), or,
    with ``skipped``, left out and reported into it."""
    problems: list[Problem] = []
    unreadable: list[pl.Series] = []

    def cast(df: pl.DataFrame, col: str, dtype: Any, what: str) -> pl.DataFrame:
        out, bad = _cast_rows(df, col, dtype, p, what)
        if bad.height:
            problems.extend(_cast_problems(bad, col, p, what))
            if bad.height > MAX_PROBLEMS_LISTED:
                problems.append(Problem(f"... {bad.height} rows with an unreadable {col} in all"))
            unreadable.append(bad["row"])
        return out

    df = cast(df, "value", pl.Float64, "a number")
    if "date" in df.columns and (df.schema["date"] != pl.Int32):
        if infusion is None or "infusion_date" not in infusion.columns:
            raise SchemaError(f"{p}: labs are dated, so the patient table needs 'infusion_date'")
        if df.schema["date"] == pl.String:
            # accept ISO dates with an optional time part: the calendar day counts
            df = df.with_columns(pl.col("date").str.slice(0, 10))
        df = cast(df, "date", pl.Date, "an ISO date (YYYY-MM-DD)")
        df = df.join(infusion.select("patient_id", "infusion_date"), on="patient_id", how="left")
        df = df.with_columns(
            (pl.col("date") - pl.col("infusion_date"))
            .dt.total_days()
            .cast(pl.Int32)
            .alias("day_from_date")
        )
        if "day" in df.columns:
            df = cast(df, "day", pl.Int32, "a whole number of days")
            df = df.with_columns(pl.coalesce("day_from_date", "day").alias("day"))
        else:
            df = df.with_columns(pl.col("day_from_date").alias("day"))
    else:
        df = cast(df, "day", pl.Int32, "a whole number of days")
    if unreadable:  # (reported above; the other rows are still checked)
        bad_rows = pl.concat(unreadable).unique()
        df = df.filter(~pl.col("row").is_in(bad_rows.implode()))
        if skipped is not None:  # --on-bad-row skip: those rows left out, listed
            skipped.append(Problem(f"{p}: {bad_rows.len()} unreadable row(s) left out"))
            skipped.extend(problems)
            problems = []
    try:
        labs = normalise_labs(
            df.select("patient_id", "day", "analyte", "value", "unit", "row"),
            source=str(p),
            coded=coded,
            skipped=skipped,
        )
    except InputError as exc:
        if not problems:
            raise
        problems.extend(exc.problems)
    if problems:
        listed = sum(1 for x in problems if not x.message.startswith("..."))
        raise SchemaError(f"{p}: bad rows ({listed} listed); nothing was loaded", problems)
    return labs


# pyarrow's ``array()`` and ``Array.to_numpy()`` import pandas when it is installed (about 0.2 s):
# numeric arrays without missing values are wrapped and read through their buffers instead


def _arrow_array(values: NDArray[np.unsignedinteger]) -> Any:
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(
        pa.from_numpy_dtype(values.dtype), values.size, [None, pa.py_buffer(values)]
    )


def _arrow_values(array: Any) -> NDArray[np.unsignedinteger]:
    """The values of a numeric arrow array without missing values, as a numpy view."""
    if array.null_count:
        raise ValueError("missing values")
    dtype = np.dtype(array.type.to_pandas_dtype())
    out: NDArray[np.unsignedinteger] = np.frombuffer(
        array.buffers()[1], dtype, count=len(array), offset=array.offset * dtype.itemsize
    )
    return out


def _parquet_coded(path: Path, columns: tuple[str, ...]) -> CodedTexts:
    """Text columns of a Parquet file as codes into their sorted distinct texts, read from the
    file's dictionary pages without making a string for each row (16.9M rows: about 0.5 s less
    than reading the texts and coding them): {column: (texts, codes)}, the codes the smallest
    unsigned integers that hold them. Columns that are not text, or have missing values, are left
    out (read as usual, where missing values are reported); a file pyarrow cannot read gives {}
    (the usual reader then reports the problem)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        names = list(_codable(path, _scan(path).collect_schema(), columns))
    except (ParseError, pl.exceptions.PolarsError, OSError):
        return {}  # (the usual reader reports the problem)
    if not names:
        return {}
    try:
        # (``ParquetFile``: ``read_table`` would import pyarrow.dataset, and with it pandas)
        table = pq.ParquetFile(path, read_dictionary=names).read(columns=names)
    except (pa.ArrowException, OSError):
        return {}
    out: CodedTexts = {}
    for name in names:
        chunks = table.column(name).chunks
        dictionaries = [ch.dictionary.to_pylist() for ch in chunks]
        if any(ch.null_count for ch in chunks) or any(None in d for d in dictionaries):
            continue
        texts = sorted(set().union(*dictionaries))
        if not texts:
            continue
        dtype = (
            np.uint8 if len(texts) <= 1 << 8 else np.uint16 if len(texts) <= 1 << 16 else np.uint32
        )
        pos = {t: i for i, t in enumerate(texts)}
        # each chunk's dictionary positions -> positions among all the distinct texts (arrow's
        # take reads the 32-bit positions as they are; numpy would widen them to 64 bits first)
        codes = np.empty(table.num_rows, dtype)
        at = 0
        for ch, d in zip(chunks, dictionaries, strict=True):
            codes[at : at + len(ch)] = _arrow_values(
                pc.take(_arrow_array(np.array([pos[t] for t in d], dtype)), ch.indices)
            )
            at += len(ch)
        out[name] = (texts, codes)
    return out


def read_events(path: Source, infusion: pl.DataFrame | None) -> pl.DataFrame:
    p = _source(path)
    df = _collect(_scan(p), p)
    if "patient_id" not in df.columns or "type" not in df.columns:
        raise SchemaError(
            f"{p}: the event table needs 'patient_id', 'type' and 'start_date' or 'start_day' "
            f"(found: {', '.join(df.columns)})"
        )
    df = df.with_row_index("row", offset=2 if p.suffix.lower() == ".csv" else 1).with_columns(
        pl.col("row").cast(pl.Int64), pl.col("patient_id").cast(pl.String)
    )
    for f in ("start", "end"):
        dcol, daycol = f"{f}_date", f"{f}_day"
        if dcol in df.columns:
            if infusion is None:
                raise SchemaError(
                    f"{p}: events are dated, so the patient table needs 'infusion_date'"
                )
            df = _cast_checked(df, dcol, pl.Date, p, "an ISO date (YYYY-MM-DD)")
            if "infusion_date" not in df.columns:
                df = df.join(
                    infusion.select("patient_id", "infusion_date"), on="patient_id", how="left"
                )
            df = df.with_columns(
                (pl.col(dcol) - pl.col("infusion_date"))
                .dt.total_days()
                .cast(pl.Int32)
                .alias(daycol)
            )
        elif daycol in df.columns:
            df = _cast_checked(df, daycol, pl.Int32, p, "a whole number of days")
    if "start_day" not in df.columns or "type" not in df.columns:
        raise SchemaError(
            f"{p}: the event table needs 'patient_id', 'type' and 'start_date' or 'start_day'"
        )
    if "grade" in df.columns:
        df = _cast_checked(df, "grade", pl.Int8, p, "a whole number")
    df = _checked_event_kinds(df, p)
    missing = df.filter(pl.col("start_day").is_null())
    if missing.height:
        raise SchemaError(
            f"{p}: {missing.height} event(s) without a start; nothing was loaded",
            [
                Problem(
                    "missing start_date/start_day",
                    Location(patient_id=r["patient_id"], row=r["row"], source=str(p)),
                )
                for r in missing.head(20).iter_rows(named=True)
            ],
        )
    return conform(df, EVENT_SCHEMA).select(list(EVENT_SCHEMA))


# ``grade`` of an event row, by type, as the course JSON bounds it (ASTCT grades; units given)
# (a finding's ``grade`` is 1 present, 0 looked for and absent; its name is in ``product``)
EVENT_GRADE_RANGES = {
    "crs": (1, 4),
    "icans": (1, 4),
    "transfusion": (1, 20),
    "gvhd": (1, 4),
    "finding": (0, 1),
}


def _checked_event_kinds(df: pl.DataFrame, p: Path | FrameSource) -> pl.DataFrame:
    """``type`` one of the course's event types (any case) and ``grade`` within its range: an
    unknown type (a "CRS " or "cytokine storm") was left out of the grades without a word."""
    from cart_cytopenia.domain.course import event_types

    kinds = event_types()
    df = df.with_columns(pl.col("type").cast(pl.String).str.strip_chars().str.to_lowercase())
    bad = df.filter(pl.col("type").is_null() | ~pl.col("type").is_in(kinds))
    problems = _cast_problems(bad, "type", p, f"an event type ({', '.join(kinds)})")
    if "grade" in df.columns:
        for kind, (lo, hi) in EVENT_GRADE_RANGES.items():
            out = df.filter(
                (pl.col("type") == kind)
                & pl.col("grade").is_not_null()
                & ~pl.col("grade").is_between(lo, hi)
            )
            problems += _cast_problems(out, "grade", p, f"a {kind} grade from {lo} to {hi}")
    if problems:
        raise SchemaError(f"{p}: bad event rows; nothing was loaded", problems)
    return df


def read_cohort(
    labs: Source,
    patients: Source,
    events: Source | None = None,
    skipped: list[Problem] | None = None,
) -> CohortFrames:
    """Read a cohort; raises an InputError naming file, row and field for any bad input.

    ``skipped``: lab rows that cannot be read as a value (missing, unknown analyte or unit,
    implausible) are left out and reported into this list instead (``--on-bad-row skip``);
    problems of the patient and event tables still fail the read."""
    pp = _source(patients)
    # a Parquet lab table's analyte and unit codes are read (pyarrow, a second thread) from the
    # start, while the patients and then the lab table's other columns are read
    with ThreadPoolExecutor(max_workers=1) as pool:
        coded_read = _start_coded_read(_source(labs), pool)
        try:
            raw_patients = _collect(_scan(pp), pp)
            infusion = None
            if "infusion_date" in raw_patients.columns:
                infusion = read_patients_infusion(raw_patients, pp)
            pats = read_patients(patients)
            lab_df = read_labs(labs, pats, infusion, coded_read, skipped)
        finally:
            if coded_read is not None:
                coded_read.cancel()  # (an error above: the codes are not waited for)
    ev = read_events(events, infusion) if events else empty_events()
    return CohortFrames(pats, lab_df, ev, events_recorded=events is not None)


def _require_patient_id(df: pl.DataFrame, p: Path | FrameSource) -> None:
    if "patient_id" not in df.columns:
        found = ", ".join(c for c in df.columns if c != "row")
        raise SchemaError(f"{p}: the patient table needs a 'patient_id' column (found: {found})")


def read_patients_infusion(raw: pl.DataFrame, path: Path | FrameSource) -> pl.DataFrame:
    _require_patient_id(raw, path)
    df = raw.select(pl.col("patient_id").cast(pl.String), "infusion_date").with_row_index(
        "row", offset=2
    )
    return _cast_checked(df, "infusion_date", pl.Date, path, "an ISO date (YYYY-MM-DD)")


def table_format(path: Path) -> str:
    """The suffix of an output table (.csv or .parquet); anything else is an InputError."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise InputError(f"{path}: output must end in .csv or .parquet")
    return suffix


def write_table(df: pl.DataFrame, path: str | Path) -> Path:
    """Write CSV or Parquet by extension, atomically (a failed write leaves nothing behind).
    Text cells of a CSV that a spreadsheet would run as formulas are neutralised (OWASP)."""
    p = Path(path)
    suffix = table_format(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p) as tmp:
        if suffix == ".csv":
            spreadsheet_safe(df).write_csv(tmp)
        else:
            df.write_parquet(tmp)
    return p


def courses_to_tables(courses: list[Course]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Courses as the long-format PATIENTS, LABS (original values and units) and EVENTS tables."""
    pats, labs, events = [], [], []
    for c in courses:
        frames = course_to_frames(c)
        row = frames.patients.row(0, named=True)
        row["infusion_date"] = c.infusion_date
        pats.append(row)
        for lab in [*c.baseline_labs, *c.labs]:
            labs.append(
                {
                    "patient_id": c.patient.id,
                    "day": lab.day,
                    "analyte": lab.analyte_code,
                    "value": lab.value,
                    "unit": lab.unit,
                }
            )
        events.append(frames.events)
    patients = pl.DataFrame(pats).select(
        "patient_id", "infusion_date", *[k for k in PATIENT_SCHEMA if k != "patient_id"]
    )
    lab_df = pl.DataFrame(
        labs,
        schema={
            "patient_id": pl.String,
            "day": pl.Int32,
            "analyte": pl.String,
            "value": pl.Float64,
            "unit": pl.String,
        },
    )
    ev = pl.concat(events) if events else empty_events()
    return patients, lab_df, ev
