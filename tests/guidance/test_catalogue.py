"""The recommendation catalogue against the review's text (Jain, Olson, Locke, Blood 2023).

Each quote must appear verbatim in the review (fragments joined by " ... "), each recommendation
must have a rule and a citation, and the ids the issue fixes as public interface must exist.
"""

from __future__ import annotations

import re
import string

import pytest

from cart_cytopenia.errors import RuleTableError
from cart_cytopenia.guidance import RecommendationSpec, catalogue
from cart_cytopenia.guidance.engine import _checked_triggers
from cart_cytopenia.guidance.registry import TRIGGERS
from cart_cytopenia.guidance.spec import recommendations, thresholds
from cart_cytopenia.rules import tables
from tests.conftest import ROOT

REVIEW = ROOT.parent / "shared" / "reference" / "review-cytopenias-after-cart.txt"

REQUIRED_IDS = {
    "management.transfusion.rbc",
    "management.transfusion.platelets",
    "management.gcsf.start",
    "management.gcsf.withhold-during-crs",
    "management.gmcsf.avoid",
    "management.tpo-ra.start",
    "management.tpo-ra.stop",
    "management.iec-hs.treat",
    "management.stem-cell-boost",
    "management.allo-hct",
    "workup.bone-marrow",
    "workup.iec-hs",
    "workup.ta-tma",
    "workup.infection",
    "workup.medication-review",
    "prophylaxis.antibacterial",
    "prophylaxis.antifungal",
    "prophylaxis.antiviral",
    "prophylaxis.pjp",
    "alert.gmcsf-given",
}

DIFFERENTIAL_REQUIRED = {
    # the differential list, cause by cause
    "differential.lymphodepletion",
    "differential.infection",
    "differential.iec-hs",
    "differential.inflammation",
    "differential.marrow-disease",
    "differential.myeloid-neoplasm",
    "differential.drug-effect",
    "differential.viral-reactivation",
    "differential.graft-dysfunction",
    "differential.gvhd",
    "differential.ta-tma",
    "differential.lineage-switch",
    "differential.immune-mediated",
    "differential.haemolysis",
}


def _norm(text: str) -> str:
    text = text.replace("\u2009", " ").replace("\u00a0", " ")
    return re.sub(r"\s+", " ", text).strip()


def test_required_public_ids_exist() -> None:
    ids = {s.id for s in catalogue()}
    assert ids >= REQUIRED_IDS
    assert ids >= DIFFERENTIAL_REQUIRED


def test_every_recommendation_has_exactly_one_rule() -> None:
    pairs = _checked_triggers()
    assert [s.id for s, _ in pairs] == [s.id for s in catalogue()]
    assert set(TRIGGERS) == {s.id for s in catalogue()}


@pytest.mark.parametrize("spec", catalogue(), ids=lambda s: s.id)
def test_spec_is_complete(spec: RecommendationSpec) -> None:
    assert spec.citation.startswith(("Jain 2023", "CTCAE", "ASTCT"))
    assert spec.quote and spec.title and spec.trigger
    assert spec.id.split(".")[0] == ("alert" if spec.kind == "alert" else spec.kind)
    vocabulary = recommendations().meta.extra["evidence_vocabulary"]
    assert spec.evidence.startswith(tuple(vocabulary))
    for variant, template in spec.summaries.items():
        names = [n for _, n, _, _ in string.Formatter().parse(template) if n]
        # a template filled with placeholders of 20 characters each still fits a card
        assert len(template) + 20 * len(names) < 200, (spec.id, variant)


@pytest.mark.skipif(not REVIEW.exists(), reason="review text not available")
@pytest.mark.parametrize("spec", catalogue(), ids=lambda s: s.id)
def test_quote_is_verbatim_in_the_review(spec: RecommendationSpec) -> None:
    review = _norm(REVIEW.read_text(encoding="utf-8"))
    for fragment in spec.quote.split(" ... "):
        assert _norm(fragment) in review, f"{spec.id}: not in the review: {fragment[:80]!r}"


def test_speculative_flags_follow_the_review() -> None:
    speculative = {s.id for s in catalogue() if s.speculative}
    # the review: "We speculate that ... late cases of severe trilineage aplasia may be caused by
    # persistent CAR activation"; Figure 1 marks these considerations "Remains speculative"
    assert speculative == {
        "differential.immune-mediated",
        "management.immunosuppression.immune-aplasia",
    }


def test_thresholds_carry_unit_and_source() -> None:
    t = thresholds()
    assert t.meta.id == "guidance-thresholds" and t.meta.version
    for th in t.thresholds.values():
        assert th.unit and th.source, th.name
    # the review's and the standards' numbers, as transcribed
    assert t.num("iechs_ferritin_high") == 10000
    assert t.num("iechs_triglycerides_above") == 265
    assert t.num("iechs_fibrinogen_below") == 150
    # TA-TMA's cut-points are in one place, the grading table (the guidance reads its result)
    assert not [k for k in t.thresholds if k.startswith("tatma_") and k.endswith(("_dl", "_mg"))]
    assert tables.tatma().cut["upcr_mg_mg"] == 1.0
    with pytest.raises(RuleTableError, match="not in thresholds.toml"):
        t.num("no_such_threshold")


def test_rule_reference_lists_every_recommendation() -> None:
    from cart_cytopenia.cli.rule_reference import rule_reference

    text = rule_reference()
    for spec in catalogue():
        assert f"`{spec.id}`" in text
