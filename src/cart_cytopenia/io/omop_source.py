"""An OMOP CDM v5.4 extract as tables: the files or DuckDB database it is read from, typed
columns with the rows that do not parse named, the concepts its rows name, and the summary of
what was read."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar, cast

import polars as pl

from cart_cytopenia.errors import (
    Location,
    ParseError,
    Problem,
    SchemaError,
)
from cart_cytopenia.io.therapy_codes import TherapyCode, therapy_codes

TABLES = (
    "person",
    "measurement",
    "procedure_occurrence",
    "drug_exposure",
    "condition_occurrence",
    "death",
    "observation_period",
    "concept",
)
DUCKDB_SUFFIXES = (".duckdb", ".ddb", ".db")
LOCAL_CONCEPT_START = 2_000_000_001  # OMOP: concept ids above 2 billion are site-local
T = TypeVar("T")


@cache
def omop_map() -> dict[str, Any]:
    text = resources.files("cart_cytopenia.io").joinpath("omop_map.toml").read_text()
    return tomllib.loads(text)


# --------------------------------------------------------------------------- sources


class OmopSource:
    """The tables of an extract: a directory of Parquet/CSV files or a DuckDB database file."""

    def __init__(self, path: str | Path, schema: str | None = None) -> None:
        self.path = Path(path)
        self.schema = schema
        if not self.path.exists():
            raise ParseError(f"{self.path} does not exist")
        self._con: Any = None
        self._names: dict[str, str] = {}
        self._once: dict[str, Any] = {}
        if self.path.is_dir():
            for f in self.path.iterdir():
                stem, suffix = f.stem.lower(), f.suffix.lower()
                if stem in TABLES and suffix in (".parquet", ".csv"):
                    if stem in self._names:
                        raise SchemaError(
                            f"{self.path}: table {stem} is there twice ({self._names[stem]} and {f.name})"
                        )
                    self._names[stem] = f.name
        elif self.path.suffix.lower() in DUCKDB_SUFFIXES:
            try:
                import duckdb
            except ImportError:  # pragma: no cover - duckdb is a dependency
                raise ParseError("reading a DuckDB file needs the 'duckdb' package") from None
            try:
                self._con = duckdb.connect(str(self.path), read_only=True)
                rows = self._con.execute(
                    "select table_schema, table_name from information_schema.tables"
                ).fetchall()
            except duckdb.Error as exc:
                raise ParseError(f"{self.path} is not a readable DuckDB database: {exc}") from None
            for sch, name in rows:
                if name.lower() in TABLES and (schema is None or sch == schema):
                    self._names[name.lower()] = f'"{sch}"."{name}"'
        else:
            raise ParseError(
                f"{self.path}: give a directory of OMOP tables (person.parquet, measurement.parquet ...) "
                f"or a DuckDB file ({', '.join(DUCKDB_SUFFIXES)})"
            )

    def has(self, table: str) -> bool:
        return table in self._names

    def where(self, table: str) -> str:
        return f"{self.path}:{table.upper()}"

    def columns(self, table: str) -> list[str]:
        try:
            if self._con is not None:
                rel = self._con.sql(f"select * from {self._names[table]} limit 0")
                return [c.lower() for c in rel.columns]
            f = self.path / self._names[table]
            if f.suffix.lower() == ".parquet":
                return [c.lower() for c in pl.scan_parquet(f).collect_schema().names()]
            return [c.lower() for c in pl.scan_csv(f, infer_schema=False).collect_schema().names()]
        except Exception as exc:  # a corrupt or empty table (polars / duckdb / OS errors)
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ParseError(f"{self.where(table)} cannot be read: {first}") from None

    def present(self, table: str, wanted: list[str], required: list[str]) -> list[str]:
        """The wanted columns the table has; a SchemaError when a required one is missing."""
        have = self.columns(table)
        missing = [c for c in required if c not in have]
        if missing:
            raise SchemaError(
                f"{self.where(table)} lacks column(s) {', '.join(missing)} (OMOP CDM v5.4 names)"
            )
        return [c for c in wanted if c in have]

    def read(
        self,
        table: str,
        wanted: list[str],
        required: list[str],
        only_ids: tuple[str, list[int]] | None = None,
    ) -> pl.DataFrame:
        """The wanted columns that exist (lower-case names), with a 1-based ``row`` number.

        ``only_ids``: (column, ids) keeps only those rows, filtered while reading (for CONCEPT,
        which holds millions of rows in a full vocabulary); row numbers then count kept rows.
        """
        cols = self.present(table, wanted, required)
        try:
            if self._con is not None:
                sel = ", ".join(f'"{c}"' for c in cols)
                query = f"select {sel} from {self._names[table]}"
                if only_ids is not None:
                    ids = ",".join(str(int(i)) for i in only_ids[1]) or "NULL"
                    query += f' where "{only_ids[0]}" in ({ids})'
                df: pl.DataFrame = self._con.sql(query).pl()
            else:
                f = self.path / self._names[table]
                if f.suffix.lower() == ".parquet":
                    lf = pl.scan_parquet(f)
                else:
                    lf = pl.scan_csv(f, infer_schema=False)
                rename = {c: c.lower() for c in lf.collect_schema().names()}
                lf = lf.rename(rename).select(cols)
                if only_ids is not None:
                    lf = lf.filter(
                        pl.col(only_ids[0]).cast(pl.Int64, strict=False).is_in(only_ids[1])
                    )
                df = lf.collect()
        except Exception as exc:  # polars / duckdb / OS errors: one clear message
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ParseError(f"{self.where(table)} cannot be read: {first}") from None
        df = df.rename({c: c.lower() for c in df.columns})
        return df.with_row_index("row", offset=1).with_columns(pl.col("row").cast(pl.Int64))

    def restrict_to(self, person_ids: list[int]) -> None:
        """The persons of the cohort, once known (a source may then read only their rows: the
        Spark source cuts MEASUREMENT to them where it lives)."""

    def once(self, name: str, build: Callable[[], T]) -> T:
        """``build()`` the first time ``name`` is asked for, then the same result: a table that
        several parts of the mapping use (drug exposures, procedures) is read once per extract."""
        if name not in self._once:
            self._once[name] = build()
        return cast(T, self._once[name])

    def close(self) -> None:
        if self._con is not None:
            self._con.close()


def cast_column(df: pl.DataFrame, col: str, dtype: Any, where: str, what: str) -> pl.DataFrame:
    """Cast a column, naming the rows that do not parse (nothing is loaded if any does not)."""
    if col not in df.columns or df.schema[col] == dtype:
        return df
    if dtype == pl.Date:
        if df.schema[col] == pl.Datetime or isinstance(df.schema[col], pl.Datetime):
            expr = pl.col(col).dt.date()
        else:
            expr = (
                pl.col(col).cast(pl.String).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
            )
    else:
        expr = pl.col(col).cast(pl.String).str.strip_chars().cast(dtype, strict=False)
    out = df.with_columns(expr.alias("__c"))
    bad = out.filter(
        pl.col("__c").is_null()
        & pl.col(col).is_not_null()
        & (pl.col(col).cast(pl.String).str.strip_chars() != "")
    )
    if bad.height:
        raise SchemaError(
            f"{where}: {bad.height} row(s) with an unreadable {col}; nothing was loaded",
            [
                Problem(
                    f"'{r[col]}' is not {what}", Location(row=r["row"], field=col, source=where)
                )
                for r in bad.head(20).iter_rows(named=True)
            ],
        )
    return out.with_columns(pl.col("__c").alias(col)).drop("__c")


def with_patient_ids(df: pl.DataFrame, where: str) -> pl.DataFrame:
    df = cast_column(df, "person_id", pl.Int64, where, "a whole-number person_id")
    return df.with_columns(pl.col("person_id").cast(pl.String).alias("patient_id"))


# --------------------------------------------------------------------------- concepts


def concepts_of(src: OmopSource, ids: set[int]) -> dict[int, tuple[str, str, str]]:
    """concept_id -> (vocabulary_id, concept_code, concept_name) for the ids used."""
    ids = {i for i in ids if i}
    if not ids or not src.has("concept"):
        return {}
    df = src.read(
        "concept",
        ["concept_id", "vocabulary_id", "concept_code", "concept_name"],
        ["concept_id", "vocabulary_id", "concept_code"],
        only_ids=("concept_id", sorted(ids)),
    )
    df = cast_column(df, "concept_id", pl.Int64, src.where("concept"), "a concept id")
    name = "concept_name" if "concept_name" in df.columns else "concept_code"
    return {
        int(r["concept_id"]): (str(r["vocabulary_id"]), str(r["concept_code"]), str(r[name] or ""))
        for r in df.iter_rows(named=True)
    }


def int_ids(df: pl.DataFrame, col: str) -> set[int]:
    if col not in df.columns:
        return set()
    return {int(x) for x in df[col].cast(pl.Int64, strict=False).drop_nulls().unique()}


def code_of(concept: tuple[str, str, str] | None, vocabularies: tuple[str, ...]) -> str | None:
    if concept and concept[0].upper() in vocabularies:
        return concept[1]
    return None


def therapy_code_of_row(
    concepts: dict[int, tuple[str, str, str]], concept_id: Any, source_value: Any
) -> TherapyCode | None:
    """The shared therapy-code entry (io/data/therapy_codes.toml) a procedure or drug row names:
    by its concept's vocabulary and code through CONCEPT, else by its source value."""
    table = therapy_codes()
    concept = concepts.get(int(concept_id)) if concept_id else None
    if concept is not None:
        hit = table.lookup(table.system_of_vocabulary(concept[0]), concept[1])
        if hit is not None:
            return hit
    return table.lookup_any(source_value)


# --------------------------------------------------------------------------- the summary


@dataclass
class OmopSummary:
    """What was read, what was used and what was left out (printed by the CLI)."""

    source: str
    persons: int = 0
    persons_with_infusion: int = 0
    infusion_from: dict[str, int] = field(default_factory=dict)
    measurements: int = 0
    measurements_used: int = 0
    measurements_other_analytes: int = 0
    measurements_without_value: int = 0
    measurements_outside_cohort: int = 0
    unmapped_examples: list[str] = field(default_factory=list)
    medications: int = 0
    transfusions: int = 0
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        src = ", ".join(f"{k}: {v}" for k, v in sorted(self.infusion_from.items())) or "none"
        out = [
            f"OMOP extract {self.source}",
            f"persons: {self.persons:,}; with a CAR-T infusion (day 0): {self.persons_with_infusion:,} ({src})",
            f"measurements: {self.measurements:,}; used: {self.measurements_used:,}; other analytes: "
            f"{self.measurements_other_analytes:,}; without a numeric value: "
            f"{self.measurements_without_value:,}; of persons without day 0: {self.measurements_outside_cohort:,}",
            f"events: {self.medications:,} medications, {self.transfusions:,} transfusions",
        ]
        if self.unmapped_examples:
            out.append("not graded (other analytes), e.g.: " + "; ".join(self.unmapped_examples))
        out += self.notes
        return out


def dated_concept_rows(
    src: OmopSource, table: str, date_col: str, prefix: str
) -> tuple[pl.DataFrame, dict[int, tuple[str, str, str]]]:
    """A table's rows (person, ``date_col`` as a date, ``{prefix}_concept_id``,
    ``{prefix}_source_value``) and the concepts they name."""
    where = src.where(table)
    concept_col = f"{prefix}_concept_id"
    df = src.read(
        table,
        ["person_id", date_col, concept_col, f"{prefix}_source_value"],
        ["person_id", date_col],
    )
    df = cast_column(with_patient_ids(df, where), date_col, pl.Date, where, "a date")
    return df, concepts_of(src, int_ids(df, concept_col))
