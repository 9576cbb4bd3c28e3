"""HZ-011-02: IEC-HS missed when the CRS record has no end day (and one level per output)."""

from __future__ import annotations

from cart_cytopenia.guidance import evaluate
from tests.guidance.builders import counts, course, crs, fever, marrow, med, series

IECHS_ITEMS = {"differential.iec-hs", "workup.iec-hs", "management.iec-hs.treat"}


def _picture(
    crs_event: dict[str, object], *, hlh: bool = False, ferritin_day: int = 14, fever_day: int = 13
):
    """Ferritin rising > 10-fold into the tens of thousands, fever, fibrinogen < 150 mg/dL,
    liver dysfunction (AST/ALT > 5x ULN) and, optionally, marrow haemophagocytosis."""
    labs = counts(range(0, 17), anc=lambda d: 2500 if d < 12 else 300, plt=lambda d: 120)
    labs += series("ferritin", [2, 8, ferritin_day], lambda d: {2: 1800, 8: 3000}.get(d, 42000))
    labs += series("fibrinogen", [14], 110) + series("ast", [14], 420) + series("alt", [14], 380)
    events = [crs_event, fever(fever_day, 39.2)]
    if hlh:
        events.append(marrow(15, haemophagocytosis=True))
    return course(labs, events)


def test_open_crs_record_older_than_ten_days_does_not_hide_iechs() -> None:
    g = evaluate(_picture(crs(1, None), hlh=True), 16)
    assert g.ids() >= IECHS_ITEMS
    levels = {i.inputs["iec_hs_level"] for i in g.items() if "iec_hs_level" in i.inputs}
    assert levels == {"high"}  # one suspicion level per output
    assert (
        "haemophagocytosis in marrow (supports IEC-HS)" in g.item("differential.iec-hs").rationale
    )


def test_crs_known_to_be_ongoing_keeps_its_own_ferritin_and_fever() -> None:
    # other side: CRS from day 8 with its end on day 20 is ongoing on day 16 -> no IEC-HS treatment
    g = evaluate(_picture(crs(8, 20)), 16)
    assert not {"differential.iec-hs", "management.iec-hs.treat"} & g.ids()


def test_ferritin_on_the_crs_end_day_is_used() -> None:
    g = evaluate(_picture(crs(1, 14), ferritin_day=14, fever_day=16), 16)
    assert "differential.iec-hs" in g.ids()
    assert g.item("differential.iec-hs").inputs["ferritin_day"] == 14
    before = evaluate(_picture(crs(1, 15), ferritin_day=14, fever_day=16), 16)
    assert "differential.iec-hs" not in before.ids()  # drawn during CRS: belongs to the CRS


def test_suspected_iechs_after_the_first_week_ranks_above_lymphodepletion() -> None:
    g = evaluate(_picture(crs(1, 5)), 16)
    ranked = [i.id for i in g.differential]
    assert ranked.index("differential.iec-hs") < ranked.index("differential.lymphodepletion")
    labs = counts(range(0, 8), anc=300) + series(
        "ferritin", [2, 6], lambda d: 1500 if d == 2 else 30000
    )
    early = course(labs, [crs(1, 3), fever(6, 39.0)])
    ranked = [i.id for i in evaluate(early, 7).differential]
    assert ranked.index("differential.lymphodepletion") < ranked.index("differential.iec-hs")


def test_refractory_options_leave_out_drugs_already_given() -> None:
    c = _picture(crs(1, 5), hlh=True)
    events = [*c.model_dump(mode="json")["events"]]
    events += [med("anakinra", 16), med("dexamethasone", 16), med("ruxolitinib", 18)]
    data = c.model_dump(mode="json") | {"events": events}
    from cart_cytopenia.domain.course import parse_course

    labs = data["labs"] + [
        {"day": d, "analyte": "ferritin", "value": 60000, "unit": "ng/mL"} for d in (19, 20)
    ]
    data["labs"] = labs + [
        {"day": 20, "analyte": a, "value": v, "unit": u}
        for a, v, u in (("anc", 300, "/uL"), ("platelets", 120, "10*3/uL"), ("hb", 9, "g/dL"))
    ]
    item = evaluate(parse_course(data), 20).item("management.iec-hs.refractory")
    assert item is not None
    assert "ruxolitinib" not in item.summary and "cyclophosphamide or etoposide" in item.summary
    assert item.inputs["already_given"] == ["ruxolitinib"]
