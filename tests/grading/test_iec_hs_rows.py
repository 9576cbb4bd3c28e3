"""IEC-HS's rows per analyte (``iec_hs._split``): in patient and day order whether the lab rows
came in order (no sort: issue #12's cost measurement) or not."""

from __future__ import annotations

import numpy as np

from cart_cytopenia.grading.iec_hs import ANALYTES, _split


def test_rows_per_analyte_in_patient_and_day_order_from_any_input_order() -> None:
    idx = np.array([0, 0, 0, 1, 1, 2], np.int64)
    day = np.array([-3, 4, 4, 1, 9, 2], np.int64)
    val = np.array([500.0, 900.0, 950.0, 300.0, 2500.0, 40.0])
    marker = np.array([0, 0, 0, 0, 0, ANALYTES.index("ast")])
    want = _split(idx, day, val, marker)
    assert want["ferritin"][1].tolist() == [-3, 4, 4, 1, 9]
    assert want["ferritin"][2].tolist() == [500.0, 900.0, 950.0, 300.0, 2500.0]  # ties kept
    assert want["ast"][0].tolist() == [2] and want["alt"][0].size == 0
    shuffled = np.array([4, 0, 5, 3, 1, 2])
    got = _split(idx[shuffled], day[shuffled], val[shuffled], marker[shuffled])
    assert got["ferritin"][0].tolist() == want["ferritin"][0].tolist()
    assert got["ferritin"][1].tolist() == want["ferritin"][1].tolist()
    assert sorted(got["ferritin"][2].tolist()) == sorted(want["ferritin"][2].tolist())
