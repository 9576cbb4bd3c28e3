"""normalise_labs converts rows slice by slice in threads: same rows, same errors as one slice."""

from __future__ import annotations

import polars as pl
import pytest

from cart_cytopenia.domain import frames
from cart_cytopenia.errors import InputError

RAW = pl.DataFrame(
    {
        "patient_id": ["a", "a", "a", "b", "b", "b", "c"],
        "day": [0, 1, 2, 0, 1, 2, 5],
        "analyte": ["anc", "neutrophils", "platelets", "hb", "anc", "crp", "wbc"],
        "value": [500.0, 0.4, 35.0, 8.2, 1200.0, 12.0, 2.5],
        "unit": ["/uL", "10*9/L", "10*9/L", "g/dL", "/uL", "mg/L", "10*9/L"],
    }
)


def test_many_slices_give_the_same_rows_as_one(monkeypatch: pytest.MonkeyPatch) -> None:
    one = frames.normalise_labs(RAW)
    monkeypatch.setattr(frames, "ROWS_PER_SLICE", 2)
    assert len(frames._row_slices(RAW.height)) == 4
    many = frames.normalise_labs(RAW)
    assert many.equals(one)
    assert many["analyte"].cast(pl.String).to_list()[:3] == ["anc", "anc", "platelets"]
    assert many["value"].to_list()[1] == pytest.approx(400.0)


def test_problems_in_several_slices_are_all_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames, "ROWS_PER_SLICE", 2)
    bad = RAW.with_columns(
        pl.when(pl.int_range(pl.len()) == 1)
        .then(pl.lit("bogus"))
        .otherwise(pl.col("analyte"))
        .alias("analyte"),
        pl.when(pl.int_range(pl.len()) == 5)
        .then(pl.lit(-4.0))
        .otherwise(pl.col("value"))
        .alias("value"),
    )
    with pytest.raises(InputError) as err:
        frames.normalise_labs(bad)
    rows = sorted(p.location.row for p in err.value.problems if p.location is not None)
    assert rows == [2, 6]


def test_coded_columns_are_read_as_their_texts() -> None:
    """``coded``: analyte and unit given as codes into their distinct texts (as io.tables reads
    a Parquet file) give the rows the texts give; codes that are not such are refused."""
    texts = {c: sorted(set(RAW[c].to_list())) for c in ("analyte", "unit")}
    coded = RAW.with_columns(
        pl.Series(c, [texts[c].index(t) for t in RAW[c].to_list()], dtype=pl.UInt8) for c in texts
    )
    assert frames.normalise_labs(coded, coded=texts).equals(frames.normalise_labs(RAW))
    with pytest.raises(ValueError, match="beyond its"):
        frames.normalise_labs(coded, coded={**texts, "unit": texts["unit"][:2]})
    with pytest.raises(ValueError, match="unsigned integer codes"):
        frames.normalise_labs(RAW, coded=texts)


@pytest.mark.parametrize("all_pairs_up_to", [0, 1 << 16])
def test_pairs_resolved_up_front_or_as_found(
    monkeypatch: pytest.MonkeyPatch, all_pairs_up_to: int
) -> None:
    """Every (analyte, unit) pair of the texts is resolved up front when there are few, else only
    the pairs present: the rows and the problems reported are the same either way."""
    monkeypatch.setattr(frames, "ALL_PAIRS_UP_TO", all_pairs_up_to)
    monkeypatch.setattr(frames, "ROWS_PER_SLICE", 3)
    assert frames.normalise_labs(RAW)["value"].to_list()[:2] == [500.0, 400.0]
    bad = RAW.with_columns(
        pl.Series("unit", ["/uL", "g/dL", "10*9/L", "furlong", "/uL", "mg/L", "10*9/L"]),
        pl.Series("value", [500.5, 0.4, 35.0, 8.2, 1200.0, 12.0, -2.5]),
    )
    with pytest.raises(InputError) as err:
        frames.normalise_labs(bad)
    found = sorted((p.location.row, p.message[:24]) for p in err.value.problems if p.location)
    assert [row for row, _ in found] == [1, 2, 4, 7]
