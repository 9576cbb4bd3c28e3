"""HZ-007: a report built on institutional values nobody can see (thresholds not the centre's)."""

from __future__ import annotations

from cart_cytopenia.guidance import evaluate
from cart_cytopenia.rules.settings import settings_from_dict
from tests.guidance.builders import counts, course


def test_centre_values_are_used_and_shown() -> None:
    s = settings_from_dict({"institution": "Centre A", "transfusion": {"rbc_hb_below_g_dl": 8.0}})
    c = course(counts(range(0, 11), hb=7.5))
    g = evaluate(c, 10, s)
    assert g.settings_in_force["institution"] == "Centre A"
    assert g.settings_in_force["transfusion.rbc_hb_below_g_dl"] == 8.0
    assert "management.transfusion.rbc" in g.ids()
    default = evaluate(c, 10)
    assert default.settings_in_force["transfusion.rbc_hb_below_g_dl"] == 7.0
    assert "management.transfusion.rbc" not in default.ids()
