"""Load test: many browser sessions segment the same image on one real Streamlit server.

Starts ``streamlit run streamlit_app.py`` on a free loopback port (as the browser tests do),
then drives Chromium (Debian's /usr/bin/chromium through Playwright, one browser context per
session, i.e. separate cookies and Streamlit sessions):

1. one session alone: open the Segment page, upload the PNG, wait for the overlay, download
   the mask (the reference; it also loads the model into the server's shared cache);
2. ``--sessions`` sessions at once doing the same; every downloaded mask must be byte-identical
   to the reference, and to the mask the CLI (`python -m unet_demo predict`) writes;
3. optionally (``--train-sessions N``) N sessions press "Start training" on the Train page at
   once; at most the server's job cap may run, the others must see a "Busy" notice.

Prints p50/p95 response times (upload -> overlay on screen, and whole session) and writes
the figures to benchmarks/results/load_sessions.json. The machine is shared, so the times
are contended; the identical-mask check is the real pass/fail.

Example:
    .venv/bin/python benchmarks/load_sessions.py --sessions 20
    .venv/bin/python benchmarks/load_sessions.py --model-dir models/bundled --train-sessions 4
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
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
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    "--disable-dev-shm-usage",
]
ERROR_SELECTORS = "[data-testid='stException'], [data-testid='stAlertContentError']"


# ----------------------------------------------------------------------------- set-up


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_model_dir(model_dir: str | None, work: Path) -> tuple[Path, str]:
    """The bundled-models folder to serve, and a note on where it came from.

    Without ``--model-dir``, models/bundled is used when it holds a model; otherwise a tiny
    real U-Net is trained for a few seconds (tests/tiny_model.py) so the script always runs.
    """
    if model_dir:
        return Path(model_dir).resolve(), f"--model-dir {model_dir}"
    bundled = REPO / "models" / "bundled"
    if any(bundled.glob("*/model.keras")):
        return bundled, "models/bundled"
    from tests.tiny_model import make_tiny_bundled_model

    root = make_tiny_bundled_model(work / "models")
    return root, "tiny U-Net from tests/tiny_model.py (no bundled models installed yet)"


def first_model(model_dir: Path) -> tuple[str, dict]:
    """Name and card of the model the Segment page selects first (bundled models by name)."""
    for folder in sorted(p for p in model_dir.iterdir() if (p / "model.keras").is_file()):
        card_path = folder / "card.json"
        card = json.loads(card_path.read_text()) if card_path.is_file() else {}
        return folder.name, card
    raise SystemExit(f"No <name>/model.keras under {model_dir}.")


def prepare_image(image: str | None, dataset: str, work: Path) -> Path:
    """The PNG every session uploads: ``--image`` or test image 0 of the model's dataset."""
    if image:
        return Path(image).resolve()
    import numpy as np
    from PIL import Image

    from unet_demo.data.bundled import load_split

    pixels = np.asarray(load_split(dataset, "test").images[0], np.float32)
    array = np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)
    array = array[..., 0] if array.shape[-1] == 1 else array[..., :3]
    path = work / f"load_{dataset}.png"
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path


def cli_mask(model_dir: Path, model_name: str, image: Path, work: Path) -> bytes:
    """The mask the CLI writes for the same image and model (same engine, no browser)."""
    out = work / "cli_out"
    env = dict(os.environ, UNET_DEMO_BUNDLED_MODELS_DIR=str(model_dir))
    completed = subprocess.run(
        [sys.executable, "-m", "unet_demo", "predict", "--model", f"bundled:{model_name}",
         "--input", str(image), "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"CLI predict failed:\n{completed.stderr[-2000:]}")
    (mask,) = out.glob("*_mask.png")
    return mask.read_bytes()


class Server:
    """`streamlit run streamlit_app.py` on a free port with its own runs folder."""

    def __init__(self, model_dir: Path, work: Path, max_jobs: int | None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = work / "streamlit.log"
        self.runs_dir = work / "runs"
        env = dict(os.environ, UNET_DEMO_RUNS_DIR=str(self.runs_dir),
                   UNET_DEMO_BUNDLED_MODELS_DIR=str(model_dir), PYTHONUNBUFFERED="1")
        if max_jobs is not None:
            env["UNET_DEMO_MAX_JOBS"] = str(max_jobs)
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
             "--server.port", str(self.port), "--server.address", "127.0.0.1",
             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )

    def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"streamlit exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.base}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise SystemExit(f"streamlit did not become healthy:\n{self.log_path.read_text()[-3000:]}")

    def rss_mb(self) -> float:
        """Resident memory of the server process (MB)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def _cpu_seconds(pid: int, reaped_children: bool = False) -> float:
    """User+system CPU seconds of one process (0 when it is gone).

    With `reaped_children`, the CPU of its children that already exited is added (renderer
    processes of closed browser contexts).
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def tree_cpu_seconds(root: int, exclude: int | None = None) -> float:
    """CPU seconds of `root` and its living descendants (skipping the `exclude` subtree)."""
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        if pid == exclude:
            continue
        total += _cpu_seconds(pid, reaped_children=True)
        stack.extend(_children(pid))
    return total


def worker_pids(runs_dir: Path) -> list[int]:
    """Training worker processes whose run directory lies under `runs_dir`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "unet_demo.training.worker" in command and str(runs_dir) in command:
                pids.append(int(entry.name))
    return pids


async def wait_for_workers(runs_dir: Path, timeout: float) -> tuple[float, list[int]]:
    """Seconds until every training worker of this server exited, and any still left."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        left = worker_pids(runs_dir)
        if not left:
            return time.perf_counter() - start, []
        await asyncio.sleep(0.5)
    return time.perf_counter() - start, worker_pids(runs_dir)


# ---------------------------------------------------------------------------- sessions


async def wait_for_script(page, timeout_ms: int) -> None:
    """Wait until Streamlit shows the page content and is no longer running the script."""
    await page.wait_for_selector("[data-testid='stMain']", timeout=timeout_ms)
    await page.get_by_text("not for diagnosis", exact=False).first.wait_for(timeout=timeout_ms)
    await page.wait_for_function(
        "() => { const w = document.querySelector('[data-testid=\"stStatusWidget\"]');"
        " return !w || !w.innerText.includes('Running'); }",
        timeout=timeout_ms,
    )


async def segment_session(browser, base: str, image: Path, index: int, start: asyncio.Event,
                          timeout_ms: int) -> dict:
    """One user: open Segment, upload, wait for the overlay, download the mask."""
    context = await browser.new_context(viewport={"width": 1300, "height": 900},
                                        accept_downloads=True)
    page = await context.new_page()
    record: dict = {"session": index}
    try:
        await start.wait()
        t_open = time.perf_counter()
        await page.goto(f"{base}/Segment", timeout=timeout_ms)
        await page.wait_for_selector("[data-testid='stMain']", timeout=timeout_ms)
        t_shell = time.perf_counter()
        uploader = page.locator("[data-testid='stFileUploader'] input[type='file']")
        await uploader.wait_for(state="attached", timeout=timeout_ms)
        await wait_for_script(page, timeout_ms)
        t_upload = time.perf_counter()
        await uploader.set_input_files(str(image))
        overlay = page.locator(f"img[alt='overlay of {image.name}']")
        await overlay.wait_for(state="visible", timeout=timeout_ms)
        t_overlay = time.perf_counter()
        button = page.get_by_role("button", name="Mask (PNG)")
        await button.wait_for(timeout=timeout_ms)
        async with page.expect_download(timeout=timeout_ms) as download_info:
            await button.click()
        download = await download_info.value
        mask_path = await download.path()
        record["mask"] = Path(mask_path).read_bytes()
        t_done = time.perf_counter()
        errors = page.locator(ERROR_SELECTORS)
        record["errors"] = [await errors.nth(i).inner_text() for i in range(await errors.count())]
        record.update(shell_s=t_shell - t_open, page_ready_s=t_upload - t_open,
                      segment_s=t_overlay - t_upload, download_s=t_done - t_overlay,
                      session_s=t_done - t_open)
    except Exception as error:  # noqa: BLE001 - a failed session is a finding, not a crash
        record["failure"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
        shot = REPO / "benchmarks" / "results" / f"load_failure_{index}.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        try:
            await page.screenshot(path=str(shot), full_page=True)
            record["screenshot"] = str(shot)
        except Exception:  # noqa: BLE001
            pass
    finally:
        await context.close()
    return record


async def train_session(browser, base: str, index: int, start: asyncio.Event,
                        timeout_ms: int, ready: list[int], answered: list[int],
                        everyone: int, all_answered: asyncio.Event) -> dict:
    """One user presses "Start training" on the Train page; report what the page answers.

    A started run is stopped again only after every session has answered, so no slot frees
    up while others are still asking.
    """
    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    record: dict = {"session": index}
    try:
        await page.goto(f"{base}/Train", timeout=timeout_ms)
        await wait_for_script(page, timeout_ms)
        button = page.get_by_role("button", name="Start training")
        await button.wait_for(timeout=timeout_ms)
        ready.append(index)
        await start.wait()
        await button.click()
        # The page answers with a notice: "Started run <id>." or "Busy: <why>".
        busy = page.get_by_text("Busy:", exact=False)
        started = page.get_by_text("Started run", exact=False)
        deadline = time.perf_counter() + timeout_ms / 1000
        while time.perf_counter() < deadline:
            if await busy.count():
                record["answer"] = "busy"
                record["text"] = (await busy.first.inner_text())[:200]
                break
            if await started.count():
                record["answer"] = "started"
                break
            await asyncio.sleep(0.25)
        else:
            record["answer"] = "no answer"
        errors = page.locator(ERROR_SELECTORS)
        record["errors"] = [await errors.nth(i).inner_text() for i in range(await errors.count())]
        answered.append(index)
        if len(answered) == everyone:
            all_answered.set()
        await asyncio.wait_for(all_answered.wait(), timeout_ms / 1000)
        if record["answer"] == "started":  # free the slot again; the count is what we measure
            stop = page.get_by_role("button", name="Stop")
            await page.wait_for_function(
                "() => [...document.querySelectorAll('button')].some("
                "b => b.innerText.trim() === 'Stop' && !b.disabled)", timeout=timeout_ms)
            await stop.first.click()
            await asyncio.sleep(2.0)
    except Exception as error:  # noqa: BLE001
        record["failure"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
        if index not in answered:
            answered.append(index)
            if len(answered) == everyone:
                all_answered.set()
    finally:
        await context.close()
    return record


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p95 of 20 values is the 19th smallest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]


async def drive(args: argparse.Namespace, server: Server, image: Path, expected: bytes) -> dict:
    from playwright.async_api import async_playwright

    timeout_ms = int(args.timeout * 1000)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        go = asyncio.Event()
        go.set()
        reference = await segment_session(browser, server.base, image, 0, go, timeout_ms)
        if "failure" in reference:
            raise SystemExit(f"single session failed: {reference}")
        print(f"single session: upload -> overlay {reference['segment_s']:.2f} s, "
              f"whole session {reference['session_s']:.2f} s (includes loading the model)")
        rss_before = server.rss_mb()
        server_cpu = _cpu_seconds(server.process.pid)
        client_cpu = tree_cpu_seconds(os.getpid(), exclude=server.process.pid)
        go = asyncio.Event()
        tasks = [asyncio.create_task(segment_session(browser, server.base, image, i + 1, go,
                                                     timeout_ms))
                 for i in range(args.sessions)]
        await asyncio.sleep(1.0)  # let every context open before the common start
        t0 = time.perf_counter()
        go.set()
        records = await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
        rss_after = server.rss_mb()
        server_cpu = _cpu_seconds(server.process.pid) - server_cpu
        client_cpu = tree_cpu_seconds(os.getpid(), exclude=server.process.pid) - client_cpu
        train_records: list[dict] = []
        if args.train_sessions:
            go, all_answered = asyncio.Event(), asyncio.Event()
            ready: list[int] = []
            answered: list[int] = []
            tasks = [asyncio.create_task(train_session(browser, server.base, i, go, timeout_ms,
                                                       ready, answered, args.train_sessions,
                                                       all_answered))
                     for i in range(args.train_sessions)]
            # Press every Start button at the same moment, once all pages show it.
            deadline = time.perf_counter() + args.timeout
            while (time.perf_counter() < deadline and len(ready) < len(tasks)
                   and not any(task.done() for task in tasks)):
                await asyncio.sleep(0.5)
            go.set()
            train_records = await asyncio.gather(*tasks)
            # Stop was pressed for the started runs; their workers must now exit by themselves.
            stop_wait_s, stuck = await wait_for_workers(server.runs_dir, args.timeout)
            for pid in stuck:  # do not leave workers behind the temporary runs folder
                os.kill(pid, 9)
        await browser.close()

    ok = [r for r in records if "failure" not in r]
    identical = [r for r in ok if r["mask"] == reference["mask"]]
    result = {
        "sessions": args.sessions,
        "completed": len(ok),
        "failures": [r["failure"] for r in records if "failure" in r],
        "error_boxes": sum(len(r.get("errors", [])) for r in records),
        "masks_identical_to_single_session": len(identical),
        "single_session_mask_equals_cli_mask": reference["mask"] == expected,
        "single_session_segment_s": round(reference["segment_s"], 3),
        "wall_s": round(wall, 2),
        "server_rss_mb": [round(rss_before), round(rss_after)],
        "server_cpu_s": round(server_cpu, 1),
        "browser_cpu_s": round(client_cpu, 1),
    }
    for key in ("shell_s", "page_ready_s", "segment_s", "download_s", "session_s"):
        values = [r[key] for r in ok]
        if values:
            result[f"{key}_p50"] = round(statistics.median(values), 3)
            result[f"{key}_p95"] = round(percentile(values, 0.95), 3)
            result[f"{key}_max"] = round(max(values), 3)
    if args.train_sessions:
        answers = [r.get("answer", "failure") for r in train_records]
        from unet_demo.settings import max_concurrent_jobs

        if args.max_jobs is not None:
            os.environ["UNET_DEMO_MAX_JOBS"] = str(args.max_jobs)
        result["train"] = {
            "cap": max_concurrent_jobs(),
            "sessions": args.train_sessions,
            "started": answers.count("started"),
            "busy": answers.count("busy"),
            "other": [r for r in train_records if r.get("answer") not in ("started", "busy")],
            "workers_exited_after_stop_s": round(stop_wait_s, 1),
            "workers_killed": len(stuck),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20, help="concurrent sessions (20)")
    parser.add_argument("--model-dir", help="bundled-models folder (<name>/model.keras ...)")
    parser.add_argument("--image", help="PNG to upload (default: a test image of the model)")
    parser.add_argument("--train-sessions", type=int, default=0,
                        help="sessions that press Start training at once (0 = skip)")
    parser.add_argument("--max-jobs", type=int, default=None,
                        help="UNET_DEMO_MAX_JOBS for the server (default: its own setting)")
    parser.add_argument("--timeout", type=float, default=300.0, help="per-step timeout (s)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="unet_load_") as folder:
        work = Path(folder)
        model_dir, model_source = prepare_model_dir(args.model_dir, work)
        model_name, card = first_model(model_dir)
        dataset = card.get("dataset") or model_name
        image = prepare_image(args.image, dataset, work)
        print(f"model: {model_name} from {model_source}; image: {image.name}")
        expected = cli_mask(model_dir, model_name, image, work)
        server = Server(model_dir, work, args.max_jobs)
        try:
            server.wait_healthy()
            result = asyncio.run(drive(args, server, image, expected))
        finally:
            server.stop()
        result.update(model=model_name, model_source=model_source, image=image.name,
                      cpu_cores=os.cpu_count())
    printable = {k: v for k, v in result.items()}
    print(json.dumps(printable, indent=2, default=str))
    path = save_result("load_sessions", result)
    print(f"saved {path}")
    good = (result["completed"] == args.sessions
            and result["masks_identical_to_single_session"] == args.sessions
            and result["error_boxes"] == 0)
    if "train" in result:
        train = result["train"]
        good = good and not train["other"] and train["started"] <= train["cap"] and (
            train["started"] + train["busy"] == train["sessions"]) and not train["workers_killed"]
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
