"""HZ-011-09: transfusion suggested without saying the products must be irradiated."""

from __future__ import annotations

from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.guidance import evaluate
from cart_cytopenia.rules.settings import settings_from_dict
from tests.guidance.builders import counts, course


def test_every_transfusion_item_names_irradiated_products() -> None:
    g = evaluate(course(counts(range(0, 11), hb=6.5, plt=5)), 10)
    for rid in ("management.transfusion.rbc", "management.transfusion.platelets"):
        item = g.item(rid)
        assert item is not None and "irradiated products" in item.rationale
        assert "until at least day 90" in item.rationale


def test_leukapheresis_date_dates_the_start_and_local_policy_extends_it() -> None:
    c = course(counts(range(0, 121, 10), hb=6.5))
    data = c.model_dump(mode="json") | {"leukapheresis": {"day": -30}}
    data["lymphodepletion"] = {"regimen": "flu-cy", "start_day": -5}
    c = parse_course(data)
    item = evaluate(c, 20).item("management.transfusion.rbc")
    assert "from day -37 (7 days before leukapheresis on day -30)" in item.rationale
    late = evaluate(c, 120).item("management.transfusion.rbc")
    assert "were required until at least day 90" in late.rationale
    life = settings_from_dict(
        {"transfusion": {"irradiated_indefinitely_after_purine_analogue": True}}
    )
    item = evaluate(c, 120, life).item("management.transfusion.rbc")
    assert "for life (local policy after a purine analogue: flu-cy)" in item.rationale
