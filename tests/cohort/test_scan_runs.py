"""The vectorised run scanner (grading.daily.scan_runs) against the plain day-by-day state machine
it replaced (kept here, unchanged, as the oracle): identical results on random and real grids."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from cart_cytopenia.cohort import synthetic
from cart_cytopenia.grading.daily import DailyGrid, RunScan, interpolate
from cart_cytopenia.grading.daily import scan_runs as fast_scan

I32 = NDArray[np.int32]
B = NDArray[np.bool_]


def loop_scan(
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
    total_win = np.zeros(n, np.int32)
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
        total_win[mask] += clipped
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
        total_win,
    )


FIELDS = (
    "longest_in_window",
    "longest_overall",
    "first_start",
    "first_recovery",
    "first_length",
    "last_recovery",
    "open_at_end",
    "unknown_days_in_runs",
    "total_in_window",
)


def _same(a: RunScan, b: RunScan) -> None:
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


def _random_grid(rng: np.random.Generator, n: int, days: int, first_day: int) -> DailyGrid:
    # ANC-like values around the thresholds, with missing stretches of every length
    v = np.exp(rng.normal(np.log(500), 1.2, (n, days)))
    v[rng.random((n, days)) < rng.uniform(0, 0.7, (n, 1))] = np.nan
    gaps = rng.random((n, days)) < 0.03
    for k in range(1, 9):
        v[:, k:][gaps[:, :-k]] = np.nan
    v[rng.random((n, days)) < 0.02] = 500.0  # exactly on the threshold
    return DailyGrid(first_day, v)


@pytest.mark.parametrize("seed", range(6))
def test_fast_scan_equals_the_loop_on_random_grids(seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = _random_grid(rng, 400, 160, first_day=int(rng.integers(-3, 2)))
    for threshold, k in ((500.0, 3), (100.0, 3), (500.0, 1), (1000.0, 2), (500.0, 5)):
        for window in ((0, 30), (0, 10_000), (5, 20)):
            for start in (0, 7):
                ends: list[I32 | None] = [None, rng.integers(-5, 170, 400).astype(np.int32)]
                for end in ends:
                    _same(
                        fast_scan(g, threshold, k, window, start, end),
                        loop_scan(g, threshold, k, window, start, end),
                    )


def test_fast_scan_equals_the_loop_on_a_synthetic_cohort() -> None:
    frames = synthetic.block_frames(synthetic.generate_cohort(600, seed=13))
    labs = frames.labs.filter(frames.labs["analyte"] == "anc")
    ids = {p: i for i, p in enumerate(frames.patients["patient_id"])}
    v = np.full((len(ids), 731), np.nan)
    ok = (labs["day"] >= 0).to_numpy()
    r = np.array([ids[p] for p in labs["patient_id"]])[ok]
    d = labs["day"].to_numpy()[ok]
    np.fmin.at(v, (r, d), labs["value"].to_numpy()[ok])
    g = interpolate(DailyGrid(0, v), 7)
    rng = np.random.default_rng(0)
    end = rng.integers(20, 200, len(ids)).astype(np.int32)
    for threshold in (500.0, 100.0):
        _same(fast_scan(g, threshold, 3, (0, 30)), loop_scan(g, threshold, 3, (0, 30)))
        _same(
            fast_scan(g, threshold, 3, (0, 10_000), 0, end),
            loop_scan(g, threshold, 3, (0, 10_000), 0, end),
        )


def test_empty_and_all_missing_grids() -> None:
    for v in (np.full((3, 10), np.nan), np.zeros((0, 10)), np.full((2, 0), np.nan)):
        g = DailyGrid(0, v)
        _same(fast_scan(g, 500, 3, (0, 30)), loop_scan(g, 500, 3, (0, 30)))


def test_recovery_longer_than_the_known_days() -> None:
    """A recovery of more days than there are known cells: nothing separates the runs."""
    g = DailyGrid(0, np.array([[300.0, 900.0, np.nan, 200.0], [900.0, 950.0, np.nan, np.nan]]))
    for k in (2, 5, 9):
        _same(fast_scan(g, 500.0, k, (0, 30)), loop_scan(g, 500.0, k, (0, 30)))
