"""Read an OMOP CDM v5.4 extract (Parquet / CSV files or a DuckDB database) into cohort frames.

The tables used (column names as in the CDM v5.4 specification):

- PERSON (required): ``person_id``, ``gender_concept_id``, ``year_of_birth``, ``month_of_birth``,
  ``day_of_birth``, ``birth_datetime``, ``person_source_value``;
- MEASUREMENT (required): ``measurement_id``, ``person_id``, ``measurement_concept_id``,
  ``measurement_date``, ``value_as_number``, ``unit_concept_id``, ``unit_source_value``,
  ``measurement_source_value``;
- PROCEDURE_OCCURRENCE and/or DRUG_EXPOSURE: the CAR-T infusion (day 0), transfusions and
  medications (G-CSF, TPO-receptor agonists, tocilizumab ...);
- optional: CONCEPT (maps concept ids to LOINC / UCUM / RxNorm / ICD codes), DEATH,
  OBSERVATION_PERIOD (end = last follow-up), CONDITION_OCCURRENCE (disease, from ICD-10 codes).

Mapping is by code, never by a hard-coded concept id (``omop_map.toml``): a measurement is one of
the project's analytes when its concept's LOINC code (through CONCEPT) or its
``measurement_source_value`` resolves in the analyte catalogue; its unit is the UCUM code of
``unit_concept_id`` or else ``unit_source_value``. Measurements of other analytes are left out
and counted; measurements without a numeric value are left out and counted (never read as
normal). Day 0 is, in order of precedence: an infusion table given by the user, a CAR-T
administration procedure (CPT 38228 / 0540T, ICD-10-PCS XW033C3 ..., HCPCS Q2041 ...), a drug
exposure naming a CAR-T product. Persons without a day 0 are left out and counted.

The rows then go through the same normalisation (units, plausibility) and the same grading
engine as the long-format tables: a bad value names the MEASUREMENT row it came from.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar, cast

import polars as pl

from cart_cytopenia.domain.analytes import resolve_analyte
from cart_cytopenia.domain.catalogues import drug_by_rxnorm, resolve_drug, resolve_product
from cart_cytopenia.domain.frames import (
    EVENT_SCHEMA,
    PATIENT_SCHEMA,
    CohortFrames,
    conform,
    empty_events,
    normalise_labs,
)
from cart_cytopenia.domain.units import resolve_unit
from cart_cytopenia.errors import (
    InputError,
    Location,
    ParseError,
    Problem,
    SchemaError,
    UnknownAnalyteError,
)
from cart_cytopenia.io.therapy_codes import TherapyCode, clean_code, therapy_codes

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


def _cast(df: pl.DataFrame, col: str, dtype: Any, where: str, what: str) -> pl.DataFrame:
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


def _ids(df: pl.DataFrame, where: str) -> pl.DataFrame:
    df = _cast(df, "person_id", pl.Int64, where, "a whole-number person_id")
    return df.with_columns(pl.col("person_id").cast(pl.String).alias("patient_id"))


# --------------------------------------------------------------------------- concepts


def _concepts(src: OmopSource, ids: set[int]) -> dict[int, tuple[str, str, str]]:
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
    df = _cast(df, "concept_id", pl.Int64, src.where("concept"), "a concept id")
    name = "concept_name" if "concept_name" in df.columns else "concept_code"
    return {
        int(r["concept_id"]): (str(r["vocabulary_id"]), str(r["concept_code"]), str(r[name] or ""))
        for r in df.iter_rows(named=True)
    }


def _int_ids(df: pl.DataFrame, col: str) -> set[int]:
    if col not in df.columns:
        return set()
    return {int(x) for x in df[col].cast(pl.Int64, strict=False).drop_nulls().unique()}


def _code_of(concept: tuple[str, str, str] | None, vocabularies: tuple[str, ...]) -> str | None:
    if concept and concept[0].upper() in vocabularies:
        return concept[1]
    return None


def _clean_code(text: Any) -> str:
    return clean_code(text)


def _therapy_code(
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


# --------------------------------------------------------------------------- day 0


def _read_infusion_table(path: Path) -> pl.DataFrame:
    suffix = path.suffix.lower()
    if not path.exists():
        raise ParseError(f"{path} does not exist")
    try:
        df = (
            pl.read_parquet(path) if suffix == ".parquet" else pl.read_csv(path, infer_schema=False)
        )
    except Exception as exc:
        raise ParseError(f"{path} cannot be read: {str(exc).splitlines()[0]}") from None
    df = df.rename({c: c.lower() for c in df.columns}).with_row_index("row", offset=2)
    for c in ("person_id", "infusion_date"):
        if c not in df.columns:
            raise SchemaError(f"{path}: the infusion table needs person_id and infusion_date")
    where = str(path)
    df = _ids(df.with_columns(pl.col("row").cast(pl.Int64)), where)
    for c in (
        "infusion_date",
        "progression_date",
        "next_therapy_date",
        "last_followup_date",
        "ld_start_date",
    ):
        df = _cast(df, c, pl.Date, where, "an ISO date (YYYY-MM-DD)")
    missing = df.filter(pl.col("infusion_date").is_null())
    if missing.height:
        raise SchemaError(
            f"{path}: {missing.height} row(s) without an infusion_date; nothing was loaded",
            [
                Problem(
                    "missing infusion_date",
                    Location(row=r["row"], patient_id=r["patient_id"], source=where),
                )
                for r in missing.head(20).iter_rows(named=True)
            ],
        )
    return df


def _infusions(src: OmopSource, infusions: Path | None, summary: OmopSummary) -> pl.DataFrame:
    """patient_id, infusion_date, product (+ optional user columns), the first per person."""
    if infusions is not None:
        df = _read_infusion_table(infusions)
        summary.infusion_from["infusion table"] = df["patient_id"].n_unique()
        return df.sort("infusion_date").unique("patient_id", keep="first")
    found: list[pl.DataFrame] = []
    if src.has("procedure_occurrence"):
        p, concepts = _procedure_rows(src)
        hits = [
            _therapy_code(concepts, r.get("procedure_concept_id"), r.get("procedure_source_value"))
            for r in p.select(
                *(c for c in ("procedure_concept_id", "procedure_source_value") if c in p.columns)
            ).iter_rows(named=True)
        ]
        p = p.with_columns(
            pl.Series("car_t", [h is not None and h.kind == "car_t" for h in hits]),
            pl.Series("product", [h.product if h else None for h in hits], dtype=pl.String),
        )
        hit = p.filter(pl.col("car_t"))
        if hit.height:
            found.append(
                hit.select(
                    "patient_id",
                    pl.col("procedure_date").alias("infusion_date"),
                    "product",
                    pl.lit("procedure").alias("via"),
                    pl.lit(0).alias("rank"),
                )
            )
    if src.has("drug_exposure"):
        d = _drug_rows(src)
        hit = d.filter(pl.col("product").is_not_null())
        if hit.height:
            found.append(
                hit.select(
                    "patient_id",
                    pl.col("drug_exposure_start_date").alias("infusion_date"),
                    "product",
                    pl.lit("drug exposure").alias("via"),
                    pl.lit(1).alias("rank"),
                )
            )
    if not found:
        return pl.DataFrame(
            schema={"patient_id": pl.String, "infusion_date": pl.Date, "product": pl.String}
        )
    allrows = pl.concat(found, how="vertical_relaxed").sort("patient_id", "infusion_date", "rank")
    first = allrows.group_by("patient_id", maintain_order=True).agg(
        pl.col("infusion_date").first(),
        # the product named on day 0 (a procedure code and a drug record may name it)
        pl.col("product")
        .filter(pl.col("infusion_date") == pl.col("infusion_date").first())
        .drop_nulls()
        .first(),
        pl.col("via").first(),
        (pl.col("infusion_date").n_unique() > 1).alias("several"),
    )
    for via, n in first.group_by("via").len().iter_rows():
        summary.infusion_from[via] = n
    several = int(first["several"].sum())
    if several:
        summary.notes.append(
            f"{several} person(s) have CAR-T administrations on more than one date: the first is day 0"
        )
    return first.drop("via", "several")


def _procedure_rows(src: OmopSource) -> tuple[pl.DataFrame, dict[int, tuple[str, str, str]]]:
    """PROCEDURE_OCCURRENCE with dates and the concepts its rows name (read once per extract)."""

    return src.once(
        "procedure_occurrence",
        lambda: _dated_concept_rows(src, "procedure_occurrence", "procedure_date", "procedure"),
    )


def _dated_concept_rows(
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
    df = _cast(_ids(df, where), date_col, pl.Date, where, "a date")
    return df, _concepts(src, _int_ids(df, concept_col))


def _drug_rows(src: OmopSource) -> pl.DataFrame:
    """DRUG_EXPOSURE with days, the catalogue drug (``drug``) and CAR-T product (``product``),
    read once per extract."""
    return src.once("drug_exposure", lambda: _read_drug_rows(src))


def _drug_of_code(rxcui: str | None) -> tuple[str | None, str | None]:
    """(catalogue drug id, ingredient name) of an RxNorm code: a catalogue ingredient code, or a
    clinical-drug code of the shared therapy-code table (fludarabine 50 MG Injection ...)."""
    if not rxcui:
        return None, None
    found = drug_by_rxnorm(rxcui)
    if found is not None:
        return found.id, found.id
    clinical = therapy_codes().clinical_drug(rxcui)
    if clinical is None:
        return None, None
    drug = resolve_drug(clinical.ingredient)
    return (drug.id if drug else None), clinical.ingredient


def _product_of_row(
    concepts: dict[int, tuple[str, str, str]], concept_id: Any, names: list[Any]
) -> str | None:
    """The CAR-T product a DRUG_EXPOSURE row names: by product name, or a HCPCS product code."""
    for name in names:
        if not name:
            continue
        p = resolve_product(str(name).strip())
        if p is not None:
            return p.id
        hit = _therapy_code(concepts, concept_id, name)
        if hit is not None and hit.kind == "car_t" and hit.product is not None:
            return hit.product
    return None


def _read_drug_rows(src: OmopSource) -> pl.DataFrame:
    where = src.where("drug_exposure")
    d = src.read(
        "drug_exposure",
        [
            "person_id",
            "drug_exposure_start_date",
            "drug_exposure_end_date",
            "drug_concept_id",
            "drug_source_value",
        ],
        ["person_id", "drug_exposure_start_date"],
    )
    d = _ids(d, where)
    for c in ("drug_exposure_start_date", "drug_exposure_end_date"):
        d = _cast(d, c, pl.Date, where, "a date")
    concepts = _concepts(src, _int_ids(d, "drug_concept_id"))
    ld_names = [x.lower() for x in omop_map()["lymphodepletion"]["drugs"]]
    drugs, prods, lds = [], [], []
    for r in d.select(
        *(c for c in ("drug_concept_id", "drug_source_value") if c in d.columns)
    ).iter_rows(named=True):
        cid = r.get("drug_concept_id")
        concept = concepts.get(int(cid)) if cid else None
        names = [r.get("drug_source_value"), concept[2] if concept else None]
        drug, ingredient = _drug_of_code(_code_of(concept, ("RXNORM", "RXNORM EXTENSION")))
        lds.append(
            ingredient in ld_names
            or any(ld in str(x).lower() for x in names if x for ld in ld_names)
        )
        prod = _product_of_row(concepts, cid, names)
        if prod is None and drug is None:
            found = (resolve_drug(str(n).strip()) for n in names if n)
            drug = next((f.id for f in found if f is not None), None)
        drugs.append(drug)
        prods.append(prod)
    return d.with_columns(
        pl.Series("drug", drugs, dtype=pl.String),
        pl.Series("product", prods, dtype=pl.String),
        pl.Series("lymphodepletion", lds, dtype=pl.Boolean),
    )


# --------------------------------------------------------------------------- reading


def _days(col: str, out: str) -> pl.Expr:
    return (pl.col(col) - pl.col("infusion_date")).dt.total_days().cast(pl.Int32).alias(out)


def _patients(src: OmopSource, day0: pl.DataFrame, summary: OmopSummary) -> pl.DataFrame:
    where = src.where("person")
    p = src.read(
        "person",
        [
            "person_id",
            "gender_concept_id",
            "gender_source_value",
            "year_of_birth",
            "month_of_birth",
            "day_of_birth",
            "birth_datetime",
            "person_source_value",
        ],
        ["person_id"],
    )
    p = _ids(p, where)
    dup = p.group_by("patient_id").len().filter(pl.col("len") > 1)
    if dup.height:
        raise SchemaError(
            f"{where}: person_id must be unique",
            [
                Problem("appears more than once", Location(patient_id=x, source=where))
                for x in dup["patient_id"].head(10)
            ],
        )
    summary.persons = p.height
    g = omop_map()["gender"]
    gid = (
        p["gender_concept_id"].cast(pl.Int64, strict=False)
        if "gender_concept_id" in p.columns
        else pl.Series([None] * p.height, dtype=pl.Int64)
    )
    gsrc = (
        p["gender_source_value"].cast(pl.String).str.to_lowercase()
        if "gender_source_value" in p.columns
        else pl.Series([None] * p.height, dtype=pl.String)
    )
    sex = [
        "male"
        if (i in g["male"] or s in ("m", "male"))
        else "female"
        if (i in g["female"] or s in ("f", "female"))
        else "unknown"
        for i, s in zip(gid.to_list(), gsrc.to_list(), strict=True)
    ]
    p = p.with_columns(pl.Series("sex", sex, dtype=pl.String))
    # birth date: birth_datetime, else year/month/day of birth (month 7, day 1 when missing)
    for c in ("year_of_birth", "month_of_birth", "day_of_birth"):
        p = _cast(p, c, pl.Int32, where, "a whole number")
    birth = pl.lit(None, dtype=pl.Date)
    if "year_of_birth" in p.columns:
        birth = pl.date(
            pl.col("year_of_birth"),
            pl.col("month_of_birth").fill_null(7) if "month_of_birth" in p.columns else 7,
            pl.col("day_of_birth").fill_null(1) if "day_of_birth" in p.columns else 1,
        )
    if "birth_datetime" in p.columns:
        p = _cast(p, "birth_datetime", pl.Date, where, "a date")
        birth = pl.coalesce(pl.col("birth_datetime"), birth)
    p = p.with_columns(birth.alias("birth_date"))
    out = day0.join(p.select("patient_id", "sex", "birth_date", "row"), on="patient_id", how="left")
    orphan = out.filter(pl.col("row").is_null())
    if orphan.height:
        raise SchemaError(
            f"{where}: {orphan.height} infused person(s) are not in PERSON",
            [
                Problem("no PERSON row", Location(patient_id=x, source=where))
                for x in orphan["patient_id"].head(10)
            ],
        )
    out = out.with_columns(
        ((pl.col("infusion_date") - pl.col("birth_date")).dt.total_days() / 365.25)
        .round(1)
        .alias("age_years")
    )
    deaths = _optional_table(src, "death", summary, "deaths are unknown (never 'alive')", _deaths)
    if deaths is not None:
        out = out.join(deaths, on="patient_id", how="left")
    if "last_followup_date" not in out.columns:
        ends = _optional_table(
            src, "observation_period", summary, "last follow-up is unknown", _followup_ends
        )
        if ends is not None:
            out = out.join(ends, on="patient_id", how="left")
    if "disease" not in out.columns:
        disease = _optional_table(
            src, "condition_occurrence", summary, "the disease is unknown", _disease
        )
        if disease is not None:
            out = out.join(disease, on="patient_id", how="left")
    if "disease" not in out.columns:
        out = out.with_columns(pl.lit(None, dtype=pl.String).alias("disease"))
    out = out.with_columns(pl.col("disease").fill_null("other"))
    if "death_date" in out.columns and "last_followup_date" in out.columns:
        out = out.with_columns(
            pl.when(pl.col("death_date").is_not_null())
            .then(pl.min_horizontal("death_date", "last_followup_date"))
            .otherwise(pl.col("last_followup_date"))
            .alias("last_followup_date")
        )
    early_death = (
        out.filter(pl.col("death_date") < pl.col("infusion_date"))
        if "death_date" in out.columns
        else out.clear()
    )
    if early_death.height:
        raise SchemaError(
            f"{src.where('death')}: death before the CAR-T infusion; nothing was loaded",
            [
                Problem(
                    "death_date is before day 0", Location(patient_id=x, source=src.where("death"))
                )
                for x in early_death["patient_id"].head(10)
            ],
        )
    day_cols = []
    for f in ("progression", "next_therapy", "last_followup", "death"):
        if f"{f}_date" in out.columns:
            day_cols.append(_days(f"{f}_date", f"{f}_day"))
    return out.with_columns(day_cols)


def _optional_table(
    src: OmopSource,
    table: str,
    summary: OmopSummary,
    consequence: str,
    build: Callable[[OmopSource], pl.DataFrame],
) -> pl.DataFrame | None:
    """``build(src)`` for an optional table; a table that is absent gives None, and one that is
    malformed (a column missing, a value that does not parse) is reported in the summary and
    left out instead of stopping the whole run."""
    if not src.has(table):
        return None
    try:
        return build(src)
    except InputError as exc:
        summary.notes.append(
            f"optional table {table.upper()} was not used, {consequence}: {exc.message}"
            + "".join(f"; {p}" for p in exc.problems[:3] if str(p) != exc.message)
        )
        return None


def _deaths(src: OmopSource) -> pl.DataFrame:
    """patient_id, death_date (the earliest per person) from DEATH."""
    dw = src.where("death")
    d = src.read("death", ["person_id", "death_date"], ["person_id", "death_date"])
    d = _cast(_ids(d, dw), "death_date", pl.Date, dw, "a date")
    return d.group_by("patient_id").agg(pl.col("death_date").min())


def _followup_ends(src: OmopSource) -> pl.DataFrame:
    """patient_id, last_followup_date (the last observation period end) from OBSERVATION_PERIOD."""
    ow = src.where("observation_period")
    o = src.read(
        "observation_period",
        ["person_id", "observation_period_end_date"],
        ["person_id", "observation_period_end_date"],
    )
    o = _cast(_ids(o, ow), "observation_period_end_date", pl.Date, ow, "a date")
    return o.group_by("patient_id").agg(
        pl.col("observation_period_end_date").max().alias("last_followup_date")
    )


def _ld_start(src: OmopSource, patients: pl.DataFrame) -> pl.DataFrame:
    """ld_start_day: from the infusion table, else the first lymphodepleting drug before day 0."""
    if "ld_start_date" in patients.columns:
        return patients.with_columns(_days("ld_start_date", "ld_start_day"))
    if not src.has("drug_exposure"):
        return patients
    window = int(omop_map()["lymphodepletion"]["window_days"])
    d = (
        _drug_rows(src)
        .filter(pl.col("lymphodepletion"))
        .join(patients.select("patient_id", "infusion_date"), on="patient_id", how="inner")
        .with_columns(_days("drug_exposure_start_date", "day"))
        .filter(pl.col("day").is_between(-window, -1))
        .group_by("patient_id")
        .agg(pl.col("day").min().alias("ld_start_day"))
    )
    return patients.join(d, on="patient_id", how="left")


def _disease(src: OmopSource) -> pl.DataFrame:
    c, concepts = _dated_concept_rows(
        src, "condition_occurrence", "condition_start_date", "condition"
    )
    prefixes = sorted(omop_map()["disease_icd10"].items(), key=lambda kv: -len(kv[0]))
    diseases = []
    for r in c.iter_rows(named=True):
        cid = r.get("condition_concept_id")
        code = _clean_code(
            _code_of(concepts.get(int(cid)) if cid else None, ("ICD10CM", "ICD10"))
            or r.get("condition_source_value")
        )
        diseases.append(next((d for pre, d in prefixes if code.startswith(pre)), None))
    c = c.with_columns(pl.Series("disease", diseases, dtype=pl.String)).drop_nulls("disease")
    return (
        c.sort("patient_id", "condition_start_date")
        .group_by("patient_id")
        .agg(pl.col("disease").last())
    )


def _measurements(src: OmopSource, patients: pl.DataFrame, summary: OmopSummary) -> pl.DataFrame:
    """Raw long lab rows (patient_id, day, analyte, value, unit, row) of the infused persons."""
    where = src.where("measurement")
    m = src.read(
        "measurement",
        [
            "person_id",
            "measurement_concept_id",
            "measurement_date",
            "value_as_number",
            "unit_concept_id",
            "unit_source_value",
            "measurement_source_value",
            "operator_concept_id",
        ],
        ["person_id", "measurement_date", "value_as_number"],
    )
    summary.measurements = m.height
    m = _ids(m, where)
    m = _cast(m, "measurement_date", pl.Date, where, "a date")
    m = _cast(m, "value_as_number", pl.Float64, where, "a number")
    for c in ("measurement_concept_id", "unit_concept_id", "operator_concept_id"):
        if c not in m.columns:
            m = m.with_columns(pl.lit(None, dtype=pl.Int64).alias(c))
        m = _cast(m, c, pl.Int64, where, "a concept id")
    for c in ("measurement_source_value", "unit_source_value"):
        if c not in m.columns:
            m = m.with_columns(pl.lit(None, dtype=pl.String).alias(c))
        m = m.with_columns(pl.col(c).cast(pl.String))
    concepts = _concepts(
        src,
        _int_ids(m, "measurement_concept_id")
        | _int_ids(m, "unit_concept_id")
        | _int_ids(m, "operator_concept_id"),
    )
    m = _comparators(m, concepts, summary)
    # each distinct (concept, source value) resolved once
    pairs = m.select("measurement_concept_id", "measurement_source_value").unique()
    codes: list[str | None] = []
    for cid, sv in pairs.iter_rows():
        code = None
        for key in (_code_of(concepts.get(cid) if cid else None, ("LOINC",)), sv):
            if not key:
                continue
            try:
                code = resolve_analyte(str(key)).code
                break
            except UnknownAnalyteError:
                continue
        codes.append(code)
    pairs = pairs.with_columns(pl.Series("analyte", codes, dtype=pl.String))
    units = m.select("unit_concept_id", "unit_source_value").unique()
    unit_text = [
        _code_of(concepts.get(cid) if cid else None, ("UCUM",)) or (sv or "")
        for cid, sv in units.iter_rows()
    ]
    units = units.with_columns(pl.Series("unit", unit_text, dtype=pl.String))
    m = m.join(
        pairs,
        on=["measurement_concept_id", "measurement_source_value"],
        how="left",
        nulls_equal=True,
    )
    m = m.join(units, on=["unit_concept_id", "unit_source_value"], how="left", nulls_equal=True)
    other = m.filter(pl.col("analyte").is_null())
    summary.measurements_other_analytes = other.height
    if other.height:
        top = (
            other.group_by("measurement_concept_id", "measurement_source_value")
            .len()
            .sort("len", descending=True)
            .head(5)
        )
        summary.unmapped_examples = [
            f"{sv or 'concept ' + str(cid)} ({n:,} rows)" for cid, sv, n in top.iter_rows()
        ]
    m = m.filter(pl.col("analyte").is_not_null())
    no_value = m.filter(pl.col("value_as_number").is_null())
    summary.measurements_without_value = no_value.height
    m = m.filter(pl.col("value_as_number").is_not_null())
    inside = m.join(patients.select("patient_id", "infusion_date"), on="patient_id", how="inner")
    summary.measurements_outside_cohort = m.height - inside.height
    summary.measurements_used = inside.height
    return inside.select(
        "patient_id",
        _days("measurement_date", "day"),
        "analyte",
        pl.col("value_as_number").alias("value"),
        "unit",
        "comparator",
        "row",
    )


def _comparators(
    m: pl.DataFrame, concepts: dict[int, tuple[str, str, str]], summary: OmopSummary
) -> pl.DataFrame:
    """``comparator`` ('<', '<=', '>', '>=' or null) from MEASUREMENT.operator_concept_id, like
    FHIR's Quantity.comparator: '<0.1' is kept as a bound (graded as the bound, shown as '<')."""
    fixed = {int(k): v for k, v in omop_map()["operator"].items()}
    found: dict[int, str | None] = {}
    unknown = 0
    for (cid,) in m.select("operator_concept_id").unique().drop_nulls().iter_rows():
        concept = concepts.get(cid)
        named = concept[2] if concept and concept[0].lower() == "meas value operator" else None
        op = named if named in fixed.values() else fixed.get(cid)
        if op is None and cid != 0:
            unknown += m.filter(pl.col("operator_concept_id") == cid).height
        found[cid] = None if op in (None, "=") else op
    if unknown:
        summary.notes.append(
            f"{unknown:,} measurement(s) with an operator_concept_id that is not a 'Meas Value "
            "Operator' concept: read without a comparator"
        )
    mapping = pl.DataFrame(
        {"operator_concept_id": list(found), "comparator": list(found.values())},
        schema={"operator_concept_id": pl.Int64, "comparator": pl.String},
    )
    return m.join(mapping, on="operator_concept_id", how="left", nulls_equal=False)


def _events(src: OmopSource, patients: pl.DataFrame, summary: OmopSummary) -> pl.DataFrame:
    parts: list[pl.DataFrame] = []
    inf = patients.select("patient_id", "infusion_date")
    if src.has("drug_exposure"):
        d = _drug_rows(src).filter(pl.col("drug").is_not_null() & pl.col("product").is_null())
        d = d.join(inf, on="patient_id", how="inner")
        summary.medications = d.height
        parts.append(
            d.select(
                "patient_id",
                pl.lit("medication").alias("type"),
                _days("drug_exposure_start_date", "start_day"),
                _days("drug_exposure_end_date", "end_day")
                if "drug_exposure_end_date" in d.columns
                else pl.lit(None, dtype=pl.Int32).alias("end_day"),
                pl.lit(None, dtype=pl.Int8).alias("grade"),
                "drug",
                pl.lit(None, dtype=pl.String).alias("product"),
            )
        )
    if src.has("procedure_occurrence"):
        p, concepts = _procedure_rows(src)
        prods = []
        for r in p.iter_rows(named=True):
            hit = _therapy_code(
                concepts, r.get("procedure_concept_id"), r.get("procedure_source_value")
            )
            prods.append(hit.product if hit is not None and hit.kind == "transfusion" else None)
        p = p.with_columns(pl.Series("product", prods, dtype=pl.String)).drop_nulls("product")
        p = p.join(inf, on="patient_id", how="inner")
        summary.transfusions = p.height
        parts.append(
            p.select(
                "patient_id",
                pl.lit("transfusion").alias("type"),
                _days("procedure_date", "start_day"),
                _days("procedure_date", "end_day"),
                pl.lit(1, dtype=pl.Int8).alias("grade"),
                pl.lit(None, dtype=pl.String).alias("drug"),
                "product",
            )
        )
    if not parts:
        return empty_events()
    return conform(pl.concat(parts, how="vertical_relaxed"), EVENT_SCHEMA).select(
        list(EVENT_SCHEMA)
    )


@dataclass(frozen=True)
class OmopCohort:
    frames: CohortFrames
    patients: pl.DataFrame  # with dates (infusion_date, ...), for export
    raw_labs: pl.DataFrame  # long rows before normalisation (analyte code, value, unit as read)
    summary: OmopSummary


def read_omop(
    source: str | Path | OmopSource,
    infusions: str | Path | None = None,
    schema: str | None = None,
) -> OmopCohort:
    """Read an OMOP CDM extract; raises an InputError naming table, row and field for bad input.
    ``source``: a directory or DuckDB file, or an ``OmopSource`` (e.g. one read on Spark)."""
    src = source if isinstance(source, OmopSource) else OmopSource(source, schema)
    try:
        for t in ("person", "measurement"):
            if not src.has(t):
                raise SchemaError(
                    f"{src.path}: no {t.upper()} table (expected {t}.parquet / {t}.csv or a table "
                    f"named {t} in the DuckDB file)"
                )
        summary = OmopSummary(str(src.path))
        day0 = _infusions(src, Path(infusions) if infusions else None, summary)
        if not day0.height:
            raise InputError(
                f"{src.path}: no CAR-T infusion found (day 0). Give --infusions FILE (person_id, "
                "infusion_date), or record the administration in PROCEDURE_OCCURRENCE (CPT 38228 / "
                "0540T, ICD-10-PCS XW033C3 ..., HCPCS Q2041 ...) or DRUG_EXPOSURE (product name)"
            )
        patients = _patients(src, day0, summary)
        patients = _ld_start(src, patients)
        summary.persons_with_infusion = patients.height
        src.restrict_to(patients["patient_id"].cast(pl.Int64, strict=False).drop_nulls().to_list())
        raw = _measurements(src, patients, summary)
        events = _events(src, patients, summary)
    finally:
        src.close()
    labs = normalise_labs(raw, source=src.where("measurement"))
    frames = CohortFrames(conform(patients, PATIENT_SCHEMA), labs, events)
    if summary.persons > summary.persons_with_infusion:
        summary.notes.append(
            f"{summary.persons - summary.persons_with_infusion:,} person(s) without a CAR-T infusion were left out"
        )
    return OmopCohort(frames, patients, raw, summary)


def _ucum_codes(raw_labs: pl.DataFrame) -> dict[str, str]:
    """Each unit text of the lab rows -> its UCUM code (all resolved: the rows were graded)."""
    return {u: resolve_unit(u).ucum for u in raw_labs["unit"].unique().drop_nulls()}


def long_tables(cohort: OmopCohort) -> dict[str, pl.DataFrame]:
    """The cohort in the project's long format (patients with dates, labs with days, events)."""
    keep = [
        c
        for c in (
            "patient_id",
            "infusion_date",
            "progression_date",
            "next_therapy_date",
            "last_followup_date",
            "death_date",
            "age_years",
            "sex",
            "disease",
            "product",
        )
        if c in cohort.patients.columns
    ]
    return {
        "patients": cohort.patients.select(keep),
        "labs": cohort.raw_labs.select(
            "patient_id",
            "day",
            "analyte",
            "value",
            # the UCUM code of the unit as read ('K/uL' is written '10*3/uL'); values unchanged
            pl.col("unit").replace_strict(_ucum_codes(cohort.raw_labs), return_dtype=pl.String),
            "comparator",
        ),
        "events": cohort.frames.events,
    }


# --------------------------------------------------------------------------- writing (demos, tests)

_DISEASE_ICD10 = {
    "LBCL": "C83.3",
    "MCL": "C83.1",
    "FL": "C82.9",
    "B-ALL": "C91.0",
    "MM": "C90.0",
    "CLL": "C91.1",
}
_TX_CODE = {"rbc": "30233N1", "platelets": "30233R1"}


def to_omop(
    patients: pl.DataFrame,
    labs: pl.DataFrame,
    events: pl.DataFrame,
    with_concepts: bool = True,
) -> dict[str, pl.DataFrame]:
    """A cohort in the long format (patients with dates, labs and events with days) as OMOP tables.

    ``with_concepts``: measurement and unit concepts are site-local concept ids (above two
    billion) described in a CONCEPT table with their LOINC / UCUM codes; otherwise concept ids
    are 0 ("no matching concept") and only the source values carry the codes.
    """
    pid = (
        patients.select("patient_id")
        .with_row_index("person_id", offset=1)
        .with_columns(pl.col("person_id").cast(pl.Int64))
    )
    inf = patients.select("patient_id", "infusion_date").join(pid, on="patient_id")
    birth = patients.select(
        "patient_id",
        (
            pl.col("infusion_date")
            - pl.duration(days=(pl.col("age_years") * 365.25).round(0).cast(pl.Int64))
        ).alias("birth"),
        "sex",
    )
    person = pid.join(birth, on="patient_id").select(
        "person_id",
        pl.when(pl.col("sex") == "male")
        .then(8507)
        .when(pl.col("sex") == "female")
        .then(8532)
        .otherwise(0)
        .alias("gender_concept_id"),
        pl.col("birth").dt.year().alias("year_of_birth"),
        pl.col("birth").dt.month().alias("month_of_birth"),
        pl.col("birth").dt.day().alias("day_of_birth"),
        pl.col("patient_id").alias("person_source_value"),
    )
    analyte_names = labs["analyte"].unique().to_list()
    loinc = {a: resolve_analyte(a).loinc[0] for a in analyte_names}
    lab = labs.join(inf, on="patient_id").with_columns(
        (pl.col("infusion_date") + pl.duration(days=pl.col("day"))).alias("measurement_date"),
        pl.col("analyte")
        .replace_strict(loinc, return_dtype=pl.String)
        .alias("measurement_source_value"),
    )
    concept_rows: list[dict[str, Any]] = []
    if with_concepts:
        m_ids = {
            code: LOCAL_CONCEPT_START + i for i, code in enumerate(sorted(set(loinc.values())))
        }
        units = sorted(lab["unit"].unique().to_list())
        from cart_cytopenia.domain.units import resolve_unit

        u_ucum = {u: resolve_unit(u).ucum for u in units}
        u_ids = {
            code: LOCAL_CONCEPT_START + 1000 + i
            for i, code in enumerate(sorted(set(u_ucum.values())))
        }
        concept_rows += [
            {"concept_id": i, "concept_name": c, "vocabulary_id": "LOINC", "concept_code": c}
            for c, i in m_ids.items()
        ]
        concept_rows += [
            {"concept_id": i, "concept_name": c, "vocabulary_id": "UCUM", "concept_code": c}
            for c, i in u_ids.items()
        ]
        lab = lab.with_columns(
            pl.col("measurement_source_value")
            .replace_strict(m_ids, return_dtype=pl.Int64)
            .alias("measurement_concept_id"),
            pl.col("unit")
            .replace_strict({u: u_ids[u_ucum[u]] for u in units}, return_dtype=pl.Int64)
            .alias("unit_concept_id"),
        )
    else:
        lab = lab.with_columns(
            pl.lit(0, dtype=pl.Int64).alias("measurement_concept_id"),
            pl.lit(0, dtype=pl.Int64).alias("unit_concept_id"),
        )
    measurement = lab.with_row_index("measurement_id", offset=1).select(
        pl.col("measurement_id").cast(pl.Int64),
        "person_id",
        "measurement_concept_id",
        "measurement_date",
        pl.col("value").alias("value_as_number"),
        "unit_concept_id",
        pl.col("unit").alias("unit_source_value"),
        "measurement_source_value",
    )
    ev = events.join(inf, on="patient_id")

    def date(col: str) -> pl.Expr:
        return pl.col("infusion_date") + pl.duration(days=pl.col(col))

    car_t = inf.join(patients.select("patient_id", "product"), on="patient_id").select(
        "person_id",
        pl.col("infusion_date").alias("procedure_date"),
        pl.lit(0, dtype=pl.Int64).alias("procedure_concept_id"),
        pl.lit("38228").alias("procedure_source_value"),
    )
    tx = ev.filter(pl.col("type") == "transfusion").select(
        "person_id",
        date("start_day").alias("procedure_date"),
        pl.lit(0, dtype=pl.Int64).alias("procedure_concept_id"),
        pl.col("product").replace_strict(_TX_CODE, default=None).alias("procedure_source_value"),
    )
    procedure = pl.concat([car_t, tx]).with_row_index("procedure_occurrence_id", offset=1)
    meds = ev.filter(pl.col("type") == "medication").select(
        "person_id",
        date("start_day").alias("drug_exposure_start_date"),
        pl.coalesce(date("end_day"), date("start_day")).alias("drug_exposure_end_date"),
        pl.lit(0, dtype=pl.Int64).alias("drug_concept_id"),
        pl.col("drug").alias("drug_source_value"),
    )
    product = inf.join(patients.select("patient_id", "product"), on="patient_id").select(
        "person_id",
        pl.col("infusion_date").alias("drug_exposure_start_date"),
        pl.col("infusion_date").alias("drug_exposure_end_date"),
        pl.lit(0, dtype=pl.Int64).alias("drug_concept_id"),
        pl.col("product").alias("drug_source_value"),
    )
    parts = [product, meds]
    if "ld_start_date" in patients.columns:
        ld = patients.join(pid, on="patient_id").filter(pl.col("ld_start_date").is_not_null())
        for name in ("fludarabine", "cyclophosphamide"):
            parts.append(
                ld.select(
                    "person_id",
                    pl.col("ld_start_date").alias("drug_exposure_start_date"),
                    (pl.col("ld_start_date") + pl.duration(days=2)).alias("drug_exposure_end_date"),
                    pl.lit(0, dtype=pl.Int64).alias("drug_concept_id"),
                    pl.lit(name).alias("drug_source_value"),
                )
            )
    drug = pl.concat(parts).with_row_index("drug_exposure_id", offset=1)
    out = {
        "person": person,
        "measurement": measurement,
        "procedure_occurrence": procedure,
        "drug_exposure": drug,
        "condition_occurrence": patients.join(pid, on="patient_id").select(
            "person_id",
            (pl.col("infusion_date") - pl.duration(days=60)).alias("condition_start_date"),
            pl.lit(0, dtype=pl.Int64).alias("condition_concept_id"),
            pl.col("disease")
            .replace_strict(_DISEASE_ICD10, default=None)
            .alias("condition_source_value"),
        ),
    }
    if "death_date" in patients.columns:
        out["death"] = (
            patients.join(pid, on="patient_id")
            .filter(pl.col("death_date").is_not_null())
            .select("person_id", "death_date")
        )
    if "last_followup_date" in patients.columns:
        out["observation_period"] = patients.join(pid, on="patient_id").select(
            "person_id",
            (pl.col("infusion_date") - pl.duration(days=90)).alias("observation_period_start_date"),
            pl.col("last_followup_date").alias("observation_period_end_date"),
        )
    if concept_rows:
        out["concept"] = pl.DataFrame(concept_rows)
    return out


def write_omop(tables: dict[str, pl.DataFrame], target: str | Path) -> Path:
    """Write OMOP tables as Parquet files in a directory, or into a DuckDB file (by suffix)."""
    t = Path(target)
    if t.suffix.lower() in DUCKDB_SUFFIXES:
        import duckdb

        tmp = t.with_name(f".{t.name}.partial")
        if tmp.exists():
            tmp.unlink()
        con = duckdb.connect(str(tmp))
        try:
            for name, df in tables.items():
                con.register("_df", df.to_arrow())
                con.execute(f"create table {name} as select * from _df")
                con.unregister("_df")
        finally:
            con.close()
        tmp.replace(t)
        return t
    t.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.write_parquet(t / f"{name}.parquet")
    return t


__all__ = [
    "OmopCohort",
    "OmopSource",
    "OmopSummary",
    "long_tables",
    "omop_map",
    "read_omop",
    "to_omop",
    "write_omop",
]
