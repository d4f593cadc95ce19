"""Classroom checks in a real Chromium at projector size (1280x720).

The uncertainty map is read back from the rendered pixels (dark where the flips agree), the
uploads of the Segment page survive a trip to another page, and the Data, Augment, Evaluate and
Segment pages are photographed at 1280x720: with UNET_DEMO_UPDATE_DOCS=1 the shots replace
docs/images/screenshot_{data,augment,evaluate_gallery,segment_upload}.png.
"""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest

from tests.bad_files import png_bytes
from tests.browser.helpers import ARTIFACTS, REPO
from tests.browser.test_pages_browser import wait_for_app

pytestmark = pytest.mark.browser
PROJECTOR = {"width": 1280, "height": 720}


@pytest.fixture()
def projector(browser):
    context = browser.new_context(viewport=PROJECTOR)
    tab = context.new_page()
    yield tab
    context.close()


def _shot(tab, name: str) -> None:
    """A 1280x720 (viewport, not full page) screenshot; copied to docs/images on request."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    tab.mouse.move(2, PROJECTOR["height"] - 2)  # no hover toolbar in the shot
    tab.wait_for_timeout(300)
    tab.screenshot(path=str(path))
    if os.environ.get("UNET_DEMO_UPDATE_DOCS") == "1":
        shutil.copy(path, REPO / "docs" / "images" / f"screenshot_{name}.png")


def _scroll_to(tab, locator) -> None:
    locator.scroll_into_view_if_needed()
    locator.evaluate("e => e.scrollIntoView({block: 'start'})")
    tab.wait_for_timeout(600)


def _test_image_png() -> bytes:
    """A test image of the first bundled model's dataset, as a user would upload it."""
    from unet_demo.data.bundled import load_split
    from unet_demo.training.rundir import list_model_choices

    dataset = list_model_choices("bundled")[0][1].split(":", 1)[1]
    image = load_split(dataset, "test").images[0][..., 0]
    return png_bytes((np.clip(image, 0, 1) * 255).astype(np.uint8))


def test_data_and_augment_at_projector_size(app_server, projector):
    projector.goto(app_server + "/Data")
    wait_for_app(projector, ready_text="in train; pixels:")
    caption = projector.get_by_text("in train; pixels:").first.inner_text()
    slider = projector.locator("[data-testid='stSlider']").filter(has_text="Image").first
    shown = slider.locator("[data-testid='stSliderThumbValue']").inner_text()
    assert caption.startswith(f"Image {shown} of "), (shown, caption)
    _scroll_to(projector, projector.locator("[data-testid='stTabs']").first)
    _shot(projector, "data")
    projector.goto(app_server + "/Augment")
    wait_for_app(projector, ready_text="Download augmentation.py")
    _shot(projector, "augment")


def test_evaluate_gallery_and_uncertainty_colours(app_server, projector):
    from PIL import Image

    projector.goto(app_server + "/Evaluate")
    wait_for_app(projector, timeout_ms=240_000)
    projector.get_by_text("mean test Dice").first.wait_for(timeout=120_000)
    projector.get_by_role("tab", name="Gallery").click()
    row = projector.get_by_text("(test) — test Dice").first
    row.wait_for(timeout=60_000)
    _scroll_to(projector, projector.locator("[data-testid='stTabs']").first)
    _shot(projector, "evaluate_gallery")
    # Flip TTA on, Uncertainty tab: the map's corner (background, all flips agree) is dark.
    projector.get_by_text("Flip TTA").first.click()
    wait_for_app(projector, timeout_ms=240_000)
    projector.get_by_role("tab", name="Uncertainty").click()
    chart = projector.locator("[data-testid='stPlotlyChart']").filter(has_text="flip variance")
    chart.first.wait_for(timeout=120_000)
    _scroll_to(projector, chart.first)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    projector.screenshot(path=str(ARTIFACTS / "evaluate_uncertainty.png"))
    heatmap = chart.first.locator(".heatmaplayer image").first.bounding_box()
    picture = np.asarray(Image.open(io.BytesIO(projector.screenshot())).convert("RGB"), float)
    corner = picture[int(heatmap["y"]) + 3, int(heatmap["x"]) + 3]
    assert corner.mean() < 60, f"zero variance should be dark, got RGB {corner}"


def test_segment_uploads_survive_a_trip_to_another_page(app_server, projector, tmp_path):
    upload = tmp_path / "my_scan.png"
    upload.write_bytes(_test_image_png())
    projector.goto(app_server + "/Segment")
    wait_for_app(projector, timeout_ms=180_000)
    projector.locator("input[type='file']").first.set_input_files(str(upload))
    projector.locator("img[alt='overlay of my_scan.png']").wait_for(timeout=120_000)
    wait_for_app(projector, timeout_ms=120_000)
    projector.get_by_role("link", name="Learn").first.click()
    wait_for_app(projector)
    projector.get_by_role("link", name="Segment").first.click()
    wait_for_app(projector, timeout_ms=180_000)
    projector.get_by_text("Your uploads").first.wait_for(timeout=60_000)
    projector.locator("img[alt='overlay of my_scan.png']").wait_for(timeout=120_000)
    _scroll_to(projector, projector.get_by_text("Your uploads").first)
    _shot(projector, "segment_upload")
