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
