"""The triggers, one per recommendation, grouped by topic. Importing this package registers them."""

from cart_cytopenia.guidance.recommendations import (
    alerts,
    differential,
    growth_factors,
    iec_hs,
    immunoglobulin,
    marrow_failure,
    prophylaxis,
    tpo_ra,
    transfusion,
    workup,
)

__all__ = [
    "alerts",
    "differential",
    "growth_factors",
    "iec_hs",
    "immunoglobulin",
    "marrow_failure",
    "prophylaxis",
    "tpo_ra",
    "transfusion",
    "workup",
]
