"""Grade a cohort of any size in bounded memory: the patient, lab and event tables read side by
side a batch at a time (Parquet row groups), graded a chunk of patients at a time, and written
chunk by chunk.

``grade --chunk-patients N`` (and any ``grade`` whose lab input is a directory or glob of Parquet
files, hive-partitioned or not, or that grades one ``--shard i/K``) runs ``grade_streaming``.
Peak memory is that of one chunk: its patients, their lab and event rows and their results
(``io.patient_rows``), not of the cohort. Each chunk is read and checked by the same readers as
a whole file (``read_cohort`` on in-memory tables) and graded by the same engine, so the rows
written are the rows ``grade`` writes for the whole file, in the same order.

Precondition: the lab and event rows come grouped by patient, the patients in the patient
table's order (the generator writes them so; ``cart-cytopenia cohort partition`` writes any
cohort so, out of core, with DuckDB). Rows out of that order are reported with the fix, and the
run writes nothing.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from cart_cytopenia.cohort.csv_safety import spreadsheet_safe
from cart_cytopenia.errors import InputError, Problem
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.grading.grade_table import empty_grade_table
from cart_cytopenia.io.patient_rows import PatientRows, check_unique_ids, patient_chunks
from cart_cytopenia.io.table_files import is_multi_file, parquet_files, read_whole
from cart_cytopenia.io.tables import FrameSource, read_cohort
from cart_cytopenia.rules.settings import Settings

__all__ = ["grade_streaming", "is_multi_file", "parquet_files", "read_whole", "shard_of"]

LAB_COLUMNS = ("patient_id", "date", "day", "analyte", "value", "unit")
DEFAULT_CHUNK_PATIENTS = 20_000


def shard_of(ids: pl.Series, shards: int) -> NDArray[np.int64]:
    """Each patient's shard, 0..shards-1: CRC-32 of the id's UTF-8 bytes modulo ``shards`` (stable
    across runs, machines and versions; ``cohort partition`` uses the same)."""
    return np.array([zlib.crc32(str(i).encode()) % shards for i in ids.to_list()], np.int64)


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
            table = spreadsheet_safe(table)  # (as every CSV the project writes: OWASP)
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
class _Chunk:
    """One chunk of patients: those graded (of the shard) and their lab and event rows."""

    patients: pl.DataFrame
    labs: pl.DataFrame
    events: pl.DataFrame | None

    def where(self, labs: str) -> str:
        ids = self.patients["patient_id"]
        return f"{labs} (patients {ids[0]} to {ids[-1]})"


def _chunks(
    labs: str | Path,
    patients: str | Path,
    events: str | Path | None,
    size: int,
    shard: tuple[int, int] | None,
) -> Iterator[_Chunk]:
    """The cohort read side by side, ``size`` patients at a time (the shard's patients only);
    at the end, no lab or event row may be left over (``PatientRows.finish``)."""
    check_unique_ids(patients)
    lab_rows = PatientRows(labs, "lab", LAB_COLUMNS)
    event_rows = PatientRows(events, "event") if events is not None else None
    for pats in patient_chunks(patients, size):
        place = dict(zip(pats["patient_id"].to_list(), range(pats.height), strict=True))
        chunk_labs = lab_rows.take(place)
        chunk_events = event_rows.take(place) if event_rows is not None else None
        if shard is not None:
            pats = pats.filter(pl.Series(shard_of(pats["patient_id"], shard[1]) == shard[0]))
            ids = pats["patient_id"].implode()
            chunk_labs = chunk_labs.filter(pl.col("patient_id").is_in(ids))
            if chunk_events is not None:
                chunk_events = chunk_events.filter(pl.col("patient_id").is_in(ids))
        if pats.height:
            yield _Chunk(pats, chunk_labs, chunk_events)
    lab_rows.finish(patients)
    if event_rows is not None:
        event_rows.finish(patients)


def _grade_chunk(
    chunk: _Chunk, labs: str, settings: Settings, as_of: int | None, skipped: list[Problem] | None
) -> pl.DataFrame:
    """One chunk read by the whole-file readers and graded by the engine."""
    where = chunk.where(labs)
    frames = read_cohort(
        FrameSource(where, chunk.labs),
        FrameSource(f"patients {where}", chunk.patients),
        FrameSource(f"events {where}", chunk.events) if chunk.events is not None else None,
        skipped,
    )
    return grade_cohort(frames, settings, as_of=as_of)


def _check_parquet_labs(labs: str | Path) -> None:
    if any(f.suffix.lower() != ".parquet" for f in parquet_files(labs)):
        raise InputError(
            f"{labs}: grading in chunks reads Parquet labs; write them as Parquet first "
            "(cart-cytopenia cohort partition --into 1 reads CSV too)"
        )


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
    _check_parquet_labs(labs)
    settings = settings or Settings()
    writer = _Writer(Path(out))
    report = StreamReport()
    ok = False
    try:
        for chunk in _chunks(labs, patients, events, chunk_patients, shard):
            skipped: list[Problem] | None = [] if skip_bad_rows else None
            writer.write(_grade_chunk(chunk, str(labs), settings, as_of, skipped))
            report.skipped += skipped or []
            report.patients += chunk.patients.height
            report.lab_rows += chunk.labs.height
            report.chunks += 1
        ok = True
    finally:
        writer.close(ok)
    return report
