"""Where a cohort table is: one CSV or Parquet file, a directory of Parquet files (searched
recursively, hive-partitioned too) or a glob; and reading a small one whole."""

from __future__ import annotations

import glob
from pathlib import Path

import polars as pl

from cart_cytopenia.errors import ParseError


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
