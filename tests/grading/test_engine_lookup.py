"""engine._lookup: byte codes looked up by bytes.translate give what numpy indexing gives."""

from __future__ import annotations

import numpy as np
import pytest

from cart_cytopenia.grading.engine import _lookup


@pytest.mark.parametrize("dtype", [np.int8, np.bool_, np.uint8])
def test_lookup_matches_indexing(dtype: type) -> None:
    rng = np.random.default_rng(7)
    table = rng.integers(-1, 5, 35).astype(dtype)
    codes = rng.integers(0, 35, 100_000).astype(np.uint8)  # above the plain-indexing size
    got = _lookup(table, codes)
    assert got.dtype == table.dtype
    np.testing.assert_array_equal(got, table[codes])


def test_lookup_negative_values_and_other_code_types() -> None:
    table = np.array([-1, 3, -1, 0], np.int8)
    assert _lookup(table, np.array([0, 1, 3, 2], np.uint8)).tolist() == [-1, 3, 0, -1]
    # codes wider than a byte, or a wider table: plain indexing
    assert _lookup(table, np.array([3, 1], np.int64)).tolist() == [0, 3]
    wide = np.array([10, 20, 30], np.int16)
    assert _lookup(wide, np.array([2, 0], np.uint8)).tolist() == [30, 10]
