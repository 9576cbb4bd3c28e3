"""HZ-011-05: stem cell boost or immunosuppression during an uncontrolled infection; donor boost
withheld until day 90 although the cytopenia is severe and G-CSF-refractory."""

from __future__ import annotations

from cart_cytopenia.guidance import evaluate
from tests.guidance.builders import counts, course, infection, marrow, med, tx

HOLD_IDS = (
    "management.stem-cell-boost",
    "management.stem-cell-boost.allogeneic",
    "management.immunosuppression.lgl",
)


def _late_aplasia(events: list[dict[str, object]], **patient: object):
    labs = counts(range(0, 121, 3), anc=200, plt=8, hb=7.2)
    base = [
        *tx("platelets", range(60, 121, 4)),
        *tx("rbc", range(60, 121, 7)),
        med("filgrastim", 30, 60),
        marrow(100),
    ]
    return course(labs, [*base, *events], stored_cells={"autologous": True}, **patient)


def test_boost_held_back_while_an_infection_is_not_recorded_as_controlled() -> None:
    held = evaluate(_late_aplasia([infection(110, category="fungal", severity="severe")]), 120)
    item = held.item("management.stem-cell-boost")
    assert item is not None and item.urgency == "info" and item.summary.startswith("Held back")


def test_boost_offered_with_the_caveat_when_the_infection_is_controlled() -> None:
    ok = evaluate(
        _late_aplasia([infection(110, category="fungal", severity="severe", controlled=True)]), 120
    )
    item = ok.item("management.stem-cell-boost")
    assert item is not None and not item.summary.startswith("Held back")
    assert "Exclude active infection first" in item.rationale


def test_every_boost_and_immunosuppression_item_carries_the_caveat() -> None:
    c = _late_aplasia([{"type": "finding", "finding": "large-granular-lymphocytosis", "day": 100}])
    g = evaluate(c, 120)
    shown = [i for i in g.items() if i.id in HOLD_IDS]
    assert shown and all("Exclude active infection first" in i.rationale for i in shown)


def _post_allo_prolonged(refractory: bool):
    labs = counts(range(0, 61, 2), anc=150, plt=9, hb=7.5)
    events = [
        *tx("platelets", range(30, 61, 4)),
        *tx("rbc", range(30, 61, 7)),
        marrow(50),
        *([med("filgrastim", 20, 60)] if refractory else []),  # no G-CSF: refractoriness unknown
    ]
    return course(
        labs,
        events,
        prior_hct=[{"kind": "allogeneic", "day": -300}],
        stored_cells={"allogeneic_donor": True},
    )


def test_donor_boost_in_the_prolonged_phase_for_refractory_cytopenia() -> None:
    assert "management.stem-cell-boost.allogeneic" in evaluate(_post_allo_prolonged(True), 60).ids()
    assert (
        "management.stem-cell-boost.allogeneic"
        not in evaluate(_post_allo_prolonged(False), 60).ids()
    )
