"""Load test: many browser sessions segment the same image on one real Streamlit server.

Starts ``streamlit run streamlit_app.py`` on a free loopback port (as the browser tests do),
then drives Chromium (Debian's /usr/bin/chromium through Playwright, one browser context per
session, i.e. separate cookies and Streamlit sessions):

1. one session alone: open the Segment page, upload the PNG, wait for the overlay, download
   the mask (the reference; it also loads the model into the server's shared cache);
2. ``--sessions`` sessions at once doing the same; every downloaded mask must be byte-identical
   to the reference, and to the mask the CLI (`python -m unet_demo predict`) writes;
3. optionally (``--train-sessions N``) N sessions open the Train page (the class file pins
   ``--dataset`` and ``--preset``, and ``--epochs`` caps the epochs) and press "Start training"
   at the same moment. Each notice is recorded: "Started run <id>." or "Queued run <id>.
   Queued: number N in line. Estimated start in about ..." count as accepted, "Not queued: ...",
   an error box or no answer as rejected. Then the script waits until every accepted run has
   reached a final state (``--watch K`` pages stay open and must show the live curves by
   themselves; the others are closed, as pupils close tabs) and reports per user the shown
   position, the wait until the run started (job.json "enqueued" -> worker.json "started"),
   the run's duration and end, and the error of the estimated start; in total accepted /
   rejected / lost (accepted but not finished, or more than one Started event), the time until
   the last run finished and the most workers seen at once (never above the cap). With
   ``--ray`` the server trains on a local 2-node Ray cluster (``ray.cluster_utils.Cluster`` in a
   helper process, 1 CPU per node) and each run's node is reported.

Prints p50/p95 response times (upload -> overlay on screen, and whole session) and writes
the figures to benchmarks/results/load_sessions.json (``--sessions 0`` skips the Segment part;
the training figures alone go to load_sessions_train_local.json or load_sessions_train_ray.json).
The machine is shared, so the times are contended; the identical-mask check is the real
pass/fail.

Example:
    .venv/bin/python benchmarks/load_sessions.py --sessions 20
    .venv/bin/python benchmarks/load_sessions.py --model-dir models/bundled --train-sessions 4
    .venv/bin/python benchmarks/load_sessions.py --sessions 0 --train-sessions 30 \\
        --dataset brain_skullstrip --preset classroom --epochs 3 [--ray]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
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

    def __init__(self, model_dir: Path, work: Path, max_jobs: int | None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = work / "streamlit.log"
        self.runs_dir = work / "runs"
        env = dict(os.environ, UNET_DEMO_RUNS_DIR=str(self.runs_dir),
                   UNET_DEMO_BUNDLED_MODELS_DIR=str(model_dir), PYTHONUNBUFFERED="1")
        if max_jobs is not None:
            env["UNET_DEMO_MAX_JOBS"] = str(max_jobs)
        env.update(extra_env or {})
        self.env = env
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
            await button.click(timeout=timeout_ms)  # (Playwright's own default is 30 s)
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


# ------------------------------------------------------------------- training sessions

NOTICE_RE = re.compile(r"(Started|Queued) run ([A-Za-z0-9][A-Za-z0-9_.-]*[A-Za-z0-9])")
POSITION_RE = re.compile(r"number (\d+) in line")
ESTIMATE_RE = re.compile(r"Estimated start in about (.+?), finish in about (.+?)\.")
START_BUTTON_ENABLED = (
    "() => [...document.querySelectorAll('button')].some("
    "b => b.innerText.trim() === 'Start training' && !b.disabled)")


def duration_from_words(text: str) -> float | None:
    """Seconds of the Train page's "1 min 35 s" / "40 s" / "12 min" / "a few seconds" words.

    Example:
        >>> duration_from_words("1 min 35 s"), duration_from_words("a few seconds")
        (95.0, 2.5)
    """
    text = text.strip()
    if text == "a few seconds":
        return 2.5
    match = re.fullmatch(r"(?:(\d+) min)?\s*(?:(\d+) s)?", text)
    if not match or not (match.group(1) or match.group(2)):
        return None
    return float(int(match.group(1) or 0) * 60 + int(match.group(2) or 0))


def parse_notice(text: str) -> dict:
    """Run id, shown position and estimated start/finish (seconds) of a Started/Queued notice."""
    found: dict = {}
    match = NOTICE_RE.search(text)
    if match:
        found["run_id"] = match.group(2)
    match = POSITION_RE.search(text)
    if match:
        found["position"] = int(match.group(1))
    match = ESTIMATE_RE.search(text)
    if match:
        found["estimated_start_s"] = duration_from_words(match.group(1))
        found["estimated_finish_s"] = duration_from_words(match.group(2))
    return found


def run_final(runs_dir: Path, run_id: str) -> bool:
    """Whether the run's last event is a final one (Finished, Failed, Stopped, Cancelled)."""
    from unet_demo.training import events as ev

    return isinstance(ev.last_event(runs_dir / run_id), ev.TERMINAL_TYPES)


async def train_session(browser, base: str, index: int, start: asyncio.Event, timeout_ms: int,
                        ready: list[int], answered: list[int], watch: bool, runs_dir: Path,
                        limits: dict) -> dict:
    """One user presses "Start training" on the Train page; record the notice it answers.

    With ``watch`` the page stays open until its run has ended and must show the live panel
    ("Epochs done") by itself once the run trains; else the context closes after the answer
    (the run goes on in its worker, as when a pupil closes the tab).
    """
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    record: dict = {"session": index, "watched": watch}
    try:
        await page.goto(f"{base}/Train", timeout=timeout_ms)
        await wait_for_script(page, timeout_ms)
        button = page.get_by_role("button", name="Start training")
        await button.wait_for(timeout=timeout_ms)
        await page.wait_for_function(START_BUTTON_ENABLED, timeout=timeout_ms)
        ready.append(index)
        await start.wait()
        record["pressed"] = time.time()
        await button.click(timeout=timeout_ms)  # (Playwright's own default is 30 s)
        notices = page.get_by_text(re.compile(r"Started run |Queued run |Not queued:"))
        errors = page.locator(ERROR_SELECTORS)
        deadline = time.perf_counter() + timeout_ms / 1000
        while time.perf_counter() < deadline:
            if await notices.count():
                try:  # the notice can be redrawn by a rerun while it is read: read it again
                    text = (await notices.first.inner_text(timeout=5_000)).strip()
                except PlaywrightTimeout:
                    await asyncio.sleep(0.25)
                    continue
                record["text"] = text[:400]
                record["answer"] = ("not queued" if text.startswith("Not queued")
                                    else "started" if text.startswith("Started") else "queued")
                record.update(parse_notice(text))
                break
            if await errors.count():
                record["answer"] = "error"
                record["text"] = (await errors.first.inner_text())[:400]
                break
            await asyncio.sleep(0.25)
        else:
            record["answer"] = "no answer"
        record["answered"] = time.time()
        answered.append(index)
        run_id = record.get("run_id")
        if watch and run_id and record["answer"] in ("started", "queued"):
            live = page.get_by_text("Epochs done", exact=False)
            while time.perf_counter() < limits["deadline"]:
                if "live_seen" not in record and await live.count():
                    record["live_seen"] = time.time()
                if await asyncio.to_thread(run_final, runs_dir, run_id):
                    break
                await asyncio.sleep(2.0)
            await asyncio.sleep(3.0)  # the page's next refresh shows the end
            record["live_shown"] = "live_seen" in record
        record["errors"] = [await errors.nth(i).inner_text() for i in range(await errors.count())]
    except Exception as error:  # noqa: BLE001 - a failed session is a finding, not a crash
        record["failure"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
        record.setdefault("answer", "failure")
    finally:
        await context.close()
    return record


async def sample_workers(runs_dir: Path, stop: asyncio.Event, samples: list) -> None:
    """Count training worker processes of this server once a second until ``stop``."""
    while not stop.is_set():
        count = len(await asyncio.to_thread(worker_pids, runs_dir))
        samples.append((time.time(), count))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def wait_runs_final(runs_dir: Path, run_ids: set[str], deadline: float) -> set[str]:
    """Wait until every run has a final event (or ``deadline``); return those that have not."""
    left = set(run_ids)
    while True:  # look at least once, also when the deadline has already passed
        left = {run_id for run_id in left
                if not await asyncio.to_thread(run_final, runs_dir, run_id)}
        if not left or time.perf_counter() >= deadline:
            return left
        await asyncio.sleep(2.0)


def run_facts(runs_dir: Path, run_id: str) -> dict:
    """What a run folder says: enqueued, started, Started events, its end, node, settings."""
    from unet_demo.training import events as ev
    from unet_demo.training import rundir

    path = runs_dir / run_id
    if not path.is_dir():
        return {"exists": False}
    job = rundir.read_json(path / rundir.JOB_FILE)
    worker = rundir.read_json(path / rundir.WORKER_FILE)
    environment = rundir.read_json(path / rundir.ENVIRONMENT_FILE)
    config = rundir.read_json(path / rundir.CONFIG_FILE)
    events, _ = ev.read_events(path)
    starts = [event for event in events if isinstance(event, ev.Started)]
    ends = [event for event in events if isinstance(event, ev.TERMINAL_TYPES)]
    last = ends[-1] if ends else None
    facts = {
        "exists": True,
        "enqueued": job.get("enqueued"),
        "worker_started": worker.get("started"),
        "training_started": starts[0].time if starts else None,
        "started_events": len(starts),
        "end": type(last).__name__ if last else None,
        "ended": last.time if last else None,
        "end_events": len(ends),
        "backend": worker.get("backend") or environment.get("backend"),
        "node": worker.get("node") or environment.get("node"),
        "node_id": worker.get("node_id") or environment.get("ray_node_id") or "",
        "env_ray_node_id": environment.get("ray_node_id", ""),
        "estimate_s": worker.get("estimate_s"),
        "epochs": (config.get("train") or {}).get("epochs"),
        "dataset": (config.get("data") or {}).get("dataset"),
    }
    if last is not None and isinstance(last, ev.Finished):
        facts["val_dice"] = (last.metrics or {}).get("val_dice")
        facts["epochs_run"] = last.epochs_run
    if isinstance(last, ev.Failed):
        facts["message"] = last.message[:300]
    return facts


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """Most intervals open at one moment (an end at t frees its place before a start at t)."""
    points = sorted([(begin, 1) for begin, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda point: (point[0], point[1]))
    best = current = 0
    for _, step in points:
        current += step
        best = max(best, current)
    return best


def jobs_snapshot(env: dict[str, str]) -> dict:
    """`python -m unet_demo jobs --json` as the server's environment sees it (counts only)."""
    completed = subprocess.run([sys.executable, "-m", "unet_demo", "jobs", "--json"], cwd=REPO,
                               env=env, capture_output=True, text=True, timeout=300, check=False)
    if completed.returncode != 0:
        return {"error": completed.stderr[-500:]}
    try:
        views = json.loads(completed.stdout)
    except ValueError:
        return {"error": completed.stdout[-500:]}
    views = views.get("jobs", views) if isinstance(views, dict) else views
    states = [view.get("state") for view in views]
    positions = sorted(view.get("position") for view in views if view.get("state") == "queued")
    return {"running": states.count("running"), "queued": states.count("queued"),
            "positions_1_to_n": positions == list(range(1, len(positions) + 1))}


async def train_part(browser, args: argparse.Namespace, server: Server,
                     timeout_ms: int) -> dict:
    """The classroom measurement: N users press Start at once; follow every run to its end."""
    go = asyncio.Event()
    ready: list[int] = []
    answered: list[int] = []
    runs_dir = server.runs_dir
    limits = {"deadline": float("inf")}  # set at the press: --run-timeout after it
    tasks = [asyncio.create_task(train_session(browser, server.base, i, go, timeout_ms, ready,
                                               answered, i < args.watch, runs_dir, limits))
             for i in range(args.train_sessions)]
    # Press every Start button at the same moment, once all pages show it enabled.
    t_open = time.perf_counter()
    deadline = t_open + args.timeout
    while (time.perf_counter() < deadline and len(ready) < len(tasks)
           and not any(task.done() for task in tasks)):
        await asyncio.sleep(0.5)
    pages_ready_s = time.perf_counter() - t_open
    print(f"{len(ready)}/{len(tasks)} Train pages ready after {pages_ready_s:.0f} s; "
          "pressing Start on all of them", flush=True)
    samples: list = []
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(sample_workers(runs_dir, stop_sampling, samples))
    t_go = time.time()
    limits["deadline"] = time.perf_counter() + args.run_timeout
    go.set()
    # Answers first (the watched pages go on until their runs end).
    while len(set(answered) | {i for i, task in enumerate(tasks) if task.done()}) < len(tasks):
        await asyncio.sleep(0.5)  # (a session that failed before its answer is done, too)
    snapshot = await asyncio.to_thread(jobs_snapshot, server.env)
    print(f"jobs --json right after the presses: {snapshot}", flush=True)
    records = await asyncio.gather(*tasks)
    accepted_ids = {r["run_id"] for r in records
                    if r.get("answer") in ("started", "queued") and r.get("run_id")}
    print(f"answers: {sum(r.get('answer') == 'started' for r in records)} started, "
          f"{sum(r.get('answer') == 'queued' for r in records)} queued, "
          f"{len(records) - len(accepted_ids)} other; waiting for every run to end", flush=True)
    # Every run the server made, also one whose notice this load generator failed to read.
    made = {p.name for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}
    unfinished = await wait_runs_final(runs_dir, accepted_ids | made, limits["deadline"])
    if unfinished:
        print(f"{len(unfinished)} runs not finished after --run-timeout {args.run_timeout:.0f} s;"
              " their workers are killed", flush=True)
    workers_exit_s, stuck = await wait_for_workers(runs_dir, 5 if unfinished else 120)
    stop_sampling.set()
    await sampler
    for pid in stuck:  # do not leave workers behind the temporary runs folder
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    return summarize_train(args, server, records, samples, t_go, pages_ready_s, snapshot,
                           unfinished, stuck, workers_exit_s)


def summarize_train(args, server: Server, records: list[dict], samples: list, t_go: float,
                    pages_ready_s: float, snapshot: dict, unfinished: set[str],
                    stuck: list[int], workers_exit_s: float) -> dict:
    """Per-user rows and totals of the classroom measurement."""
    runs_dir = server.runs_dir
    rows = []
    for record in sorted(records, key=lambda r: r["session"]):
        row = {key: record.get(key) for key in
               ("session", "answer", "run_id", "position", "estimated_start_s",
                "estimated_finish_s", "watched", "live_shown", "failure")}
        if record.get("pressed") and record.get("answered"):
            row["answer_s"] = round(record["answered"] - record["pressed"], 2)
        if row["answer"] not in ("started", "queued"):
            row["text"] = record.get("text") or record.get("failure")
        row["error_boxes"] = len(record.get("errors") or [])
        if record.get("run_id"):
            facts = run_facts(runs_dir, record["run_id"])
            row["facts"] = facts
            if facts.get("enqueued") and facts.get("worker_started"):
                row["wait_s"] = round(facts["worker_started"] - facts["enqueued"], 1)
            if facts.get("worker_started") and facts.get("ended"):
                row["run_s"] = round(facts["ended"] - facts["worker_started"], 1)
            if facts.get("training_started") and facts.get("worker_started"):
                row["startup_s"] = round(facts["training_started"] - facts["worker_started"], 1)
            if facts.get("ended"):
                row["done_after_press_s"] = round(facts["ended"] - t_go, 1)
            if row.get("estimated_start_s") is not None and row.get("wait_s") is not None:
                row["estimate_error_s"] = round(row["estimated_start_s"] - row["wait_s"], 1)
        rows.append(row)
    accepted = [row for row in rows if row["answer"] in ("started", "queued")]
    ids = [row["run_id"] for row in accepted]
    # Lost: accepted but gone, ended other than Finished, or started (or ended) twice. A run
    # still queued or training when --run-timeout ran out is counted apart (not finished).
    lost = [row["run_id"] for row in accepted
            if row["run_id"] not in unfinished and (
                not row.get("facts", {}).get("exists") or row["facts"].get("end") != "Finished"
                or row["facts"].get("started_events") != 1
                or row["facts"].get("end_events") != 1)]
    twice = [row["run_id"] for row in accepted
             if row.get("facts", {}).get("started_events", 0) > 1]
    folders = sorted(p.name for p in runs_dir.iterdir()
                     if p.is_dir() and not p.name.startswith(".")) if runs_dir.is_dir() else []
    intervals = [(row["facts"]["worker_started"], row["facts"]["ended"]) for row in accepted
                 if row.get("facts", {}).get("worker_started") and row["facts"].get("ended")]
    training = [(row["facts"]["training_started"], row["facts"]["ended"]) for row in accepted
                if row.get("facts", {}).get("training_started") and row["facts"].get("ended")]
    waits = [row["wait_s"] for row in accepted if row.get("wait_s") is not None]
    durations = [row["run_s"] for row in accepted if row.get("run_s") is not None]
    ratios = [row["wait_s"] / row["estimated_start_s"] for row in accepted
              if row.get("estimated_start_s") and row.get("wait_s") is not None]
    errors = [row["estimate_error_s"] for row in accepted if row.get("estimate_error_s")
              is not None]
    ends = [row["facts"]["ended"] for row in accepted if row.get("facts", {}).get("ended")]
    if args.ray:
        cap = server.ray_cap
    else:
        cap = args.max_jobs if args.max_jobs is not None else max(1, (os.cpu_count() or 2) // 2)
    nodes: dict[str, int] = {}
    for row in accepted:
        node = row.get("facts", {}).get("node_id") or row.get("facts", {}).get("node") or "?"
        name = server.node_names.get(node, node[:12]) if args.ray else node
        nodes[name] = nodes.get(name, 0) + 1
        row["node"] = name
    values = [row["facts"] for row in accepted if row.get("facts", {}).get("exists")]
    result = {
        "backend": "ray" if args.ray else "local",
        "cap": cap,
        "sessions": args.train_sessions,
        "dataset": args.dataset, "preset": args.preset, "epoch_cap": args.epochs,
        "epochs_per_run": sorted({f.get("epochs") for f in values if f.get("epochs")}),
        "datasets_trained": sorted({f.get("dataset") for f in values if f.get("dataset")}),
        "watched_pages": min(args.watch, args.train_sessions),
        "pages_ready_s": round(pages_ready_s, 1),
        "accepted": len(accepted),
        "started_at_once": sum(row["answer"] == "started" for row in rows),
        "queued": sum(row["answer"] == "queued" for row in rows),
        "rejected": len(rows) - len(accepted),
        "rejected_texts": [row.get("text") for row in rows if row not in accepted],
        "lost": len(lost), "lost_ids": lost, "started_twice": twice,
        "not_finished_by_limit": len(unfinished), "run_timeout_s": args.run_timeout,
        "duplicate_run_ids": len(ids) - len(set(ids)),
        "run_folders": len(folders), "extra_run_folders": sorted(set(folders) - set(ids)),
        # The server's side: every run folder a press made, its end and its Started events,
        # whether or not the browser's notice was read (a generator failure is not a refusal).
        "server_refusals": sum(row["answer"] == "not queued" for row in rows),
        "generator_failures": sum(row["answer"] in ("failure", "no answer") for row in rows),
        "server_runs_finished_once": sum(
            (facts := run_facts(runs_dir, name)).get("end") == "Finished"
            and facts.get("started_events") == 1 for name in folders),
        "shown_positions": sorted(row["position"] for row in rows if row.get("position")),
        "answer_s_max": max((row.get("answer_s", 0) for row in rows), default=0),
        "wait_s_min_median_max": ([round(min(waits), 1), round(statistics.median(waits), 1),
                                   round(max(waits), 1)] if waits else None),
        "run_s_min_median_max": ([round(min(durations), 1),
                                  round(statistics.median(durations), 1),
                                  round(max(durations), 1)] if durations else None),
        "last_run_finished_after_press_s": round(max(ends) - t_go, 1) if ends else None,
        "max_concurrent_runs": max_overlap(intervals),
        "max_concurrent_training": max_overlap(training),
        "max_worker_processes_seen": max((count for _, count in samples), default=0),
        "estimate_start_ratio_actual_over_shown_min_median_max": (
            [round(min(ratios), 2), round(statistics.median(ratios), 2), round(max(ratios), 2)]
            if ratios else None),
        "estimate_start_error_s_min_median_max": (
            [round(min(errors), 1), round(statistics.median(errors), 1), round(max(errors), 1)]
            if errors else None),
        "live_panel_shown_on_watched_pages": [bool(row.get("live_shown")) for row in rows
                                              if row.get("watched")
                                              and row["answer"] in ("started", "queued")],
        "error_boxes": sum(row["error_boxes"] for row in rows),
        "nodes": nodes,
        "unfinished_at_timeout": sorted(unfinished),
        "workers_exit_after_last_run_s": round(workers_exit_s, 1),
        "workers_killed": len(stuck),
        "jobs_json_after_presses": snapshot,
        "dice_min_max": ([round(min(f["val_dice"] for f in values if f.get("val_dice") is not None), 3),
                          round(max(f["val_dice"] for f in values if f.get("val_dice") is not None), 3)]
                         if any(f.get("val_dice") is not None for f in values) else None),
        "users": rows,
    }
    return result


def print_train_table(train: dict) -> None:
    """The per-user table and the totals, as they go into docs/load.md."""
    print(f"\n== {train['sessions']} users press Start at once: backend {train['backend']}, "
          f"cap {train['cap']} at once, {train['dataset']} / {train['preset']}, epochs "
          f"{train['epochs_per_run']} (cap {train['epoch_cap'] or 'none'}), "
          f"{cpu_model()}, {os.cpu_count()} cores ==")
    print("| user | answer | shown position | shown est. start | wait until start | "
          "run (start->end) | end | finished after press | node |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in train["users"]:
        facts = row.get("facts") or {}
        shown = row.get("estimated_start_s")
        print(f"| {row['session']} | {row['answer']} | {row.get('position') or '-'} | "
              f"{'-' if shown is None else f'{shown:.0f} s'} | "
              f"{row.get('wait_s', '-')} s | {row.get('run_s', '-')} s | {facts.get('end')} | "
              f"{row.get('done_after_press_s', '-')} s | {row.get('node', '-')} |")
    keys = ("accepted", "started_at_once", "queued", "rejected", "server_refusals",
            "generator_failures", "run_folders", "server_runs_finished_once", "lost",
            "started_twice",
            "not_finished_by_limit", "duplicate_run_ids",
            "extra_run_folders", "wait_s_min_median_max", "run_s_min_median_max",
            "last_run_finished_after_press_s", "max_concurrent_runs", "max_concurrent_training",
            "max_worker_processes_seen", "estimate_start_ratio_actual_over_shown_min_median_max",
            "estimate_start_error_s_min_median_max", "live_panel_shown_on_watched_pages",
            "error_boxes", "nodes", "pages_ready_s", "answer_s_max", "dice_min_max",
            "jobs_json_after_presses")
    for key in keys:
        print(f"  {key}: {train[key]}")


def cpu_model() -> str:
    """lscpu's "Model name" (or /proc/cpuinfo's)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        output = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in output.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


RAY_HELPER = r"""
import json, os, signal, sys
# Every node, worker and driver on the loopback address (Ray's single-machine switch).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
import ray
from ray.cluster_utils import Cluster

store = 80 * 1024 * 1024
cluster = Cluster(initialize_head=True, head_node_args={
    "num_cpus": 1, "include_dashboard": False, "object_store_memory": store})
cluster.add_node(num_cpus=1, object_store_memory=store)
cluster.wait_for_nodes()
ray.init(address=cluster.address, log_to_driver=False)
nodes = [{"id": n["NodeID"], "head": "node:__internal_head__" in n["Resources"],
          "cpus": n["Resources"].get("CPU", 0)} for n in ray.nodes() if n["Alive"]]
ray.shutdown()
print(json.dumps({"address": cluster.address, "nodes": nodes}), flush=True)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
try:
    sys.stdin.read()
finally:
    cluster.shutdown()
"""


class RayCluster:
    """A local 2-node Ray cluster (head 1 CPU + node 1 CPU) in a helper process."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", RAY_HELPER], cwd=REPO,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)
        begin = time.perf_counter()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit("the Ray helper exited before the cluster was up")
        info = json.loads(line)
        self.start_s = time.perf_counter() - begin
        self.address = info["address"]
        self.nodes = info["nodes"]
        self.names = {node["id"]: ("head" if node["head"] else "node 2") for node in self.nodes}
        # Keep reading the helper's output, so a full pipe never blocks it.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(timeout=30)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p95 of 20 values is the 19th smallest)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]


async def drive(args: argparse.Namespace, server: Server, image: Path | None,
                expected: bytes | None) -> dict:
    from playwright.async_api import async_playwright

    timeout_ms = int(args.timeout * 1000)
    result: dict = {}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        if args.sessions:
            result.update(await segment_part(browser, args, server, image, expected, timeout_ms))
        if args.train_sessions:
            result["train"] = await train_part(browser, args, server, timeout_ms)
        await browser.close()
    return result


async def segment_part(browser, args: argparse.Namespace, server: Server, image: Path,
                       expected: bytes, timeout_ms: int) -> dict:
    """One Segment session alone, then ``--sessions`` at once; masks must be identical."""
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
    return result


def class_file(args: argparse.Namespace, work: Path) -> Path:
    """The teacher's class file the server reads: dataset, preset and the epoch cap."""
    lines = [f"default_dataset: {args.dataset}", f"preset: {args.preset}"]
    if args.epochs:
        lines.append(f"epoch_cap: {args.epochs}")
    path = work / "class.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20,
                        help="concurrent Segment sessions (20; 0 = skip the Segment part)")
    parser.add_argument("--model-dir", help="bundled-models folder (<name>/model.keras ...)")
    parser.add_argument("--image", help="PNG to upload (default: a test image of the model)")
    parser.add_argument("--train-sessions", type=int, default=0,
                        help="sessions that press Start training at once (0 = skip)")
    parser.add_argument("--dataset", default="brain_skullstrip",
                        help="dataset the Train pages start on (class file; brain_skullstrip)")
    parser.add_argument("--preset", default="classroom", choices=("classroom", "quality"),
                        help="preset the Train pages start on (class file; classroom)")
    parser.add_argument("--epochs", type=int, default=0,
                        help="cap every run at this many epochs (class file epoch_cap; "
                             "0 = the preset's own)")
    parser.add_argument("--watch", type=int, default=3,
                        help="Train pages kept open until their run ends (3; the rest close "
                             "after the answer)")
    parser.add_argument("--ray", action="store_true",
                        help="train on a local 2-node Ray cluster (1 CPU per node)")
    parser.add_argument("--max-jobs", type=int, default=None,
                        help="UNET_DEMO_MAX_JOBS for the server (default: its own setting)")
    parser.add_argument("--timeout", type=float, default=300.0, help="per-step timeout (s)")
    parser.add_argument("--run-timeout", type=float, default=1800.0,
                        help="seconds to wait for all runs to end after the presses (1800)")
    args = parser.parse_args(argv)
    if args.ray and not args.train_sessions:
        parser.error("--ray needs --train-sessions N")

    cluster = None
    with tempfile.TemporaryDirectory(prefix="unet_load_") as folder:
        work = Path(folder)
        model_dir, model_source = prepare_model_dir(args.model_dir, work)
        model_name, card = first_model(model_dir)
        image = expected = None
        if args.sessions:
            dataset = card.get("dataset") or model_name
            image = prepare_image(args.image, dataset, work)
            print(f"model: {model_name} from {model_source}; image: {image.name}")
            expected = cli_mask(model_dir, model_name, image, work)
        extra = {}
        if args.train_sessions:
            extra["UNET_DEMO_CLASS_FILE"] = str(class_file(args, work))
        try:
            if args.ray:
                cluster = RayCluster()
                print(f"Ray cluster up in {cluster.start_s:.1f} s at {cluster.address}: "
                      f"{cluster.nodes}", flush=True)
                extra["UNET_DEMO_RAY_ADDRESS"] = cluster.address
                extra["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # the app's driver too
            server = Server(model_dir, work, args.max_jobs, extra)
            server.ray_cap = int(sum(node["cpus"] for node in cluster.nodes)) if cluster else 0
            server.node_names = cluster.names if cluster else {}
            try:
                server.wait_healthy()
                result = asyncio.run(drive(args, server, image, expected))
            finally:
                server.stop()
                for pid in worker_pids(server.runs_dir):  # started after the last check
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, 9)
        finally:
            if cluster is not None:
                cluster.stop()
        result.update(model_dir=str(model_source), cpu=cpu_model(), cpu_cores=os.cpu_count(),
                      date=time.strftime("%Y-%m-%d %H:%M %Z"))
        if args.sessions:
            result.update(model=model_name, model_source=model_source, image=image.name)
        if cluster is not None:
            result["ray"] = {"address": cluster.address, "nodes": cluster.nodes,
                             "cluster_start_s": round(cluster.start_s, 1)}
    if "train" in result:
        print_train_table(result["train"])
    printable = {k: v for k, v in result.items() if k != "train"}
    if "train" in result:
        printable["train"] = {k: v for k, v in result["train"].items() if k != "users"}
    print(json.dumps(printable, indent=2, default=str))
    name = "load_sessions"
    if not args.sessions:
        name += "_train_ray" if args.ray else "_train_local"
    path = save_result(name, result)
    print(f"saved {path}")
    good = True
    if args.sessions:
        good = (result["completed"] == args.sessions
                and result["masks_identical_to_single_session"] == args.sessions
                and result["error_boxes"] == 0)
    if "train" in result:
        train = result["train"]
        good = good and (train["accepted"] == train["sessions"] and train["rejected"] == 0
                         and train["lost"] == 0 and train["max_concurrent_runs"] <= train["cap"]
                         and not train["not_finished_by_limit"]
                         and not train["workers_killed"] and not train["extra_run_folders"])
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
