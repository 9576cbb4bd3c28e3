"""T-ICAHT (Rejeski et al., Blood 2025): thrombocytopenia ICAHT, early and late, vectorised.

Early T-ICAHT (day 0-30) grades the cumulative days of platelets < 50 and < 20 x10^9/L; late
T-ICAHT (day 31 to the end of the late window) grades the non-transient platelet nadir (< 100,
< 50) and the cumulative days < 20. The cut-points, grade conditions and conventions are read
from ``rules/tables/ticaht.toml``; docs/conventions.md explains each convention.

Platelet transfusions must not make a patient look recovered. Two conventions of the table keep
them out: a count on the day of a platelet transfusion or in the ``post_transfusion_days`` after
it is post-transfusion (at or above a cut-point it is not used; below it, it counts); and, for
< 20, a day with a platelet transfusion on it or in the ``recovery_no_transfusion_days`` before
continues an open run (the paper's recovery: 3 consecutive days >= 20 without a transfusion in
the 7 days before).

Every function takes arrays for n patients: a cohort of one is a cohort. Grades are int8, -1
meaning "cannot grade" (the reason is in ``reason``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cart_cytopenia.grading.daily import DailyGrid, RunScan, interpolate, scan_runs, scan_runs_many
from cart_cytopenia.grading.icaht import late_gaps, lowest_two
from cart_cytopenia.rules.tables import EarlyGrade, TicahtTable

I8 = NDArray[np.int8]
I32 = NDArray[np.int32]
F = NDArray[np.float64]
B = NDArray[np.bool_]
Obj = NDArray[np.object_]


@dataclass(frozen=True)
class EarlyTicaht:
    grade: I8
    days_lt_50: I32  # cumulative days below the moderate cut-point in the window
    days_lt_20: I32
    window_end: I32  # last day of the early window for this patient (censored)
    provisional: B
    reason: Obj  # str or None


@dataclass(frozen=True)
class LateTicaht:
    grade: I8
    plt_1: F  # lowest count in the window (10^9/L), NaN if none
    plt_2: F  # second-lowest (another day), NaN if none
    n_values: I32
    days_lt_20: I32
    window_end: I32
    window_end_reason: Obj
    provisional: B
    reason: Obj


@dataclass(frozen=True)
class Ticaht:
    early: EarlyTicaht
    late: LateTicaht
    recovery_day: I32  # first of the 3 days >= 20 that ended the last < 20 run (-1: none)
    not_recovered: B  # a < 20 run is still open at the end of the data
    post_transfusion_counts: I32  # post-transfusion counts set aside (>= the lowest cut-point)


def transfusion_cover(
    shape: tuple[int, int],
    first_day: int,
    idx: NDArray[np.integer],
    day: NDArray[np.integer],
    days_after: int,
) -> B:
    """(n, n_days) mask: a transfusion on the day or on one of the ``days_after`` days before."""
    n, n_days = shape
    k = max(days_after, 0)
    # columns from ``first_day - k``: a transfusion just before the grid still covers its start
    marks = np.zeros((n, n_days + k), np.int32)
    col = day.astype(np.int64) - first_day + k
    ok = (col >= 0) & (col < n_days + k)
    np.add.at(marks, (idx[ok].astype(np.intp), col[ok]), 1)
    run = np.cumsum(marks, axis=1)
    before = np.zeros_like(run)
    before[:, k + 1 :] = run[:, : n_days - 1]
    return ((run - before) > 0)[:, k:]


def _open_runs(g: F, cover: B, threshold: float) -> B:
    """Days of a run below ``threshold``: a count below it, or a covered day while a run is open
    (a count below the cut-point came after the last uncovered count at or above it)."""
    with np.errstate(invalid="ignore"):
        low = g < threshold
        breaker = (g >= threshold) & ~cover
    col = np.arange(g.shape[1])
    last_low = np.maximum.accumulate(np.where(low, col, -1), axis=1)
    last_break = np.maximum.accumulate(np.where(breaker, col, -1), axis=1)
    out: B = low | (cover & (last_low > last_break))
    return out


def _reading(
    raw: DailyGrid,
    interp: DailyGrid,
    transfusions: tuple[NDArray[np.integer], NDArray[np.integer]],
    table: TicahtTable,
) -> tuple[DailyGrid, B, I32]:
    """The one series the run scans read for both cut-points, the post-transfusion mask and the
    number of post-transfusion counts set aside per patient.

    Patients without a platelet transfusion: the interpolated counts as they are. Patients with
    one: post-transfusion counts at or above the lower cut-point are set aside before the
    interpolation; a day of an open < 20 run is made -1 (below both cut-points: a run < 20 is
    also a run < 50) and a covered day of an open < 50 run that is not < 20 is made 20 (below 50,
    not below 20)."""
    conv = table.conventions
    n, n_days = raw.values.shape
    tx_idx, tx_day = transfusions
    post = np.zeros((n, n_days), bool)
    set_aside = np.zeros(n, np.int32)
    if not tx_idx.size or not n_days:
        return interp, post, set_aside
    sub, local = np.unique(tx_idx, return_inverse=True)
    shape = (sub.size, n_days)
    post_s = transfusion_cover(shape, raw.first_day, local, tx_day, conv.post_transfusion_days)
    cover_s = transfusion_cover(
        shape, raw.first_day, local, tx_day, conv.recovery_no_transfusion_days
    )
    v = raw.values[sub]  # (a copy)
    with np.errstate(invalid="ignore"):
        aside = post_s & (v >= table.severe_threshold)
    v[aside] = np.nan
    set_aside[sub] = aside.sum(axis=1)
    g = interpolate(DailyGrid(raw.first_day, v), conv.max_interpolation_gap_days).values
    in20 = _open_runs(g, cover_s, table.severe_threshold)
    in50 = _open_runs(g, post_s, table.moderate_threshold)
    with np.errstate(invalid="ignore"):
        lifted = in50 & ~(g < table.moderate_threshold)
    out = interp.values.copy()
    out[sub] = np.where(in20, -1.0, np.where(lifted, table.severe_threshold, g))
    post[sub] = post_s
    return DailyGrid(raw.first_day, out), post, set_aside


def _below(t: float) -> float:
    # "< t" is "<= the float just below t" for the run scanner (which reads "<=")
    return float(np.nextafter(t, -np.inf))


def _grade_by(grades: tuple[EarlyGrade, ...], measures: dict[str, I32], n: int) -> I8:
    grade = np.zeros(n, np.int8)
    for g in grades:
        holds = np.zeros(n, bool)
        for cond in g.any:
            m = measures[cond.measure]
            holds |= (m >= cond.min) & (m <= cond.max)
        grade[holds] = g.grade  # listed in increasing order: the highest that holds wins
    return grade


def grade(
    platelets: DailyGrid,
    transfusions: tuple[NDArray[np.integer], NDArray[np.integer]],
    window_end: tuple[I32, Obj],
    as_of: I32,
    complete: B,
    table: TicahtTable,
    interp: DailyGrid | None = None,
) -> Ticaht:
    """Early and late T-ICAHT for each patient from the raw daily-minimum platelet grid.

    ``transfusions``: (patient position, day) of each platelet transfusion. ``window_end``: the
    last day of the late window per patient and what set it (``icaht.late_window_end``: relapse
    or progression, next therapy, last follow-up, death, the assessment day, day 100); the early
    window is censored at the same day. ``complete``: the course up to ``as_of`` is final;
    otherwise results on windows still open are provisional. ``interp``: the grid interpolated
    with the table's gap, when the caller has it.
    """
    conv = table.conventions
    if interp is None:
        interp = interpolate(platelets, conv.max_interpolation_gap_days)
    reading, post, set_aside = _reading(platelets, interp, transfusions, table)
    join = conv.join_min_recovered_days
    end, end_reason = window_end
    w0, w1 = table.early_window
    early_end = np.minimum(end, w1).astype(np.int32)
    s50, s20 = scan_runs_many(
        reading,
        (_below(table.moderate_threshold), _below(table.severe_threshold)),
        join,
        (w0, w1),
        0,
        early_end,
    )
    late20 = scan_runs(
        reading,
        _below(table.late_severe_threshold),
        join,
        (table.late_window_start, table.late_window_end),
        0,
        end,
    )
    early = _early(platelets, s50, s20, early_end, end_reason, as_of, complete, table)
    late = _late(platelets, post, late20, end, end_reason, complete, table)
    ran = late20.first_start >= 0
    recovered = ran & ~late20.open_at_end & (late20.last_recovery >= 0)
    return Ticaht(
        early=early,
        late=late,
        recovery_day=np.where(recovered, late20.last_recovery, -1).astype(np.int32),
        not_recovered=ran & late20.open_at_end,
        post_transfusion_counts=set_aside,
    )


def _early(
    raw: DailyGrid,
    s50: RunScan,
    s20: RunScan,
    end: I32,
    end_reason: Obj,
    as_of: I32,
    complete: B,
    table: TicahtTable,
) -> EarlyTicaht:
    n = raw.values.shape[0]
    w0, w1 = table.early_window
    win = raw.window(w0, w1)
    days = np.arange(w0, w0 + win.shape[1])
    has_values = (~np.isnan(win) & (days[None, :] <= end[:, None])).any(axis=1)
    measures = {"days_lt_moderate": s50.total_in_window, "days_lt_severe": s20.total_in_window}
    grade = _grade_by(table.early_grades, measures, n)
    grade[~has_values] = -1
    reason = np.full(n, None, dtype=object)
    for i in np.nonzero(~has_values)[0]:
        why = "" if end[i] >= w1 else f" ({end_reason[i]} on day {end[i]})"
        reason[i] = f"no platelet count between day {w0} and day {min(int(end[i]), w1)}{why}"
    provisional = ~complete & (as_of < w1) & (end == as_of) & has_values
    return EarlyTicaht(grade, s50.total_in_window, s20.total_in_window, end, provisional, reason)


def _late(
    raw: DailyGrid,
    post: B,
    s20: RunScan,
    end: I32,
    end_reason: Obj,
    complete: B,
    table: TicahtTable,
) -> LateTicaht:
    """The lowest count (post-transfusion counts >= 100 left out) sets the depth grade, confirmed
    by the second-lowest (< 100, or the grade is 0: transient); days < 20 set grades 3-4."""
    n = raw.values.shape[0]
    start = table.late_window_start
    win = raw.window(start, table.late_window_end).copy()
    a = start - raw.first_day
    with np.errstate(invalid="ignore"):
        win[post[:, a : a + win.shape[1]] & (win >= table.confirm_threshold)] = np.nan
    count, v1, v2 = lowest_two(win, start, end)
    depth = table.late_bands.evaluate(v1)
    with np.errstate(invalid="ignore"):
        transient = (count >= 2) & ~(v2 < table.confirm_threshold)
    depth[transient] = 0
    days20 = s20.total_in_window
    grade = np.maximum(depth, _grade_by(table.late_grades, {"days_lt_severe": days20}, n))
    empty, cannot, reason = late_gaps(count, start, end, end_reason, "platelet count")
    grade[cannot] = -1
    provisional = (
        ~complete & (end_reason == "assessment day") & (end < table.late_window_end) & ~empty
    )
    return LateTicaht(grade, v1, v2, count, days20, end, end_reason, provisional, reason)
