"""Grade a cohort of any size in bounded memory: lab rows read a batch at a time (Parquet row
groups), graded a chunk of patients at a time, and written chunk by chunk.

``grade --chunk-patients N`` (and any ``grade`` whose lab input is a directory or glob of Parquet
files, hive-partitioned or not, or that grades one ``--shard i/K``) runs ``grade_streaming``.
Peak memory is that of the patient and event tables plus one chunk's lab rows and results, not of
the whole lab table. Each chunk is read and checked by the same readers as a whole file
(``read_cohort`` on in-memory tables) and graded by the same engine, so the rows written are the
rows ``grade`` writes for the whole file, in the same order.

Precondition: the lab rows come grouped by patient, the patients in the patient table's order
(the generator writes them so; ``cart-cytopenia cohort partition`` writes any cohort so, out of
core, with DuckDB). Rows out of that order are reported with the fix, not graded.
"""

from __future__ import annotations

import glob
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from cart_cytopenia.errors import InputError, ParseError, Problem
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.grading.grade_table import empty_grade_table
from cart_cytopenia.io.tables import FrameSource, read_cohort
from cart_cytopenia.rules.settings import Settings

LAB_COLUMNS = ("patient_id", "date", "day", "analyte", "value", "unit")
BATCH_ROWS = 1 << 18  # lab rows read at a time (within a row group)
DEFAULT_CHUNK_PATIENTS = 20_000


def parquet_files(spec: str | Path) -> list[Path]:
    """The Parquet files of a file, a directory (searched recursively, so hive-partitioned
    directories such as ``labs/bucket=3/part-0.parquet`` too) or a glob, in name order."""
    text = str(spec)
    p = Path(text)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*.parquet") if f.is_file())
    elif any(ch in text for ch in "*?["):
        files = sorted(Path(f) for f in glob.glob(text, recursive=True) if f.endswith(".parquet"))
    elif p.exists():
        files = [p]
    else:
        raise ParseError(f"{p} does not exist")
    if not files:
        raise ParseError(f"{text}: no Parquet file found")
    return files


def is_multi_file(spec: str | Path) -> bool:
    return Path(spec).is_dir() or any(ch in str(spec) for ch in "*?[")


def read_whole(spec: str | Path) -> pl.DataFrame:
    """A (small) table from a file, directory or glob; hive partition columns are kept."""
    if not is_multi_file(spec):
        p = Path(spec)
        if not p.exists():
            raise ParseError(f"{p} does not exist")
        if p.suffix.lower() in (".csv", ".txt"):
            return pl.read_csv(p, infer_schema=False)
    files = parquet_files(spec)
    try:
        return pl.read_parquet(files, hive_partitioning=is_multi_file(spec))
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise ParseError(f"{spec} cannot be read: {str(exc).splitlines()[0]}") from None


def shard_of(ids: pl.Series, shards: int) -> NDArray[np.int64]:
    """Each patient's shard, 0..shards-1: CRC-32 of the id's UTF-8 bytes modulo ``shards`` (stable
    across runs, machines and versions; ``cohort partition`` uses the same)."""
    return np.array([zlib.crc32(str(i).encode()) % shards for i in ids.to_list()], np.int64)


def _lab_batches(files: list[Path]) -> Iterator[pl.DataFrame]:
    """The lab rows of ``files`` in order, a row group (or ``BATCH_ROWS``) at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for f in files:
        try:
            pf = pq.ParquetFile(f)
            cols = [c for c in LAB_COLUMNS if c in pf.schema_arrow.names]
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=cols):
                df = pl.from_arrow(pa.Table.from_batches([batch]))
                assert isinstance(df, pl.DataFrame)
                yield df
        except (pa.ArrowException, OSError) as exc:
            raise ParseError(f"{f} cannot be read: {str(exc).splitlines()[0]}") from None


@dataclass
class StreamReport:
    patients: int = 0
    lab_rows: int = 0
    chunks: int = 0
    skipped: list[Problem] = field(default_factory=list)


class _Writer:
    """The grade table written chunk by chunk to .parquet (one row group per chunk) or .csv,
    into a hidden file renamed into place at the end (a failed run leaves nothing behind)."""

    def __init__(self, out: Path) -> None:
        if out.suffix.lower() not in (".csv", ".parquet"):
            raise InputError(f"{out}: output must end in .csv or .parquet")
        out.parent.mkdir(parents=True, exist_ok=True)
        self.out, self.tmp = out, out.with_name(f".{out.name}.partial")
        self.csv = out.suffix.lower() == ".csv"
        self._pq: Any = None
        self._fh: Any = None

    def write(self, table: pl.DataFrame) -> None:
        if self.csv:
            if self._fh is None:
                self._fh = self.tmp.open("wb")
                table.write_csv(self._fh)
            else:
                table.write_csv(self._fh, include_header=False)
            return
        import pyarrow.parquet as pq

        arrow = table.to_arrow()
        if self._pq is None:
            self._pq = pq.ParquetWriter(self.tmp, arrow.schema, compression="zstd")
        self._pq.write_table(arrow)

    def close(self, ok: bool) -> None:
        for handle in (self._pq, self._fh):
            if handle is not None:
                handle.close()
        if ok:
            if self._pq is None and self._fh is None:
                self.write(empty_grade_table())
                self.close(True)
                return
            self.tmp.replace(self.out)
        elif self.tmp.exists():
            self.tmp.unlink()


@dataclass
class _Cohort:
    """The patient and event tables (read whole: small beside the labs) and where each patient
    is in the patient table."""

    patients: pl.DataFrame  # raw, as read, with ``__pos``
    events: pl.DataFrame | None  # raw, with ``__pos``, sorted by it
    position: dict[str, int]
    graded: NDArray[np.bool_]  # the patients of the shard graded

    @classmethod
    def read(
        cls, patients: str | Path, events: str | Path | None, shard: tuple[int, int] | None
    ) -> _Cohort:
        raw = read_whole(patients)
        if "patient_id" not in raw.columns:
            raise InputError(f"{patients}: the patient table needs a 'patient_id' column")
        raw = raw.with_columns(pl.col("patient_id").cast(pl.String))
        ids = raw["patient_id"]
        if ids.n_unique() != ids.len():
            dup = ids.filter(ids.is_duplicated()).unique().head(10).to_list()
            raise InputError(f"{patients}: patient ids must be unique (repeated: {dup})")
        raw = raw.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("__pos"))
        graded = np.ones(raw.height, bool)
        if shard is not None:
            graded = shard_of(ids, shard[1]) == shard[0]
        ev = None
        if events is not None:
            ev = read_whole(events)
            ev = ev.with_columns(pl.col("patient_id").cast(pl.String))
            ev = ev.join(raw.select("patient_id", "__pos"), on="patient_id", how="left")
            unknown = ev.filter(pl.col("__pos").is_null())
            if unknown.height:
                who = unknown["patient_id"].unique().head(10).to_list()
                raise InputError(
                    f"{unknown.height} events row(s) belong to patients missing from the "
                    f"patient table ({who})"
                )
            ev = ev.sort("__pos", maintain_order=True)
        position = dict(zip(ids.to_list(), range(raw.height), strict=True))
        return cls(raw, ev, position, graded)


def _positions(batch: pl.DataFrame, cohort: _Cohort, source: str) -> NDArray[np.int64]:
    """Each lab row's patient position (rows grouped by patient: the ids looked up per run)."""
    runs = batch.select(pl.col("patient_id").rle()).unnest("patient_id")
    found = [cohort.position.get(v) for v in runs["value"].to_list()]
    if None in found:
        who = sorted({v for v, p in zip(runs["value"], found, strict=True) if p is None})[:10]
        raise InputError(
            f"{source}: lab rows belong to patients missing from the patient table ({who})"
        )
    return np.repeat(np.array(found, np.int64), runs["len"].to_numpy())


def _out_of_order(source: str, after: str, before: str) -> InputError:
    return InputError(
        f"{source}: the lab rows are not grouped by patient in the patient table's order "
        f"(rows of '{before}' come after rows of '{after}'), which grading in chunks needs. "
        "Sort them first (out of core): cart-cytopenia cohort partition --into 1 "
        "(docs/scale-out.md), or grade without --chunk-patients/--shard"
    )


@dataclass
class _Run:
    """One streaming run: what it grades with and where the results go."""

    labs: str
    cohort: _Cohort
    writer: _Writer
    settings: Settings
    as_of: int | None
    skip_bad_rows: bool
    report: StreamReport = field(default_factory=StreamReport)

    def grade(self, rows: pl.DataFrame, lo: int, hi: int) -> None:
        """Grade the patients at positions lo..hi-1 (of the shard) on their ``rows``."""
        c = self.cohort
        chosen = c.graded[lo:hi]
        if not chosen.any():
            return
        pats = c.patients.slice(lo, hi - lo).filter(pl.Series(chosen))
        labs = rows.filter(pl.Series(c.graded[rows["__pos"].to_numpy()])) if rows.height else rows
        where = f"{self.labs} (patients {pats['patient_id'][0]} to {pats['patient_id'][-1]})"
        ev_source = None
        if c.events is not None:
            a, b = np.searchsorted(c.events["__pos"].to_numpy(), [lo, hi])
            ev = c.events.slice(int(a), int(b - a))
            ev = ev.filter(pl.Series(c.graded[ev["__pos"].to_numpy()])) if ev.height else ev
            ev_source = FrameSource(f"events {where}", ev.drop("__pos"))
        skipped: list[Problem] | None = [] if self.skip_bad_rows else None
        frames = read_cohort(
            FrameSource(where, labs.drop("__pos")),
            FrameSource(f"patients {where}", pats.drop("__pos")),
            ev_source,
            skipped,
        )
        self.writer.write(grade_cohort(frames, self.settings, as_of=self.as_of))
        self.report.skipped += skipped or []
        self.report.patients += pats.height
        self.report.chunks += 1

    def flush(self, pending: list[pl.DataFrame], lo: int, hi: int) -> list[pl.DataFrame]:
        """Grade positions lo..hi-1 from the pending rows; the rows from ``hi`` on stay."""
        rows = pl.concat(pending, how="vertical_relaxed") if len(pending) > 1 else pending[0]
        cut = int(np.searchsorted(rows["__pos"].to_numpy(), hi))
        self.grade(rows.slice(0, cut), lo, hi)
        return [rows.slice(cut)]


def grade_streaming(
    labs: str | Path,
    patients: str | Path,
    out: str | Path,
    events: str | Path | None = None,
    settings: Settings | None = None,
    as_of: int | None = None,
    chunk_patients: int = DEFAULT_CHUNK_PATIENTS,
    shard: tuple[int, int] | None = None,
    skip_bad_rows: bool = False,
) -> StreamReport:
    """Grade the cohort (Parquet labs: a file, directory or glob) into ``out`` chunk by chunk;
    ``shard`` (i, K): only the patients of shard i of K (``shard_of``)."""
    if chunk_patients < 1:
        raise InputError("--chunk-patients must be at least 1")
    files = parquet_files(labs)
    if any(f.suffix.lower() != ".parquet" for f in files):
        raise InputError(
            f"{labs}: grading in chunks reads Parquet labs; write them as Parquet first "
            "(cart-cytopenia cohort partition --into 1 reads CSV too)"
        )
    cohort = _Cohort.read(patients, events, shard)
    writer = _Writer(Path(out))
    run = _Run(str(labs), cohort, writer, settings or Settings(), as_of, skip_bad_rows)
    ok = False
    try:
        pending: list[pl.DataFrame] = []
        next_pos, last_pos, last_id = 0, -1, ""
        for batch in _lab_batches(files):
            if not pending:
                pending = [batch.clear().with_columns(pl.lit(0, pl.Int64).alias("__pos"))]
            if not batch.height:
                continue
            pos = _positions(batch, cohort, str(labs))
            back = np.flatnonzero(pos[1:] < pos[:-1])
            if back.size or pos[0] < last_pos:
                i = int(back[0]) if back.size else -1
                before = batch["patient_id"][i] if i >= 0 else last_id
                raise _out_of_order(str(labs), before, batch["patient_id"][i + 1])
            last_pos, last_id = int(pos[-1]), str(batch["patient_id"][-1])
            pending.append(batch.with_columns(pl.Series("__pos", pos)))
            run.report.lab_rows += batch.height
            if last_pos - next_pos >= chunk_patients:
                pending = run.flush(pending, next_pos, last_pos)
                next_pos = last_pos
        if not pending:
            raise ParseError(f"{labs}: the lab table has no columns")
        for lo in range(next_pos, cohort.patients.height, chunk_patients):
            hi = min(lo + chunk_patients, cohort.patients.height)
            pending = run.flush(pending, lo, hi)
        ok = True
    finally:
        writer.close(ok)
    return run.report
