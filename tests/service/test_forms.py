"""Form generation and lab CSV parsing (service/forms.py)."""

from __future__ import annotations

import pytest

from cart_cytopenia.errors import InputError, Location, ParseError, Problem
from cart_cytopenia.service.forms import (
    EVENT_TYPES,
    FormState,
    apply_errors,
    event_fields,
    lab_fields,
    parse_lab_csv,
)


def test_event_forms_follow_the_domain_model() -> None:
    for key in EVENT_TYPES:
        names = {f.name for f in event_fields(key)}
        assert "type" not in names
        assert names & {"date", "start_date"}
    crs = {f.name: f for f in event_fields("crs")}
    assert crs["max_grade"].kind == "integer"
    assert crs["max_grade"].required
    tx = {f.name: f for f in event_fields("transfusion")}
    assert tx["product"].kind == "select"
    assert ("platelets", "platelets") in tx["product"].choices
    bm = {f.name: f for f in event_fields("bone_marrow")}
    assert bm["dysplasia"].kind == "bool"
    med = {f.name: f for f in event_fields("medication")}
    assert "filgrastim" in med["drug"].datalist
    assert {f.name for f in lab_fields()} >= {"date", "day", "analyte", "value", "unit"}


def test_errors_go_next_to_the_field_the_user_typed() -> None:
    exc = InputError(
        "invalid",
        problems=[
            Problem("day 900 is after the end of follow-up", Location(field="start_day")),
            Problem("grade must be 1-4", Location(field="max_grade")),
            Problem("course is closed", Location(field="status")),
        ],
    )
    known = {"start_date", "start_day", "max_grade"}
    typed = FormState()
    apply_errors(typed, exc, known, {"start_date": "2024-09-01", "max_grade": "7"})
    assert typed.errors == {
        "start_date": ["day 900 is after the end of follow-up"],
        "max_grade": ["grade must be 1-4"],
        "": [str(exc.problems[2])],
    }
    as_day = FormState()  # the day was typed: the problem stays next to it
    apply_errors(as_day, exc, known, {"start_day": "900"})
    assert "start_day" in as_day.errors and "start_date" not in as_day.errors
    plain = FormState()  # without the typed values: every problem at its own field
    apply_errors(plain, exc, known)
    assert set(plain.errors) == {"start_day", "max_grade", ""}


def test_lab_csv_rows_and_censored_values() -> None:
    data = b"Date;Analyte;Value;Unit\n2024-03-01;anc;<0,1;10*9/L\n\n2024-03-02;plt;45;10*3/uL\n"
    labs, rows = parse_lab_csv(data, "labs.csv", "P1")
    assert rows == [2, 4]
    assert labs[0] == {
        "date": "2024-03-01",
        "comparator": "<",
        "value": 0.1,
        "analyte": "anc",
        "unit": "10*9/L",
    }


def test_lab_csv_problems_name_row_and_column() -> None:
    with pytest.raises(ParseError) as info:
        parse_lab_csv(b"analyte,value\nanc,3\n", "x.csv", "P1")
    assert {p.location.field for p in info.value.problems} == {"unit", "date or day"}
    data = b"patient_id,day,analyte,value,unit\nP1,3,anc,abc,/uL\nP2,4,anc,5,/uL\nP1,,anc,5,\n"
    with pytest.raises(ParseError) as info:
        parse_lab_csv(data, "x.csv", "P1")
    where = sorted((p.location.row, p.location.field) for p in info.value.problems)
    assert where == [(2, "value"), (3, "patient_id"), (4, "date"), (4, "unit")]
    with pytest.raises(ParseError, match="UTF-8"):
        parse_lab_csv(b"\xff\xfe\x00", "x.csv", "P1")
    with pytest.raises(ParseError, match="no lab rows"):
        parse_lab_csv(b"day,analyte,value,unit\n", "x.csv", "P1")


def test_lab_csv_upload_lists_every_bad_row() -> None:
    """Issue 15: a file with several bad rows of different kinds lists them all at once
    (the upload page showed only the unreadable values, then the next kind on the next try)."""
    data = (
        b"date,analyte,value,unit\n"
        b"2024-01-12,anc,abc,/uL\n"  # not a number
        b"2024-01-13,anc,500,furlongs\n"  # unknown unit
        b"2024-01-14,anc,1500,10^9/L\n"  # implausible: cells/uL labelled 10^9/L
        b"2024-01-15,xyz,5,/uL\n"  # unknown analyte
        b"2024-13-45,anc,5,/uL\n"  # no such date
        b"2024-01-16,anc,300,/uL\n"  # fine
    )
    with pytest.raises(ParseError) as info:
        parse_lab_csv(data, "x.csv", "P1")
    where = sorted((p.location.row, p.location.field) for p in info.value.problems)
    assert where == [(2, "value"), (3, "unit"), (4, "value"), (5, "analyte"), (6, "date")]
    assert "probably 1500 /uL" in str(info.value)
