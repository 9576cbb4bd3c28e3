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

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from cart_cytopenia.domain.analytes import resolve_analyte
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
    Problem,
    SchemaError,
    UnknownAnalyteError,
)
from cart_cytopenia.io.omop_day0 import day0_infusions, drug_rows, procedure_rows
from cart_cytopenia.io.omop_source import (
    TABLES,
    OmopSource,
    OmopSummary,
    cast_column,
    code_of,
    concepts_of,
    dated_concept_rows,
    int_ids,
    omop_map,
    therapy_code_of_row,
    with_patient_ids,
)
from cart_cytopenia.io.omop_write import to_omop, write_omop
from cart_cytopenia.io.therapy_codes import clean_code


def _days(col: str, out: str) -> pl.Expr:
    return (pl.col(col) - pl.col("infusion_date")).dt.total_days().cast(pl.Int32).alias(out)


def _patients(src: OmopSource, day0: pl.DataFrame, summary: OmopSummary) -> pl.DataFrame:
    """The infused persons: day 0 joined with PERSON (sex, birth date, age at infusion), then
    the optional facts (death, last follow-up, disease) and their days from day 0."""
    where = src.where("person")
    p = _persons(src, summary)
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
    out = _with_optional_facts(src, out, summary)
    _no_death_before_day0(src, out)
    day_cols = []
    for f in ("progression", "next_therapy", "last_followup", "death"):
        if f"{f}_date" in out.columns:
            day_cols.append(_days(f"{f}_date", f"{f}_day"))
    return out.with_columns(day_cols)


def _persons(src: OmopSource, summary: OmopSummary) -> pl.DataFrame:
    """PERSON rows (person_id unique) with ``sex`` and ``birth_date``."""
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
    p = with_patient_ids(p, where)
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
    p = p.with_columns(pl.Series("sex", _sexes(p), dtype=pl.String))
    return _with_birth_dates(p, where)


def _sexes(p: pl.DataFrame) -> list[str]:
    """male / female / unknown from the gender concept (omop_map.toml) or the source value."""
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
    return [
        "male"
        if (i in g["male"] or s in ("m", "male"))
        else "female"
        if (i in g["female"] or s in ("f", "female"))
        else "unknown"
        for i, s in zip(gid.to_list(), gsrc.to_list(), strict=True)
    ]


def _with_birth_dates(p: pl.DataFrame, where: str) -> pl.DataFrame:
    """``birth_date``: birth_datetime, else year/month/day of birth (month 7, day 1 when missing)."""
    for c in ("year_of_birth", "month_of_birth", "day_of_birth"):
        p = cast_column(p, c, pl.Int32, where, "a whole number")
    birth = pl.lit(None, dtype=pl.Date)
    if "year_of_birth" in p.columns:
        birth = pl.date(
            pl.col("year_of_birth"),
            pl.col("month_of_birth").fill_null(7) if "month_of_birth" in p.columns else 7,
            pl.col("day_of_birth").fill_null(1) if "day_of_birth" in p.columns else 1,
        )
    if "birth_datetime" in p.columns:
        p = cast_column(p, "birth_datetime", pl.Date, where, "a date")
        birth = pl.coalesce(pl.col("birth_datetime"), birth)
    return p.with_columns(birth.alias("birth_date"))


def _with_optional_facts(src: OmopSource, out: pl.DataFrame, summary: OmopSummary) -> pl.DataFrame:
    """Death (DEATH), last follow-up (OBSERVATION_PERIOD, not after death) and disease
    (CONDITION_OCCURRENCE, 'other' when unknown), unless the infusion table gave them."""
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
    return out


def _no_death_before_day0(src: OmopSource, out: pl.DataFrame) -> None:
    """A SchemaError naming the persons whose death is before their CAR-T infusion."""
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
    d = cast_column(with_patient_ids(d, dw), "death_date", pl.Date, dw, "a date")
    return d.group_by("patient_id").agg(pl.col("death_date").min())


def _followup_ends(src: OmopSource) -> pl.DataFrame:
    """patient_id, last_followup_date (the last observation period end) from OBSERVATION_PERIOD."""
    ow = src.where("observation_period")
    o = src.read(
        "observation_period",
        ["person_id", "observation_period_end_date"],
        ["person_id", "observation_period_end_date"],
    )
    o = cast_column(with_patient_ids(o, ow), "observation_period_end_date", pl.Date, ow, "a date")
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
        drug_rows(src)
        .filter(pl.col("lymphodepletion"))
        .join(patients.select("patient_id", "infusion_date"), on="patient_id", how="inner")
        .with_columns(_days("drug_exposure_start_date", "day"))
        .filter(pl.col("day").is_between(-window, -1))
        .group_by("patient_id")
        .agg(pl.col("day").min().alias("ld_start_day"))
    )
    return patients.join(d, on="patient_id", how="left")


def _disease(src: OmopSource) -> pl.DataFrame:
    c, concepts = dated_concept_rows(
        src, "condition_occurrence", "condition_start_date", "condition"
    )
    prefixes = sorted(omop_map()["disease_icd10"].items(), key=lambda kv: -len(kv[0]))
    diseases = []
    for r in c.iter_rows(named=True):
        cid = r.get("condition_concept_id")
        code = clean_code(
            code_of(concepts.get(int(cid)) if cid else None, ("ICD10CM", "ICD10"))
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
    m = _measurement_rows(src, summary)
    concepts = concepts_of(
        src,
        int_ids(m, "measurement_concept_id")
        | int_ids(m, "unit_concept_id")
        | int_ids(m, "operator_concept_id"),
    )
    m = _comparators(m, concepts, summary)
    m = _with_analytes_and_units(m, concepts)
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


def _measurement_rows(src: OmopSource, summary: OmopSummary) -> pl.DataFrame:
    """MEASUREMENT with typed columns; the optional concept and source columns null when absent."""
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
    m = with_patient_ids(m, where)
    m = cast_column(m, "measurement_date", pl.Date, where, "a date")
    m = cast_column(m, "value_as_number", pl.Float64, where, "a number")
    for c in ("measurement_concept_id", "unit_concept_id", "operator_concept_id"):
        if c not in m.columns:
            m = m.with_columns(pl.lit(None, dtype=pl.Int64).alias(c))
        m = cast_column(m, c, pl.Int64, where, "a concept id")
    for c in ("measurement_source_value", "unit_source_value"):
        if c not in m.columns:
            m = m.with_columns(pl.lit(None, dtype=pl.String).alias(c))
        m = m.with_columns(pl.col(c).cast(pl.String))
    return m


def _with_analytes_and_units(
    m: pl.DataFrame, concepts: dict[int, tuple[str, str, str]]
) -> pl.DataFrame:
    """``analyte`` (the catalogue code of the concept's LOINC code, else of the source value;
    null for other analytes) and ``unit`` (the unit concept's UCUM code, else the source value),
    each distinct (concept, source value) resolved once."""
    pairs = m.select("measurement_concept_id", "measurement_source_value").unique()
    codes: list[str | None] = []
    for cid, sv in pairs.iter_rows():
        code = None
        for key in (code_of(concepts.get(cid) if cid else None, ("LOINC",)), sv):
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
        code_of(concepts.get(cid) if cid else None, ("UCUM",)) or (sv or "")
        for cid, sv in units.iter_rows()
    ]
    units = units.with_columns(pl.Series("unit", unit_text, dtype=pl.String))
    m = m.join(
        pairs,
        on=["measurement_concept_id", "measurement_source_value"],
        how="left",
        nulls_equal=True,
    )
    return m.join(units, on=["unit_concept_id", "unit_source_value"], how="left", nulls_equal=True)


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
        d = drug_rows(src).filter(pl.col("drug").is_not_null() & pl.col("product").is_null())
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
        p, concepts = procedure_rows(src)
        prods = []
        for r in p.iter_rows(named=True):
            hit = therapy_code_of_row(
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
        day0 = day0_infusions(src, Path(infusions) if infusions else None, summary)
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


__all__ = [
    "TABLES",
    "OmopCohort",
    "OmopSource",
    "OmopSummary",
    "long_tables",
    "omop_map",
    "read_omop",
    "to_omop",
    "write_omop",
]
