"""Fixtures for real-browser tests: a live Streamlit server and Playwright on the system Chromium.

Chromium comes from Debian (`apt-get install chromium`, done by `.ci/run`); Playwright's own
browser download does not work offline, so we point it at /usr/bin/chromium.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.browser.helpers import streamlit_server

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _chromium_path() -> str | None:
    for candidate in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.path.exists(candidate):
            return candidate
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = _chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI: .ci/run should have installed Debian 'chromium'.")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    return path


@pytest.fixture(scope="session")
def bundled_models_dir(tmp_path_factory) -> Path:
    """Bundled-models folder for the server: UNET_DEMO_BUNDLED_MODELS_DIR if set, else the real
    models/bundled when it holds a model, else a small U-Net trained now on the synthetic
    lesions (tests/tiny_model.py; good enough to draw a visible mask)."""
    configured = os.environ.get("UNET_DEMO_BUNDLED_MODELS_DIR")
    if configured:
        return Path(configured)
    real = REPO / "models" / "bundled"
    if any(real.glob("*/model.keras")):
        return real
    from tests.tiny_model import make_tiny_bundled_model

    return make_tiny_bundled_model(tmp_path_factory.mktemp("browser_models"), epochs=5,
                                   base_filters=8, num_images=0)


@pytest.fixture(scope="session")
def app_server(tmp_path_factory, bundled_models_dir) -> str:
    """Start `streamlit run streamlit_app.py` on a free loopback port; yield its base URL."""
    runs_dir = tmp_path_factory.mktemp("browser_runs")
    log_path = tmp_path_factory.mktemp("server") / "streamlit.log"
    with streamlit_server(runs_dir, bundled_models_dir, log_path) as base:
        yield base


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    yield tab
    context.close()
