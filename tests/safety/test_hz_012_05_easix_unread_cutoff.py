"""HZ-012-05: a risk label from a cut-off nobody read (m-EASIX, prolonged cytopenia)."""

from __future__ import annotations

from cart_cytopenia.cli.clinical import _easix_text
from cart_cytopenia.grading.assessment import EasixResult, assess
from tests.grading.test_easix import BASE, course


def test_only_the_read_cut_off_gives_a_label() -> None:
    # m-EASIX very high (CRP 30 mg/dL), EASIX low: no label for m-EASIX, EASIX "not above"
    a = assess(course({**BASE, "crp": 30.0}), 0)
    assert a.easix.m_easix_baseline is not None and a.easix.m_easix_baseline > 100
    assert a.easix.above_cutoff is False
    assert "no cut-off applied" in _easix_text(a)
    # the model has one cut-off field, for EASIX before lymphodepletion (Korell 2022)
    cut_fields = [f for f in EasixResult.model_fields if "cutoff" in f or "above" in f]
    assert sorted(cut_fields) == ["above_cutoff", "cutoff", "cutoff_outcome", "cutoff_source"]
    assert "Korell" in a.easix.cutoff_source
