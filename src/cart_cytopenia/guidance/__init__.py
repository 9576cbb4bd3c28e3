"""The guidance engine: the review's workup and management approach, day by day, with sources.

    from cart_cytopenia.guidance import evaluate, replay, catalogue
    g = evaluate(course, day=60)          # Guidance: differential, workup, management, ...
    r = replay(course)                    # when each item first appeared and cleared
    specs = catalogue()                   # every recommendation with quote, evidence, citation

Each recommendation of Jain, Olson, Locke (Blood 2023) is one entry of
``tables/recommendations.toml`` (the quoted text, evidence, citation, summary templates) and one
small trigger in ``recommendations/`` over named predicates (``context.Context``); numbers live in
``tables/thresholds.toml`` or the institutional settings. See docs/guidance.md.
"""

from cart_cytopenia.guidance.engine import (
    catalogue,
    evaluate,
    evaluate_assessed,
    evaluate_many,
    replay,
)
from cart_cytopenia.guidance.model import (
    CalendarEntry,
    Guidance,
    GuidanceItem,
    RecommendationSpec,
    Replay,
    ReplayDay,
    ReplayEpisode,
    ReplayItem,
)

__all__ = [
    "CalendarEntry",
    "Guidance",
    "GuidanceItem",
    "RecommendationSpec",
    "Replay",
    "ReplayDay",
    "ReplayEpisode",
    "ReplayItem",
    "catalogue",
    "evaluate",
    "evaluate_assessed",
    "evaluate_many",
    "replay",
]
