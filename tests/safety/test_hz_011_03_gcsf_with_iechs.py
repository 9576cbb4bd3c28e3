"""HZ-011-03: G-CSF suggested next to suspected IEC-HS without a caveat (review ref 17)."""

from __future__ import annotations

from cart_cytopenia.guidance import evaluate
from tests.guidance.builders import counts, course, crs, fever, med, series


def _neutropenic(ferritin: float, gcsf: bool = False):
    labs = counts(range(0, 13), anc=lambda d: 3000 if d < 8 else 300)
    labs += series("ferritin", [3, 9, 12], lambda d: {3: 1500, 9: 2500}.get(d, ferritin))
    events = [crs(1, 4), fever(11, 39.0)] + ([med("filgrastim", 10)] if gcsf else [])
    return course(labs, events)


def test_gcsf_reads_use_with_caution_when_iechs_is_suspected() -> None:
    item = evaluate(_neutropenic(30000), 12).item("management.gcsf.start")
    assert item is not None and item.urgency == "warning"
    assert "caution" in item.summary and "ref 17" in item.rationale
    assert "ref 17" in item.citation


def test_gcsf_plain_without_iechs() -> None:
    item = evaluate(_neutropenic(1800), 12).item("management.gcsf.start")
    assert item is not None and "caution" not in item.summary and item.urgency != "warning"


def test_gcsf_running_during_suspected_iechs_is_alerted() -> None:
    assert "alert.gcsf-during-iec-hs" in evaluate(_neutropenic(30000, gcsf=True), 12).ids()
    assert "alert.gcsf-during-iec-hs" not in evaluate(_neutropenic(1800, gcsf=True), 12).ids()
