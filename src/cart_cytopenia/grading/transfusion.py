"""Transfusion dependence per lineage over trailing windows (``rules/tables/timing.toml``).

A patient is transfusion-dependent for a product (RBC, platelets) on a day when either
- at least ``min_transfusions`` transfusion episodes of it are recorded in the ``window_days``
  ending that day (project convention, configurable; the review describes dependence as
  transfusions every 2 weeks / weekly), or
- for the products of ``[transfusion_dependence.regular]`` (red cells), regular transfusions over
  a long window: at least ``min_units`` units in at least ``min_episodes`` episodes in the
  ``window_days`` ending that day (IWG 2018 transfusion burden: 16 weeks), the last of them less
  than ``independent_after_days`` before it (8 weeks without a transfusion is independence), so
  that red cells given monthly for months count as dependence. A transfusion without a unit count
  counts as one unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cart_cytopenia.rules.tables import TimingTable

I32 = NDArray[np.int32]
B = NDArray[np.bool_]

NOT_DEPENDENT, BY_SHORT_WINDOW, BY_REGULAR = 0, 1, 2


@dataclass(frozen=True)
class TransfusionBurden:
    in_window: I32  # transfusion episodes in the trailing window ending on the day
    dependent: B
    d0_30: I32  # episodes day 0-30
    d31_100: I32  # episodes day 31-100
    last_day: I32  # day of the last transfusion (-10000: none)
    # the long (regular-transfusion) window: units and episodes in it; -1 when the product has
    # no such rule
    long_units: I32
    long_episodes: I32
    basis: NDArray[np.int8]  # NOT_DEPENDENT, BY_SHORT_WINDOW or BY_REGULAR (short one first)


def _in_trailing(
    idx: NDArray[np.integer], day: NDArray[np.integer], on_day: I32, window: int
) -> NDArray[np.bool_]:
    end = on_day[idx].astype(np.int64)
    in_window: NDArray[np.bool_] = (day >= end - window + 1) & (day <= end)
    return in_window


def burden(
    idx: NDArray[np.integer],
    day: NDArray[np.integer],
    on_day: I32,
    table: TimingTable,
    units: NDArray[np.integer] | None = None,
    product: str = "",
) -> TransfusionBurden:
    """Transfusion episodes of one ``product``: ``idx`` (patient position), ``day`` and ``units``
    of each episode (None: one unit each); ``on_day`` per patient (its length is the number of
    patients)."""
    n = on_day.size
    idx = idx.astype(np.intp, copy=False)
    day = day.astype(np.int64, copy=False)
    u = np.ones(idx.size, np.int64) if units is None else units.astype(np.int64, copy=False)
    in_win = _in_trailing(idx, day, on_day, table.td_window_days)
    count = np.bincount(idx[in_win], minlength=n).astype(np.int32)
    early = np.bincount(idx[(day >= 0) & (day <= 30)], minlength=n).astype(np.int32)
    late = np.bincount(idx[(day >= 31) & (day <= 100)], minlength=n).astype(np.int32)
    last = np.full(n, -10_000, np.int64)
    ok = day <= on_day[idx]
    np.maximum.at(last, idx[ok], day[ok])
    short = count >= table.td_min_transfusions
    reg = table.regular
    if product in reg.products:
        in_long = _in_trailing(idx, day, on_day, reg.window_days)
        long_units = np.bincount(idx[in_long], weights=u[in_long], minlength=n).astype(np.int32)
        long_episodes = np.bincount(idx[in_long], minlength=n).astype(np.int32)
        recent = on_day.astype(np.int64) - last < reg.independent_after_days
        regular = (long_units >= reg.min_units) & (long_episodes >= reg.min_episodes) & recent
    else:
        long_units = long_episodes = np.full(n, -1, np.int32)
        regular = np.zeros(n, bool)
    basis = np.where(short, BY_SHORT_WINDOW, np.where(regular, BY_REGULAR, NOT_DEPENDENT))
    return TransfusionBurden(
        count,
        short | regular,
        early,
        late,
        last.astype(np.int32),
        long_units,
        long_episodes,
        basis.astype(np.int8),
    )


def basis_text(b: TransfusionBurden, i: int, product: str, table: TimingTable) -> str | None:
    """Why patient ``i`` is transfusion-dependent (None when not), naming the definition met."""
    what = {"rbc": "RBC", "platelets": "platelet"}.get(product, product)
    if b.basis[i] == BY_SHORT_WINDOW:
        return f"{int(b.in_window[i])} {what} transfusions in the last {table.td_window_days} days"
    if b.basis[i] == BY_REGULAR:
        reg = table.regular
        return (
            f"{int(b.long_units[i])} {what} units in {int(b.long_episodes[i])} transfusions over "
            f"the last {reg.window_days} days, regular by the {reg.label}"
        )
    return None
