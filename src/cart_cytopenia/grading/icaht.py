"""EHA/EBMT ICAHT grading (Rejeski et al., Blood 2023;142:865), early and late, vectorised.

Early ICAHT (day 0-30) grades the longest period of ANC <= 500 and <= 100 cells/uL; late ICAHT
(day 31 to the end of the late window) grades the non-transient ANC nadir. The thresholds, grade
conditions and operational conventions are read from ``rules/tables/icaht.toml``; settings may
override the conventions (``[icaht]``). See docs/conventions.md for each convention and why.

Both functions take arrays for n patients and return arrays: a cohort of one is a cohort.
Grades are int8, -1 meaning "cannot grade" (the reason is in ``reason``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cart_cytopenia.grading.daily import DailyGrid, RunScan, interpolate, scan_runs_many
from cart_cytopenia.rules.settings import IcahtSettings
from cart_cytopenia.rules.tables import IcahtConventions, IcahtTable

I8 = NDArray[np.int8]
I32 = NDArray[np.int32]
F = NDArray[np.float64]
B = NDArray[np.bool_]
Obj = NDArray[np.object_]

NO_DAY = np.iinfo(np.int32).max


def effective_conventions(table: IcahtTable, settings: IcahtSettings) -> IcahtConventions:
    c = table.conventions
    return IcahtConventions(
        max_interpolation_gap_days=(
            c.max_interpolation_gap_days
            if settings.max_interpolation_gap_days is None
            else settings.max_interpolation_gap_days
        ),
        join_min_recovered_days=(
            c.join_min_recovered_days
            if settings.join_min_recovered_days is None
            else settings.join_min_recovered_days
        ),
        never_recovered_onset_by_day=(
            c.never_recovered_onset_by_day
            if settings.never_recovered_onset_by_day is None
            else settings.never_recovered_onset_by_day
        ),
        late_end_event_day_included=c.late_end_event_day_included,
    )


@dataclass(frozen=True)
class EarlyIcaht:
    grade: I8
    days_le_500: I32
    days_le_100: I32
    never_recovered: B
    provisional: B
    unknown_days: I32
    reason: Obj  # str or None


@dataclass(frozen=True)
class LateIcaht:
    grade: I8
    anc_1: F  # lowest value in the window (cells/uL), NaN if none
    anc_2: F  # second-lowest (another day), NaN if none
    n_values: I32
    window_end: I32  # last day of the late window for this patient (may be < start)
    window_end_reason: Obj
    provisional: B
    reason: Obj


def grade_early(
    anc: DailyGrid,
    as_of: I32,
    complete: B,
    table: IcahtTable,
    settings: IcahtSettings,
    interp: DailyGrid | None = None,
) -> EarlyIcaht:
    """Early ICAHT for each patient from the raw daily-minimum ANC grid.

    ``as_of``: last day that may be used per patient. ``complete``: the course up to ``as_of``
    is final (death, end of follow-up, or a retrospective grading); otherwise the grade is
    provisional and the never-recovered rule is not applied (the neutropenia may still recover).
    """
    conv = effective_conventions(table, settings)
    w0, w1 = table.early_window
    n = anc.values.shape[0]
    if interp is None:  # the caller may pass the series it already interpolated
        interp = interpolate(anc, conv.max_interpolation_gap_days)
    s500, s100 = scan_runs_many(
        interp,
        (table.severe_threshold, table.profound_threshold),
        conv.join_min_recovered_days,
        (w0, w1),
        w0,
        as_of,
    )

    raw_win = anc.window(w0, w1)
    days = np.arange(w0, w0 + raw_win.shape[1])
    usable = ~np.isnan(raw_win) & (days[None, :] <= as_of[:, None])
    has_values = usable.any(axis=1)

    provisional = ~complete & (as_of < w1)
    never = _never_recovered(anc, as_of, complete, s500, table, settings)
    measures = {
        "days_le_severe": s500.longest_in_window,
        "days_le_profound": s100.longest_in_window,
        "never_recovered": never.astype(np.int32),
    }
    grade = _early_grade(measures, table, n)
    grade[~has_values] = -1
    reason = np.full(n, None, dtype=object)
    reason[~has_values] = f"no ANC value between day {w0} and day {w1}" + (
        "" if complete.all() else " (up to the assessment day)"
    )
    return EarlyIcaht(
        grade=grade,
        days_le_500=s500.longest_in_window,
        days_le_100=s100.longest_in_window,
        never_recovered=never,
        provisional=provisional & has_values,
        unknown_days=s500.unknown_days_in_runs,
        reason=reason,
    )


def _never_recovered(
    anc: DailyGrid,
    as_of: I32,
    complete: B,
    s500: RunScan,
    table: IcahtTable,
    settings: IcahtSettings,
) -> B:
    """The never-recovered rule (grade 4 whatever the days): the first run of ANC <= 500 starts
    early and lasts through the window, or never recovers before the last value of a complete
    course (death, follow-up); off when the settings turn the rule off."""
    conv = effective_conventions(table, settings)
    w0, w1 = table.early_window
    n = anc.values.shape[0]
    # last known ANC up to as_of (raw), for the never-recovered rule
    all_days = anc.days()
    ok = ~np.isnan(anc.values) & (all_days[None, :] <= as_of[:, None]) & (all_days[None, :] >= w0)
    last_col = anc.n_days - 1 - np.argmax(ok[:, ::-1], axis=1)
    last_val = np.where(ok.any(axis=1), anc.values[np.arange(n), last_col], np.nan)
    first_end = s500.first_start + s500.first_length - 1
    with np.errstate(invalid="ignore"):
        onset_early = (s500.first_start >= w0) & (
            s500.first_start <= conv.never_recovered_onset_by_day
        )
        # never above 500 in the window: the first (joined) run lasts through day 30 ...
        through_window = (as_of >= w1) & (first_end >= w1)
        # ... or never recovers before the last value of a complete course (death, follow-up)
        open_to_end = (
            complete
            & s500.open_at_end
            & (s500.first_recovery < 0)
            & (last_val <= table.severe_threshold)
        )
        never: B = settings.never_recovered_rule & onset_early & (through_window | open_to_end)
    return never


def _early_grade(measures: dict[str, NDArray[np.int32]], table: IcahtTable, n: int) -> I8:
    """The highest early grade of the table whose conditions any measure meets (0: none)."""
    grade = np.zeros(n, np.int8)
    for g in table.early_grades:
        holds = np.zeros(n, bool)
        for cond in g.any:
            m = measures[cond.measure]
            holds |= (m >= cond.min) & (m <= cond.max)
        grade[holds] = g.grade  # grades listed in increasing order: the highest wins
    return grade


def late_window_end(
    table: IcahtTable,
    progression_day: I32,
    next_therapy_day: I32,
    last_followup_day: I32,
    death_day: I32,
    as_of: I32,
) -> tuple[I32, Obj]:
    """Last day of the late window per patient and what set it (NO_DAY marks a missing date)."""
    conv = table.conventions
    shift = 0 if conv.late_end_event_day_included else 1
    candidates = {
        f"day {table.late_window_end}": np.full(as_of.shape, table.late_window_end, np.int64),
        "relapse/progression": np.where(
            progression_day == NO_DAY, NO_DAY, progression_day.astype(np.int64) - shift
        ),
        "next therapy": np.where(
            next_therapy_day == NO_DAY, NO_DAY, next_therapy_day.astype(np.int64) - shift
        ),
        "last follow-up": last_followup_day.astype(np.int64),
        "death": death_day.astype(np.int64),
        "assessment day": as_of.astype(np.int64),
    }
    names = list(candidates)
    stack = np.stack([candidates[k] for k in names])
    which = np.argmin(stack, axis=0)
    end = stack.min(axis=0).astype(np.int32)
    return end, np.array(names, dtype=object)[which]


def grade_late(
    anc: DailyGrid,
    table: IcahtTable,
    progression_day: I32,
    next_therapy_day: I32,
    last_followup_day: I32,
    death_day: I32,
    as_of: I32,
    complete: B,
) -> LateIcaht:
    """Late ICAHT: lowest ANC in the late window, confirmed by a second value <= 1500 cells/uL."""
    start = table.late_window_start
    end, end_reason = late_window_end(
        table, progression_day, next_therapy_day, last_followup_day, death_day, as_of
    )
    count, v1, v2 = lowest_two(anc.window(start, table.late_window_end), start, end)
    grade = table.late_bands.evaluate(v1)
    with np.errstate(invalid="ignore"):
        transient = (count >= 2) & ~(v2 <= table.confirm_threshold)
    grade[transient] = 0
    empty, cannot, reason = late_gaps(count, start, end, end_reason, "ANC value")
    grade[cannot] = -1
    provisional = (
        ~complete & (end_reason == "assessment day") & (end < table.late_window_end) & ~empty
    )
    return LateIcaht(grade, v1, v2, count, end, end_reason, provisional, reason)


def lowest_two(win: F, start: int, end: I32) -> tuple[I32, F, F]:
    """Values of a late window (columns from day ``start``) up to each patient's ``end``: their
    number, the lowest and the second-lowest (another day), NaN where there is none."""
    n = win.shape[0]
    win = win.copy()
    days = np.arange(start, start + win.shape[1])
    win[days[None, :] > end[:, None]] = np.nan
    count = (~np.isnan(win)).sum(axis=1).astype(np.int32)
    srt = np.sort(win, axis=1)  # NaN sorts last
    v1 = srt[:, 0] if srt.shape[1] else np.full(n, np.nan)
    v2 = srt[:, 1] if srt.shape[1] > 1 else np.full(n, np.nan)
    return count, v1, v2


def late_gaps(count: I32, start: int, end: I32, end_reason: Obj, what: str) -> tuple[B, B, Obj]:
    """Patients whose late window is empty (it ends before ``start``), those who cannot be
    graded (no window, or no ``what`` in it), and the reason (None where they can)."""
    reason = np.full(count.size, None, dtype=object)
    empty = end < start
    none = ~empty & (count == 0)
    for i in np.nonzero(empty)[0]:
        reason[i] = f"no late window: it ends on day {end[i]} ({end_reason[i]}) before day {start}"
    for i in np.nonzero(none)[0]:
        reason[i] = f"no {what} between day {start} and day {end[i]} ({end_reason[i]})"
    return empty, empty | none, reason
