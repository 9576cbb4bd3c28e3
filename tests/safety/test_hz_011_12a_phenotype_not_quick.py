"""HZ-011-12a: persisting or G-CSF-refractory neutropenia called a "quick" recovery (issue 11,
finding 12).

Recipe: rules/tables/recovery_phenotype.toml [not_quick]: a course with ANC <= 1000/uL on a day
after day 21, or whose G-CSF response is refractory, is never "quick" (Rejeski 2021 Table 2 end
point "ANC <= 1000 measured >= 21 days after infusion"; the review: the aplastic trajectory is
"less responsive to growth factors"). Before, a course whose ANC never fell to <= 500 was quick
whatever followed, and so was one that recovered only after failing G-CSF. Each scenario is
checked on both sides, through one course and the cohort engine.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.safety._grading import both, course, daily


def _phenotype(labs: list[tuple[int, float]], **over: Any) -> tuple[str | None, str | None]:
    a, row = both(course(labs, **over))
    assert (row["phenotype"], row["phenotype_reason"]) == (
        a.phenotype.phenotype,
        a.phenotype.reason,
    )
    return a.phenotype.phenotype, a.phenotype.reason


@pytest.mark.parametrize(("anc", "quick"), [(1000.0, False), (1001.0, True)])
def test_never_severe_but_persisting_neutropenia_is_not_quick(anc: float, quick: bool) -> None:
    phenotype, reason = _phenotype(daily(0, 40, anc))
    if quick:
        assert phenotype == "quick"
    else:
        assert phenotype is None
        assert reason is not None and "day 22" in reason and "not a quick recovery" in reason


@pytest.mark.parametrize(("last_low_day", "quick"), [(21, True), (22, False)])
def test_neutropenia_counts_only_after_day_21(last_low_day: int, quick: bool) -> None:
    labs = [*daily(0, last_low_day, 800), *daily(last_low_day + 1, 40, 1800)]
    phenotype, _ = _phenotype(labs)
    assert (phenotype == "quick") is quick


@pytest.mark.parametrize(("gcsf_day", "response", "quick"), [(2, False, False), (4, True, True)])
def test_recovery_after_refractory_gcsf_is_not_quick(
    gcsf_day: int, response: bool, quick: bool
) -> None:
    # ANC <= 500 on days 0-9 (10 days: not aplastic), then 1800; G-CSF from day 2 sees no ANC
    # > 500 in its 7-day window (refractory), from day 4 it does (day 10: responded)
    labs = [*daily(0, 9, 300), *daily(10, 40, 1800)]
    events = [{"type": "medication", "drug": "filgrastim", "start_day": gcsf_day, "end_day": 12}]
    a, _ = both(course(labs, events=events))
    assert (a.gcsf.response == "responded") is response
    assert (a.phenotype.phenotype == "quick") is quick
    if not quick:
        assert a.phenotype.reason is not None and "no response to G-CSF" in a.phenotype.reason


def test_intermittent_and_aplastic_are_unchanged() -> None:
    intermittent = [*daily(0, 5, 300), *daily(6, 24, 1800), (25, 900), *daily(26, 40, 1800)]
    assert _phenotype(intermittent)[0] == "intermittent"
    assert _phenotype([*daily(0, 13, 200), *daily(14, 40, 1800)])[0] == "aplastic"
