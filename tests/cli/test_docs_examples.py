"""Every example in the README and docs runs (the way typer tests its docs examples)."""

from __future__ import annotations

import json
import re
import tomllib

from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.grading.assessment import assess
from cart_cytopenia.rules.settings import settings_from_dict
from tests.cli.test_cli import run
from tests.conftest import ROOT


def blocks(path: str, lang: str) -> list[str]:
    text = (ROOT / path).read_text(encoding="utf-8")
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_course_example_in_data_formats_is_valid_and_grades() -> None:
    (example,) = blocks("docs/data-formats.md", "json")
    course = parse_course(json.loads(example))
    a = assess(course)
    assert a.day == 14
    assert (
        a.hematotox.score == 1
    )  # CRP 12 mg/L = 1.2 mg/dL (0), platelets 160 (1), ANC 2100 (0), Hb 10.9 (0), ferritin 480 (0)
    assert a.early_icaht.days_anc_le_100 == 1
    assert a.early_icaht.days_anc_le_500 >= 7


def test_settings_example_in_user_guide_loads() -> None:
    (example,) = blocks("docs/user-guide.md", "toml")
    s = settings_from_dict(tomllib.loads(example))
    assert s.reference_ranges.anc_lln_10e9_l == 1.8


def test_readme_error_example_is_what_the_cli_prints(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (text,) = blocks("README.md", "text")
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "patient": {"id": "z", "disease": "LBCL"},
                "product": {"name": "axi-cel"},
                "infusion_date": "2024-02-01",
                "labs": [{"day": 3, "analyte": "ANC", "value": 1500, "unit": "10^9/L"}],
            }
        )
    )
    p = run("assess", str(bad), check=False)
    assert p.returncode == 2
    assert p.stderr.replace(str(bad), "bad.json").strip() == text.strip()


def test_readme_assess_example_runs() -> None:
    out = run("assess", "examples/review-case-1.json", "--day", "60").stdout
    assert "grade 3" in out
    assert "intermittent" in out
