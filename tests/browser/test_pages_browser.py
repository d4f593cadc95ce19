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
    ("export", "/Export"),
]


# Text that appears only when a page has drawn its last section.
READY_TEXT = {
    "home": "Where to go next",
    "data": "in train; pixels:",
    "augment": "Download augmentation.py",
    "build": "Load notebook into the builder",
    "export": "Convert and measure every format",
}


def wait_for_app(tab, timeout_ms: int = 90_000, ready_text: str | None = None) -> None:
    """Wait until the script finished running, no placeholder skeletons remain, content shows."""
    tab.wait_for_selector("[data-testid='stMain']", timeout=timeout_ms)
    tab.get_by_text("not for diagnosis", exact=False).first.wait_for(timeout=timeout_ms)
    if ready_text:
        tab.get_by_text(ready_text, exact=False).first.wait_for(timeout=timeout_ms)
    tab.wait_for_function(
        "() => {"
        " const app = document.querySelector('[data-testid=\"stApp\"]');"
        " const state = app && app.getAttribute('data-test-script-state');"
        " const status = document.querySelector('[data-testid=\"stStatusWidget\"]');"
        " return state === 'notRunning'"
        "   && !document.querySelector('[data-testid=\"stSkeleton\"]')"
        "   && (!status || !status.innerText.includes('Running'));"
        "}",
        timeout=timeout_ms,
    )
    tab.wait_for_timeout(800)


@pytest.mark.parametrize(("name", "path"), PAGES)
def test_page_renders_without_error(app_server, page, name, path):
    page.goto(app_server + path)
    wait_for_app(page, ready_text=READY_TEXT.get(name))
    exceptions = page.locator("[data-testid='stException']")
    assert exceptions.count() == 0, exceptions.first.inner_text()
    errors = page.locator("[data-testid='stAlertContentError']")
    assert errors.count() == 0, errors.first.inner_text()
    # The app scrolls inside its main container: grow the window to show the whole page.
    height = page.evaluate(
        "() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(max(int(height), 1000), 4000)})
    page.wait_for_timeout(800)
    save_screenshot(page, name)


def test_sidebar_menu_names_every_page_and_its_links_work(app_server, page):
    page.goto(app_server + "/")
    wait_for_app(page, ready_text=READY_TEXT["home"])
    nav = page.locator("[data-testid='stSidebarNav']")
    # Each link reads "<icon name>\n\n<label>": keep the label.
    labels = [text.strip().splitlines()[-1] for text in nav.locator("a").all_inner_texts()]
    assert labels == ["Home", "Data", "Augment", "Build", "Train", "Evaluate", "Segment", "Learn",
                      "Inside", "Lessons", "Export"]
    nav.get_by_text("Learn", exact=True).click()
    page.wait_for_url("**/Learn")
    page.get_by_text("Learn U-Net", exact=False).first.wait_for(timeout=60_000)
