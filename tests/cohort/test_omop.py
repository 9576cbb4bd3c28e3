"""The OMOP CDM v5.4 reader (io/omop.py): the same cohort read from OMOP tables grades the same."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from cart_cytopenia.cohort import synthetic
from cart_cytopenia.errors import ImplausibleValueError, InputError, ParseError, SchemaError
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.io import omop
from cart_cytopenia.rules.settings import Settings
from tests.conftest import ROOT

COMPARED = [
    "early_icaht_grade",
    "early_days_anc_le_500",
    "late_icaht_grade",
    "late_anc_1",
    "phenotype",
    "ctcae_worst_neutrophils",
    "ctcae_worst_platelets",
    "ctcae_worst_anaemia",
    "days_anc_le_500_d0_60",
    "hematotox_score",
    "rbc_transfusions_d0_30",
    "platelet_transfusions_d0_30",
    "gcsf_response",
]


@pytest.fixture(scope="module")
def cohort() -> synthetic.Block:
    return synthetic.generate_cohort(250, seed=4)


@pytest.fixture(scope="module")
def reference(cohort: synthetic.Block) -> pl.DataFrame:
    return grade_cohort(synthetic.block_frames(cohort), Settings())


def _infusion_table(cohort: synthetic.Block, tables: dict[str, pl.DataFrame], path: Path) -> Path:
    ids = tables["person"].select("person_id", pl.col("person_source_value").alias("patient_id"))
    cohort.patients.join(ids, on="patient_id").select(
        "person_id", "infusion_date", "progression_date", "next_therapy_date"
    ).write_csv(path)
    return path


def _by_source_id(graded: pl.DataFrame, tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    ids = tables["person"].select(
        pl.col("person_id").cast(pl.String).alias("pid"), pl.col("person_source_value")
    )
    return (
        graded.join(ids, left_on="patient_id", right_on="pid")
        .drop("patient_id")
        .rename({"person_source_value": "patient_id"})
        .sort("patient_id")
    )


@pytest.mark.parametrize("with_concepts", [True, False], ids=["concept-table", "source-values"])
@pytest.mark.parametrize("target", ["omop", "omop.duckdb"])
def test_omop_extract_grades_like_the_long_format(
    cohort: synthetic.Block,
    reference: pl.DataFrame,
    tmp_path: Path,
    with_concepts: bool,
    target: str,
) -> None:
    tables = omop.to_omop(cohort.patients, cohort.labs, cohort.events, with_concepts=with_concepts)
    assert ("concept" in tables) is with_concepts
    src = omop.write_omop(tables, tmp_path / target)
    inf = _infusion_table(cohort, tables, tmp_path / "infusions.csv")
    read = omop.read_omop(src, infusions=inf)
    s = read.summary
    assert s.persons == s.persons_with_infusion == cohort.patients.height
    assert s.measurements_used == cohort.labs.height
    got = _by_source_id(grade_cohort(read.frames, Settings()), tables)
    want = reference.sort("patient_id")
    assert got["patient_id"].to_list() == want["patient_id"].to_list()
    for col in COMPARED:
        assert got[col].equals(want[col]), col


def test_day_0_and_lymphodepletion_found_in_the_tables(
    cohort: synthetic.Block, tmp_path: Path
) -> None:
    """Without an infusion table: day 0 from the CAR-T administration procedure (CPT 38228),
    lymphodepletion from the fludarabine record, the disease from its ICD-10 code."""
    tables = omop.to_omop(cohort.patients, cohort.labs, cohort.events)
    read = omop.read_omop(omop.write_omop(tables, tmp_path / "x"))
    assert read.summary.infusion_from == {"procedure": cohort.patients.height}
    p = read.frames.patients.join(
        tables["person"].select(
            pl.col("person_id").cast(pl.String).alias("patient_id"), "person_source_value"
        ),
        on="patient_id",
    )
    want = synthetic.block_frames(cohort).patients
    both = p.join(want, left_on="person_source_value", right_on="patient_id", suffix="_want")
    assert (both["ld_start_day"] == both["ld_start_day_want"]).all()
    assert (both["disease"] == both["disease_want"]).all()
    assert (both["product"] == both["product_want"]).all()
    assert (both["sex"] == both["sex_want"]).all()
    assert ((both["age_years"] - both["age_years_want"]).abs() < 0.1).all()
    assert (both["death_day"].fill_null(-1) == both["death_day_want"].fill_null(-1)).all()


def test_other_analytes_and_missing_values_are_left_out_and_counted(
    cohort: synthetic.Block, tmp_path: Path
) -> None:
    tables = omop.to_omop(cohort.patients, cohort.labs, cohort.events, with_concepts=False)
    m = tables["measurement"]
    extra = m.head(3).with_columns(
        pl.lit("2951-2").alias("measurement_source_value"),  # sodium: not an analyte here
        pl.lit("mmol/L").alias("unit_source_value"),
        (pl.col("measurement_id") + 10_000_000).alias("measurement_id"),
    )
    novalue = m.head(2).with_columns(
        pl.lit(None, dtype=pl.Float64).alias("value_as_number"),
        (pl.col("measurement_id") + 20_000_000).alias("measurement_id"),
    )
    tables["measurement"] = pl.concat([m, extra, novalue])
    read = omop.read_omop(omop.write_omop(tables, tmp_path / "x"))
    assert read.summary.measurements_other_analytes == 3
    assert read.summary.measurements_without_value == 2
    assert read.summary.measurements_used == m.height
    assert "2951-2" in " ".join(read.summary.lines())


def test_a_bad_measurement_names_its_row_and_loads_nothing(
    cohort: synthetic.Block, tmp_path: Path
) -> None:
    tables = omop.to_omop(cohort.patients, cohort.labs, cohort.events, with_concepts=False)
    m = tables["measurement"]
    anc_row = m.with_row_index("r").filter(pl.col("measurement_source_value") == "751-8")["r"][5]
    tables["measurement"] = m.with_columns(
        pl.when(pl.int_range(pl.len()) == anc_row)
        .then(pl.lit(45.5))
        .otherwise(pl.col("value_as_number"))
        .alias("value_as_number"),
        pl.when(pl.int_range(pl.len()) == anc_row)
        .then(pl.lit("cells/uL"))
        .otherwise(pl.col("unit_source_value"))
        .alias("unit_source_value"),
    )
    with pytest.raises(ImplausibleValueError) as err:
        omop.read_omop(omop.write_omop(tables, tmp_path / "x"))
    text = str(err.value)
    assert f"row {anc_row + 1}" in text and "MEASUREMENT" in text
    assert "45.5" in text


def test_clear_errors_for_unusable_extracts(cohort: synthetic.Block, tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="does not exist"):
        omop.read_omop(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SchemaError, match="no PERSON table"):
        omop.read_omop(empty)
    tables = omop.to_omop(cohort.patients, cohort.labs, cohort.events)
    del tables["procedure_occurrence"], tables["drug_exposure"]
    with pytest.raises(InputError, match="no CAR-T infusion found"):
        omop.read_omop(omop.write_omop(tables, tmp_path / "noday0"))
    tables = omop.to_omop(cohort.patients, cohort.labs, cohort.events)
    tables["measurement"] = tables["measurement"].with_columns(
        pl.col("measurement_date").cast(pl.String).str.replace("^2", "X")
    )
    with pytest.raises(SchemaError, match="unreadable measurement_date"):
        omop.read_omop(omop.write_omop(tables, tmp_path / "baddate"))


def test_cli_grades_an_omop_extract(cohort: synthetic.Block, tmp_path: Path) -> None:
    tables = omop.to_omop(cohort.patients, cohort.labs, cohort.events)
    src = omop.write_omop(tables, tmp_path / "ex.duckdb")
    out = tmp_path / "grades.csv"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "cart_cytopenia.cli.main",
            "cohort",
            "omop",
            str(src),
            "--out",
            str(out),
            "--export",
            str(tmp_path / "long"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr
    assert "with a CAR-T infusion (day 0): 250" in p.stderr
    graded = pl.read_csv(out)
    assert graded.height == 250
    assert sorted(x.name for x in (tmp_path / "long").iterdir()) == [
        "events.csv",
        "labs.csv",
        "patients.csv",
    ]


def test_each_table_is_read_once(
    cohort: synthetic.Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drug exposures serve day 0, lymphodepletion and medications; procedures serve day 0 and
    transfusions: each is read from the extract once."""
    tables = omop.to_omop(cohort.patients, cohort.labs, cohort.events)
    src = omop.write_omop(tables, tmp_path / "x")
    reads: list[str] = []
    real = omop.OmopSource.read

    def counted(self: omop.OmopSource, table: str, *args: object, **kw: object) -> pl.DataFrame:
        reads.append(table)
        return real(self, table, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(omop.OmopSource, "read", counted)
    read = omop.read_omop(src)
    assert read.summary.transfusions > 0 and read.summary.medications > 0
    assert reads.count("procedure_occurrence") == 1
    assert reads.count("drug_exposure") == 1


def test_cohort_generate_writes_a_sample_omop_extract_to_try(tmp_path: Path) -> None:
    """`make demo` writes one with `cohort generate --omop DIR`; `cohort omop DIR` grades it."""
    from tests.cli.invoke import invoke

    extract = tmp_path / "omop-extract"
    r = invoke("cohort", "generate", "--patients", "60", "--seed", "2", "--omop", str(extract))
    assert r.code == 0, r.stderr
    assert {p.stem for p in extract.iterdir()} >= {"person", "measurement", "procedure_occurrence"}
    out = tmp_path / "grades.csv"
    r = invoke("cohort", "omop", str(extract), "--out", str(out))
    assert r.code == 0, r.stderr
    assert "with a CAR-T infusion (day 0): 60" in r.stderr
    assert pl.read_csv(out).height == 60
    assert "cohort omop" in (ROOT / "scripts" / "demo.sh").read_text()
