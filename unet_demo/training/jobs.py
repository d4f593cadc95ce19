"""Job manager: training runs in worker processes, capped, stoppable, re-attachable by id.

Training never runs in the Streamlit script thread. `JobManager.start` writes the RunSpec to a
new run directory and starts ``python -m unet_demo.training.worker RUN_DIR`` in its own
process (own session, output in RUN_DIR/worker.log). Everything a page needs lives in the run
directory (events, checkpoints, status), so a page that was reloaded re-attaches with only the
run id: `unet_demo.training.rundir.load_run` and `events.read_events`.

* At most `unet_demo.settings.max_concurrent_jobs()` runs train at once (counted over the live
  workers of this process and any other live worker found in the runs folder); one more start
  raises `JobsBusyError` at once. Nothing is queued.
* `stop` creates RUN_DIR/STOP, which the worker checks after every batch; if the worker is
  still alive after ``grace_s`` seconds it is killed (SIGKILL) and a `Stopped` event recorded.
  A worker that has not finished a batch yet (still starting) is killed after 2 s instead.
* Starting an id that is already training returns that id (a double click starts nothing new).

Example:
    >>> manager = get_job_manager()
    >>> run_id = manager.start(get_preset("nuclei", "classroom"), label="demo")  # doctest: +SKIP
    >>> manager.stop(run_id)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from unet_demo.errors import UNetDemoError
from unet_demo.settings import REPO_ROOT, max_concurrent_jobs, runs_dir
from unet_demo.training import events as ev
from unet_demo.training import rundir
from unet_demo.training.spec import RunSpec

STOP_GRACE_SECONDS = 60.0
# A worker that has not finished a batch since it started is still importing TensorFlow or
# compiling; it cannot look at the STOP file for tens of seconds, and killing it loses nothing
# (its last checkpoint is untouched), so it gets only this long.
STARTUP_STOP_GRACE_SECONDS = 2.0


class JobsBusyError(UNetDemoError):
    """Raised when the maximum number of trainings already run; the message says how many."""


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


class JobManager:
    """Starts, tracks and stops training worker processes (one manager per app process).

    Args:
        root: runs folder (default `unet_demo.settings.runs_dir()`).
        max_jobs: concurrent cap (default `unet_demo.settings.max_concurrent_jobs()`, read at
            every start so the setting can change).

    Example:
        >>> JobManager(root=Path("/tmp/runs")).running_ids()
        []
    """

    def __init__(self, root: Path | None = None, max_jobs: int | None = None):
        self._root = Path(root) if root is not None else None
        self._max_jobs = max_jobs
        self._lock = threading.Lock()
        self._processes: dict[str, subprocess.Popen] = {}

    @property
    def root(self) -> Path:
        """The runs folder."""
        return self._root if self._root is not None else runs_dir()

    @property
    def max_jobs(self) -> int:
        """How many runs may train at once."""
        return self._max_jobs if self._max_jobs is not None else max_concurrent_jobs()

    def run_dir(self, run_id: str) -> Path:
        """Run directory of an id."""
        return self.root / check_run_id(run_id)

    # ------------------------------------------------------------------ state
    def is_running(self, run_id: str) -> bool:
        """True while the run's worker process is alive (this or another app process)."""
        process = self._processes.get(run_id)
        if process is not None:
            if process.poll() is None:
                return True
            self._processes.pop(run_id, None)
            return False
        path = self.root / run_id
        return path.is_dir() and rundir.pid_alive(rundir.worker_pid(path), path)

    def running_ids(self) -> list[str]:
        """Ids of all runs whose worker is alive, own ones first."""
        ids = [run_id for run_id in list(self._processes) if self.is_running(run_id)]
        if self.root.is_dir():
            for path in sorted(self.root.iterdir()):
                if (path.name not in ids and (path / rundir.WORKER_FILE).is_file()
                        and rundir.pid_alive(rundir.worker_pid(path), path)):
                    ids.append(path.name)
        return ids

    # ------------------------------------------------------------------ start / stop
    def start(self, spec: RunSpec, *, label: str = "", run_id: str | None = None) -> str:
        """Start training ``spec`` in a worker process and return its run id.

        Args:
            spec: what to train.
            label: a name the user gave the run (shown in run lists).
            run_id: resume or re-attach this run (its directory keeps its checkpoints);
                None makes a new id.

        Raises:
            JobsBusyError: the cap of concurrent trainings is reached (raised at once).
        """
        if not isinstance(spec, RunSpec):
            raise UNetDemoError(f"start() needs a RunSpec. Received: {type(spec).__name__}.")
        with self._lock:
            if run_id is not None and self.is_running(run_id):
                return run_id
            running = self.running_ids()
            if len(running) >= self.max_jobs:
                raise JobsBusyError(
                    f"{len(running)} training(s) already running (the limit is {self.max_jobs}): "
                    f"{', '.join(running)}. Wait for one to finish or stop it, then start again "
                    "(the limit is the UNET_DEMO_MAX_JOBS setting)."
                )
            run_id = check_run_id(run_id) if run_id else new_run_id()
            path = self.root / run_id
            path.mkdir(parents=True, exist_ok=True)
            (path / rundir.STOP_FILE).unlink(missing_ok=True)
            if not (path / rundir.STATE_FILE).is_file():
                rundir.atomic_write_text(path / rundir.CONFIG_FILE, spec.to_json())
            if label:
                rundir.atomic_write_text(path / rundir.LABEL_FILE, label)
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(
                [str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
            with open(path / "worker.log", "ab") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "unet_demo.training.worker", str(path)],
                    cwd=str(REPO_ROOT), env=env, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True)
            rundir.atomic_write_json(path / rundir.WORKER_FILE,
                                     {"pid": process.pid, "started": time.time()})
            self._processes[run_id] = process
            return run_id

    def stop(self, run_id: str, *, grace_s: float = STOP_GRACE_SECONDS) -> None:
        """Ask a run to stop after its current batch; kill it if it has not after ``grace_s``.

        Args:
            run_id: the run.
            grace_s: seconds to wait before the hard kill (0 kills at once).
        """
        path = self.run_dir(run_id)
        if not path.is_dir():
            raise UNetDemoError(f"No run {run_id!r} under {self.root}.")
        (path / rundir.STOP_FILE).touch()
        if not self.is_running(run_id):
            return
        if not trained_since_start(path):
            grace_s = min(grace_s, STARTUP_STOP_GRACE_SECONDS)
        watcher = threading.Thread(target=self._kill_after, args=(run_id, grace_s),
                                   name=f"stop-{run_id}", daemon=True)
        watcher.start()
        if grace_s <= 0:
            watcher.join()

    def kill(self, run_id: str) -> None:
        """Kill a run's worker at once (SIGKILL); it can be resumed from its last epoch."""
        path = self.run_dir(run_id)
        process = self._processes.get(run_id)
        pid = process.pid if process is not None else rundir.worker_pid(path)
        if pid and (process is not None or rundir.pid_alive(pid, path)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if process is not None:
            process.wait()
            self._processes.pop(run_id, None)

    def wait(self, run_id: str, timeout: float | None = None) -> bool:
        """Wait until the run's worker has exited; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.is_running(run_id):
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.2)
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
