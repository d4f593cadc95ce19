"""Cold start of the app: from `streamlit run` to the first paint of the home page in Chromium.

The browser is started first (it is not part of the app's start); then the clock starts with the
server process, and stops when the home page shows its disclaimer text, which is drawn by the
page script itself (so the script has run, not only the static shell). Repeated `--runs` times,
each with a fresh server process.

Example:
    .venv/bin/python benchmarks/app_start.py --runs 3
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, save_result  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, runs_dir: str) -> subprocess.Popen:
    """Start `streamlit run streamlit_app.py` headless on the given port."""
    env = dict(os.environ, UNET_DEMO_RUNS_DIR=runs_dir)
    return subprocess.Popen(
        [
            sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
            "--server.address", "127.0.0.1", "--server.headless", "true",
            "--browser.gatherUsageStats", "false",
        ],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def wait_healthy(base: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Poll /_stcore/health until the server answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("streamlit exited before it became healthy")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("streamlit did not become healthy in time")


def measure_once(browser) -> dict:
    """One cold start: seconds to a healthy server and to the first painted home page."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as runs_dir:
        start = time.perf_counter()
        process = start_server(port, runs_dir)
        try:
            wait_healthy(base, process)
            healthy = time.perf_counter() - start
            page = browser.new_page()
            page.goto(base)
            page.get_by_text("not for diagnosis", exact=False).first.wait_for(timeout=60_000)
            painted = time.perf_counter() - start
            page.close()
        finally:
            process.terminate()
            process.wait(timeout=20)
    return {"server_healthy_s": healthy, "first_paint_s": painted}


def main(argv: list[str] | None = None) -> dict:
    """Measure, print and save the cold-start figures; return them."""
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        runs = [measure_once(browser) for _ in range(args.runs)]
        browser.close()
    result = {
        "runs": runs,
        "median_first_paint_s": statistics.median(r["first_paint_s"] for r in runs),
        "median_server_healthy_s": statistics.median(r["server_healthy_s"] for r in runs),
    }
    print(
        f"app cold start: server healthy {result['median_server_healthy_s']:.2f} s, "
        f"home page painted {result['median_first_paint_s']:.2f} s (median of {args.runs})"
    )
    save_result("app_start", result)
    return result


if __name__ == "__main__":
    main()
