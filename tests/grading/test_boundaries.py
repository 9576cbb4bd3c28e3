"""A value on each side of every cut-point (case table tests/data/boundary_cases.csv).

CTCAE v5.0 uses "<" (NCI CTCAE v5.0), ICAHT uses "<=" (Rejeski et al., Blood 2023), and the
CAR-HEMATOTOX bands are those of Rejeski et al., Blood 2021 (its points table; boundary sides as the
authors' R code scores them, per shared/reference/clinical-definitions.md section 4: every cut-point
value scores 1 point). Values are given in mixed units to exercise conversion.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from cart_cytopenia.domain.analytes import to_canonical
from cart_cytopenia.grading.ctcae import grade_values
from cart_cytopenia.rules import tables
from cart_cytopenia.rules.settings import Settings

with (Path(__file__).parent.parent / "data" / "boundary_cases.csv").open() as _fh:
    CASES = list(csv.DictReader(_fh))


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_boundary(case: dict[str, str]) -> None:
    _, v = to_canonical(case["analyte"], float(case["value"]), case["unit"])
    x = np.array([v])
    if case["rule"] == "ctcae5":
        got = grade_values(x, case["analyte"], tables.ctcae("5.0"), Settings().reference_ranges)[0]
    elif case["rule"] == "late_icaht":
        got = tables.icaht().late_bands.evaluate(x)[0]
    else:
        marker = next(m for m in tables.hematotox().markers if m.analyte == case["analyte"])
        got = marker.bands.evaluate(x)[0]
    assert got == int(case["expected"]), case["note"]


def test_case_table_covers_both_sides_of_every_icaht_late_cut_point() -> None:
    cuts = {b.max for b in tables.icaht().late_bands.bands if np.isfinite(b.max)}
    values = {float(c["value"]) for c in CASES if c["rule"] == "late_icaht"}
    for cut in cuts:
        assert cut in values
        assert cut + 1 in values


def test_haemoglobin_lln_depends_on_sex() -> None:
    ranges = Settings().reference_ranges
    x = np.array([12.5, 12.5, 12.5])
    sex = np.array(["female", "male", "unknown"], dtype=object)
    assert list(grade_values(x, "hb", tables.ctcae("5.0"), ranges, sex)) == [0, 1, 0]


@pytest.mark.parametrize(
    ("anc", "grade"),
    [(99, 4), (100, 3), (499, 3), (500, 2), (999, 2), (1000, 1), (1499, 1), (1500, 0)],
)
def test_ctcae_v6_neutrophil_bands_no_longer_use_the_lln(anc: float, grade: int) -> None:
    """CTCAE v6.0 as transcribed by pharmaverse admiral (ncictcaev6.json): every band one step lower."""
    got = grade_values(
        np.array([float(anc)]), "anc", tables.ctcae("6.0"), Settings().reference_ranges
    )
    assert got[0] == grade


@pytest.mark.parametrize(
    ("plt", "grade"), [(9.9, 4), (10, 3), (49.9, 3), (50, 2), (75, 1), (150, 0)]
)
def test_ctcae_v6_thrombocytopenia_bands(plt: float, grade: int) -> None:
    got = grade_values(
        np.array([plt]), "platelets", tables.ctcae("6.0"), Settings().reference_ranges
    )
    assert got[0] == grade
    assert tables.ctcae("6.0").criteria["platelets"].term == "Thrombocytopenia"


def test_ctcae_v6_does_not_grade_lymphocytes() -> None:
    got = grade_values(np.array([100.0]), "alc", tables.ctcae("6.0"), Settings().reference_ranges)
    assert got[0] == -1
