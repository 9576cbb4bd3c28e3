"""Daily series for many patients at once: the grid every grading module works on.

A ``DailyGrid`` is an (n patients x n days) float array of one analyte's values in its canonical
unit, one column per day since infusion from ``first_day``; several values on one day are reduced
to the lowest (ICAHT convention: the worst value of the day), and a day without a value is NaN
(missing is never normal). ``interpolate`` fills gaps of up to ``max_gap`` missing days linearly
between two observed days; longer gaps stay NaN.

``scan_runs`` finds runs of days at or below a threshold, joining two runs unless the value stays
above the threshold on ``min_recovered`` consecutive days between them (CIBMTR engraftment
convention, used by ICAHT). Days without a value neither extend nor break a run and reset a
recovery streak: a run joined across unknown days is reported in ``unknown_days_in_runs``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

F = NDArray[np.float64]
I32 = NDArray[np.int32]
B = NDArray[np.bool_]


@dataclass(frozen=True)
class DailyGrid:
    first_day: int
    values: F  # (n, n_days), NaN where no value

    @property
    def n_days(self) -> int:
        return int(self.values.shape[1])

    @property
    def last_day(self) -> int:
        return self.first_day + self.n_days - 1

    def col(self, day: int) -> int:
        return day - self.first_day

    def window(self, lo: int, hi: int) -> F:
        """Columns for days lo..hi inclusive (clipped to the grid)."""
        a = max(lo, self.first_day) - self.first_day
        b = min(hi, self.last_day) - self.first_day
        if b < a:
            return np.full((self.values.shape[0], 0), np.nan)
        return self.values[:, a : b + 1]

    def days(self) -> I32:
        return np.arange(self.first_day, self.last_day + 1, dtype=np.int32)


def build_grid(
    labs: pl.DataFrame, analyte: str, index: pl.DataFrame, n: int, first_day: int, last_day: int
) -> DailyGrid:
    """Grid for one analyte. ``labs`` has patient_id, day, analyte, value; ``index`` maps
    patient_id -> idx (0..n-1). Values outside [first_day, last_day] are left out."""
    values = np.full((n, last_day - first_day + 1), np.nan)
    sub = (
        labs.filter((pl.col("analyte") == analyte) & pl.col("day").is_between(first_day, last_day))
        .group_by("patient_id", "day")
        .agg(pl.col("value").min())
        .join(index, on="patient_id", how="inner")
    )
    if sub.height:
        rows = sub["idx"].to_numpy()
        cols = sub["day"].to_numpy().astype(np.int64) - first_day
        values[rows, cols] = sub["value"].to_numpy()
    return DailyGrid(first_day, values)


def interpolate(grid: DailyGrid, max_gap: int) -> DailyGrid:
    """Linear interpolation across runs of at most ``max_gap`` missing days between two values.

    Works on the observed cells only (sorted by patient, then day, as ``np.nonzero`` returns
    them), so the cost grows with the number of values, not with patients x days.
    """
    v = grid.values
    if v.shape[1] == 0 or max_gap <= 0:
        return grid
    rows, cols = np.nonzero(~np.isnan(v))
    if rows.size < 2:
        return grid
    same = rows[1:] == rows[:-1]
    gap = cols[1:] - cols[:-1] - 1
    ok = same & (gap >= 1) & (gap <= max_gap)
    if not ok.any():
        return grid
    r = rows[:-1][ok]
    c0 = cols[:-1][ok]
    g = gap[ok]
    v0 = v[r, c0]
    v1 = v[r, c0 + g + 1]
    k = np.repeat(np.arange(g.size), g)
    step = np.arange(k.size) - np.repeat(np.cumsum(g) - g, g) + 1  # 1..gap within each pair
    out = v.copy()
    out[r[k], c0[k] + step] = v0[k] + (v1[k] - v0[k]) * step / (g[k] + 1)
    return DailyGrid(grid.first_day, out)


def last_observed_day(grid: DailyGrid) -> I32:
    """Day of the last non-missing value per patient; -10_000 when none."""
    obs = ~np.isnan(grid.values)
    any_obs = obs.any(axis=1)
    last = grid.n_days - 1 - np.argmax(obs[:, ::-1], axis=1)
    return np.where(any_obs, last + grid.first_day, -10_000).astype(np.int32)


def last_observed_value(grid: DailyGrid) -> F:
    obs = ~np.isnan(grid.values)
    any_obs = obs.any(axis=1)
    col = grid.n_days - 1 - np.argmax(obs[:, ::-1], axis=1)
    vals = grid.values[np.arange(grid.values.shape[0]), col] if grid.n_days else np.full(0, np.nan)
    return np.where(any_obs, vals, np.nan)


@dataclass(frozen=True)
class RunScan:
    """Per-patient results of ``scan_runs`` (days are days since infusion; -1 = none)."""

    longest_in_window: I32  # longest joined run, clipped to the window, in days
    longest_overall: I32  # longest joined run anywhere in the scanned range
    first_start: I32  # first day of the first run
    first_recovery: I32  # first day of the recovery streak that closed the first run (-1: never)
    first_length: I32  # length of the first run (to its last day at/below the threshold)
    last_recovery: I32  # first day of the last recovery streak (-1: none)
    open_at_end: B  # a run is still open at the end of the data
    unknown_days_in_runs: I32  # unknown days inside joined runs


def scan_runs(
    grid: DailyGrid,
    threshold: float,
    min_recovered: int,
    window: tuple[int, int],
    start_day: int = 0,
    end_day: I32 | None = None,
) -> RunScan:
    """Scan days ``start_day`` .. grid end (or each patient's ``end_day``) for runs of value <= threshold."""
    n = grid.values.shape[0]
    w0, w1 = window
    in_run = np.zeros(n, bool)
    run_start = np.full(n, -1, np.int32)
    last_below = np.full(n, -1, np.int32)
    cons_above = np.zeros(n, np.int32)
    unknown_in_run = np.zeros(n, np.int32)
    pending_unknown = np.zeros(n, np.int32)
    best_win = np.zeros(n, np.int32)
    best_all = np.zeros(n, np.int32)
    first_start = np.full(n, -1, np.int32)
    first_recovery = np.full(n, -1, np.int32)
    first_length = np.zeros(n, np.int32)
    last_recovery = np.full(n, -1, np.int32)
    first_closed = np.zeros(n, bool)

    def close(mask: B, recovery_day: I32 | int | None) -> None:
        if not mask.any():
            return
        s, e = run_start[mask], last_below[mask]
        length = e - s + 1
        clipped = np.maximum(0, np.minimum(e, w1) - np.maximum(s, w0) + 1)
        best_all[mask] = np.maximum(best_all[mask], length)
        best_win[mask] = np.maximum(best_win[mask], clipped)
        is_first = mask & ~first_closed
        first_length[is_first] = (last_below - run_start + 1)[is_first]
        if recovery_day is not None:
            rd = recovery_day if isinstance(recovery_day, int) else recovery_day[mask]
            last_recovery[mask] = rd
            first_recovery[is_first] = (
                recovery_day if isinstance(recovery_day, int) else recovery_day[is_first]
            )
        first_closed[is_first] = True
        in_run[mask] = False

    start_col = max(0, start_day - grid.first_day)
    stop_col = grid.n_days
    if end_day is not None and end_day.size:
        stop_col = int(min(grid.n_days, max(0, int(end_day.max()) - grid.first_day + 1)))
    for c in range(start_col, stop_col):
        day = grid.first_day + c
        x = grid.values[:, c]
        active = np.ones(n, bool) if end_day is None else day <= end_day
        known = ~np.isnan(x) & active
        with np.errstate(invalid="ignore"):
            below = known & (x <= threshold)
            above = known & (x > threshold)
        unknown = ~known & active
        # below: start or extend a run
        new = below & ~in_run
        run_start[new] = day
        first_start[new & (first_start < 0)] = day
        in_run |= below
        unknown_in_run[below] += pending_unknown[below]
        pending_unknown[below] = 0
        last_below[below] = day
        cons_above[below] = 0
        # above while in a run: count the recovery streak
        up = above & in_run
        cons_above[up] += 1
        done = up & (cons_above >= min_recovered)
        if done.any():
            close(done, day - cons_above + 1)
            cons_above[done] = 0
            pending_unknown[done] = 0
        # unknown while in a run: breaks a recovery streak, may be joined over
        gap = unknown & in_run
        cons_above[gap] = 0
        pending_unknown[gap] += 1
    open_end = in_run.copy()
    close(in_run.copy(), None)
    return RunScan(
        best_win,
        best_all,
        first_start,
        first_recovery,
        first_length,
        last_recovery,
        open_end,
        unknown_in_run,
    )
