"""The plausible course: the days a guidance replay covers.

A replay evaluates the guidance on every day from day 0 to the course's last day, so one value
mistyped as day 100000 would make it evaluate 100,000 days (minutes) for a course followed for
240. The replay therefore covers the course from day 0 up to the first long silence: a data day
that comes after more than ``MAX_GAP_DAYS`` days without any data (lab, event start or end,
follow-up), counted from day 0, is beyond the plausible course. It and every later day are not
replayed but reported (``Outlier``), with what was recorded on it, so the user can check the
date; the day's own guidance is still available (``assess --guidance --day N``). Nothing is
changed in the course and the grading is not affected: this bounds only the replay.
"""

from __future__ import annotations

from dataclasses import dataclass

from cart_cytopenia.domain.course import Course, Dated

# A year without any record: real follow-up is at most yearly; a longer silence before a
# record makes its day suspect (most often a mistyped date or day).
MAX_GAP_DAYS = 365


@dataclass(frozen=True)
class Outlier:
    """A recorded item on a day beyond the plausible course."""

    day: int
    what: str  # e.g. "labs[5] (anc)", "events[2] (crs) end", "last follow-up"

    def __str__(self) -> str:
        return f"{self.what} on day {self.day}"


def recorded_days(course: Course) -> list[tuple[int, str]]:
    """Every day something was recorded, with what: (day, where in the course)."""
    out: list[tuple[int | None, str]] = [
        (lab.day, f"labs[{i}] ({lab.analyte})")
        for i, lab in enumerate(course.labs)
        if lab.day is not None
    ]
    for i, e in enumerate(course.events):
        where = f"events[{i}] ({e.type})"
        if isinstance(e, Dated):
            if e.day is not None:
                out.append((e.day, where))
        else:
            out += [
                (d, f"{where} {end}") for d, end in ((e.start_day, "start"), (e.end_day, "end"))
            ]
    if course.last_followup_day is not None:
        out.append((course.last_followup_day, "last follow-up"))
    return [(int(d), what) for d, what in out if d is not None]


def plausible_range(course: Course, max_gap: int = MAX_GAP_DAYS) -> tuple[int, list[Outlier]]:
    """The last day of the plausible course (at least 0) and the items recorded after it."""
    recorded = sorted(x for x in recorded_days(course) if x[0] >= 0)
    last = 0
    for day, _what in recorded:
        if day - last > max_gap:
            return last, [Outlier(d, what) for d, what in recorded if d > last]
        last = day
    return last, []
