"""The hazard log and tests/safety agree: every row names an existing test, every test has a row."""

from __future__ import annotations

import re

from tests.conftest import ROOT

LOG = ROOT / "docs" / "clinical-safety" / "hazard-log.md"
SAFETY = ROOT / "tests" / "safety"


def _rows() -> dict[str, str]:
    rows = {}
    for line in LOG.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| (HZ-[0-9A-Za-z-]+) \|", line)
        if m:
            test = re.findall(r"`(tests/safety/[^`]+\.py)`", line)
            assert len(test) == 1, f"{m.group(1)}: name exactly one test file"
            rows[m.group(1)] = test[0]
    return rows


def test_every_hazard_names_an_existing_test_named_after_it() -> None:
    rows = _rows()
    assert rows
    for hz, test in rows.items():
        assert (ROOT / test).is_file(), (hz, test)
        stem = hz.lower().replace("-", "_")
        assert (ROOT / test).name.startswith(f"test_{stem}_"), (hz, test)


def test_every_safety_test_has_a_row() -> None:
    named = set(_rows().values())
    for path in SAFETY.glob("test_hz_*.py"):
        assert f"tests/safety/{path.name}" in named, path.name
