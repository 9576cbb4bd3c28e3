"""The app registered with a test EHR (tests/smart/ehr.py), for the SMART launch hazards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.smart.conftest import Launchable, make_launchable


@pytest.fixture
def launchable(tmp_path: Path) -> Iterator[Launchable]:
    yield from make_launchable(tmp_path)
