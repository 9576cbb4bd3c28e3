"""cohort_rows._one_of: membership of analyte codes by comparisons (ranges and scattered codes)."""

from __future__ import annotations

import numpy as np
import pytest

from cart_cytopenia.grading.cohort_rows import _one_of


@pytest.mark.parametrize("wanted", [[0, 1, 2, 3, 4], [4, 0, 3, 8, 7], [5], []])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16])
def test_one_of_matches_isin(wanted: list[int], dtype: type) -> None:
    codes = np.array([0, 1, 2, 3, 4, 5, 7, 8, 9, 25, 255 if dtype is np.uint8 else -1], dtype)
    assert _one_of(codes, wanted).tolist() == np.isin(codes, wanted).tolist()
