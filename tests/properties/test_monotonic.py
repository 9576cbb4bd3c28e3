"""Invariants: a lower count never gives a lower grade; unit conversions round-trip."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from cart_cytopenia.domain.analytes import analyte
from cart_cytopenia.domain.frames import PATIENT_SCHEMA, CohortFrames, empty_events, normalise_labs
from cart_cytopenia.domain.units import resolve_unit
from cart_cytopenia.grading.ctcae import grade_values
from cart_cytopenia.grading.engine import grade_cohort
from cart_cytopenia.rules import tables
from cart_cytopenia.rules.settings import Settings

counts = st.floats(min_value=0, max_value=20_000, allow_nan=False)


@given(a=st.sampled_from(["anc", "platelets", "wbc", "alc"]), x=counts, y=counts)
def test_ctcae_lower_value_never_lower_grade(a: str, x: float, y: float) -> None:
    lo, hi = min(x, y), max(x, y)
    g = grade_values(np.array([lo, hi]), a, tables.ctcae("5.0"), Settings().reference_ranges)
    assert g[0] >= g[1]


@given(x=counts, y=counts)
def test_icaht_late_band_monotonic(x: float, y: float) -> None:
    lo, hi = min(x, y), max(x, y)
    g = tables.icaht().late_bands.evaluate(np.array([lo, hi]))
    assert g[0] >= g[1]


def _grade(series: list[tuple[int, float]]) -> tuple[int, int]:
    labs = normalise_labs(
        pl.DataFrame(
            [
                {"patient_id": "p", "day": d, "analyte": "anc", "value": v, "unit": "/uL"}
                for d, v in series
            ],
            schema={
                "patient_id": pl.String,
                "day": pl.Int32,
                "analyte": pl.String,
                "value": pl.Float64,
                "unit": pl.String,
            },
        )
    )
    out = grade_cohort(
        CohortFrames(
            pl.DataFrame([{"patient_id": "p"}], schema=PATIENT_SCHEMA, strict=False),
            labs,
            empty_events(),
        ),
        Settings(),
    )
    r = out.row(0, named=True)
    return (r["early_icaht_grade"] or 0, r["late_icaht_grade"] or 0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 100), st.integers(0, 5000)),
        min_size=2,
        max_size=40,
        unique_by=lambda t: t[0],
    ),
    st.floats(min_value=0.1, max_value=1.0),
)
def test_lowering_every_anc_never_lowers_icaht(
    series: list[tuple[int, int]], factor: float
) -> None:
    base = _grade([(d, float(v)) for d, v in series])
    lower = _grade([(d, float(int(v * factor))) for d, v in series])
    assert lower[0] >= base[0]
    assert lower[1] >= base[1]


@given(
    a=st.sampled_from(
        [
            "anc",
            "platelets",
            "hb",
            "crp",
            "ferritin",
            "triglycerides",
            "bilirubin",
            "creatinine",
            "fibrinogen",
        ]
    ),
    x=st.floats(min_value=0.001, max_value=1e5, allow_nan=False),
)
def test_unit_conversions_round_trip(a: str, x: float) -> None:
    entry = analyte(a)
    for u in entry.units:
        there = x * entry.factor_from(u)  # value in u -> canonical
        back = there / entry.factor_from(u)
        assert np.isclose(back, x, rtol=1e-12)
        assert np.isclose(x * entry.factor_from(resolve_unit(entry.canonical_unit.ucum)), x)
