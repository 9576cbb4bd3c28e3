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
from functools import cached_property

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

    @cached_property
    def known(self) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """(rows, columns) of the cells with a value, sorted by patient then day; found once
        per grid and shared by every scan of it (a grid's values are never changed after it is
        made)."""
        flat = self.known_flat
        if not self.n_days:
            return flat, flat
        rows = flat // self.n_days
        return rows, flat - rows * self.n_days

    @cached_property
    def known_flat(self) -> NDArray[np.intp]:
        """The cells with a value as positions in the flattened (row-major) grid, in order."""
        return np.flatnonzero(~np.isnan(self.values).ravel())

    @cached_property
    def scan_cells(self) -> dict[int, _Cells]:
        """The known cells from a start column on, with their neighbourhood, as the run scans
        read them (``_cells_from``: made once per start column, shared by every scan)."""
        return {}


def grid_from_cells(
    n: int,
    first_day: int,
    n_days: int,
    rows: NDArray[np.intp],
    cols: NDArray[np.intp],
    values: F,
) -> DailyGrid:
    """A grid from its known cells, given sorted by patient then day with one value per cell
    (as the engine's day rows are); the cells are kept as the grid's ``known`` cells."""
    out = np.full((n, n_days), np.nan)
    flat = rows * n_days + cols  # (flat positions: cheaper than (row, col) pairs)
    out.ravel()[flat] = values
    grid = DailyGrid(first_day, out)
    # the cached properties' slots: no search of the grid
    grid.__dict__["known"] = (rows, cols)
    grid.__dict__["known_flat"] = flat
    return grid


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
    rows, cols = grid.known
    if rows.size < 2:
        return grid
    same = rows[1:] == rows[:-1]
    gap = cols[1:] - cols[:-1] - 1
    ok = same & (gap >= 1) & (gap <= max_gap)
    if not ok.any():
        return grid
    g = gap[ok]
    # flat positions of the known cell before each gap (cheaper than (row, col) pairs)
    base = rows[:-1][ok] * v.shape[1] + cols[:-1][ok]
    flat_v = v.ravel()
    v0 = flat_v[base]
    v1 = flat_v[base + g + 1]
    # every missing cell of a gap: its step 1..gap and the gap's values, repeated per cell
    step = np.arange(1, int(g.sum()) + 1) - np.repeat(np.cumsum(g) - g, g)
    out = v.copy()
    out.ravel()[np.repeat(base, g) + step] = np.repeat(v0, g) + np.repeat(
        v1 - v0, g
    ) * step / np.repeat(g + 1, g)
    return DailyGrid(grid.first_day, out)


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
    total_in_window: I32  # days of all joined runs, each clipped to the window (cumulative)


def scan_runs(
    grid: DailyGrid,
    threshold: float,
    min_recovered: int,
    window: tuple[int, int],
    start_day: int = 0,
    end_day: I32 | None = None,
) -> RunScan:
    """Scan days ``start_day`` .. grid end (or each patient's ``end_day``) for runs of value <= threshold.

    Vectorised over the known cells only (sorted by patient, then day), so the cost grows with
    the number of values rather than patients x days. Semantics, day by day: a known value
    <= threshold starts or extends a run; ``min_recovered`` consecutive known days above it close
    the run, the recovery day being the first of them; an unknown day neither extends nor ends a
    run, but restarts a recovery streak. Hence a run's recovery is the first stretch of
    ``min_recovered``+ consecutive known days above the threshold after it ("separator"), and
    the runs are the stretches between separators that hold a value at or below the threshold.
    """
    (scan,) = scan_runs_many(grid, (threshold,), min_recovered, window, start_day, end_day)
    return scan


@dataclass(frozen=True)
class _Cells:
    """The known cells a scan reads, in patient, day order, with their neighbourhood."""

    rows: NDArray[np.intp]
    day: NDArray[np.int64]
    value: F
    new_row: B  # first cell of a patient
    consec: B  # the previous cell is the same patient's previous day


def scan_runs_many(
    grid: DailyGrid,
    thresholds: tuple[float, ...],
    min_recovered: int,
    window: tuple[int, int],
    start_day: int = 0,
    end_day: I32 | None = None,
) -> list[RunScan]:
    """``scan_runs`` for several thresholds over the same days: the cells are selected once."""
    n = grid.values.shape[0]
    start_col = max(0, start_day - grid.first_day)
    stop_col = grid.n_days
    if end_day is not None and end_day.size:
        stop_col = int(min(grid.n_days, max(0, int(end_day.max()) - grid.first_day + 1)))
    if n == 0 or stop_col <= start_col:
        return [_scan(None, n, t, min_recovered, window) for t in thresholds]
    cells = _cells_from(grid, start_col)
    if stop_col < grid.n_days or end_day is not None:
        day = cells.day
        # each patient's cells end at a day: a prefix of the patient's cells is kept, so the
        # first-cell and consecutive-day marks of the kept cells stay what they were
        limit = stop_col - 1 + grid.first_day
        last = int(day.max()) if day.size else limit
        if last > limit or (end_day is not None and last > int(end_day.min())):
            keep = day <= limit
            if end_day is not None:
                keep &= day <= end_day[cells.rows]
            cells = _Cells(
                cells.rows[keep],
                day[keep],
                cells.value[keep],
                cells.new_row[keep],
                cells.consec[keep],
            )
    if cells.rows.size == 0:
        return [_scan(None, n, t, min_recovered, window) for t in thresholds]
    return [_scan(cells, n, t, min_recovered, window) for t in thresholds]


def _cells_from(grid: DailyGrid, start_col: int) -> _Cells:
    """The grid's known cells from column ``start_col`` on, with their neighbourhood; made once
    per grid and start (a grid's values are never changed after it is made) and shared by the
    scans of it that end at different days."""
    cache = grid.scan_cells
    if start_col in cache:
        return cache[start_col]
    rows, cols = grid.known
    flat = grid.known_flat
    if start_col > 0:
        in_range = cols >= start_col
        rows, cols, flat = rows[in_range], cols[in_range], flat[in_range]
    day = (cols + grid.first_day).astype(np.int64, copy=False)
    k = rows.size
    new_row = np.ones(k, bool)
    new_row[1:] = rows[1:] != rows[:-1]
    consec = np.zeros(k, bool)
    consec[1:] = ~new_row[1:] & (day[1:] == day[:-1] + 1)
    values = grid.values.ravel()[flat]
    cache[start_col] = cells = _Cells(rows, day, values, new_row, consec)
    return cells


def _scan(
    cells: _Cells | None, n: int, threshold: float, min_recovered: int, window: tuple[int, int]
) -> RunScan:
    """Runs at or below ``threshold`` joined unless separated by ``min_recovered`` known days
    above it, summarised per patient (``RunScan``)."""
    out = RunScan(
        longest_in_window=np.zeros(n, np.int32),
        longest_overall=np.zeros(n, np.int32),
        first_start=np.full(n, -1, np.int32),
        first_recovery=np.full(n, -1, np.int32),
        first_length=np.zeros(n, np.int32),
        last_recovery=np.full(n, -1, np.int32),
        open_at_end=np.zeros(n, bool),
        unknown_days_in_runs=np.zeros(n, np.int32),
        total_in_window=np.zeros(n, np.int32),
    )
    if cells is None:
        return out
    runs = _runs(cells, threshold, min_recovered)
    _run_lengths(out, runs, window)
    _first_and_last_runs(out, runs)
    return out


@dataclass(frozen=True)
class _Runs:
    """The joined runs of one scan, in patient, day order. The cells are cut into segments,
    each starting at a patient's first cell or at a recovery streak; a segment holds at most
    one run (its cells at or below the threshold, first to last)."""

    seg: NDArray[np.intp]  # each run's segment
    row: NDArray[np.intp]  # each run's patient
    start: NDArray[np.int64]  # first day at/below the threshold
    end: NDArray[np.int64]  # last day at/below the threshold
    known_days: NDArray[np.int64]  # cells from the first to the last, i.e. known days
    seg_row: NDArray[np.intp]  # each segment's patient
    closed: B  # per segment: a recovery streak of the same patient follows it
    recovery: NDArray[np.int64]  # per segment: the first day of that streak (-1: none)


def _runs(cells: _Cells, threshold: float, min_recovered: int) -> _Runs:
    """Find the runs: recovery streaks (at least ``min_recovered`` consecutive known days above
    the threshold) cut each patient's cells into segments."""
    rows, day, new_row, consec = cells.rows, cells.day, cells.new_row, cells.consec
    k = rows.size
    with np.errstate(invalid="ignore"):
        below = cells.value <= threshold
    above = ~below
    # a cell continues a stretch of consecutive known days above the threshold when it is above
    # and the previous cell is the same patient's previous day, also above
    cont = np.zeros(k, bool)
    cont[1:] = above[1:] & consec[1:] & above[:-1]
    sep_start = _recovery_starts(above, cont, min_recovered)
    seg_start = new_row | sep_start
    starts = np.flatnonzero(seg_start)
    nxt = np.append(starts[1:], k)
    # the first and last cell at or below the threshold in each segment (cells are in patient,
    # day order, so these are also its first and last such days): found among the below cells
    below_at = np.flatnonzero(below)
    first_b = np.searchsorted(below_at, starts)
    last_b = np.searchsorted(below_at, nxt) - 1
    has_run = first_b <= last_b
    seg_row = rows[starts]
    # the segment after a run: a separator of the same patient closes the run on its first day
    closed = np.zeros(starts.size, bool)
    inner = nxt < k
    closed[inner] = sep_start[nxt[inner]] & ~new_row[nxt[inner]]
    recovery = np.full(starts.size, -1, np.int64)
    recovery[inner] = day[np.minimum(nxt[inner], k - 1)]
    recovery[~closed] = -1
    r_idx = np.flatnonzero(has_run)
    p_first, p_last = below_at[first_b[r_idx]], below_at[last_b[r_idx]]
    return _Runs(
        r_idx, seg_row[r_idx], day[p_first], day[p_last], p_last - p_first + 1, seg_row, closed,
        recovery,
    )  # fmt: skip


def _recovery_starts(above: B, cont: B, min_recovered: int) -> B:
    """The first cell of each stretch of at least ``min_recovered`` consecutive known days above
    the threshold (``cont``: the cell continues a stretch). Each stretch's length comes from its
    cells numbered by the stretch they belong to."""
    a_start = above & ~cont
    stretch = np.cumsum(a_start) - 1
    length = np.bincount(stretch[above], minlength=int(np.count_nonzero(a_start)))
    out = a_start.copy()
    out[a_start] = length >= min_recovered
    return out


def _run_lengths(out: RunScan, runs: _Runs, window: tuple[int, int]) -> None:
    """Each patient's longest run (anywhere, and clipped to the window), the days of all runs
    in the window, and the unknown days inside runs."""
    w0, w1 = window
    r_row, r_s, r_e = runs.row, runs.start, runs.end
    length = (r_e - r_s + 1).astype(np.int32)
    clipped = np.maximum(0, np.minimum(r_e, w1) - np.maximum(r_s, w0) + 1).astype(np.int32)
    np.maximum.at(out.longest_overall, r_row, length)
    np.maximum.at(out.longest_in_window, r_row, clipped)
    np.add.at(out.total_in_window, r_row, clipped)
    unknown = (r_e - r_s + 1) - runs.known_days
    np.add.at(out.unknown_days_in_runs, r_row, unknown.astype(np.int32))


def _first_and_last_runs(out: RunScan, runs: _Runs) -> None:
    """The first run of each patient (start, length, recovery), whether the last is still open,
    and the last recovery."""
    r_row, r_idx = runs.row, runs.seg
    length = (runs.end - runs.start + 1).astype(np.int32)
    # first run of each patient (runs are in patient, day order)
    is_first = np.ones(r_idx.size, bool)
    is_first[1:] = r_row[1:] != r_row[:-1]
    fr = r_row[is_first]
    out.first_start[fr] = runs.start[is_first]
    out.first_length[fr] = length[is_first]
    out.first_recovery[fr] = runs.recovery[r_idx[is_first]]
    # the last run: open at the end unless closed; the last closing gives the last recovery
    is_last = np.ones(r_idx.size, bool)
    is_last[:-1] = r_row[:-1] != r_row[1:]
    lr = r_row[is_last]
    out.open_at_end[lr] = ~runs.closed[r_idx[is_last]]
    c_idx = r_idx[runs.closed[r_idx]]
    if c_idx.size:
        c_row = runs.seg_row[c_idx]
        last_c = np.ones(c_idx.size, bool)
        last_c[:-1] = c_row[:-1] != c_row[1:]
        out.last_recovery[c_row[last_c]] = runs.recovery[c_idx[last_c]]
