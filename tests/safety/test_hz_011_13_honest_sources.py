"""HZ-011-13: a rule's source claims more than was checked, or an export names the wrong term
(issue 11, finding 13).

Recipe: docs/sources-verification.md records what was read. A rule table may not claim a check
that was not made (CTCAE v5.0 "from the NCI document" when it was checked against transcriptions),
give a figure or table number the verification marks unconfirmed (CAR-HEMATOTOX "Figure 4A",
ICAHT "Table 2"), or cite a file that does not exist. The generated rule reference must say what
the table does (CTCAE v6.0 neutrophil grade 1 does not use the LLN), and the FHIR export under
CTCAE v6.0 must carry the v6 term's code ("Thrombocytopenia", MedDRA 10043554).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from cart_cytopenia.cli.rule_reference import rule_reference
from cart_cytopenia.grading.assessment import assess
from cart_cytopenia.io.fhir_export import assessment_to_resources
from cart_cytopenia.rules import tables
from cart_cytopenia.rules.settings import Settings
from tests.conftest import ROOT
from tests.safety._grading import course, daily

PACKAGE = ROOT / "src" / "cart_cytopenia"
DATA_FILES = sorted(
    p
    for folder in ("rules/tables", "guidance/tables", "domain/data", "io/data")
    for p in (PACKAGE / folder).glob("*.toml")
)
# claims docs/sources-verification.md marks as not checked (sections 1, 2b, 4a)
UNCHECKED = [
    re.compile(r"from the NCI CTCAE v5\.0 document\)"),
    re.compile(r"Figure 4A\)?;"),
    re.compile(r"865-877, Table 2"),
]
DOC_PATH = re.compile(r"\bdocs/[\w./-]+\.md\b")


def unchecked_claims(text: str) -> list[str]:
    return [p.pattern for p in UNCHECKED if p.search(text)]


def missing_docs(text: str) -> list[str]:
    return [p for p in DOC_PATH.findall(text) if not (ROOT / p).exists()]


def test_the_checks_find_an_unchecked_claim_and_a_missing_file() -> None:
    assert unchecked_claims('verified_against = "x (from the NCI CTCAE v5.0 document)"')
    assert unchecked_claims("Blood 2023;142(10):865-877, Table 2")
    assert missing_docs("see docs/sources.md for what was checked") == ["docs/sources.md"]
    assert not missing_docs("see docs/sources-verification.md section 6")


@pytest.mark.parametrize("path", DATA_FILES, ids=lambda p: p.name)
def test_no_data_file_claims_an_unchecked_source_or_cites_a_missing_file(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    tomllib.loads(text)  # (a readable table)
    assert unchecked_claims(text) == []
    assert missing_docs(text) == []


def test_rule_table_headers_say_what_was_checked() -> None:
    v5 = tables.ctcae("5.0").meta.extra["verified_against"]
    assert "transcriptions only" in v5 and "not read" in v5
    assert "not confirmed" in tables.hematotox().meta.source
    assert "only its abstract could be read" in tables.icaht().meta.source


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n### ", start + len(heading))
    return text[start : end if end > 0 else None]


def test_rule_reference_says_v6_neutrophil_grade_1_does_not_use_the_lln() -> None:
    ref = rule_reference()
    v6 = _section(ref, "### Neutrophil count decreased (`ctcae6.neutrophil-count-decreased`)")
    assert "does not refer to the laboratory LLN" in v6
    assert "starts below the laboratory LLN" not in v6
    v5 = _section(ref, "### Neutrophil count decreased (`ctcae5.neutrophil-count-decreased`)")
    assert "starts below the laboratory LLN" in v5


def _ctcae_codes(version: str) -> dict[str, Any]:
    c = course(daily(0, 10, 400))
    a = assess(c, settings=Settings.model_validate({"ctcae_version": version}))
    out = {}
    for r in assessment_to_resources(c, a, "Patient/t"):
        codings = r["code"]["coding"]
        meddra = [x["code"] for x in codings if x["system"].endswith("/mdr")]
        out[codings[0]["code"]] = meddra[0] if meddra else None
    return out


def test_fhir_export_uses_the_ctcae_v6_term_code_for_platelets() -> None:
    v6 = _ctcae_codes("6.0")
    assert v6.get("ctcae-thrombocytopenia") == "10043554"
    assert "ctcae-platelet-count-decreased" not in v6
    assert "ctcae-lymphocyte-count-decreased" not in v6  # no such v6 term
    v5 = _ctcae_codes("5.0")
    assert v5.get("ctcae-platelet-count-decreased") == "10035528"
    assert "ctcae-thrombocytopenia" not in v5
