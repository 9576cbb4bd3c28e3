"""OMOP extracts shaped like third-party ones (issue 13, defects 4, 7 and 8).

Extracts such as the OHDSI Eunomia sets and claims-derived OMOP data use codes and conventions
our own writer does not: generic LOINC codes (26515-7 platelets, 26464-8 leukocytes), lab units
written 'K/uL', operator_concept_id for '<' values, CAR-T administrations coded by ICD-10-PCS,
RxNorm clinical-drug concepts, and optional tables that are not clean. Each test starts from a
synthetic extract and changes it the way such an extract differs.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from cart_cytopenia.cohort import synthetic
from cart_cytopenia.io import omop

LT, GT = 4171756, 4172704  # OMOP 'Meas Value Operator' concepts '<' and '>'


@pytest.fixture(scope="module")
def cohort() -> synthetic.Block:
    return synthetic.generate_cohort(60, seed=11)


def _tables(cohort: synthetic.Block, concepts: bool = False) -> dict[str, pl.DataFrame]:
    return omop.to_omop(cohort.patients, cohort.labs, cohort.events, with_concepts=concepts)


def test_a_malformed_death_table_is_reported_and_the_run_goes_on(
    cohort: synthetic.Block, tmp_path: Path
) -> None:
    tables = _tables(cohort)
    deaths = tables["death"]
    assert deaths.height > 0
    tables["death"] = deaths.with_columns(pl.lit("31/02/2024").alias("death_date"))
    read = omop.read_omop(omop.write_omop(tables, tmp_path / "x"))
    lines = " ".join(read.summary.lines())
    assert "optional table DEATH was not used" in lines and "deaths are unknown" in lines
    assert "31/02/2024" in lines
    assert read.frames.patients["death_day"].is_null().all()  # unknown, never "alive"
    assert read.frames.patients.height == cohort.patients.height


def test_a_death_table_without_its_date_column_is_reported(
    cohort: synthetic.Block, tmp_path: Path
) -> None:
    tables = _tables(cohort)
    tables["death"] = tables["death"].rename({"death_date": "death_datetime_text"})
    read = omop.read_omop(omop.write_omop(tables, tmp_path / "x"))
    assert any("DEATH" in n and "death_date" in n for n in read.summary.notes)


def test_generic_loinc_codes_for_platelets_and_leukocytes_are_read(
    cohort: synthetic.Block, tmp_path: Path
) -> None:
    tables = _tables(cohort)
    m = tables["measurement"]
    generic = {"777-3": "26515-7", "6690-2": "26464-8"}
    assert m.filter(pl.col("measurement_source_value").is_in(list(generic))).height > 0
    tables["measurement"] = m.with_columns(pl.col("measurement_source_value").replace(generic))
    read = omop.read_omop(omop.write_omop(tables, tmp_path / "x"))
    assert read.summary.measurements_other_analytes == 0
    assert read.summary.measurements_used == m.height


def test_operator_concepts_are_kept_as_comparators_and_units_exported_as_ucum(
    cohort: synthetic.Block, tmp_path: Path
) -> None:
    tables = _tables(cohort)
    m = tables["measurement"].with_row_index("r")
    anc = m.filter(pl.col("measurement_source_value") == "751-8")["r"].head(3).to_list()
    plt = m.filter(pl.col("measurement_source_value") == "777-3")["r"].head(1).to_list()
    tables["measurement"] = m.with_columns(
        pl.when(pl.col("r").is_in(anc))
        .then(pl.lit(LT))
        .when(pl.col("r").is_in(plt))
        .then(pl.lit(GT))
        .otherwise(pl.lit(None, dtype=pl.Int64))
        .alias("operator_concept_id"),
        pl.when(pl.col("measurement_source_value") == "777-3")
        .then(pl.lit("K/uL"))
        .otherwise(pl.col("unit_source_value"))
        .alias("unit_source_value"),
    ).drop("r")
    read = omop.read_omop(omop.write_omop(tables, tmp_path / "x"))
    raw = read.raw_labs
    assert raw.filter(pl.col("comparator") == "<").height == 3
    assert raw.filter(pl.col("comparator") == ">").height == 1
    labs = omop.long_tables(read)["labs"]
    assert labs.filter(pl.col("comparator") == "<")["analyte"].to_list() == ["anc"] * 3
    units = set(labs["unit"].unique().to_list())
    assert "K/uL" not in units and "10*3/uL" in units


def test_icd10pcs_car_t_and_rxnorm_clinical_drug_codes_are_read_from_the_shared_table(
    cohort: synthetic.Block, tmp_path: Path
) -> None:
    """The same codes the FHIR importer reads (io/data/therapy_codes.toml): day 0 from the
    ICD-10-PCS code of a Yescarta administration (its product too), lymphodepletion from an
    RxNorm clinical-drug concepts without a name ('fludarabine phosphate 50 MG Injection',
    'cyclophosphamide 500 MG Injection')."""
    tables = _tables(cohort, concepts=True)
    proc = tables["procedure_occurrence"]
    tables["procedure_occurrence"] = proc.with_columns(
        pl.when(pl.col("procedure_source_value") == "38228")
        .then(pl.lit("XW033H7"))
        .otherwise(pl.col("procedure_source_value"))
        .alias("procedure_source_value")
    )
    # site-local concept rows naming the RxNorm clinical-drug codes only (no concept name)
    scd = {
        "fludarabine": (2_000_000_901, "1740864"),
        "cyclophosphamide": (2_000_000_902, "1734917"),
    }
    tables["concept"] = pl.concat(
        [
            tables["concept"],
            pl.DataFrame(
                {
                    "concept_id": [cid for cid, _c in scd.values()],
                    "concept_name": ["", ""],
                    "vocabulary_id": ["RxNorm", "RxNorm"],
                    "concept_code": [code for _i, code in scd.values()],
                }
            ).cast(tables["concept"].schema),
        ]
    )
    d = tables["drug_exposure"]
    assert d.filter(pl.col("drug_source_value").is_in(list(scd))).height > 0
    concept_of = {name: cid for name, (cid, _c) in scd.items()}
    tables["drug_exposure"] = d.with_columns(
        pl.col("drug_source_value")
        .replace_strict(concept_of, default=pl.col("drug_concept_id"), return_dtype=pl.Int64)
        .alias("drug_concept_id"),
        pl.when(pl.col("drug_source_value").is_in(list(scd)))
        .then(pl.lit(None))
        .otherwise(pl.col("drug_source_value"))
        .alias("drug_source_value"),
    )
    read = omop.read_omop(omop.write_omop(tables, tmp_path / "x"))
    assert read.summary.infusion_from == {"procedure": cohort.patients.height}
    patients = read.frames.patients
    assert set(patients["product"].unique().to_list()) == {"axi-cel"}
    assert patients["ld_start_day"].is_not_null().all()
