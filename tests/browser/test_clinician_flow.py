"""A clinician's morning in a real browser: sign in, worklist, patient, acknowledge, bad CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import PASSWORD, Service

pytestmark = pytest.mark.browser


def _sign_in(page: Any, base: str, user: str = "cleo") -> None:
    page.goto(base + "/worklist")
    assert "/login" in page.url  # not signed in: sent to the sign-in page
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/worklist")


def test_morning_round(live: tuple[str, Service], browser: Any, tmp_path: Path) -> None:
    base, _svc = live
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    _sign_in(page, base)

    # worklist: every active patient, with what to decide today and why
    rows = page.locator("table#worklist tbody tr")
    assert rows.count() == 2
    row = rows.filter(has_text="wl-neutropenic")
    assert "consider G-CSF" in row.inner_text()

    # open the patient
    row.locator("a.pid").click()
    page.wait_for_url("**/patients/*")
    assert page.locator("h1").first.inner_text().startswith("Patient wl-neutropenic")
    assert page.locator("svg.timeline").count() == 1
    item = page.locator('article[data-item="management.gcsf.start"]')
    assert item.count() == 1

    summary = item.locator(".sum").inner_text()

    # acknowledge the G-CSF item with a reason
    item.locator("input[name=reason]").fill("filgrastim 480 ug daily started")
    item.locator("button[value=acknowledge]").click()
    page.wait_for_load_state()
    item = page.locator('article[data-item="management.gcsf.start"]')
    assert "Acknowledged by cleo" in item.inner_text()
    assert "filgrastim 480 ug daily started" in item.inner_text()

    # upload a bad lab CSV and see the errors; nothing saved
    page.click("text=Upload lab CSV")
    bad = tmp_path / "labs.csv"
    bad.write_text("day,analyte,value,unit\n11,anc,410,/uL\n12,anc,lots,/uL\n")
    page.set_input_files("input[name=file]", str(bad))
    page.click("button:has-text('Upload')")
    errors = page.locator("#upload-errors")
    errors.wait_for()
    text = errors.inner_text()
    assert "Nothing was saved" in text
    assert "row 3" in text
    assert "'lots' is not a number" in text

    # back on the worklist the acknowledged item is no longer open
    page.goto(base + "/worklist")
    row = page.locator("table#worklist tbody tr").filter(has_text="wl-neutropenic")
    assert summary not in row.inner_text()
    page.close()


def test_choosing_an_event_kind_shows_its_form(live: tuple[str, Service], browser: Any) -> None:
    base, _svc = live
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    _sign_in(page, base)
    page.locator("a.pid").first.click()
    page.wait_for_url("**/patients/*")
    page.click("text=Add event")
    page.wait_for_url("**/events/new*")
    # the script hides the fallback button and shows the form as soon as a kind is chosen
    assert not page.locator("button:has-text('Show form')").is_visible()
    page.select_option("select[name=type]", index=1)
    page.wait_for_url("**/events/new?type=*")
    assert page.locator("form.stack button:has-text('Save')").count() == 1
    page.close()


def test_read_only_user_sees_no_forms(live: tuple[str, Service], browser: Any) -> None:
    base, _svc = live
    page = browser.new_page()
    _sign_in(page, base, "rita")
    page.locator("a.pid").first.click()
    page.wait_for_url("**/patients/*")
    assert page.locator("form.ack").count() == 0
    assert page.locator("text=Add lab result").count() == 0
    page.close()


def test_patient_search_filters_rows_without_putting_the_pseudonym_in_a_url(
    live: tuple[str, Service], browser: Any
) -> None:
    base, _svc = live
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    _sign_in(page, base, "rita")
    rows = page.locator("table#worklist tbody tr")
    n_all = rows.count()
    assert n_all >= 2
    # typing filters the rows at once, in the page (no request)
    page.fill("#patient-search input[name=q]", "neutro")
    visible = page.locator("table#worklist tbody tr:not([hidden])")
    assert visible.count() == 1 and "wl-neutropenic" in visible.inner_text()
    # "Find" posts the search: the list comes back filtered, the address has no pseudonym
    page.click("#patient-search button[type=submit]")
    page.wait_for_load_state()
    assert rows.count() == 1 and "wl-neutropenic" in rows.inner_text()
    assert "neutro" not in page.url.lower()
    page.click("text=Clear")
    page.wait_for_url("**/worklist")
    assert page.locator("table#worklist tbody tr").count() == n_all
    page.close()
