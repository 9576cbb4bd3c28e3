"""Transfusion dependence per lineage over a trailing window (``rules/tables/timing.toml``).

A patient is transfusion-dependent for a product (RBC, platelets) on a day when at least
``min_transfusions`` transfusion episodes of it are recorded in the ``window_days`` ending that
day (project convention, configurable in the table; the review describes dependence as
transfusions every 2 weeks / weekly).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cart_cytopenia.rules.tables import TimingTable

I32 = NDArray[np.int32]
B = NDArray[np.bool_]


@dataclass(frozen=True)
class TransfusionBurden:
    in_window: I32  # transfusion episodes in the trailing window ending on the day
    dependent: B
    d0_30: I32  # episodes day 0-30
    d31_100: I32  # episodes day 31-100
    last_day: I32  # day of the last transfusion (-10000: none)


def burden(
    idx: NDArray[np.integer], day: NDArray[np.integer], on_day: I32, table: TimingTable
) -> TransfusionBurden:
    """Transfusion episodes of one product: ``idx`` (patient position) and ``day`` of each
    episode; ``on_day`` per patient (its length is the number of patients)."""
    n = on_day.size
    idx = idx.astype(np.intp, copy=False)
    day = day.astype(np.int64, copy=False)
    lo = on_day[idx].astype(np.int64) - table.td_window_days + 1
    in_win = (day >= lo) & (day <= on_day[idx])
    count = np.bincount(idx[in_win], minlength=n).astype(np.int32)
    early = np.bincount(idx[(day >= 0) & (day <= 30)], minlength=n).astype(np.int32)
    late = np.bincount(idx[(day >= 31) & (day <= 100)], minlength=n).astype(np.int32)
    last = np.full(n, -10_000, np.int64)
    ok = day <= on_day[idx]
    np.maximum.at(last, idx[ok], day[ok])
    return TransfusionBurden(
        count, count >= table.td_min_transfusions, early, late, last.astype(np.int32)
    )
