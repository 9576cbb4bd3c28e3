"""``cart-cytopenia assess --guidance / --replay / --settings`` as a user meets them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cart_cytopenia.cli.main import app
from tests.conftest import EXAMPLES

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": "140"})
    assert result.exit_code == 0, result.output
    return result.output


def test_guidance_reads_as_a_consult_note_case_1_day_60() -> None:
    out = invoke("assess", str(EXAMPLES / "review-case-1.json"), "--day", "60", "--guidance")
    assert "Cytopenia consult — patient review-case-1, day 60" in out
    for heading in (
        "Differential (most likely first)",
        "Work-up",
        "Management",
        "Prophylaxis",
        "Plan",
    ):
        assert heading in out
    assert "Consider TPO-RA if bleeding risk is high: eltrombopag 75 mg daily" in out
    assert "why:" in out and "Jain 2023" in out
    assert "Missing data" in out and "Bleeding risk not recorded" in out
    assert "Settings in force (the review's defaults)" in out
    assert "transfusion.platelets_below_10e9_l" in out
    assert "never orders anything" in out


def test_guidance_json_lists_items_as_objects() -> None:
    out = invoke(
        "assess",
        str(EXAMPLES / "review-case-2.json"),
        "--day",
        "100",
        "--guidance",
        "--format",
        "json",
    )
    data = json.loads(out)
    assert data["patient_id"] == "review-case-2" and data["day"] == 100
    ids = {i["id"] for i in data["items"]}
    assert "management.stem-cell-boost" in ids
    for item in data["items"]:
        for key in (
            "id",
            "kind",
            "summary",
            "rationale",
            "evidence",
            "citation",
            "urgency",
            "inputs",
        ):
            assert key in item
    assert data["settings_in_force"]["gcsf.consider_from_day"] == 7
    assert data["calendar"] and "missing_data" in data and "assessment" in data


def test_settings_file_changes_guidance_and_is_printed(tmp_path: Path) -> None:
    settings = tmp_path / "centre.toml"
    settings.write_text(
        'institution = "Example Centre"\n[transfusion]\nplatelets_below_10e9_l = 20\n',
        encoding="utf-8",
    )
    course = str(EXAMPLES / "review-case-1.json")
    default = invoke("assess", course, "--day", "43", "--guidance")
    changed = invoke("assess", course, "--day", "43", "--guidance", "--settings", str(settings))
    assert "platelet transfusion per institutional threshold" not in default  # 14 >= 10
    assert "Platelets 14 x10^9/L (day 43) < 20" in changed
    assert "Example Centre: 1 changed from the review's defaults" in changed
    assert "(changed)" in changed


def test_bad_settings_file_is_one_clear_error(tmp_path: Path) -> None:
    settings = tmp_path / "bad.toml"
    settings.write_text("[gcsf]\nconsider_from_day = 12\nconsider_by_day = 9\n", encoding="utf-8")
    result = runner.invoke(
        app,
        ["assess", str(EXAMPLES / "review-case-1.json"), "--guidance", "--settings", str(settings)],
    )
    assert result.exit_code != 0
    assert "consider_by_day is before gcsf.consider_from_day" in str(result.exception)


def test_replay_prints_the_timeline(tmp_path: Path) -> None:
    course = tmp_path / "short.json"
    data = json.loads((EXAMPLES / "review-case-1.json").read_text())
    data["labs"] = [lab for lab in data["labs"] if lab["day"] <= 20]
    data["events"] = [
        e for e in data["events"] if (e.get("day") if "day" in e else e["start_day"]) <= 20
    ]
    data["last_followup_day"] = 20
    course.write_text(json.dumps(data), encoding="utf-8")
    out = invoke("assess", str(course), "--replay")
    assert "Guidance timeline — patient review-case-1, days 0-20" in out
    assert "management.gcsf.start" in out and "7–14" in out
    out = invoke("assess", str(course), "--replay", "--format", "json")
    timeline = json.loads(out)["replay"]
    assert timeline["last_day"] == 20
    item = next(i for i in timeline["items"] if i["id"] == "management.gcsf.start")
    assert item["episodes"][0]["appeared_day"] == 7 and item["episodes"][0]["cleared_day"] == 15


def test_incomplete_course_as_a_new_user_would_try(tmp_path: Path) -> None:
    course = tmp_path / "new.json"
    course.write_text(
        json.dumps(
            {
                "patient": {"id": "new-1", "disease": "LBCL"},
                "product": {"name": "axi-cel"},
                "infusion_date": "2025-01-06",
            }
        ),
        encoding="utf-8",
    )
    out = invoke("assess", str(course), "--guidance", "--day", "35")
    assert "Prophylaxis" in out and "PJP" in out
    assert "No blood counts after infusion" in out
    assert "Age unknown" in out
    assert "none: no counts to judge a cytopenia" in out
