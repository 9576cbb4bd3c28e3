"""The course model: validation collects every problem, names where it is, loads nothing half."""

from __future__ import annotations

import json

import pytest

from cart_cytopenia.domain.catalogues import DrugClass
from cart_cytopenia.domain.course import Course, Medication, parse_course
from cart_cytopenia.errors import ImplausibleValueError, ParseError, SchemaError, TimelineError
from tests.conftest import EXAMPLES, course_dict


@pytest.mark.parametrize("n", [1, 2, 3])
def test_review_case_files_load(n: int) -> None:
    c = parse_course((EXAMPLES / f"review-case-{n}.json").read_text())
    assert c.patient.id == f"review-case-{n}"
    assert all(lab.day is not None for lab in c.labs)


def test_dates_become_days_since_infusion() -> None:
    c = parse_course(
        {
            **course_dict(),
            "labs": [{"date": "2024-01-12", "analyte": "ANC", "value": 0.4, "unit": "10^9/L"}],
            "events": [
                {
                    "type": "crs",
                    "start_date": "2024-01-11",
                    "end_date": "2024-01-13",
                    "max_grade": 2,
                }
            ],
        }
    )
    assert c.labs[0].day == 2
    assert c.labs[0].canonical_value() == pytest.approx(400)
    assert c.events[0].start_day == 1
    assert c.events[0].end_day == 3


def test_missing_infusion_date_is_named() -> None:
    d = course_dict()
    del d["infusion_date"]
    with pytest.raises(SchemaError, match="infusion_date"):
        parse_course(d)


def test_event_before_birth_is_a_timeline_error() -> None:
    d = course_dict(patient={"id": "t1", "disease": "LBCL", "birth_date": "1990-05-01"})
    d["labs"] = [{"date": "1980-01-01", "analyte": "anc", "value": 500, "unit": "/uL"}]
    with pytest.raises(
        TimelineError, match="patient t1, field 'labs\\[0\\]': 1980-01-01 is before birth"
    ):
        parse_course(d)


def test_every_problem_is_reported_at_once() -> None:
    d = course_dict()
    d["labs"] = [
        {"day": 1, "analyte": "anc", "value": 1500, "unit": "10*9/L"},
        {"day": 2, "analyte": "bogus", "value": 1, "unit": "/uL"},
        {"day": 3, "analyte": "hb", "value": 9, "unit": "parsecs"},
        {"analyte": "hb", "value": 9, "unit": "g/dL"},
    ]
    with pytest.raises(SchemaError) as info:
        parse_course(d)
    text = str(info.value)
    assert "4 problem(s)" in text
    assert "labs[0]" in text
    assert "probably 1500 /uL" in text
    assert "labs[1]" in text
    assert "unknown analyte 'bogus'" in text
    assert "labs[2]" in text
    assert "unknown unit 'parsecs'" in text
    assert "labs[3]" in text
    assert "needs a date or a day" in text


def test_only_implausible_values_raise_implausible_value_error() -> None:
    d = course_dict(labs=[(1, 1.5)])  # 1.5 cells/uL: a 10^9/L value with the wrong unit
    with pytest.raises(ImplausibleValueError, match="probably 1.5 10\\*3/uL"):
        parse_course(d)


def test_day_and_date_must_agree() -> None:
    d = course_dict()
    d["labs"] = [{"date": "2024-01-12", "day": 5, "analyte": "anc", "value": 400, "unit": "/uL"}]
    with pytest.raises(SchemaError, match="is day 2, but day 5 was given"):
        parse_course(d)


def test_span_ending_before_start_and_lab_after_death() -> None:
    d = course_dict(labs=[(20, 400)])
    d["events"] = [
        {"type": "crs", "start_day": 5, "end_day": 2, "max_grade": 1},
        {"type": "death", "day": 10},
    ]
    with pytest.raises(TimelineError) as info:
        parse_course(d)
    assert "ends (day 2) before it starts (day 5)" in str(info.value)
    assert "lab on day 20 is after death (day 10)" in str(info.value)


def test_unparseable_json_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="course.json is not valid JSON"):
        parse_course("{not json", source="course.json")


def test_unknown_field_is_rejected() -> None:
    d = course_dict()
    d["patient"]["favourite_colour"] = "blue"
    with pytest.raises(SchemaError, match="patient.favourite_colour"):
        parse_course(d)


def test_drug_names_resolve_to_classes_and_unknown_drugs_are_kept() -> None:
    d = course_dict()
    d["events"] = [
        {"type": "medication", "drug": "Neupogen", "start_day": 8},
        {"type": "medication", "drug": "Bactrim", "start_day": 30},
        {"type": "medication", "drug": "vancomycin", "start_day": 4},
    ]
    c = parse_course(d)
    meds = c.events_of(Medication)
    assert DrugClass.GCSF in meds[0].classes
    assert {DrugClass.PJP, DrugClass.MYELOSUPPRESSIVE} <= meds[1].classes
    assert meds[2].classes == frozenset()


def test_as_of_hides_the_future() -> None:
    d = course_dict(labs=[(1, 300), (10, 800)])
    d["events"] = [{"type": "death", "day": 12}]
    d["last_followup_day"] = 12
    c = parse_course(d).as_of(5)
    assert [lab.day for lab in c.labs] == [1]
    assert c.death_day is None
    assert c.last_followup_day is None


def test_json_schema_is_published_and_names_the_event_types() -> None:
    schema = Course.model_json_schema()
    text = json.dumps(schema)
    for t in (
        "crs",
        "icans",
        "medication",
        "transfusion",
        "bone_marrow",
        "stem_cell_boost",
        "relapse",
    ):
        assert f'"{t}"' in text
    assert "infusion_date" in schema["required"]
