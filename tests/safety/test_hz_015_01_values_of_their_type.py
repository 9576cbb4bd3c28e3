"""HZ-015-01: a value of the wrong type read as a real one (`"value": true` was an ANC of
1/uL and changed the ICAHT grade; "maybe" was read as no prior allo-HCT)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.errors import InputError
from cart_cytopenia.io.tables import read_patients
from tests.conftest import course_dict


def _with_value(value: object) -> dict[str, object]:
    doc = course_dict([(d, 1200) for d in range(0, 15)])
    doc["labs"][7]["value"] = value  # type: ignore[index]
    return doc


@pytest.mark.parametrize("value", [True, False, float("nan"), float("inf"), "NaN"])
def test_a_count_that_is_not_a_number_is_refused(value: object) -> None:
    with pytest.raises(InputError) as exc:
        parse_course(_with_value(value))
    assert "labs.7.value" in str(exc.value)


def test_the_same_count_as_a_number_is_read() -> None:
    assert parse_course(_with_value(1)).labs[7].value == 1.0
    assert parse_course(_with_value("350")).labs[7].value == 350.0


@pytest.mark.parametrize(
    ("cell", "read"),
    [("yes", True), ("No", False), ("0", False), ("", None)],
)
def test_patient_table_yes_no_read(tmp_path: Path, cell: str, read: bool | None) -> None:
    p = tmp_path / "patients.csv"
    p.write_text(f"patient_id,infusion_date,age_years,prior_allo_hct\nA,2024-01-01,0,{cell}\n")
    assert read_patients(p)["prior_allo_hct"].to_list() == [read]


@pytest.mark.parametrize(
    ("age", "allo", "field"),
    [("-3", "no", "age_years"), ("120.5", "no", "age_years"), ("60", "maybe", "prior_allo_hct")],
)
def test_patient_table_out_of_domain_is_refused(
    tmp_path: Path, age: str, allo: str, field: str
) -> None:
    p = tmp_path / "patients.csv"
    p.write_text(f"patient_id,infusion_date,age_years,prior_allo_hct\nA,2024-01-01,{age},{allo}\n")
    with pytest.raises(InputError) as exc:
        read_patients(p)
    assert f"field '{field}'" in str(exc.value) and "row 2" in str(exc.value)


def test_ages_at_both_ends_are_read(tmp_path: Path) -> None:
    p = tmp_path / "patients.csv"
    p.write_text("patient_id,infusion_date,age_years\nA,2024-01-01,0\nB,2024-01-01,120\n")
    assert read_patients(p)["age_years"].to_list() == [0.0, 120.0]
    assert read_patients(p).schema["age_years"] == pl.Float64


def test_an_event_of_unknown_type_is_refused_not_dropped(tmp_path: Path) -> None:
    from cart_cytopenia.io.tables import read_events

    p = tmp_path / "events.csv"
    p.write_text("patient_id,type,start_day,grade\nA,cytokine storm,2,3\n")
    with pytest.raises(InputError, match="'cytokine storm' is not an event type"):
        read_events(p, None)
    p.write_text("patient_id,type,start_day,grade\nA,CRS,2,3\n")
    assert read_events(p, None)["type"].to_list() == ["crs"]
