"""Form generation and lab CSV parsing (service/forms.py)."""

from __future__ import annotations

import pytest

from cart_cytopenia.errors import ParseError
from cart_cytopenia.service.forms import EVENT_TYPES, event_fields, lab_fields, parse_lab_csv


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
