"""HZ-012-24: two TA-TMA definitions (the guidance counting its own markers, the grading the
harmonised criteria) disagree: the clinician reads one count on the card and another in the
record."""

from __future__ import annotations

from cart_cytopenia.domain.frames import course_to_frames
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.guidance import evaluate
from cart_cytopenia.guidance.spec import thresholds
from cart_cytopenia.rules.settings import Settings
from tests.grading.test_tatma import MET4, on
from tests.grading.test_tatma import course as make


def test_the_guidance_cites_the_graded_count() -> None:
    low = {**MET4, "platelets": 40, "hb": 8.5}  # (cytopenic: the guidance looks for a cause)
    c = make({**on(10, **low), **on(12, **low)}, prior_allo=True)
    row = grade_cohort(course_to_frames(c), Settings()).row(0, named=True)
    g = evaluate(c, 12)
    item = g.item("differential.ta-tma")
    assert item is not None
    graded = f"{row['tatma_criteria_met']} of 7 met ({row['tatma_assessable']} of 7 assessable)"
    assert graded in item.rationale and row["tatma_status"] == "meets"
    assert item.inputs["tatma_criteria_met"] == row["tatma_criteria_met"]


def test_the_guidance_tables_hold_no_criterion_cut_point() -> None:
    names = set(thresholds().thresholds)
    assert {"tatma_proteinuria_mg_dl", "tatma_upcr_mg_mg"}.isdisjoint(names)
