"""Is a ferritin rising? ONE convention (``rules/tables/iec_hs.toml`` [ferritin] ``rise_*``) for
the ASTCT IEC-HS criterion (``grading/iec_hs.py``) and the guidance's "rapid increase in
ferritin" (``guidance/context_iechs.py``); docs/conventions.md says why.

A value is *rising* when, against some earlier value of the look-back (``rise_lookback_days``),
it is at least ``rise_fold ** max(1, gap / rise_window_days)`` times that value: at least double
against a value of the week before (the earlier fixed-window convention, unchanged), and against
an older value at least the same rate, a doubling per week (4x over 14 days, 8x over 21). So
weekly or sparser draws after discharge still show a rise, while a small step between two close
draws (analytical and day-to-day variation) does not.

*Not rising* only when an earlier value of the week before exists and no earlier value shows the
rise. With no earlier value in that week the trend is *unknown*, even when an older value shows a
slower rise: a sub-rate change over two weeks does not show that the last week held no doubling.
Missing is never "not rising".

For a value drawn on or after a recorded CRS end, only values from that end day on count as
earlier (the rise must follow the CRS, not be its own).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cart_cytopenia.rules.tables import IecHsTable

F = NDArray[np.float64]
I8 = NDArray[np.int8]
I64 = NDArray[np.int64]

RISING, NOT_RISING, UNKNOWN = 1, 0, -1
NO_LIMIT = np.iinfo(np.int64).min  # ``since`` of a value with every earlier value counted


@dataclass(frozen=True)
class Trend:
    """Per ferritin row: the trend and the earlier value it was read against (the one closest to
    showing a rise; NaN / -1 when none is in the look-back)."""

    state: I8  # RISING, NOT_RISING, UNKNOWN
    ref_value: F
    ref_day: I64
    ref_fold: F  # the fold the rise against ``ref_value`` needs (rise_fold ** max(1, gap/window))


def required_fold(gap_days: F | I64, t: IecHsTable) -> F:
    """The fold a value needs over an earlier value ``gap_days`` before it to count as rising."""
    weeks = np.maximum(1.0, np.asarray(gap_days, np.float64) / t.ferritin_rise_window_days)
    out: F = np.power(t.ferritin_rise_fold, weeks)
    return out


def trend(idx: I64, day: I64, val: F, since: I64, t: IecHsTable) -> Trend:
    """The trend of every row; rows sorted by patient (``idx``) then day. ``since``: per row the
    first day whose values count as earlier (``NO_LIMIT``: all). Values of the same day are not
    earlier. Once no row k places back is of the same patient within the look-back, none further
    back is, so the loop ends after as many rounds as a patient has draws in the look-back."""
    n = idx.size
    rising = np.zeros(n, bool)
    in_week = np.zeros(n, bool)
    best = np.full(n, -np.inf)  # log of value / (earlier x required fold): >= 0 is a rise
    ref_value, ref_fold = np.full(n, np.nan), np.full(n, np.nan)
    ref_day = np.full(n, -1, np.int64)
    lookback, week = t.ferritin_rise_lookback_days, t.ferritin_rise_window_days
    for k in range(1, n):
        gap = day[k:] - day[:-k]
        near = (idx[k:] == idx[:-k]) & (gap <= lookback)
        if not near.any():
            break
        near &= (gap > 0) & (day[:-k] >= since[k:])
        pos = np.flatnonzero(near) + k  # the later row of each pair
        earlier, fold = val[pos - k], required_fold(gap[pos - k], t)
        rising[pos] |= val[pos] >= np.round(fold * earlier, 9)
        in_week[pos] |= gap[pos - k] <= week
        with np.errstate(divide="ignore"):
            margin = np.log(val[pos]) - np.log(earlier) - np.log(fold)
        better = margin > best[pos]
        at = pos[better]
        best[at], ref_value[at] = margin[better], earlier[better]
        ref_day[at], ref_fold[at] = day[at - k], fold[better]
    state = np.where(rising, RISING, np.where(in_week, NOT_RISING, UNKNOWN)).astype(np.int8)
    return Trend(state, ref_value, ref_day, ref_fold)
