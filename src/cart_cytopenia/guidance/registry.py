"""The registry tying each recommendation of ``tables/recommendations.toml`` to its trigger.

A trigger is a small function ``(ctx: Context) -> Triggered | None`` registered under the
recommendation's id with ``@trigger("management.gcsf.start")``. It returns ``None`` when its
trigger does not hold, or a ``Triggered`` naming the patient data behind it (rationale, inputs)
and the values its summary template needs. Loading checks that every recommendation has exactly
one trigger and every trigger a recommendation. (The cited grading tables are the "rules";
the functions here decide when a recommendation applies.)
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
    """A trigger's answer when it holds."""

    rationale: str
    inputs: dict[str, Any]
    values: dict[str, Any] = field(default_factory=dict)  # fill the summary template
    variant: str = "default"  # which summary template
    urgency: Urgency | None = None  # None: the recommendation's default
    weight: int | None = None  # differential items: ranking weight (higher = more likely)


Trigger = Callable[[Context], Triggered | None]

TRIGGERS: dict[str, Trigger] = {}


def trigger(rec_id: str) -> Callable[[Trigger], Trigger]:
    """Register ``fn`` as the trigger of recommendation ``rec_id``."""

    def register(fn: Trigger) -> Trigger:
        if rec_id in TRIGGERS:
            raise RuleTableError(f"two triggers are registered for {rec_id}")
        TRIGGERS[rec_id] = fn
        return fn

    return register
