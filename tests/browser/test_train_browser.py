"""Train page in a real Chromium: start a small run, watch the curve grow, stop it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.browser.helpers import save_screenshot
from tests.browser.test_pages_browser import wait_for_app

pytestmark = pytest.mark.browser

CURVE_POINTS_JS = """() => {
    const plots = document.querySelectorAll('.js-plotly-plot');
    if (!plots.length || !plots[0].data || !plots[0].data.length) return 0;
    return plots[0].data[0].x.length;
}"""


def _wait_for_one_field(tab, label: str, timeout_ms: int = 60_000) -> None:
    """Wait until the app is idle and exactly one input carries `label`.

    A rerun that shifts the page (a changed dataset adds or drops elements above the form)
    draws the new field before it removes the old, stale one; typing into either then is a
    race. The check can also pass before a just-clicked rerun has started, hence the idle
    test together with the count.
    """
    tab.wait_for_function(
        "(label) => {"
        " const app = document.querySelector('[data-testid=\"stApp\"]');"
        " const idle = app && app.getAttribute('data-test-script-state') === 'notRunning';"
        " const fields = [...document.querySelectorAll('input')]"
        "   .filter(field => field.getAttribute('aria-label') === label);"
        " return idle && fields.length === 1;"
        "}",
        arg=label, timeout=timeout_ms)


def _set_number(tab, label: str, value: int) -> None:
    """Type `value` into a number input and wait until the app's rerun kept it.

    On a loaded server a rerun started by the previous field can redraw this one after the
    fill; the value is typed again then (at most three times) rather than lost.
    """
    for _ in range(3):
        _wait_for_one_field(tab, label)
        field = tab.get_by_label(label, exact=True)
        try:
            field.fill(str(value))
            field.press("Enter")
        except PlaywrightError as error:  # a rerun began after the wait and drew a twin
            if "strict mode violation" not in str(error):
                raise
            continue
        tab.wait_for_timeout(400)
        wait_for_app(tab)
        if tab.get_by_label(label, exact=True).input_value() == str(value):
            return
    raise AssertionError(f"{label!r} did not keep {value}: "
                         f"{tab.get_by_label(label, exact=True).input_value()!r}")


def test_start_watch_the_curve_grow_and_stop(app_server, page):
    page.goto(app_server + "/Train")
    wait_for_app(page)
    # Small and fast: few images per epoch, many epochs so it is still running when we stop.
    page.locator("[data-testid='stSelectbox']").filter(has_text="Dataset").first.click()
    page.get_by_role("option").filter(has_text="synthetic_lesions").first.click()
    wait_for_app(page)
    _set_number(page, "Training images (0 = all)", 8)
    _set_number(page, "Epochs", 40)
    _set_number(page, "Batch size", 4)
    wait_for_app(page)
    for label in ("Training images (0 = all)", "Epochs", "Batch size"):
        _wait_for_one_field(page, label)
    # Every value is still in the form when Start is pressed (none lost to a late rerun).
    assert [page.get_by_label(label, exact=True).input_value() for label in
            ("Training images (0 = all)", "Epochs", "Batch size")] == ["8", "40", "4"]
    page.get_by_role("button", name="Start training").click()
    # Started at once, or queued behind a run another test left on this shared server.
    page.get_by_text(re.compile("Started run|Queued run")).first.wait_for(timeout=60_000)
    # Start must turn disabled. One CI run found it still enabled right after the notice (not
    # reproduced here, 6 runs, 3 of them under extra CPU load), so wait for it; a run that
    # failed at once would leave Start enabled for good, and the page text then says why.
    try:
        page.wait_for_function(
            "() => [...document.querySelectorAll('button')].some(b => "
            "b.innerText.includes('Start training') && b.disabled)", timeout=30_000)
    except PlaywrightError:
        save_screenshot(page, "train_start_not_disabled")
        raise AssertionError("Start training stayed enabled after the run started; the page "
                             f"says:\n{page.inner_text('body')[:3000]}") from None
    assert page.get_by_role("button", name="Start training").is_disabled()
    # The run id is in the URL at once, and again after a round trip through another page
    # (Streamlit clears the query string on a page switch); the form keeps its values.
    page.wait_for_function("() => location.search.includes('run=')", timeout=15_000)
    run_query = page.evaluate("() => location.search")
    page.locator("[data-testid='stSidebarNav'] a").filter(has_text="Data").first.click()
    wait_for_app(page)
    page.locator("[data-testid='stSidebarNav'] a").filter(has_text="Train").first.click()
    wait_for_app(page)
    page.wait_for_function(f"() => location.search === {run_query!r}", timeout=15_000)
    assert page.get_by_label("Epochs", exact=True).input_value() == "40"
    page.reload()
    wait_for_app(page)
    page.get_by_role("button", name="Stop", exact=True).wait_for(timeout=240_000)
    # The live run reappeared, and the reload kept ownership (the owner cookie; the URL
    # holds only the run id).
    assert page.get_by_role("button", name="Stop").is_enabled()
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    assert "unet_demo_owner" in cookies and cookies["unet_demo_owner"] not in page.url
    # Another browser opens the same link: it watches read-only and cannot stop the run.
    # The owner's address carries the settings link next to the run id (both are rewritten
    # by the page's script after a reload; wait for them rather than catch them mid-update).
    page.wait_for_function("() => location.search.includes('x=') && "
                           "location.search.includes('run=')", timeout=30_000)
    other = page.context.browser.new_context()
    try:
        watcher = other.new_page()
        watcher.goto(page.url)
        wait_for_app(watcher)
        watcher.get_by_text("someone else's run (read-only)", exact=False).wait_for(
            timeout=30_000)
        stop = watcher.get_by_role("button", name="Stop", exact=True).all()
        assert stop and all(button.is_disabled() for button in stop)
        # The link carried the owner's settings too (the form shows what the run trains).
        epochs = watcher.get_by_label("Epochs", exact=True).first.input_value()
        assert epochs == "40", epochs
        assert watcher.get_by_role("button", name="Start training").first.is_enabled()
        save_screenshot(watcher, "train_watching_read_only")
    finally:
        other.close()

    page.wait_for_function(f"({CURVE_POINTS_JS})() >= 1", timeout=240_000)
    first = page.evaluate(CURVE_POINTS_JS)
    page.wait_for_function(f"({CURVE_POINTS_JS})() > {first}", timeout=120_000)
    assert page.get_by_text("images/s", exact=False).count() >= 1  # live progress line
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    save_screenshot(page, "train_running")

    page.get_by_role("button", name="Stop").click()
    page.get_by_text("Stopped during epoch", exact=False).wait_for(timeout=60_000)
    wait_for_app(page)
    # The live panel shows the Stopped event first, then reruns the whole page, which enables
    # Start again; on a loaded machine that second rerun can come a few seconds later.
    start = page.get_by_role("button", name="Start training")
    page.wait_for_function(
        "() => [...document.querySelectorAll('button')].some(b => "
        "b.innerText.includes('Start training') && !b.disabled)", timeout=30_000)
    assert start.is_enabled()
    # The runs list (picker and A/B chips) names the run with its status.
    listed = ("() => document.body.innerText.includes('· stopped') || [...document"
              ".querySelectorAll('input')].some(field => field.value.includes('· stopped'))")
    try:
        page.wait_for_function(listed, timeout=30_000)
    except Exception:
        save_screenshot(page, "train_stopped_not_listed")
        values = page.evaluate("() => [...document.querySelectorAll('input')].map(f => f.value)")
        pytest.fail(f"run not listed as stopped; inputs: {values}\n"
                    f"{page.inner_text('[data-testid=stMain]')[-1500:]}")
    page.get_by_text("Stopped during epoch", exact=False).scroll_into_view_if_needed()
    assert page.locator("[data-testid='stException']").count() == 0
    save_screenshot(page, "train_stopped")
