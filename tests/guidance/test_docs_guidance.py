"""docs/guidance.md stays true: its examples run and it lists every recommendation's trigger."""

from __future__ import annotations

import os
import re
import shlex

import pytest

from cart_cytopenia.guidance import catalogue
from tests.conftest import ROOT
from tests.guidance.test_cli_guidance import invoke

DOC = ROOT / "docs" / "guidance.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_python_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    (code,) = blocks("python")
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        exec(compile(code, "docs/guidance.md", "exec"), {})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "management.tpo-ra.start" in out
    assert f"{len(catalogue())} recommendations" in out


def test_cli_examples_run() -> None:
    (shell,) = blocks("bash")
    for line in shell.strip().splitlines():
        args = shlex.split(line.split("#")[0])[1:]
        if "COURSE.json" in args:
            continue  # placeholder file names
        out = invoke(*args)
        assert out.strip()


def test_every_recommendation_and_its_trigger_is_documented() -> None:
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    for spec in catalogue():
        assert f"`{spec.id}` — **{spec.title}**" in text, spec.id
        assert " ".join(spec.trigger.split()) in text, spec.id


def test_every_threshold_and_weight_is_documented_with_its_value() -> None:
    from cart_cytopenia.guidance.spec import thresholds

    t = thresholds()
    text = DOC.read_text(encoding="utf-8")
    for th in t.thresholds.values():
        assert f"| `{th.name}` | {th.value:g} | {th.unit} |" in text, th.name
    for cause, p in t.phase_priors.items():
        assert f"| {cause} | {p['early']} | {p['prolonged']} | {p['late']} |" in text, cause
    for name, value in t.weights.items():
        assert f"{name} {value}" in text
