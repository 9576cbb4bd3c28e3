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
    # verified in docs/sources-verification.md section 9: no mark
    md = codes_markdown()
    assert "ICD-10-CM: D89.831 (grade 1)" in md
    assert "| CAR-T administration (day 0) | CPT | 38228, 0540T | — |" in md
    assert "MedDRA 10029366." in md
    # still unverified: marked with †
    assert "CPT†: 38243" in md
    assert "MedDRA 10025256†." in md
    # the A15-A79 range is bacterial but for the carved-out codes listed before it
    assert "A15–A79," in md and "A15–A79†" not in md
    assert "A59–A59" in md and "A63.0–A63.0" in md
    assert "anakinra 72435†" in md
    assert "filgrastim 68442" not in md  # verified RXCUIs are not listed as pending


def test_cds_hooks_settings_example_loads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import re

    from cart_cytopenia.service.cds_hooks import load_cds_settings

    text = (ROOT / "docs" / "interoperability.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    f = tmp_path / "cds.toml"
    f.write_text(example)
    s = load_cds_settings(f, env={})
    assert s.public_url == "https://cart-cytopenia.example.org"
    assert s.issuers[0].jku == ["https://ehr.example.org/.well-known/jwks.json"]
    assert s.issuers[0].tenant is not None
