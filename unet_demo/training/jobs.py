"""Job manager: a fair, persistent training queue in front of worker processes (or Ray).

Training never runs in the Streamlit script thread. `JobManager.submit` writes the RunSpec to a
new run directory and puts the run in the queue; `JobManager.dispatch` starts queued runs, first
in first out, while the backend has a free slot (a local worker process,
``python -m unet_demo.training.worker RUN_DIR``, or a Ray actor, see
`unet_demo.training.ray_backend`). Everything lives in the runs folder, so a page that was
reloaded re-attaches with the run id alone, and a server restart loses nothing:

    <runs>/.queue/lock                    flock held while the queue changes (all processes)
    <runs>/.queue/000000000042-<id>.json  one entry per waiting run; names sort in FIFO order
    <runs>/<id>/QUEUED                    the run is waiting (removed when it starts)
    <runs>/<id>/job.json                  owner (hash), preset, queued time, estimated seconds
    <runs>/<id>/worker.json               backend, pid or actor, node (written when it starts)

Rules:

* A start when every slot is busy queues the run. Each owner (a browser session, or the CLI
  user) may have `settings.max_runs_per_user` runs running or queued; the queue holds at most
  `settings.max_queue_length` runs, then `QueueFullError` says about how long until a place
  frees.
* Dispatch happens at every submit, whenever a worker exits (the worker calls it), and every
  couple of seconds in the app (`start_dispatcher`), so crashed workers and restarts heal.
  An entry whose run already started (or ended) is dropped, never started twice.
* Only the owner, or an operator with `settings.admin_token`, may stop or cancel a run
  (`NotOwnerError`); everyone else watches read-only. Owners are stored as a hash of their
  secret (`owner_key`), never the secret itself.
* `stop` creates RUN_DIR/STOP, which the worker checks after every batch; a worker still alive
  after ``grace_s`` seconds is killed and a `Stopped` event recorded (2 s while it is still
  starting, since a worker that has not trained a batch loses nothing).

Example:
    >>> manager = JobManager(root=Path("/nonexistent/runs"), max_jobs=1)
    >>> manager.queue_view(), manager.max_jobs
    ([], 1)
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import getpass
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from unet_demo.errors import UNetDemoError
from unet_demo.settings import (
    REPO_ROOT,
    admin_token,
    max_concurrent_jobs,
    max_queue_length,
    max_runs_per_user,
    ray_address,
    runs_dir,
)
from unet_demo.training import events as ev
from unet_demo.training import rundir
from unet_demo.training.spec import RunSpec

STOP_GRACE_SECONDS = 60.0
# A worker that has not finished a batch since it started is still importing TensorFlow or
# compiling; it cannot look at the STOP file for tens of seconds, and killing it loses nothing
# (its last checkpoint is untouched), so it gets only this long.
STARTUP_STOP_GRACE_SECONDS = 2.0
QUEUE_DIR = ".queue"
DEFAULT_RUN_SECONDS = 60.0
"""Estimated duration of a run when nothing better is known (no recent run, no estimate)."""
DISPATCH_INTERVAL_SECONDS = 2.0


class JobsBusyError(UNetDemoError):
    """Raised when a run cannot be accepted now; the message says why and what to do."""


class QueueFullError(JobsBusyError):
    """The queue already holds `settings.max_queue_length` runs."""


class UserLimitError(JobsBusyError):
    """The owner already has `settings.max_runs_per_user` runs running or queued."""


class NotOwnerError(UNetDemoError):
    """Someone who did not start a run tried to stop or cancel it."""


def new_run_id() -> str:
    """A sortable, unique run id such as ``20261123-101500-a1b2c3``."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
"""The one run-id rule (job starts, run folders, ``?run=`` links): a letter or digit, then up
to 127 letters, digits, ``_``, ``.`` or ``-``, and never ``..``. Ids from `new_run_id` fit."""


def valid_run_id(value: Any) -> str | None:
    """The run id if it follows `RUN_ID_PATTERN`, else None (for untrusted input such as URLs).

    Args:
        value: e.g. ``st.query_params.get("run")``.

    Example:
        >>> valid_run_id("20261123-101500-ab12"), valid_run_id("../etc"), valid_run_id(None)
        ('20261123-101500-ab12', None, None)
    """
    if isinstance(value, str) and RUN_ID_PATTERN.match(value) and ".." not in value:
        return value
    return None


def check_run_id(run_id: Any) -> str:
    """The run id, or a UNetDemoError saying what a run id may hold.

    Args:
        run_id: the id to check.

    Example:
        >>> check_run_id("my-run_2")
        'my-run_2'
    """
    if valid_run_id(run_id) is None:
        raise UNetDemoError(
            f"Run id {run_id!r} is not valid. Expected a letter or digit followed by up to 127 "
            "letters, digits, '_', '.' or '-' (no '/', no '..'), e.g. "
            "'20261123-101500-ab12cd'; leave it out to get a fresh id."
        )
    return run_id


# --------------------------------------------------------------------------- owners

def new_owner_secret() -> str:
    """A fresh random owner secret for one browser (kept in its cookie, never in a link)."""
    return secrets.token_urlsafe(24)


def owner_key(secret: str) -> str:
    """What job.json stores for an owner: a SHA-256 of the secret (the secret stays private).

    Args:
        secret: the browser's (or CLI user's) owner secret.

    Example:
        >>> owner_key("abc") == owner_key("abc"), owner_key("abc") == owner_key("abd")
        (True, False)
        >>> len(owner_key("abc"))
        32
    """
    return hashlib.sha256(f"unet-demo-owner:{secret}".encode()).hexdigest()[:32]


def cli_owner_secret() -> str:
    """The owner secret of runs queued from the command line (``UNET_DEMO_OWNER`` or the user).

    Example:
        >>> cli_owner_secret().startswith("cli:")
        True
    """
    value = os.environ.get("UNET_DEMO_OWNER", "").strip()
    if value:
        return f"cli:{value}"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return f"cli:{user}"


def is_admin(token: str | None) -> bool:
    """True when ``token`` equals the operator token (`settings.admin_token`, must be set).

    Args:
        token: what the user typed, or None.

    Example:
        >>> is_admin(None), is_admin("")
        (False, False)
    """
    expected = admin_token()
    return bool(expected and token) and hmac.compare_digest(str(token), expected)


# --------------------------------------------------------------------------- backends

class Launcher(Protocol):
    """Where runs train: `LocalLauncher` (processes here) or `ray_backend.RayLauncher`."""

    name: str

    def capacity(self) -> int:
        """How many runs may train at once on this backend."""

    def launch(self, run_dir: Path) -> dict[str, Any]:
        """Start the worker of ``run_dir``; return what worker.json records (backend, ...)."""

    def kill(self, run_dir: Path, info: dict[str, Any]) -> None:
        """End the worker described by ``info`` (worker.json) at once."""


class LocalLauncher:
    """Worker processes on this machine (the embedded default).

    Args:
        max_jobs: concurrent cap (default `settings.max_concurrent_jobs`, read at every use).

    Example:
        >>> LocalLauncher(max_jobs=2).capacity()
        2
    """

    name = "local"

    def __init__(self, max_jobs: int | None = None):
        self._max_jobs = max_jobs
        self._processes: dict[str, subprocess.Popen] = {}

    def capacity(self) -> int:
        """`max_jobs`, else ``UNET_DEMO_MAX_JOBS`` (default half the CPUs)."""
        return self._max_jobs if self._max_jobs is not None else max_concurrent_jobs()

    def launch(self, run_dir: Path) -> dict[str, Any]:
        """``python -m unet_demo.training.worker RUN_DIR`` in its own session (log: worker.log)."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env["UNET_DEMO_WORKER_BACKEND"] = self.name
        with open(run_dir / "worker.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "unet_demo.training.worker", str(run_dir)],
                cwd=str(REPO_ROOT), env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        self._processes[run_dir.name] = process
        return {"backend": self.name, "pid": process.pid, "node": os.uname().nodename}

    def reap(self) -> None:
        """Collect the exit status of finished children (no zombies)."""
        for run_id, process in list(self._processes.items()):
            if process.poll() is not None:
                self._processes.pop(run_id, None)

    def kill(self, run_dir: Path, info: dict[str, Any]) -> None:
        """SIGKILL the worker's process group (the run can resume from its last epoch)."""
        process = self._processes.get(run_dir.name)
        pid = process.pid if process is not None else info.get("pid")
        if isinstance(pid, int) and (process is not None or rundir.pid_alive(pid, run_dir)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if process is not None:
            process.wait()
            self._processes.pop(run_dir.name, None)


# --------------------------------------------------------------------------- views

@dataclasses.dataclass(frozen=True)
class QueueEntry:
    """One waiting run, as stored in ``<runs>/.queue/<seq>-<run_id>.json``."""

    run_id: str
    seq: int
    owner: str
    enqueued: float
    preset: str = ""
    dataset: str = ""
    label: str = ""
    estimate_s: float = 0.0


@dataclasses.dataclass(frozen=True)
class JobView:
    """A running or queued run as the Train page, ``jobs`` and the CLI show it.

    Attributes:
        run_id: the run.
        state: "running" or "queued".
        position: place in the queue (1 = next), 0 while running.
        owner: owner key (hash) from job.json.
        label, preset, dataset: what the run is.
        backend, node: where it trains ("" while queued).
        since: when it was queued (queued) or started (running), seconds since the epoch.
        estimated_start, estimated_finish: seconds since the epoch (estimates).
        estimate_s: the estimated duration used for them.
    """

    run_id: str
    state: str
    position: int
    owner: str
    label: str
    preset: str
    dataset: str
    backend: str
    node: str
    since: float
    estimated_start: float
    estimated_finish: float
    estimate_s: float

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for ``jobs --json``)."""
        return dataclasses.asdict(self)


def queue_wait_text(view: JobView, now: float | None = None) -> str:
    """One sentence for a queued or running run: position and estimated start and finish.

    Args:
        view: the run's `JobView`.
        now: the current time (default: now).

    Example:
        >>> view = JobView("r", "queued", 2, "", "", "classroom", "nuclei", "", "", 0.0,
        ...                90.0, 150.0, 60.0)
        >>> queue_wait_text(view, now=0.0)
        'Queued: number 2 in line. Estimated start in about 1 min 30 s, finish in about 2 min 30 s.'
    """
    now = time.time() if now is None else now
    if view.state == "queued":
        return (f"Queued: number {view.position} in line. Estimated start in about "
                f"{_duration_words(view.estimated_start - now)}, finish in about "
                f"{_duration_words(view.estimated_finish - now)}.")
    where = f" on {view.node}" if view.node else ""
    return (f"Training ({view.backend or 'local'}{where}); estimated finish in about "
            f"{_duration_words(view.estimated_finish - now)}.")


def measured_remaining_seconds(run_dir: Path, now: float | None = None) -> float | None:
    """Seconds a training run still needs at the pace its events show; None before it has one.

    The queue's estimate for a running run comes from recent runs of its preset until then;
    afterwards this keeps the queue, the run's caption and its progress line in agreement.

    Args:
        run_dir: the run's folder (its events.jsonl).
        now: the current time (default: now).

    Example:
        >>> measured_remaining_seconds(Path("/nonexistent")) is None
        True
    """
    from unet_demo.training.live import LiveRun, remaining_seconds

    live = LiveRun(run_dir.name)
    try:
        live.update(run_dir)
    except (UNetDemoError, OSError):
        return None
    return None if live.terminal is not None else remaining_seconds(live, now)


def _duration_words(seconds: float) -> str:
    """``95`` -> "1 min 35 s"; under 5 s -> "a few seconds"."""
    seconds = max(0.0, float(seconds))
    if seconds < 5:
        return "a few seconds"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes == 0:
        return f"{rest} s"
    if minutes >= 10 or rest == 0:
        return f"{minutes} min"
    return f"{minutes} min {rest} s"


# --------------------------------------------------------------------------- manager

class JobManager:
    """Queues, starts, tracks and stops training runs (one manager per app process).

    Args:
        root: runs folder (default `unet_demo.settings.runs_dir()`).
        max_jobs: local concurrent cap (default ``UNET_DEMO_MAX_JOBS``, read at every use).
        launcher: the backend; default local processes, or Ray when ``UNET_DEMO_RAY_ADDRESS``
            is set.

    Example:
        >>> JobManager(root=Path("/tmp/runs")).running_ids()
        []
    """

    def __init__(self, root: Path | None = None, max_jobs: int | None = None,
                 launcher: Launcher | None = None):
        self._root = Path(root) if root is not None else None
        self._lock = threading.RLock()
        self._local = LocalLauncher(max_jobs)
        self._launcher = launcher
        self._durations: dict[str, float | None] = {}
        self._dispatcher: threading.Thread | None = None
        self._watchers: dict[str, threading.Thread] = {}

    @property
    def root(self) -> Path:
        """The runs folder."""
        return self._root if self._root is not None else runs_dir()

    @property
    def launcher(self) -> Launcher:
        """The backend new runs start on (Ray when ``UNET_DEMO_RAY_ADDRESS`` is set)."""
        if self._launcher is None:
            address = ray_address()
            if address:
                from unet_demo.training.ray_backend import RayLauncher

                self._launcher = RayLauncher(address)
            else:
                self._launcher = self._local
        return self._launcher

    @property
    def max_jobs(self) -> int:
        """How many runs may train at once on the backend."""
        return self.launcher.capacity()

    def run_dir(self, run_id: str) -> Path:
        """Run directory of an id."""
        return self.root / check_run_id(run_id)

    # ------------------------------------------------------------------ state
    def is_running(self, run_id: str) -> bool:
        """True while the run's worker is alive (this or another app process, or Ray)."""
        if valid_run_id(run_id) is None:
            return False
        self._local.reap()
        path = self.root / run_id
        return (path / rundir.WORKER_FILE).is_file() and rundir.worker_alive(path)

    def is_queued(self, run_id: str) -> bool:
        """True while the run waits in the queue."""
        return any(entry.run_id == run_id for entry in self._entries())

    def running_ids(self, exclude: str | None = None) -> list[str]:
        """Ids of all runs whose worker is alive (oldest start first)."""
        self._local.reap()
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.iterdir():
            if (path.name != exclude and not path.name.startswith(".")
                    and (path / rundir.WORKER_FILE).is_file() and rundir.worker_alive(path)):
                started = rundir.read_json(path / rundir.WORKER_FILE).get("started", 0.0)
                found.append((float(started or 0.0), path.name))
        return [run_id for _, run_id in sorted(found)]

    def owner_of(self, run_id: str) -> str:
        """The owner key recorded for a run ("" when it has none, e.g. a plain CLI run)."""
        return str(rundir.read_json(self.run_dir(run_id) / rundir.JOB_FILE).get("owner", ""))

    def can_control(self, run_id: str, owner_secret: str | None = None,
                    token: str | None = None) -> bool:
        """Whether the holder of ``owner_secret`` (or of the operator ``token``) may stop it.

        Args:
            run_id: the run.
            owner_secret: the caller's owner secret.
            token: an operator token (`settings.admin_token`).
        """
        if is_admin(token):
            return True
        recorded = self.owner_of(run_id)
        return bool(recorded and owner_secret) and hmac.compare_digest(
            recorded, owner_key(owner_secret))

    # ------------------------------------------------------------------ queue files
    @property
    def _queue_dir(self) -> Path:
        return self.root / QUEUE_DIR

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the queue lock (threads of this process, and other processes via flock)."""
        self._queue_dir.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self._queue_dir / "lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _entries(self) -> list[QueueEntry]:
        """Waiting runs in FIFO order (unreadable entries are skipped)."""
        if not self._queue_dir.is_dir():
            return []
        entries = []
        for path in sorted(self._queue_dir.glob("*.json")):
            with contextlib.suppress(OSError, ValueError, TypeError):
                data = json.loads(path.read_text(encoding="utf-8"))
                entries.append(QueueEntry(**{field.name: data[field.name]
                                             for field in dataclasses.fields(QueueEntry)
                                             if field.name in data}))
        return entries

    def _entry_path(self, entry: QueueEntry) -> Path:
        return self._queue_dir / f"{entry.seq:012d}-{entry.run_id}.json"

    def _next_seq(self) -> int:
        entries = self._entries()
        counter = self._queue_dir / "seq"
        last = int(counter.read_text() or 0) if counter.is_file() else 0
        seq = max([last] + [entry.seq for entry in entries]) + 1
        rundir.atomic_write_text(counter, str(seq))
        return seq

    # ------------------------------------------------------------------ submit
    def submit(self, spec: RunSpec, *, owner: str = "", label: str = "", preset: str = "",
               run_id: str | None = None, estimate_s: float | None = None) -> JobView:
        """Queue ``spec`` and start it at once if a slot is free; return its `JobView`.

        Args:
            spec: what to train.
            owner: the owner secret of whoever starts it (browser session or CLI user); ""
                means nobody but the operator can stop it.
            label: a name the user gave the run (shown in run lists).
            preset: the preset it came from (recent runs of it give the time estimate).
            run_id: resume or re-attach this run (its directory keeps its checkpoints); a run
                that is already running or queued is returned as it is (a double click).
            estimate_s: estimated duration when no recent run of the preset is known.

        Raises:
            UserLimitError: the owner already has their share of running and queued runs.
            QueueFullError: the queue is full (the message says about how long to wait).
        """
        if not isinstance(spec, RunSpec):
            raise UNetDemoError(f"submit() needs a RunSpec. Received: {type(spec).__name__}.")
        key = owner_key(owner) if owner else ""
        with self._locked():
            self._dispatch_locked()
            if run_id is not None:
                check_run_id(run_id)
                for view in self.queue_view():
                    if view.run_id == run_id:
                        return view
            views = self.queue_view()
            mine = [view for view in views if key and view.owner == key]
            limit = max_runs_per_user()
            if key and len(mine) >= limit:
                first = mine[0]
                where = ("training" if first.state == "running"
                         else f"queued, number {first.position} in line")
                raise UserLimitError(
                    f"You already have {len(mine)} run(s) on this server (run {first.run_id} is "
                    f"{where}); each person may have {limit} running or queued "
                    "(UNET_DEMO_MAX_RUNS_PER_USER). Wait for it to finish, or stop or cancel "
                    "it, then start again.")
            waiting = [view for view in views if view.state == "queued"]
            if len(waiting) >= max_queue_length() and len(self.running_ids()) >= self.max_jobs:
                frees = min((view.estimated_finish for view in views), default=time.time())
                raise QueueFullError(
                    f"The training queue is full ({len(waiting)} runs waiting, the limit is "
                    f"{max_queue_length()}, UNET_DEMO_MAX_QUEUE). A place frees in about "
                    f"{_duration_words(frees - time.time())}: please try again then.")
            run_id = run_id or new_run_id()
            path = self.root / run_id
            path.mkdir(parents=True, exist_ok=True)
            (path / rundir.STOP_FILE).unlink(missing_ok=True)
            if not (path / rundir.STATE_FILE).is_file():
                rundir.atomic_write_text(path / rundir.CONFIG_FILE, spec.to_json())
            if label:
                rundir.atomic_write_text(path / rundir.LABEL_FILE, label)
            entry = QueueEntry(run_id=run_id, seq=self._next_seq(), owner=key,
                               enqueued=time.time(), preset=preset, dataset=spec.data.dataset,
                               label=label, estimate_s=float(estimate_s or 0.0))
            job = dataclasses.asdict(entry)
            rundir.atomic_write_json(path / rundir.JOB_FILE, job)
            rundir.atomic_write_text(path / rundir.QUEUED_FILE, str(entry.seq))
            rundir.atomic_write_json(self._entry_path(entry), job)
            self._dispatch_locked()
            for view in self.queue_view():
                if view.run_id == run_id:
                    return view
            # Started and already ended (a run that fails at once): show it as running.
            return self._running_view(run_id, time.time())

    def start(self, spec: RunSpec, *, label: str = "", run_id: str | None = None,
              owner: str = "", preset: str = "") -> str:
        """`submit` and return the run id (queued or started)."""
        return self.submit(spec, owner=owner, label=label, preset=preset, run_id=run_id).run_id

    # ------------------------------------------------------------------ dispatch
    def dispatch(self, exclude: str | None = None) -> list[str]:
        """Start queued runs while slots are free; return the ids started.

        Args:
            exclude: a run whose worker is ending (a worker calls this as it exits, and is not
                to be counted as busy).
        """
        with self._locked():
            return self._dispatch_locked(exclude)

    def _dispatch_locked(self, exclude: str | None = None) -> list[str]:
        started = []
        entries = self._entries()
        if not entries:
            return started
        running = len(self.running_ids(exclude=exclude))
        capacity = self.max_jobs
        for entry in entries:
            path = self.root / entry.run_id
            if not path.is_dir() or self._already_started(path):
                # Removed, or started by a process that died before it tidied the queue up.
                self._entry_path(entry).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    (path / rundir.QUEUED_FILE).unlink(missing_ok=True)
                continue
            if running >= capacity:
                break
            info = self.launcher.launch(path)
            info["started"] = time.time()
            info["estimate_s"] = self.estimate_seconds(entry)
            rundir.atomic_write_json(path / rundir.WORKER_FILE, info)
            self._entry_path(entry).unlink(missing_ok=True)
            (path / rundir.QUEUED_FILE).unlink(missing_ok=True)
            running += 1
            started.append(entry.run_id)
        return started

    def _already_started(self, path: Path) -> bool:
        """A queue entry is stale when its run has a live worker or a final event."""
        if (path / rundir.WORKER_FILE).is_file() and rundir.worker_alive(path):
            return True
        with contextlib.suppress(UNetDemoError):
            last = ev.last_event(path)
            if isinstance(last, ev.TERMINAL_TYPES):
                # A finished run queued again (resume) has a fresh QUEUED marker newer than it.
                marker = path / rundir.QUEUED_FILE
                return not marker.is_file() or marker.stat().st_mtime < last.time
        return False

    def start_dispatcher(self) -> None:
        """Dispatch every couple of seconds in a daemon thread (the app calls this once)."""
        with self._lock:
            if self._dispatcher is not None and self._dispatcher.is_alive():
                return
            self._dispatcher = threading.Thread(target=self._dispatch_forever,
                                                name="unet-demo-dispatch", daemon=True)
            self._dispatcher.start()

    def _dispatch_forever(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # a bad entry must not end the dispatcher
                self.dispatch()
            time.sleep(DISPATCH_INTERVAL_SECONDS)

    # ------------------------------------------------------------------ estimates
    def recent_seconds(self, preset: str, dataset: str, count: int = 5) -> float | None:
        """Median duration of the newest finished runs of one preset on one dataset, or None.

        Args:
            preset: preset name recorded in job.json.
            dataset: dataset name.
            count: how many recent runs to use.
        """
        if not preset or not self.root.is_dir():
            return None
        found = []
        for path in self.root.iterdir():
            job_file = path / rundir.JOB_FILE
            if path.name.startswith(".") or not job_file.is_file():
                continue
            job = rundir.read_json(job_file)
            if job.get("preset") != preset or job.get("dataset") != dataset:
                continue
            seconds = self._run_seconds(path)
            if seconds is not None:
                found.append((job_file.stat().st_mtime, seconds))
        recent = [seconds for _, seconds in sorted(found, reverse=True)[:count]]
        return statistics.median(recent) if recent else None

    def _run_seconds(self, path: Path) -> float | None:
        """Wall time from the first start to the end of a finished run (cached per run)."""
        if path.name in self._durations:
            return self._durations[path.name]
        seconds = None
        with contextlib.suppress(UNetDemoError, OSError):
            events, _ = ev.read_events(path)
            starts = [event.time for event in events if isinstance(event, ev.Started)]
            if events and isinstance(events[-1], ev.Finished) and starts:
                worker = rundir.read_json(path / rundir.WORKER_FILE).get("started")
                begin = float(worker) if worker else starts[0]
                seconds = max(1.0, events[-1].time - min(begin, starts[0]))
        if seconds is not None or not self._is_live(path):
            self._durations[path.name] = seconds
        return seconds

    def _is_live(self, path: Path) -> bool:
        return (path / rundir.QUEUED_FILE).is_file() or (
            (path / rundir.WORKER_FILE).is_file() and rundir.worker_alive(path))

    def estimate_seconds(self, entry: QueueEntry) -> float:
        """A run's expected duration: recent runs of its preset, else its own estimate."""
        recent = self.recent_seconds(entry.preset, entry.dataset)
        if recent is not None:
            return recent
        return entry.estimate_s if entry.estimate_s > 0 else DEFAULT_RUN_SECONDS

    # ------------------------------------------------------------------ views
    def _running_view(self, run_id: str, now: float) -> JobView:
        path = self.root / run_id
        info = rundir.read_json(path / rundir.WORKER_FILE)
        job = rundir.read_json(path / rundir.JOB_FILE)
        started = float(info.get("started") or now)
        estimate = float(info.get("estimate_s") or job.get("estimate_s") or DEFAULT_RUN_SECONDS)
        remaining = measured_remaining_seconds(path, now)  # its own pace, once it has one
        finish = max(now + 1.0, now + remaining if remaining is not None else started + estimate)
        return JobView(run_id=run_id, state="running", position=0,
                       owner=str(job.get("owner", "")), label=str(job.get("label", "")),
                       preset=str(job.get("preset", "")), dataset=str(job.get("dataset", "")),
                       backend=str(info.get("backend", "local")), node=str(info.get("node", "")),
                       since=started, estimated_start=started, estimated_finish=finish,
                       estimate_s=estimate)

    def queue_view(self, now: float | None = None) -> list[JobView]:
        """Running runs, then queued runs in order, with estimated start and finish times.

        The estimate plays the queue forward: each waiting run takes the slot that frees first
        (slots = the backend's capacity), and lasts as long as recent runs of its preset.
        """
        now = time.time() if now is None else now
        running = [self._running_view(run_id, now) for run_id in self.running_ids()]
        slots = sorted(view.estimated_finish for view in running)
        capacity = max(1, self.max_jobs)
        slots = (slots + [now] * capacity)[:max(capacity, len(slots))]
        slots.sort()
        views = list(running)
        position = 0
        for entry in self._entries():
            path = self.root / entry.run_id
            if not path.is_dir() or entry.run_id in {view.run_id for view in running}:
                continue
            position += 1
            begin = max(now, slots.pop(0))
            estimate = self.estimate_seconds(entry)
            slots.append(begin + estimate)
            slots.sort()
            views.append(JobView(run_id=entry.run_id, state="queued", position=position,
                                 owner=entry.owner, label=entry.label, preset=entry.preset,
                                 dataset=entry.dataset, backend="", node="",
                                 since=entry.enqueued, estimated_start=begin,
                                 estimated_finish=begin + estimate, estimate_s=estimate))
        return views

    def view(self, run_id: str) -> JobView | None:
        """The run's `JobView` while it runs or waits, else None."""
        for view in self.queue_view():
            if view.run_id == run_id:
                return view
        return None

    # ------------------------------------------------------------------ cancel / stop
    def _check_control(self, run_id: str, owner: str | None, token: str | None,
                       what: str) -> str:
        if owner is None and token is None:
            return "owner"  # trusted in-process callers (tests, the worker itself)
        if is_admin(token):
            return "operator"
        if self.can_control(run_id, owner):
            return "owner"
        raise NotOwnerError(
            f"Run {run_id} was started by someone else: you can watch it, but only the person "
            f"who started it (or the operator, with UNET_DEMO_ADMIN_TOKEN) can {what} it.")

    def cancel(self, run_id: str, *, owner: str | None = None, token: str | None = None) -> bool:
        """Take a queued run out of the queue (records a `Cancelled` event); False if not queued.

        Args:
            run_id: the run.
            owner: the caller's owner secret (None only for trusted in-process callers).
            token: an operator token.

        Raises:
            NotOwnerError: the caller neither owns the run nor holds the operator token.
        """
        path = self.run_dir(run_id)
        by = self._check_control(run_id, owner, token, "cancel")
        with self._locked():
            entries = [entry for entry in self._entries() if entry.run_id == run_id]
            if not entries:
                return False
            for entry in entries:
                self._entry_path(entry).unlink(missing_ok=True)
            (path / rundir.QUEUED_FILE).unlink(missing_ok=True)
            ev.append_event(path, ev.Cancelled(by=by))
        return True

    def stop(self, run_id: str, *, grace_s: float = STOP_GRACE_SECONDS,
             owner: str | None = None, token: str | None = None) -> None:
        """Stop a run: cancel it while queued; else stop after the current batch (kill later).

        Args:
            run_id: the run.
            grace_s: seconds to wait before the hard kill (0 kills at once).
            owner: the caller's owner secret (None only for trusted in-process callers).
            token: an operator token.

        Raises:
            NotOwnerError: the caller neither owns the run nor holds the operator token.
        """
        path = self.run_dir(run_id)
        if not path.is_dir():
            raise UNetDemoError(f"No run {run_id!r} under {self.root}.")
        self._check_control(run_id, owner, token, "stop")
        if self.cancel(run_id):
            return
        (path / rundir.STOP_FILE).touch()
        if not self.is_running(run_id):
            return
        if not trained_since_start(path):
            grace_s = min(grace_s, STARTUP_STOP_GRACE_SECONDS)
        watcher = threading.Thread(target=self._kill_after, args=(run_id, grace_s),
                                   name=f"stop-{run_id}", daemon=True)
        self._watchers[run_id] = watcher
        watcher.start()
        if grace_s <= 0:
            watcher.join()

    def kill(self, run_id: str) -> None:
        """Kill a run's worker at once; it can be resumed from its last complete epoch."""
        path = self.run_dir(run_id)
        info = rundir.read_json(path / rundir.WORKER_FILE)
        if info.get("backend") == "ray":
            from unet_demo.training.ray_backend import RayLauncher

            launcher = (self.launcher if isinstance(self.launcher, RayLauncher)
                        else RayLauncher(str(info.get("address") or ray_address())))
            launcher.kill(path, info)
        else:
            self._local.kill(path, info)

    def wait(self, run_id: str, timeout: float | None = None) -> bool:
        """Wait until the run has left the queue and its worker has exited; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.is_queued(run_id) or self.is_running(run_id):
            if deadline is not None and time.monotonic() > deadline:
                return False
            if self.is_queued(run_id):
                self.dispatch()
            time.sleep(0.2)
        watcher = self._watchers.get(run_id)
        if watcher is not None and watcher is not threading.current_thread():
            # A stop that had to kill the worker records its Stopped event right after.
            watcher.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if watcher.is_alive():
                return False
            self._watchers.pop(run_id, None)
        return True

    def _kill_after(self, run_id: str, grace_s: float) -> None:
        if self.wait(run_id, grace_s):
            return
        path = self.run_dir(run_id)
        self.kill(run_id)
        last = ev.last_event(path)
        if not isinstance(last, ev.TERMINAL_TYPES):
            epoch = rundir.read_json(path / rundir.STATE_FILE).get("epoch", 0)
            ev.append_event(path, ev.Stopped(epoch=int(epoch) + 1, batch=0))
        self.dispatch()


def trained_since_start(run_dir: Path) -> bool:
    """Whether the run's current worker has finished at least one batch.

    Args:
        run_dir: the run directory.

    Example:
        >>> trained_since_start(Path("/nonexistent"))
        False
    """
    events, _ = ev.read_events(run_dir)
    for event in reversed(events):
        if isinstance(event, ev.BatchEnd):
            return True
        if isinstance(event, ev.Started):
            return False
    return False


_MANAGER: JobManager | None = None
_MANAGER_LOCK = threading.Lock()


def get_job_manager() -> JobManager:
    """The process-wide job manager (shared by every session of the app)."""
    global _MANAGER
    with _MANAGER_LOCK:
        if _MANAGER is None:
            _MANAGER = JobManager()
        return _MANAGER

