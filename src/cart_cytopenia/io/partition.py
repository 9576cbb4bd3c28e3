"""``cart-cytopenia cohort partition``: split a cohort into K shards of patients, each written
sorted in its patient order, out of core with DuckDB.

Each shard ``OUT/shard=i/`` holds ``patients.parquet``, ``labs.parquet`` (and ``events.parquet``):
the patients whose id falls in shard i (``streaming.shard_of``: the same CRC-32 rule as
``grade --shard i/K``), the lab rows grouped by patient in that order, which is what grading in
chunks needs. DuckDB sorts larger-than-memory tables by spilling to disk (``memory_limit``);
``--into 1`` is the sort pre-pass alone. Grading each shard (one after another, or on several
machines) and concatenating the tables gives the whole cohort's rows, in shard order.

The shards are written into a hidden folder inside ``out`` and moved into place only when all
are written (a failed run leaves the shards of an earlier run as they were, and no half-written
one); shards of an earlier run with a larger K are removed, so ``shard=*`` is always one run's.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from cart_cytopenia.errors import InputError, ParseError
from cart_cytopenia.io.patient_rows import duckdb_relation, quote
from cart_cytopenia.io.streaming import shard_of
from cart_cytopenia.io.table_files import read_whole


@dataclass(frozen=True)
class PartitionReport:
    shards: int
    patients: list[int]
    lab_rows: list[int]
    event_rows: list[int]


def _check_known(con: Any, name: str, spec: str | Path) -> None:
    """Every row belongs to a patient of the patient table (a shard would silently lose it)."""
    n, example = con.execute(
        f"SELECT count(*), min(CAST(t.patient_id AS VARCHAR)) FROM {duckdb_relation(spec)} t "
        "ANTI JOIN patient_keys k ON CAST(t.patient_id AS VARCHAR) = k.patient_id"
    ).fetchone()
    if n:
        raise InputError(
            f"{spec}: {n} {name} row(s) belong to patients missing from the patient table "
            f"(e.g. '{example}'); nothing was partitioned"
        )


def partition_cohort(
    labs: str | Path,
    patients: str | Path,
    out: str | Path,
    into: int,
    events: str | Path | None = None,
    memory_limit: str = "2GB",
) -> PartitionReport:
    """Write ``into`` shards of the cohort under ``out`` (see the module's docstring)."""
    import duckdb

    if into < 1:
        raise InputError("--into must be at least 1")
    pats = read_whole(patients)
    if "patient_id" not in pats.columns:
        raise InputError(f"{patients}: the patient table needs a 'patient_id' column")
    pats = pats.with_columns(pl.col("patient_id").cast(pl.String))
    shard = shard_of(pats["patient_id"], into)
    keys = pl.DataFrame(
        {"patient_id": pats["patient_id"], "__shard": shard, "__pos": range(pats.height)}
    )
    root = Path(out)
    root.mkdir(exist_ok=True)
    _earlier_shards(root)
    staging = root / f".partition-{os.getpid()}"
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = {quote(memory_limit)}")
        con.execute(f"SET temp_directory = {quote(str(staging / '.duckdb-tmp'))}")
        con.register("patient_keys", keys.to_arrow())
        for name, spec in (("labs", labs), ("events", events)):
            if spec is not None:
                _check_known(con, name, spec)
        counts: dict[str, list[int]] = {"labs": [], "events": []}
        for i in range(into):
            d = staging / f"shard={i}"
            d.mkdir(parents=True)
            pats.filter(pl.Series(shard == i)).write_parquet(d / "patients.parquet")
            for name, spec in (("labs", labs), ("events", events)):
                if spec is None:
                    continue
                query = (
                    f"SELECT t.* FROM {duckdb_relation(spec)} t JOIN patient_keys k "
                    "ON CAST(t.patient_id AS VARCHAR) = k.patient_id "
                    f"WHERE k.__shard = {i} ORDER BY k.__pos"
                )
                target = quote(str(d / f"{name}.parquet"))
                row = con.execute(f"COPY ({query}) TO {target} (FORMAT parquet)").fetchone()
                counts[name].append(int(row[0]) if row else 0)
        con.close()
        shutil.rmtree(staging / ".duckdb-tmp", ignore_errors=True)
        _move_into_place(staging, root, into)
    except duckdb.Error as exc:
        raise ParseError(f"cannot partition the cohort: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
        shutil.rmtree(staging, ignore_errors=True)
    return PartitionReport(
        into, [int((shard == i).sum()) for i in range(into)], counts["labs"], counts["events"]
    )


SHARD = re.compile(r"shard=(\d+)")
OWN_FILES = {"patients.parquet", "labs.parquet", "events.parquet"}


def _earlier_shards(root: Path) -> list[Path]:
    """The ``shard=*`` folders of an earlier run in ``root``; refused (before any work) when one
    holds anything else, since it would be replaced."""
    found = [d for d in root.iterdir() if SHARD.fullmatch(d.name)]
    for d in found:
        if not d.is_dir() or not {f.name for f in d.iterdir()} <= OWN_FILES:
            raise InputError(
                f"{d} holds other files than a shard's; it would be replaced: choose another --out"
            )
    return found


def _move_into_place(staging: Path, root: Path, into: int) -> None:
    """The written shards replace those of an earlier run (all of its shards, also those
    beyond ``into``), so that every ``shard=*`` folder is this run's."""
    for old in _earlier_shards(root):
        shutil.rmtree(old)
    for i in range(into):
        (staging / f"shard={i}").rename(root / f"shard={i}")
