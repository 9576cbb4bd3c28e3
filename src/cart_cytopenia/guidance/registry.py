"""The registry tying each recommendation of ``tables/recommendations.toml`` to its rule.

A rule is a small function ``(ctx: Context) -> Triggered | None`` registered under the
recommendation's id with ``@rule("management.gcsf.start")``. It returns ``None`` when its
trigger does not hold, or a ``Triggered`` naming the patient data behind it (rationale, inputs)
and the values its summary template needs. Loading checks that every recommendation has exactly
one rule and every rule a recommendation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cart_cytopenia.errors import RuleTableError
from cart_cytopenia.guidance.context import Context
from cart_cytopenia.guidance.model import Urgency


@dataclass(frozen=True)
class Triggered:
    """A rule's answer when its trigger holds."""

    rationale: str
    inputs: dict[str, Any]
    values: dict[str, Any] = field(default_factory=dict)  # fill the summary template
    variant: str = "default"  # which summary template
    urgency: Urgency | None = None  # None: the recommendation's default
    weight: int | None = None  # differential items: ranking weight (higher = more likely)


Rule = Callable[[Context], Triggered | None]

RULES: dict[str, Rule] = {}


def rule(rec_id: str) -> Callable[[Rule], Rule]:
    """Register ``fn`` as the rule of recommendation ``rec_id``."""

    def register(fn: Rule) -> Rule:
        if rec_id in RULES:
            raise RuleTableError(f"two rules are registered for {rec_id}")
        RULES[rec_id] = fn
        return fn

    return register
