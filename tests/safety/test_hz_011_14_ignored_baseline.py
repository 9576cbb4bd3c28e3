"""HZ-011-14: a CAR-HEMATOTOX baseline value dropped silently (issue 11, finding 14).

Recipe: the score uses, per marker, the last value on or before lymphodepletion (LD) start within
30 days before it, else the last one drawn after LD start (flagged). Three kinds of value were
left out without a word: one drawn after LD began when a pre-LD value of the marker existed, one
drawn more than 30 days before LD (the marker then "missing"), and a course's baseline lab dated
on or after the infusion (`assess` only: a cohort's lab rows have no baseline list). Each is now
named, with the
reason, in the assessment (JSON `hematotox.ignored` and the warnings, the text output) and in the
grade table's `hematotox_warnings`. Both sides of each trigger are checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cart_cytopenia.grading.assessment import Assessment
from tests.conftest import ROOT, baseline_labs, course_dict
from tests.safety._grading import both, course

LD = {"start_day": -5}
FULL = {"platelets": 200.0, "anc": 2000.0, "hb": 12.0, "crp": 1.0, "ferritin": 300.0}


def test_value_after_ld_start_is_named_when_a_pre_ld_value_was_used() -> None:
    labs = [*baseline_labs(-7, **FULL), *baseline_labs(-2, platelets=40.0)]
    a, row = both(course([], baseline_labs=labs, lymphodepletion=LD), day=0)
    assert a.hematotox.score == 0  # the pre-LD platelets (200) are used
    (ignored,) = a.hematotox.ignored
    assert (ignored.analyte, ignored.value, ignored.day) == ("platelets", 40.0, -2)
    assert "after lymphodepletion began (day -5)" in ignored.reason
    assert "value of day -7 was used" in ignored.reason
    named = [w for w in a.hematotox.warnings if "not used for CAR-HEMATOTOX" in w]
    assert named and "Platelet count 40" in named[0]
    assert named[0] in (row["hematotox_warnings"] or "")


def test_nothing_is_named_when_every_value_is_used() -> None:
    a, row = both(course([], baseline_labs=baseline_labs(-7, **FULL), lymphodepletion=LD), day=0)
    assert a.hematotox.ignored == []
    assert row["hematotox_warnings"] is None


def test_a_value_used_after_ld_start_is_flagged_not_ignored() -> None:
    # no pre-LD value: the post-LD one is used (with the existing warning), nothing is ignored
    a, _ = both(course([], baseline_labs=baseline_labs(-2, **FULL), lymphodepletion=LD), day=0)
    assert a.hematotox.score == 0 and a.hematotox.ignored == []
    assert any("after lymphodepletion started" in w for w in a.hematotox.warnings)


def _one_marker_on(analyte: str, value: float, day: int) -> tuple[Assessment, dict[str, Any]]:
    """Four markers on day -7 and ``analyte`` alone on ``day``."""
    labs = [*baseline_labs(-7, **{k: v for k, v in FULL.items() if k != analyte})]
    labs += baseline_labs(day, **{analyte: value})
    return both(course([], baseline_labs=labs, lymphodepletion=LD), day=0)


def _the_ignored(a: Assessment, analyte: str, value: float, day: int) -> str:
    """The one value named as not used (its marker then missing); its reason."""
    assert a.hematotox.missing == [analyte]
    (item,) = a.hematotox.ignored
    assert (item.analyte, item.value, item.day) == (analyte, value, day)
    return item.reason


@pytest.mark.parametrize(("day", "ignored"), [(-35, False), (-36, True)])
def test_value_before_the_30_day_window_is_named(day: int, ignored: bool) -> None:
    a, row = _one_marker_on("anc", 800.0, day)
    if ignored:
        reason = _the_ignored(a, "anc", 800.0, -36)
        assert "more than 30 days before lymphodepletion (day -5)" in reason
        assert "Absolute neutrophil count 800 /uL of day -36" in (row["hematotox_warnings"] or "")
    else:
        assert a.hematotox.missing == [] and a.hematotox.ignored == []
        assert a.hematotox.score == 1  # ANC 800 <= 1200


def test_assess_text_and_json_name_the_ignored_value(tmp_path: Path) -> None:
    labs = [*baseline_labs(-7, **FULL), *baseline_labs(-2, ferritin=2500.0)]
    path = tmp_path / "course.json"
    path.write_text(json.dumps(course_dict([], baseline_labs=labs, lymphodepletion=LD)))

    def cli(*args: str) -> str:
        cmd = [sys.executable, "-m", "cart_cytopenia.cli.main", "assess", str(path), *args]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True).stdout

    assert "Ferritin 2500 ng/mL of day -2 not used for CAR-HEMATOTOX" in cli("--day", "0")
    out = json.loads(cli("--day", "0", "--format", "json"))
    assert out["hematotox"]["ignored"][0]["analyte"] == "ferritin"


@pytest.mark.parametrize(("day", "named"), [(-1, False), (0, True)])
def test_a_baseline_lab_drawn_on_or_after_infusion_is_named(day: int, named: bool) -> None:
    a, _ = _one_marker_on("crp", 5.0, day)
    if named:
        assert "on or after the CAR-T infusion" in _the_ignored(a, "crp", 5.0, 0)
        assert any(
            "C-reactive protein 5 mg/dL of day 0 not used" in w for w in a.hematotox.warnings
        )
    else:
        assert a.hematotox.ignored == [] and a.hematotox.missing == []
