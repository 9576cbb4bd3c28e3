"""HZ-011-10: prophylaxis given to everyone (or no one) whatever the centre's policy; antiviral
started late; no mould-active azole with prolonged corticosteroids during neutropenia."""

from __future__ import annotations

from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.guidance import evaluate
from cart_cytopenia.rules.settings import settings_from_dict
from tests.guidance.builders import counts, course, hematotox_baseline, med

EHA = settings_from_dict({"prophylaxis": {"antibacterial_antifungal": "eha-ebmt"}})


def _course(anc: float, high: bool):
    c = course(counts(range(0, 11), anc=anc))
    return parse_course(
        c.model_dump(mode="json") | {"baseline_labs": hematotox_baseline("high" if high else "low")}
    )


def test_review_default_from_day_0_and_says_eha_ebmt_differs() -> None:
    item = evaluate(_course(2000, high=False), 5).item("prophylaxis.antibacterial")
    assert item is not None and "EHA/EBMT differs" in item.rationale


def test_eha_ebmt_policy_only_high_risk_with_anc_below_500() -> None:
    assert "prophylaxis.antibacterial" not in evaluate(_course(2000, True), 5, EHA).ids()
    assert "prophylaxis.antibacterial" not in evaluate(_course(300, False), 5, EHA).ids()
    item = evaluate(_course(300, True), 5, EHA).item("prophylaxis.antibacterial")
    assert item is not None and "the review differs" in item.rationale


def test_antiviral_starts_at_lymphodepletion_when_its_date_is_known() -> None:
    c = course(counts(range(-5, 11)))
    c = parse_course(c.model_dump(mode="json") | {"lymphodepletion": {"start_day": -5}})
    assert "prophylaxis.antiviral" in evaluate(c, -3).ids()
    without = course(counts(range(-5, 11)))
    assert "prophylaxis.antiviral" not in evaluate(without, -3).ids()


def test_mould_active_azole_with_prolonged_steroids_during_neutropenia() -> None:
    labs = counts(range(0, 21), anc=200)
    on_steroids = course(labs, [med("dexamethasone", 8, 20), med("fluconazole", 0)])
    assert "prophylaxis.antifungal-mould-active" in evaluate(on_steroids, 20).ids()
    short = course(labs, [med("dexamethasone", 17, 20), med("fluconazole", 0)])
    assert "prophylaxis.antifungal-mould-active" not in evaluate(short, 20).ids()
