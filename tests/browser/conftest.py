"""Browser tests: the app served by uvicorn on loopback, driven by Debian's Chromium through
Playwright (headless). Chromium comes from the system (``apt-get install chromium``, done by
``.ci/run``), never from ``playwright install``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live_server import serve
from tests.service.conftest import Service, make_service

CHROMIUM = Path(os.environ.get("CART_CYTOPENIA_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, Service]]:
    svc = make_service(tmp_path)
    with serve(svc.app) as base:
        yield base, svc
    svc.db.dispose()


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield b
        b.close()
