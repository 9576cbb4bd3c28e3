"""HZ-009: patient data written to logs (the guidance engine and CLI log no identifiers or values)."""

from __future__ import annotations

import logging

import pytest

from cart_cytopenia.guidance import evaluate, replay
from tests.guidance.builders import counts, course


def test_evaluation_logs_nothing_about_the_patient(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    c = course(counts(range(0, 31, 3), anc=321, hb=6.7), id="PSEUDO-7781")
    evaluate(c, 30)
    replay(c)
    text = caplog.text
    assert "PSEUDO-7781" not in text and "321" not in text
