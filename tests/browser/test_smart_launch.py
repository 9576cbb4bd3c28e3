"""SMART on FHIR EHR launch in a real browser: the EHR opens cart-cytopenia on a patient who is
not in the store; sign in, the EHR's authorization (test EHR on 127.0.0.1, tests/smart/ehr.py),
the patient page with guidance, then save it.

``CART_CYTOPENIA_SCREENSHOTS=docs/screenshots`` also writes the page's screenshot there
(docs/screenshots/smart-launch.png)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live_server import free_port, serve
from tests.service.conftest import PASSWORD
from tests.smart.conftest import Launchable, make_launchable

pytestmark = pytest.mark.browser


@pytest.fixture
def live_smart(tmp_path: Path) -> Iterator[tuple[str, Launchable]]:
    port = free_port()
    for launchable in make_launchable(tmp_path, app_port=port):
        with serve(launchable.svc.app, port=port) as base:
            yield base, launchable


def test_ehr_launch_to_patient_page_with_guidance(
    live_smart: tuple[str, Launchable], browser: Any, tmp_path: Path
) -> None:
    base, launchable = live_smart
    page = browser.new_page(viewport={"width": 1400, "height": 1750})
    # the clinician opens cart-cytopenia from the EHR's chart (EHR launch)
    page.goto(base + launchable.launch_url())
    page.wait_for_url("**/login?next=*")
    page.fill("input[name=username]", "cleo")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    # launch -> EHR authorization -> callback -> the EHR patient's page
    page.wait_for_url("**/smart/patients/*")
    assert page.locator("h1").first.inner_text().startswith("Patient ehr-4711")
    assert "not stored" in page.locator("#ehr-source").inner_text()
    assert page.locator("svg.timeline").count() == 1
    item = page.locator('article[data-item="management.gcsf.start"]')
    assert item.count() == 1
    assert "G-CSF" in item.inner_text()
    shot = tmp_path / "smart-launch.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 20_000
    target = os.environ.get("CART_CYTOPENIA_SCREENSHOTS")
    if target:
        page.screenshot(path=str(Path(target) / "smart-launch.png"))

    # save it: the stored patient's page, with guidance that can now be acknowledged
    page.click("button:has-text('Save to cart-cytopenia')")
    page.wait_for_url("**/patients/*?course=*")
    assert "Saved the EHR course of ehr-4711" in page.locator(".flash").inner_text()
    stored = page.locator('article[data-item="management.gcsf.start"]')
    assert stored.locator("button[value=acknowledge]").count() == 1
    page.close()
