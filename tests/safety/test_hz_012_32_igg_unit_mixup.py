"""HZ-012-32: IgG in g/L read as mg/dL ('3.5 mg/dL': IVIG suggested for a normal-low IgG)."""

from __future__ import annotations

import pytest

from cart_cytopenia.errors import ImplausibleValueError
from cart_cytopenia.guidance import evaluate
from tests.guidance.test_risk_adapted import IVIG, igg_course


def test_igg_3_5_labelled_mg_dl_is_rejected_naming_g_per_litre() -> None:
    with pytest.raises(ImplausibleValueError, match=r"probably 3\.5 g/L \(= 350 mg/dL\)"):
        igg_course(3.5, unit="mg/dL")


@pytest.mark.parametrize(
    ("value", "unit", "fires"),
    [
        (3.99, "g/L", True),
        (4.0, "g/L", False),
        (0.399, "g/dL", True),
        (0.4, "g/dL", False),
        (3990, "mg/L", True),
        (4000, "mg/L", False),
        (399, "mg/dL", True),
        (400, "mg/dL", False),
    ],
)
def test_400_mg_dl_in_every_unit(value: float, unit: str, fires: bool) -> None:
    assert (IVIG in evaluate(igg_course(value, unit=unit), 60).ids()) is fires
