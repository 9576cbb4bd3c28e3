"""A cohort in the long format as OMOP CDM v5.4 tables (demonstrations, tests): PERSON,
MEASUREMENT, PROCEDURE_OCCURRENCE, DRUG_EXPOSURE, CONDITION_OCCURRENCE, DEATH,
OBSERVATION_PERIOD and CONCEPT, written as Parquet files or a DuckDB database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from cart_cytopenia.domain.analytes import resolve_analyte
from cart_cytopenia.domain.units import resolve_unit
from cart_cytopenia.io.omop_source import (
    DUCKDB_SUFFIXES,
    LOCAL_CONCEPT_START,
)

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
    measurement, concept_rows = _measurement(labs, inf, with_concepts)
    ev = events.join(inf, on="patient_id")
    out = {
        "person": _person(patients, pid),
        "measurement": measurement,
        "procedure_occurrence": _procedure_occurrence(patients, inf, ev),
        "drug_exposure": _drug_exposure(patients, pid, inf, ev),
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


def _person(patients: pl.DataFrame, pid: pl.DataFrame) -> pl.DataFrame:
    """PERSON: gender concept, birth date back from the age at infusion, the patient id."""
    birth = patients.select(
        "patient_id",
        (
            pl.col("infusion_date")
            - pl.duration(days=(pl.col("age_years") * 365.25).round(0).cast(pl.Int64))
        ).alias("birth"),
        "sex",
    )
    return pid.join(birth, on="patient_id").select(
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


def _measurement(
    labs: pl.DataFrame, inf: pl.DataFrame, with_concepts: bool
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """(MEASUREMENT, CONCEPT rows): labs dated, coded by LOINC as source value, and with
    ``with_concepts`` by site-local LOINC and UCUM concepts."""
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
        lab, concept_rows = _with_local_concepts(lab, loinc)
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
    return measurement, concept_rows


def _with_local_concepts(
    lab: pl.DataFrame, loinc: dict[str, str]
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Lab rows with site-local measurement and unit concept ids, and the CONCEPT rows that
    give their LOINC and UCUM codes."""
    m_ids = {code: LOCAL_CONCEPT_START + i for i, code in enumerate(sorted(set(loinc.values())))}
    units = sorted(lab["unit"].unique().to_list())
    u_ucum = {u: resolve_unit(u).ucum for u in units}
    u_ids = {
        code: LOCAL_CONCEPT_START + 1000 + i for i, code in enumerate(sorted(set(u_ucum.values())))
    }
    concept_rows = [
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
    return lab, concept_rows


def _date(col: str) -> pl.Expr:
    """The date of a day column (days from the infusion)."""
    return pl.col("infusion_date") + pl.duration(days=pl.col(col))


def _procedure_occurrence(
    patients: pl.DataFrame, inf: pl.DataFrame, ev: pl.DataFrame
) -> pl.DataFrame:
    """PROCEDURE_OCCURRENCE: the CAR-T administration (CPT 38228) and transfusions (ICD-10-PCS)."""
    car_t = inf.join(patients.select("patient_id", "product"), on="patient_id").select(
        "person_id",
        pl.col("infusion_date").alias("procedure_date"),
        pl.lit(0, dtype=pl.Int64).alias("procedure_concept_id"),
        pl.lit("38228").alias("procedure_source_value"),
    )
    tx = ev.filter(pl.col("type") == "transfusion").select(
        "person_id",
        _date("start_day").alias("procedure_date"),
        pl.lit(0, dtype=pl.Int64).alias("procedure_concept_id"),
        pl.col("product").replace_strict(_TX_CODE, default=None).alias("procedure_source_value"),
    )
    return pl.concat([car_t, tx]).with_row_index("procedure_occurrence_id", offset=1)


def _drug_exposure(
    patients: pl.DataFrame, pid: pl.DataFrame, inf: pl.DataFrame, ev: pl.DataFrame
) -> pl.DataFrame:
    """DRUG_EXPOSURE: the CAR-T product on day 0, the medications, and fludarabine and
    cyclophosphamide from the lymphodepletion start."""
    meds = ev.filter(pl.col("type") == "medication").select(
        "person_id",
        _date("start_day").alias("drug_exposure_start_date"),
        pl.coalesce(_date("end_day"), _date("start_day")).alias("drug_exposure_end_date"),
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
    return pl.concat(parts).with_row_index("drug_exposure_id", offset=1)


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
