"""A deliberately plain, per-patient ICAHT grader written straight from the definitions.

It shares no code with the package's vectorised engine and is used only to cross-check it
(tests/grading/test_icaht.py). Definitions: Rejeski et al., Blood 2023 (EHA/EBMT ICAHT) with the
operational conventions of E. C. Liang's automated implementation (clinical-definitions.md §3).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass


@dataclass
class RefResult:
    early: int | None
    days500: int | None
    days100: int | None
    late: int | None
    late1: float | None
    late2: float | None


def _daily_min(points: list[tuple[int, float]]) -> dict[int, float]:
    out: dict[int, float] = {}
    for d, v in points:
        out[d] = min(v, out.get(d, v))
    return out


def _interpolate(daily: dict[int, float], max_gap: int) -> dict[int, float]:
    days = sorted(daily)
    out = dict(daily)
    for a, b in itertools.pairwise(days):
        missing = b - a - 1
        if 0 < missing <= max_gap:
            for d in range(a + 1, b):
                out[d] = daily[a] + (daily[b] - daily[a]) * (d - a) / (b - a)
    return out


def _runs(
    series: dict[int, float], threshold: float, min_rec: int, first: int, last: int
) -> list[tuple[int, int, bool]]:
    """Joined runs (start, end, closed) of value <= threshold over days first..last."""
    runs: list[tuple[int, int, bool]] = []
    start = end = None
    streak = 0
    for d in range(first, last + 1):
        v = series.get(d)
        if v is None:
            streak = 0
            continue
        if v <= threshold:
            if start is None:
                start = d
            end = d
            streak = 0
        elif start is not None:
            streak += 1
            if streak >= min_rec:
                assert end is not None
                runs.append((start, end, True))
                start = end = None
                streak = 0
    if start is not None and end is not None:
        runs.append((start, end, False))
    return runs


def grade(
    points: list[tuple[int, float]],
    progression: int | None = None,
    next_therapy: int | None = None,
    last_followup: int | None = None,
    death: int | None = None,
) -> RefResult:
    daily = _daily_min([(d, v) for d, v in points if d >= 0])
    interp = _interpolate(daily, 7)
    last_day = max(daily) if daily else 0

    def longest(threshold: float) -> int:
        best = 0
        for s, e, _ in _runs(interp, threshold, 3, 0, last_day):
            best = max(best, min(e, 30) - max(s, 0) + 1)
        return max(best, 0)

    early: int | None
    if not any(0 <= d <= 30 for d in daily):
        early = None
        d500 = d100 = None  # no ANC value in the window: the durations are unknown, not 0
    else:
        d500, d100 = longest(500), longest(100)
        runs = _runs(interp, 500, 3, 0, last_day)
        never = (
            bool(runs)
            and runs[0][0] <= 3
            and ((not runs[0][2] and daily[max(daily)] <= 500) or runs[0][1] >= 30)
        )
        if d100 >= 14 or never:
            early = 4
        elif d500 >= 14 or 7 <= d100 <= 13:
            early = 3
        elif 7 <= d500 <= 13:
            early = 2
        elif d500 >= 1:
            early = 1
        else:
            early = 0

    end = 100
    for ev in (progression, next_therapy):
        if ev is not None:
            end = min(end, ev - 1)
    for ev in (last_followup, death):
        if ev is not None:
            end = min(end, ev)
    window = sorted(v for d, v in daily.items() if 31 <= d <= end)
    late: int | None
    if end < 31 or not window:
        late, v1, v2 = None, None, None
    else:
        v1 = window[0]
        v2 = window[1] if len(window) > 1 else None
        if v2 is not None and v2 > 1500:
            late = 0
        else:
            late = (
                4 if v1 <= 100 else 3 if v1 <= 500 else 2 if v1 <= 1000 else 1 if v1 <= 1500 else 0
            )
    return RefResult(early, d500, d100, late, v1, v2)
