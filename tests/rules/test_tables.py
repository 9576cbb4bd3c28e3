"""Rule tables: headers, units, and bands checked for order, gaps and overlaps when loaded."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cart_cytopenia.errors import RuleTableError, SettingsError
from cart_cytopenia.rules import tables
from cart_cytopenia.rules.bands import Band, BandTable
from cart_cytopenia.rules.settings import load_settings, settings_from_dict


def test_every_table_has_a_cited_header() -> None:
    for meta in tables.all_tables():
        assert meta.source
        assert meta.version
        assert meta.transcribed
        assert meta.label.startswith(meta.id)


def test_overlapping_bands_are_rejected() -> None:
    with pytest.raises(RuleTableError, match="overlap"):
        BandTable("t", (Band(1, 0, 10), Band(2, 5, 20)), "")


def test_gap_between_bands_is_rejected() -> None:
    with pytest.raises(RuleTableError, match="gap"):
        BandTable("t", (Band(1, 0, 10), Band(2, 11, 20)), "")


def test_both_sides_inclusive_is_an_overlap() -> None:
    with pytest.raises(RuleTableError, match="overlap at 10"):
        BandTable(
            "t", (Band(1, 0, 10, max_inclusive=True), Band(2, 10, 20, min_inclusive=True)), ""
        )


def test_thresholds_are_converted_to_canonical_units() -> None:
    ct = tables.ctcae("5.0")
    anc = ct.criteria["anc"].table(2000.0)  # LLN 2.0 x10^9/L in cells/uL
    assert [b.max for b in anc.bands][:3] == [500.0, 1000.0, 1500.0]
    assert tables.icaht().severe_threshold == 500.0


def test_lln_below_grade_1_cut_point_drops_grade_1() -> None:
    # a laboratory LLN of 1.4 x10^9/L is below the grade-2 cut-point (<1.5): values between
    # them still grade 2 by the absolute CTCAE bands, and there is no grade-1 range
    t = tables.ctcae("5.0").criteria["anc"].table(1400.0)
    assert t.value_of(1450) == 2
    assert t.value_of(1500) == 0
    assert 1 not in {b.value for b in t.bands}
    assert math.isinf(t.highest)


def test_band_evaluation_marks_missing() -> None:
    t = tables.icaht().late_bands
    assert list(t.evaluate(np.array([np.nan, 100.0]))) == [-1, 4]


def test_settings_reject_unknown_keys_and_bad_order(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SettingsError, match="gcsf.start_day"):
        settings_from_dict({"gcsf": {"start_day": 7}})
    with pytest.raises(SettingsError, match="consider_by_day is before"):
        settings_from_dict({"gcsf": {"consider_from_day": 10, "consider_by_day": 7}})
    p = tmp_path / "s.toml"
    p.write_text('institution = "X"\n[transfusion]\nplatelets_below_10e9_l = 20\n')
    s = load_settings(p)
    assert s.transfusion.platelets_below_10e9_l == 20
    assert s.changed_from_defaults() == {
        "institution": "X",
        "transfusion.platelets_below_10e9_l": 20,
    }
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")
