"""docs/interoperability.md shows the code mappings of io/data/fhir_codes.toml as they are."""

from __future__ import annotations

from cart_cytopenia.io.fhir_codes import codes_markdown
from tests.conftest import ROOT

START = "<!-- codes:start (generated; do not edit by hand) -->"
END = "<!-- codes:end -->"


def test_code_tables_in_the_docs_are_current() -> None:
    text = (ROOT / "docs" / "interoperability.md").read_text(encoding="utf-8")
    generated = text[text.index(START) + len(START) : text.index(END)].strip()
    assert generated == codes_markdown().strip(), (
        "docs/interoperability.md is stale: paste `python -m cart_cytopenia.io.fhir_codes` "
        "between the codes markers"
    )


def test_every_recognised_code_is_marked_with_its_verification_state() -> None:
    md = codes_markdown()
    assert "ICD-10-CM†: D89.831 (grade 1)" in md
    assert "CPT†: 0540T, 38228" in md
