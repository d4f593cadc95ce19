"""Helpers shared by the browser tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
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


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(runs_dir: Path, bundled_models_dir: Path, log_path: Path) -> Iterator[str]:
    """Start `streamlit run streamlit_app.py` on a free loopback port; yield its base URL.

    Args:
        runs_dir: UNET_DEMO_RUNS_DIR for the server (training runs land there).
        bundled_models_dir: UNET_DEMO_BUNDLED_MODELS_DIR for the server.
        log_path: where the server's output goes (quoted in the error if it fails to start).

    Example:
        >>> with streamlit_server(tmp / "runs", REPO / "models" / "bundled", tmp / "log") as base:
        ...     urllib.request.urlopen(base + "/_stcore/health").status  # doctest: +SKIP
        200
    """
    port = free_port()
    env = dict(os.environ, UNET_DEMO_RUNS_DIR=str(runs_dir), PYTHONUNBUFFERED="1",
               UNET_DEMO_BUNDLED_MODELS_DIR=str(bundled_models_dir))
    log = open(log_path, "w")  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(
        [
            sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
            "--server.port", str(port), "--server.address", "127.0.0.1",
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
        ],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
            if process.poll() is not None:
                raise RuntimeError(f"streamlit exited early:\n{log_path.read_text()}")
        else:
            raise RuntimeError(f"streamlit did not become healthy:\n{log_path.read_text()}")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def sidebar_menu_labels(tab) -> list[str]:
    """The labels of the sidebar menu's links, top to bottom (icon names dropped).

    Each link reads "<icon name>\\n\\n<label>" with st.navigation icons, just "<label>" without.
    """
    nav = tab.locator("[data-testid='stSidebarNav']")
    return [text.strip().splitlines()[-1] for text in nav.locator("a").all_inner_texts()]
