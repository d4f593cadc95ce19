"""Deep links as a fresh server's first request show the app's menu, not the pages/ folder's.

Streamlit 1.67 runs an app with a `pages/` folder next to its entrypoint in its legacy multipage
mode until some session calls `st.navigation`; before the fix, opening `/Segment` first after a
server start showed the auto-built menu ("streamlit app", no icons, no Home). The mode is
process-wide, so each link gets its own fresh server (about 20 s each, most of it TensorFlow).
"""

from __future__ import annotations

import pytest

from tests.browser.helpers import save_screenshot, sidebar_menu_labels, streamlit_server
from tests.browser.test_pages_browser import wait_for_app
from unet_demo.ui.common import MENU_LABELS

pytestmark = pytest.mark.browser

# (URL path, heading the page draws). Every page goes through the same `page_setup`, so the
# cases are the links people actually share: a lesson of the class plan, the training
# re-attach link and the Segment page (with a second student). A fresh server
# costs about 15-20 s on two cores, so the other pages are covered by the menu test of
# test_pages_browser.py on the shared server instead.
DEEP_LINKS = [
    ("/Lessons?lesson=skip_connections", "Lessons: experiments replayed"),
    ("/Train?run=nonexistent", "Train a U-Net"),
    ("/Segment", "Segment your own image"),
]


def check_menu(tab, path: str, heading: str) -> None:
    """The tab shows the page of `path` with the st.navigation menu (Home and every label)."""
    wait_for_app(tab)
    labels = sidebar_menu_labels(tab)
    assert labels == list(MENU_LABELS), f"{path}: sidebar menu is {labels}"
    assert "streamlit app" not in labels
    assert tab.url.split("?")[0].endswith(path.split("?")[0]), f"{path}: landed on {tab.url}"
    tab.get_by_role("heading", name=heading).first.wait_for(timeout=30_000)
    assert tab.get_by_text("Page not found", exact=False).count() == 0
    assert tab.locator("[data-testid='stException']").count() == 0


def _name(path: str) -> str:
    return "deeplink_" + path.strip("/").replace("?", "_").replace("=", "_")


@pytest.mark.parametrize(("path", "heading"), DEEP_LINKS, ids=[p for p, _ in DEEP_LINKS])
def test_deep_link_first_request_shows_the_app_menu(
        tmp_path, bundled_models_dir, browser, path, heading):
    with streamlit_server(tmp_path / "runs", bundled_models_dir, tmp_path / "log.txt") as base:
        first = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            tab = first.new_page()
            tab.goto(base + path)  # the server's very first request
            check_menu(tab, path, heading)
            save_screenshot(tab, _name(path))
            if path == "/Segment":
                # Another student opens the same link while the first one is still connected.
                second = browser.new_context(viewport={"width": 1400, "height": 1000})
                try:
                    other = second.new_page()
                    other.goto(base + path)
                    check_menu(other, path, heading)
                    save_screenshot(other, _name(path) + "_second_student")
                finally:
                    second.close()
        finally:
            first.close()
