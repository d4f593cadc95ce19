"""The Inside page in a real Chromium: every tab draws without an error box; screenshots."""

from __future__ import annotations

import pytest

from tests.browser.helpers import save_screenshot
from tests.browser.test_pages_browser import wait_for_app

pytestmark = pytest.mark.browser

TABS = ("Feature maps", "Receptive field", "Skip ablation", "Loss maps")


def _no_errors(page) -> None:
    exceptions = page.locator("[data-testid='stException']")
    assert exceptions.count() == 0, exceptions.first.inner_text()
    errors = page.locator("[data-testid='stAlertContentError']")
    assert errors.count() == 0, errors.first.inner_text()


def test_inside_page_tabs_for_the_skull_strip_model(app_server, page):
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.goto(app_server + "/Inside")
    wait_for_app(page, timeout_ms=180_000, ready_text="Down the U: the encoder")
    _no_errors(page)
    assert page.get_by_text("Brain extraction", exact=False).count() > 0
    for tab in TABS:
        page.get_by_role("tab", name=tab).click()
        page.wait_for_timeout(1500)
        _no_errors(page)
        height = page.evaluate(
            "() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": 1280, "height": min(max(int(height), 1000), 6000)})
        page.wait_for_timeout(800)
        save_screenshot(page, "inside_" + tab.lower().replace(" ", "_"))
        page.set_viewport_size({"width": 1280, "height": 1000})
