"""Invariants of the guidance on arbitrary courses (hypothesis): it never fails, every item is
cited and fits a card, ranks are consecutive, and what is added later never changes earlier days."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cart_cytopenia.guidance import evaluate
from tests.guidance.builders import course, crs, fever, finding, infection, marrow, med, series, tx

DRUGS = [
    "filgrastim",
    "sargramostim",
    "eltrombopag",
    "valganciclovir",
    "trimethoprim-sulfamethoxazole",
    "levofloxacin",
    "fluconazole",
    "posaconazole",
    "acyclovir",
    "anakinra",
    "dexamethasone",
    "linezolid",
]
FINDINGS = ["bleeding", "high-bleeding-risk", "large-granular-lymphocytosis", "schistocytes"]


@st.composite
def courses(draw: st.DrawFn) -> tuple[Any, int]:
    last = draw(st.integers(5, 150))
    days = sorted(draw(st.sets(st.integers(0, last), min_size=0, max_size=12)))
    labs = []
    if draw(st.booleans()):
        labs += series("anc", days, draw(st.integers(0, 5000)))
    for analyte, lo, hi in (("platelets", 2, 300), ("hb", 5.5, 15.0)):
        if draw(st.booleans()):
            labs += series(analyte, days, round(draw(st.floats(lo, hi)), 1))
    if draw(st.booleans()):
        labs += series("ferritin", days[-3:], draw(st.integers(100, 200000)))
    events: list[dict[str, Any]] = []
    if draw(st.booleans()):
        start = draw(st.integers(0, 10))
        events.append(crs(start, draw(st.one_of(st.none(), st.integers(start, start + 30))), 2))
    for _ in range(draw(st.integers(0, 4))):
        start = draw(st.integers(0, last))
        end = draw(st.one_of(st.none(), st.integers(start, last + 30)))
        events.append(med(draw(st.sampled_from(DRUGS)), start, end))
    for _ in range(draw(st.integers(0, 3))):
        events += tx(draw(st.sampled_from(["rbc", "platelets"])), [draw(st.integers(0, last))])
    if draw(st.booleans()):
        events.append(fever(draw(st.integers(0, last))))
    if draw(st.booleans()):
        events.append(finding(draw(st.sampled_from(FINDINGS)), draw(st.integers(0, last))))
    if draw(st.booleans()):
        events.append(marrow(draw(st.integers(0, last)), dysplasia=draw(st.booleans())))
    if draw(st.booleans()):
        events.append(infection(draw(st.integers(0, last)), category="viral", organism="CMV"))
    prior = draw(
        st.sampled_from(
            [[], [{"kind": "allogeneic", "day": -300}], [{"kind": "autologous", "day": -300}]]
        )
    )
    age = draw(st.one_of(st.none(), st.floats(0.5, 85)))
    disease = draw(st.sampled_from(["LBCL", "B-ALL", "MM"]))
    c = course(labs, events, age=age, disease=disease, prior_hct=prior)
    return c, draw(st.integers(0, last + 20))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(courses())
def test_guidance_holds_its_invariants(case: tuple[Any, int]) -> None:
    c, day = case
    g = evaluate(c, day)
    ids = [i.id for i in g.items()]
    assert len(ids) == len(set(ids))
    for item in g.items():
        assert item.citation and item.evidence and item.rationale
        assert len(item.summary) < 140 and not item.summary.endswith("…"), item.summary
        assert (item.rank is not None) == (item.kind == "differential")
    assert [i.rank for i in g.differential] == list(range(1, len(g.differential) + 1))
    # the guidance for a day depends only on what was known that day
    assert evaluate(c.as_of(day), day).model_dump() == g.model_dump()
