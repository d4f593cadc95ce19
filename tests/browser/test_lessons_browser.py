"""The Lessons page in a real Chromium: four experiments replay (screenshots), the class plan
walks from its first step to its last, and a step's link opens its page."""

from __future__ import annotations

import pytest

from tests.browser.helpers import save_screenshot
from tests.browser.test_pages_browser import wait_for_app
from unet_demo.lessons.class_plan import CLASS_PLAN

pytestmark = pytest.mark.browser

SHOTS = ("skip_connections", "loss_imbalance", "image_only_bug", "mask_resize")


def _no_errors(page) -> None:
    exceptions = page.locator("[data-testid='stException']")
    assert exceptions.count() == 0, exceptions.first.inner_text()


def _full_height(page) -> None:
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1280, "height": min(max(int(height), 1000), 5000)})
    page.wait_for_timeout(1200)


@pytest.mark.parametrize("lesson", SHOTS)
def test_a_recorded_experiment_replays_in_the_browser(app_server, page, lesson):
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.goto(f"{app_server}/Lessons?lesson={lesson}")
    wait_for_app(page, timeout_ms=120_000, ready_text="Measured:")
    _no_errors(page)
    assert page.locator("[data-testid='stPlotlyChart']").count() == 1
    assert page.get_by_text("Replay", exact=False).count() > 0
    assert page.locator("[data-testid='stImage']").count() >= 2
    _full_height(page)
    save_screenshot(page, f"lessons_{lesson}")


def test_class_plan_walks_from_first_to_last_step(app_server, page):
    page.goto(f"{app_server}/Lessons")
    wait_for_app(page, timeout_ms=120_000, ready_text="Measured:")
    page.get_by_text("45-minute class plan", exact=False).first.click()
    for number, step in enumerate(CLASS_PLAN, 1):
        page.get_by_text(f"Step {number} of {len(CLASS_PLAN)}: {step.title}",
                         exact=False).first.wait_for(timeout=60_000)
        if number < len(CLASS_PLAN):
            wait_for_app(page)  # each click on a finished page: one step each
            page.get_by_role("button", name="Next").click()
    assert page.get_by_role("button", name="Next").is_disabled()
    page.get_by_text(f"Open step {len(CLASS_PLAN)}", exact=False).first.click()
    page.wait_for_url("**/Learn**", timeout=60_000)
    wait_for_app(page, timeout_ms=120_000)
    _no_errors(page)
