"""HZ-012-23: a TA-TMA value in the wrong unit: blood pressure in kPa labelled mmHg (read as
severe hypotension, hypertension missed), sC5b-9 in ug/mL labelled ng/mL (a raised value read as
normal), or a lab's own sC5b-9 ULN not the default."""

from __future__ import annotations

import pytest

from cart_cytopenia.domain.analytes import to_canonical
from cart_cytopenia.errors import ImplausibleValueError
from cart_cytopenia.grading.assessment import assess
from cart_cytopenia.rules.settings import Settings
from tests.grading.test_tatma import course as make
from tests.grading.test_tatma import crit, on


def test_kpa_labelled_mmhg_is_refused_with_the_probable_unit() -> None:
    with pytest.raises(ImplausibleValueError, match="probably 19.5 kPa"):
        to_canonical("sbp", 19.5, "mm[Hg]")
    assert to_canonical("sbp", 19.5, "kPa")[1] == pytest.approx(146.3, abs=0.1)
    assert to_canonical("8462-4", 12, "kPa")[1] == pytest.approx(90.0, abs=0.1)


def test_sc5b9_in_mg_l_converts_and_an_absurd_ng_ml_value_is_refused() -> None:
    assert to_canonical("sc5b9", 0.3, "mg/L")[1] == pytest.approx(300)
    with pytest.raises(ImplausibleValueError):
        to_canonical("sc5b9", 300, "mg/L")  # 300,000 ng/mL


def test_the_laboratory_s_uln_is_a_setting_and_is_shown() -> None:
    c = make(on(10, sc5b9=255))
    assert crit(assess(c).tatma, "sc5b9") is True
    lab = Settings.model_validate({"reference_ranges": {"sc5b9_uln_ng_ml": 260}})  # ARUP's
    t = assess(c, settings=lab).tatma
    assert crit(t, "sc5b9") is False and t.uln["sc5b9_ng_ml"] == 260
