"""Open every page in a real Chromium against a live server: no error box, disclaimer shown."""

from __future__ import annotations

import pytest

from tests.browser.helpers import save_screenshot

pytestmark = pytest.mark.browser

PAGES = [
    ("home", "/"),
    ("data", "/Data"),
    ("augment", "/Augment"),
    ("build", "/Build"),
    ("learn", "/Learn"),
]


def wait_for_app(tab, timeout_ms: int = 90_000) -> None:
    """Wait until the script finished running (no 'running' status widget) and content shows."""
    tab.wait_for_selector("[data-testid='stMain']", timeout=timeout_ms)
    tab.get_by_text("not for diagnosis", exact=False).first.wait_for(timeout=timeout_ms)
    tab.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')",
        timeout=timeout_ms,
    )
    tab.wait_for_timeout(500)


@pytest.mark.parametrize(("name", "path"), PAGES)
def test_page_renders_without_error(app_server, page, name, path):
    page.goto(app_server + path)
    wait_for_app(page)
    exceptions = page.locator("[data-testid='stException']")
    assert exceptions.count() == 0, exceptions.first.inner_text()
    errors = page.locator("[data-testid='stAlertContentError']")
    assert errors.count() == 0, errors.first.inner_text()
    save_screenshot(page, name)
