"""Helpers shared by the browser tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "_artifacts" / "screenshots"


def save_screenshot(tab, name: str) -> Path:
    """Save a full-page screenshot under tests/_artifacts/screenshots/ and return its path.

    With UNET_DEMO_UPDATE_DOCS=1 the home page shot is also copied to docs/images/ for the README.
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    if os.environ.get("UNET_DEMO_UPDATE_DOCS") == "1":
        docs = REPO / "docs" / "images"
        docs.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, docs / f"screenshot_{name}.png")
    return path
