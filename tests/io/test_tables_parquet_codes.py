"""io.tables: a Parquet lab table's analyte and unit texts are read as codes (``_parquet_coded``);
the frames and every error message must be exactly those of reading the texts row by row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from cart_cytopenia.errors import InputError
from cart_cytopenia.io import tables

GOOD = {
    "patient_id": ["P1", "P1", "P1", "P2", "P2", "P2"],
    "day": [-3, 1, 1, 0, 2, 5],
    "analyte": ["anc", "ANC", "platelets", "26499-4", "hb", "Hemoglobin"],
    "value": [1.2, 800.0, 45.0, 0.9, 8.1, 81.0],
    "unit": ["10*9/L", "/uL", "10*3/uL", "10*9/L", "g/dL", "g/L"],
}


def _patients(tmp: Path) -> Path:
    p = tmp / "patients.csv"
    pl.DataFrame({"patient_id": ["P1", "P2"]}).write_csv(p)
    return p


def _labs(tmp: Path, data: dict[str, list[object]], name: str = "labs.parquet") -> Path:
    p = tmp / name
    pl.DataFrame(data, schema_overrides={"unit": pl.String}).write_parquet(p, row_group_size=2)
    return p


def _read(labs: Path, patients: Path, coded: bool, monkeypatch: pytest.MonkeyPatch) -> object:
    with monkeypatch.context() as m:
        if not coded:
            m.setattr(tables, "_parquet_coded", lambda path, columns: {})
        try:
            return tables.read_cohort(labs, patients).labs
        except InputError as exc:
            return (type(exc), str(exc), [str(p) for p in exc.problems])


def test_parquet_texts_are_read_as_codes(tmp_path: Path) -> None:
    labs = _labs(tmp_path, GOOD)
    coded = tables._parquet_coded(labs, ("analyte", "unit"))
    assert set(coded) == {"analyte", "unit"}
    for name, (texts, codes) in coded.items():
        assert texts == sorted(set(GOOD[name]))  # type: ignore[type-var]
        assert codes.dtype == np.uint8
        # row groups of two rows: each group's own dictionary is remapped to the shared texts
        assert [texts[c] for c in codes] == GOOD[name]


def test_coded_read_gives_the_same_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pats = _patients(tmp_path)
    labs = _labs(tmp_path, GOOD)
    coded = _read(labs, pats, True, monkeypatch)
    texts = _read(labs, pats, False, monkeypatch)
    assert isinstance(coded, pl.DataFrame) and isinstance(texts, pl.DataFrame)
    assert_frame_equal(coded, texts)
    assert coded["value"].to_list()[4:] == [8.1, 8.1]  # g/L converted to g/dL
    # and the same as the CSV form of the table (rows are numbered from the header there)
    csv = tmp_path / "labs.csv"
    pl.DataFrame(GOOD).write_csv(csv)
    from_csv = tables.read_cohort(csv, pats).labs
    assert_frame_equal(coded.drop("row"), from_csv.drop("row"))


@pytest.mark.parametrize(
    "change",
    [
        {"analyte": ["anc", "ANC", "platelets", "no-such-test", "hb", "Hemoglobin"]},
        {"unit": ["10*9/L", "/uL", "10*3/uL", "mg/L", "g/dL", "furlong"]},
        {"unit": ["10*9/L", "/uL", None, "10*9/L", "g/dL", "g/L"]},
        {"value": [1.2, 800.5, 45.0, 0.9, 8.1, 810.0]},  # fractional /uL; g/dL given as g/L
        {"analyte": ["anc", None, "platelets", "26499-4", "hb", "Hemoglobin"]},
    ],
)
def test_coded_read_reports_bad_rows_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, list[object]]
) -> None:
    pats = _patients(tmp_path)
    labs = _labs(tmp_path, {**GOOD, **change})
    coded = _read(labs, pats, True, monkeypatch)
    texts = _read(labs, pats, False, monkeypatch)
    assert isinstance(coded, tuple), "the bad rows were not reported"
    assert coded == texts


def test_dictionary_typed_and_non_text_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file whose unit column is stored as a dictionary type, and one whose analyte column
    is not text (LOINC numbers would not be): the first is coded, the second read as usual."""
    pats = _patients(tmp_path)
    t = pa.table(GOOD)
    t = t.set_column(4, "unit", pa.array(GOOD["unit"]).dictionary_encode())
    p = tmp_path / "dict.parquet"
    pq.write_table(t, p, row_group_size=4)
    assert set(tables._parquet_coded(p, ("analyte", "unit"))) == {"analyte", "unit"}
    coded = _read(p, pats, True, monkeypatch)
    texts = _read(p, pats, False, monkeypatch)
    assert isinstance(coded, pl.DataFrame) and isinstance(texts, pl.DataFrame)
    assert_frame_equal(coded, texts)
    numeric = tmp_path / "numeric.parquet"
    pl.DataFrame({**GOOD, "analyte": [1, 2, 3, 4, 5, 6]}).write_parquet(numeric)
    assert set(tables._parquet_coded(numeric, ("analyte", "unit"))) == {"unit"}
