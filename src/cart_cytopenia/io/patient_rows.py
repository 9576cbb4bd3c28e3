"""The three cohort tables read side by side, a batch at a time, in the patient table's order:
what lets ``grade --chunk-patients`` hold in memory one chunk of patients and their rows only.

``patient_chunks`` cuts the patient table into chunks of N patients as it reads it; for each
chunk, ``PatientRows.take`` hands over the lab (or event) rows of exactly those patients, read
on from where the previous chunk stopped. That needs the rows grouped by patient in the patient
table's order (the generator writes them so; ``cart-cytopenia cohort partition --into 1`` sorts
any cohort so, out of core). A row of a patient who already went by, or of no patient at all,
stops the reading at that row; it is found when the tables end (``PatientRows.finish``), named
with the fix, and the run writes nothing. Patient ids must be unique: checked first by DuckDB
out of core (``check_unique_ids``), since a repeated id in a later chunk would not be seen.

Parquet files (one, a directory searched recursively, or a glob) are read a row group batch at a
time (pyarrow); the ``key=value`` directories of a hive-partitioned patient or event table give
text columns. A CSV table is read whole (as text, like the whole-file reader) and cut in memory:
the flat-memory path is Parquet's (docs/scale-out.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from cart_cytopenia.errors import InputError, ParseError
from cart_cytopenia.io.table_files import is_multi_file, parquet_files, read_whole

BATCH_ROWS = 1 << 18  # rows read at a time (within a row group)
SORT_HINT = (
    "Sort them first (out of core): cart-cytopenia cohort partition --into 1 "
    "(docs/scale-out.md), or grade without --chunk-patients/--shard"
)


def _hive_columns(f: Path, root: Path | None) -> dict[str, str]:
    """``key=value`` directories between ``root`` and the file ``f`` (hive partitioning)."""
    if root is None:
        return {}
    try:
        parts = f.relative_to(root).parent.parts
    except ValueError:
        return {}
    return dict(p.split("=", 1) for p in parts if "=" in p)


def _root(spec: str | Path) -> Path | None:
    """The directory a multi-file table's hive partitions are under (a glob's fixed prefix)."""
    text = str(spec)
    if Path(text).is_dir():
        return Path(text)
    if not is_multi_file(spec):
        return None
    fixed = []
    for part in Path(text).parts:
        if any(ch in part for ch in "*?["):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _parquet_batches(f: Path, columns: tuple[str, ...] | None, hive: dict[str, str]) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # pre_buffer=False: with pyarrow's default (True) the reader keeps every column chunk it
        # has read in its cache until the file is done, so a long read held the whole
        # compressed lab file by its end (the growth of peak memory with the cohort's size)
        pf = pq.ParquetFile(f, pre_buffer=False)
        cols = None if columns is None else [c for c in columns if c in pf.schema_arrow.names]
        empty = True
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=cols):
            empty = False
            yield _frame(pa.Table.from_batches([batch]), hive)
        if empty:
            schema = (
                pf.schema_arrow
                if cols is None
                else pa.schema([pf.schema_arrow.field(c) for c in cols])
            )
            yield _frame(schema.empty_table(), hive)
    except (pa.ArrowException, OSError) as exc:
        raise ParseError(f"{f} cannot be read: {str(exc).splitlines()[0]}") from None


def _frame(table: Any, hive: dict[str, str]) -> pl.DataFrame:
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    extra = [pl.lit(v, pl.String).alias(k) for k, v in hive.items() if k not in df.columns]
    return df.with_columns(extra) if extra else df


def table_batches(
    spec: str | Path, columns: tuple[str, ...] | None = None
) -> Iterator[pl.DataFrame]:
    """A table's rows in order, a batch at a time (at least one batch, maybe empty);
    ``columns``: only these (those present), and no hive columns."""
    p = Path(spec)
    if not is_multi_file(spec) and p.suffix.lower() in (".csv", ".txt"):
        whole = read_whole(p)
        if columns is not None:
            whole = whole.select([c for c in columns if c in whole.columns])
        yield from whole.iter_slices(BATCH_ROWS) if whole.height else [whole]
        return
    root = _root(spec) if columns is None else None
    for f in parquet_files(spec):
        yield from _parquet_batches(f, columns, _hive_columns(f, root))


def patient_chunks(spec: str | Path, size: int) -> Iterator[pl.DataFrame]:
    """The patient table ``size`` patients at a time, ``patient_id`` as text."""
    pending: list[pl.DataFrame] = []
    held = 0
    for batch in table_batches(spec):
        if "patient_id" not in batch.columns:
            raise InputError(f"{spec}: the patient table needs a 'patient_id' column")
        pending.append(batch.with_columns(pl.col("patient_id").cast(pl.String)))
        held += batch.height
        while held >= size:
            rows = pl.concat(pending, how="vertical_relaxed")
            yield rows.slice(0, size)
            pending, held = [rows.slice(size)], rows.height - size
    if held:
        yield pl.concat(pending, how="vertical_relaxed")


def check_unique_ids(spec: str | Path, memory_limit: str = "512MB") -> None:
    """Every patient id once in the patient table (DuckDB, out of core beyond ``memory_limit``)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = {quote(memory_limit)}")
        con.execute("SET enable_progress_bar = false")
        repeated = con.execute(
            f"SELECT CAST(patient_id AS VARCHAR) AS id FROM {duckdb_relation(spec)} "
            "GROUP BY id HAVING count(*) > 1 ORDER BY id LIMIT 10"
        ).fetchall()
    except duckdb.Error as exc:
        raise ParseError(f"{spec} cannot be read: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
    if repeated:
        raise InputError(
            f"{spec}: patient ids must be unique (repeated: {[r[0] for r in repeated]})"
        )


def duckdb_relation(spec: str | Path) -> str:
    """DuckDB's reader of a CSV file (as text, like the local reader) or Parquet file(s)."""
    p = Path(spec)
    if not is_multi_file(spec) and p.suffix.lower() in (".csv", ".txt"):
        if not p.exists():
            raise ParseError(f"{p} does not exist")
        return f"read_csv({quote(str(p))}, header = true, all_varchar = true)"
    files = ", ".join(quote(str(f)) for f in parquet_files(spec))
    hive = "true" if is_multi_file(spec) else "false"
    return f"read_parquet([{files}], hive_partitioning = {hive}, union_by_name = true)"


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class PatientRows:
    """The rows of a lab or event table, grouped by patient in the patient table's order,
    handed over one chunk of patients at a time (``take``)."""

    def __init__(self, spec: str | Path, what: str, columns: tuple[str, ...] | None = None):
        self.spec, self.what = str(spec), what
        self._batches = table_batches(spec, columns)
        first = next(self._batches)
        if "patient_id" not in first.columns:
            raise InputError(f"{spec}: the {what} table needs a 'patient_id' column")
        self._empty = first.clear()
        self._pending = self._text_ids(first)
        self.rows_read = first.height

    @staticmethod
    def _text_ids(df: pl.DataFrame) -> pl.DataFrame:
        return df.with_columns(pl.col("patient_id").cast(pl.String))

    def _refill(self) -> bool:
        """Read on until there are pending rows; False at the end of the table."""
        while not self._pending.height:
            batch = next(self._batches, None)
            if batch is None:
                return False
            self._pending = self._text_ids(batch)
            self.rows_read += batch.height
        return True

    def take(self, chunk: dict[str, int]) -> pl.DataFrame:
        """The rows of the chunk's patients (``chunk``: id -> place in the chunk), read on until
        the first row of a patient not in it (which stays pending for the next chunk)."""
        taken: list[pl.DataFrame] = []
        last = -1
        while self._refill():
            runs = self._pending.select(pl.col("patient_id").rle()).unnest("patient_id")
            place = np.array([chunk.get(v, -1) for v in runs["value"].to_list()], np.int64)
            outside = np.flatnonzero(place < 0)
            n_runs = int(outside[0]) if outside.size else place.size
            inside = place[:n_runs]
            back = np.flatnonzero(np.diff(np.concatenate([[last], inside])) < 0)
            if back.size:
                i = int(back[0])
                before = runs["value"][i - 1] if i > 0 else "an earlier patient"
                raise self._out_of_order(str(before), str(runs["value"][i]))
            n_rows = int(runs["len"][:n_runs].sum())
            taken.append(self._pending.slice(0, n_rows))
            self._pending = self._pending.slice(n_rows)
            last = int(inside[-1]) if inside.size else last
            if outside.size:
                break
        if not taken:
            return self._text_ids(self._empty)
        return pl.concat(taken, how="vertical_relaxed") if len(taken) > 1 else taken[0]

    def finish(self, patients: str | Path) -> None:
        """After the last chunk: no row may be left (a patient's rows after a later patient's,
        or rows of a patient missing from the patient table)."""
        if not self._refill():
            return
        left = self._pending["patient_id"].unique(maintain_order=True).head(10).to_list()
        known = set()
        for batch in table_batches(patients, ("patient_id",)):
            ids = batch["patient_id"].cast(pl.String)
            known |= set(ids.filter(ids.is_in(left)).to_list())
        unknown = [p for p in left if p not in known]
        if unknown:
            raise InputError(
                f"{self.spec}: {self.what} rows belong to patients missing from the patient "
                f"table ({unknown})"
            )
        raise self._out_of_order("a later patient", left[0])

    def _out_of_order(self, after: str, before: str) -> InputError:
        return InputError(
            f"{self.spec}: the {self.what} rows are not grouped by patient in the patient "
            f"table's order (rows of '{before}' come after rows of '{after}'), which grading "
            f"in chunks needs. {SORT_HINT}"
        )
