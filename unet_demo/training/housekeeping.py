"""Keep the runs folder small: compact finished runs, pin runs, and honour a disk budget.

A class makes hundreds of runs. Three rules keep the folder from filling the disk:

* **Compaction.** Right after a run's `Finished` event, `after_finished` deletes what is only
  needed to resume it (``checkpoints/epoch_NNNN.keras``, the model with its optimizer state,
  about half of a skull-strip classroom run) and keeps ``checkpoints/best.weights.h5``
  (early-stopping runs write it), ``model.keras``, metrics, history, snapshots, events and
  config. state.json keeps its epoch and history but
  points at no checkpoint any more, so a resume of a finished run (``train --out`` again on the
  same folder, or a finished run queued again) trains it again from the start with its stored
  config and seed instead of failing. Stopped, failed and interrupted runs keep their latest
  checkpoint: they can be resumed.
* **Pins and visits.** `set_pinned` marks a run that must never be removed (a PINNED file);
  `mark_opened` records that someone looked at a run (the mtime of an OPENED file, rewritten
  at most once a minute, so a page may call it on every rerun).
* **Budget.** `enforce_budget` removes whole runs, oldest last activity first (the later of
  when it ended and when it was last opened), until the folder is under the budget
  (``UNET_DEMO_RUNS_MAX_GB``, `unet_demo.settings.runs_max_gb`; `enforce_configured_budget`
  reads it). Never removed: a running or queued run (status from `rundir.load_run`, the QUEUED
  marker and the queue entries in ``<runs>/.queue/``), a run without a final event that
  changed in the last `START_GRACE_SECONDS` (it is being created or trained from the CLI),
  a pinned run, and any id in ``protected_ids``. Every removal is appended to
  ``<runs>/.removed.jsonl`` (`removed_run` reads it back), so a page can say why a run is gone.

A run is removed by renaming its folder into ``<runs>/.trash/`` (one atomic rename: a reader
sees the whole run or none of it), then deleting it there; a folder that vanished or cannot be
moved is skipped. Names starting with "." in the runs folder are never runs.

Sizes are apparent sizes (the sum of file sizes), not disk blocks. This module imports neither
streamlit nor TensorFlow.

Example:
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as runs:
    ...     enforce_budget(runs, max_bytes=0), folder_size_bytes(runs)
    ([], 0)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from unet_demo.errors import UNetDemoError
from unet_demo.training import events as ev
from unet_demo.training import rundir

try:  # POSIX only; elsewhere concurrent prunes may remove a little more than needed
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

GB = 1024**3
OPENED_FILE = "OPENED"
PINNED_FILE = "PINNED"
QUEUED_FILE = getattr(rundir, "QUEUED_FILE", "QUEUED")
QUEUE_DIR = ".queue"
TRASH_DIR = ".trash"
REMOVED_LOG = ".removed.jsonl"
LOCK_FILE = ".housekeeping.lock"
OPENED_REFRESH_SECONDS = 60.0
START_GRACE_SECONDS = 600.0
PROTECTED_STATUSES = ("running", "queued")
REMOVABLE_STATUSES = ("finished", "stopped", "failed", "interrupted", "cancelled")
_QUEUE_ENTRY = re.compile(r"^\d+-(.+)\.json$")


@dataclasses.dataclass(frozen=True)
class RemovedRun:
    """One run removed to keep the runs folder under its budget (a line of .removed.jsonl).

    Attributes:
        run_id: the run's folder name.
        label: the user's label ("" when none).
        dataset: the dataset it trained on ("" when unknown).
        removed: when it was removed (seconds since the epoch).
        bytes: its size when it was removed.
        reason: why, in words ("runs folder over its 5 GB budget").
        budget_bytes: the budget in force (0 when it was removed for another reason).
        status: its status when removed ("finished", "stopped", ...).
    """

    run_id: str
    label: str = ""
    dataset: str = ""
    removed: float = 0.0
    bytes: int = 0
    reason: str = ""
    budget_bytes: int = 0
    status: str = ""


# --------------------------------------------------------------------------- sizes

def _file_sizes(folder: Path) -> Iterator[int]:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from _file_sizes(Path(entry.path))
            else:
                yield entry.stat(follow_symlinks=False).st_size
        except OSError:  # vanished while we looked
            continue


def run_size_bytes(run_dir: str | Path) -> int:
    """Bytes held by a run folder (sum of its file sizes; 0 when it does not exist).

    Args:
        run_dir: the run directory.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as run_dir:
        ...     _ = (Path(run_dir) / "model.keras").write_bytes(b"x" * 1000)
        ...     run_size_bytes(run_dir), run_size_bytes(Path(run_dir) / "missing")
        (1000, 0)
    """
    return sum(_file_sizes(Path(run_dir)))


def folder_size_bytes(root: str | Path | None = None) -> int:
    """Bytes held by the whole runs folder (runs, trash, logs; 0 when it does not exist).

    Args:
        root: the runs folder (default `unet_demo.settings.runs_dir()`).
    """
    return run_size_bytes(_root(root))


def _root(root: str | Path | None) -> Path:
    from unet_demo.settings import runs_dir

    return Path(root) if root is not None else runs_dir()


# --------------------------------------------------------------------------- compaction

def compact_finished_run(run_dir: str | Path) -> int:
    """Delete the resume-only checkpoints of a finished run; returns the bytes freed.

    Does nothing (returns 0) unless the run's last event is `Finished` and model.keras is
    there. Keeps ``checkpoints/best.weights.h5``; removes ``checkpoints/epoch_*.keras`` and
    leftover ``.tmp-*`` files, and rewrites state.json without a checkpoint. Never raises: a
    failure here must not turn a finished run into a failed one.

    Args:
        run_dir: the run directory.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as run_dir:
        ...     run = Path(run_dir)
        ...     (run / "checkpoints").mkdir()
        ...     _ = (run / "checkpoints" / "epoch_0002.keras").write_bytes(b"x" * 300)
        ...     _ = (run / "checkpoints" / "best.weights.h5").write_bytes(b"x" * 100)
        ...     _ = (run / "model.keras").write_bytes(b"x" * 100)
        ...     before = compact_finished_run(run)  # no Finished event yet: kept
        ...     ev.append_event(run, ev.Finished(best_epoch=2, metrics={}))
        ...     freed = compact_finished_run(run)
        ...     before, freed, [p.name for p in (run / "checkpoints").iterdir()]
        (0, 300, ['best.weights.h5'])
    """
    run = Path(run_dir)
    freed = 0
    try:
        if not isinstance(ev.last_event(run), ev.Finished):
            return 0
        if not (run / rundir.MODEL_FILE).is_file():
            return 0
        folder = run / rundir.CHECKPOINT_DIR
        doomed = list(folder.glob("epoch_*.keras")) + list(folder.glob(".tmp-*"))
        doomed += [path for path in run.glob(".tmp-*") if path.is_file()]
        state_path = run / rundir.STATE_FILE
        state = rundir.read_json(state_path)
        if state.get("checkpoint"):
            # First the pointer, then the files: a crash in between leaves a run that
            # retrains rather than one whose state names a missing checkpoint.
            state["checkpoint"] = None
            state["compacted"] = time.time()
            rundir.atomic_write_json(state_path, state)
        for path in doomed:
            with contextlib.suppress(OSError):
                size = path.stat().st_size
                path.unlink()
                freed += size
    except Exception:  # noqa: BLE001 - housekeeping never fails a finished run
        return freed
    return freed


def after_finished(run_dir: str | Path) -> int:
    """What the runner calls right after `Finished`: compact, then honour the budget.

    The budget (``UNET_DEMO_RUNS_MAX_GB``) is enforced only when ``run_dir`` lies in the
    configured runs folder (a ``train --out /tmp/x`` run never prunes /tmp), and the run just
    finished is protected. Never raises.

    Args:
        run_dir: the run directory that just finished.

    Returns:
        Bytes freed by compacting this run.

    Example:
        >>> after_finished("/nonexistent/run")
        0
    """
    from unet_demo.settings import runs_dir

    run = Path(run_dir)
    freed = compact_finished_run(run)
    with contextlib.suppress(Exception):
        if run.resolve().parent == runs_dir().resolve():
            enforce_configured_budget(run.parent, protected_ids=(run.name,))
    return freed


# --------------------------------------------------------------------------- pins and visits

def mark_opened(run_dir: str | Path, *, now: float | None = None) -> bool:
    """Record that someone looked at a run; True when the OPENED file was (re)written.

    Cheap enough for every rerun of a page: one ``stat``, and a write only when the last
    record is older than `OPENED_REFRESH_SECONDS`. A missing run folder is not created.

    Args:
        run_dir: the run directory.
        now: the time to record (default: now).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as run_dir:
        ...     mark_opened(run_dir), mark_opened(run_dir), last_opened(run_dir) > 0
        (True, False, True)
    """
    run = Path(run_dir)
    now = time.time() if now is None else float(now)
    marker = run / OPENED_FILE
    try:
        if now - marker.stat().st_mtime < OPENED_REFRESH_SECONDS:
            return False
    except OSError:
        if not run.is_dir():
            return False
    try:
        marker.write_text(f"{now:.0f}\n", encoding="utf-8")
        os.utime(marker, (now, now))
    except OSError:
        return False
    return True


def last_opened(run_dir: str | Path) -> float:
    """When the run was last opened (`mark_opened`), 0.0 when never.

    Args:
        run_dir: the run directory.
    """
    try:
        return (Path(run_dir) / OPENED_FILE).stat().st_mtime
    except OSError:
        return 0.0


def set_pinned(run_dir: str | Path, pinned: bool) -> None:
    """Pin (never remove to save space) or unpin a run.

    Args:
        run_dir: the run directory (must exist).
        pinned: True pins, False unpins.

    Raises:
        UNetDemoError: the run folder does not exist.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as run_dir:
        ...     set_pinned(run_dir, True)
        ...     first = is_pinned(run_dir)
        ...     set_pinned(run_dir, False)
        ...     first, is_pinned(run_dir)
        (True, False)
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise UNetDemoError(f"No run folder at {run}; cannot change its pin. List the runs "
                            "with the Train page or `ls` the runs folder.")
    marker = run / PINNED_FILE
    if pinned:
        rundir.atomic_write_text(marker, f"{time.time():.0f}\n")
    else:
        marker.unlink(missing_ok=True)


def is_pinned(run_dir: str | Path) -> bool:
    """Whether the run is pinned (`set_pinned`).

    Args:
        run_dir: the run directory.
    """
    return (Path(run_dir) / PINNED_FILE).is_file()


# --------------------------------------------------------------------------- the budget

@dataclasses.dataclass(frozen=True)
class _Candidate:
    path: Path
    info: rundir.RunInfo
    activity: float
    size: int


def _queued_ids(root: Path) -> set[str]:
    found = set()
    with contextlib.suppress(OSError):
        for entry in os.scandir(root / QUEUE_DIR):
            match = _QUEUE_ENTRY.match(entry.name)
            if match:
                found.add(match.group(1))
    return found


def _ended_at(path: Path) -> float:
    """Time of the final event, else the newest of events.jsonl and config.json."""
    with contextlib.suppress(Exception):
        last = ev.last_event(path)
        if isinstance(last, ev.TERMINAL_TYPES):
            return float(last.time)
    return _changed_at(path)


def _changed_at(path: Path) -> float:
    times = [0.0]
    for name in (ev.EVENTS_FILE, rundir.CONFIG_FILE, rundir.WORKER_FILE, QUEUED_FILE):
        with contextlib.suppress(OSError):
            times.append((path / name).stat().st_mtime)
    return max(times)


def _removable(path: Path, queued: set[str], protected: set[str],
               now: float) -> rundir.RunInfo | None:
    """The run's info when it may be removed, else None (see the module docstring)."""
    if path.name.startswith(".") or path.name in protected or path.name in queued:
        return None
    if not path.is_dir() or not (path / rundir.CONFIG_FILE).is_file():
        return None
    if is_pinned(path) or (path / QUEUED_FILE).exists():
        return None
    try:
        info = rundir.load_run(path)
    except (UNetDemoError, OSError, ValueError):
        return None
    if info.status in PROTECTED_STATUSES or info.status not in REMOVABLE_STATUSES:
        return None
    if info.status == "interrupted" and now - _changed_at(path) < START_GRACE_SECONDS:
        return None  # being created, or trained by a CLI process that has no worker.json
    return info


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(root / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _budget_text(max_bytes: int) -> str:
    return f"{max_bytes / GB:.3g} GB"


def enforce_budget(root: str | Path | None, max_bytes: int,
                   protected_ids: Iterable[str] = (), *,
                   now: float | None = None) -> list[RemovedRun]:
    """Remove the least recently used runs until the runs folder is under ``max_bytes``.

    Candidates are finished, stopped, failed, cancelled and interrupted runs, oldest last
    activity first (the later of their final event and `last_opened`). Running and queued
    runs, pinned runs, ids in ``protected_ids``, interrupted runs that changed in the last
    `START_GRACE_SECONDS` and folders whose names start with "." are never removed. Each
    removal is logged to ``<root>/.removed.jsonl``. Processes that prune at once take turns
    (a lock file in the runs folder).

    Args:
        root: the runs folder (None: `unet_demo.settings.runs_dir()`).
        max_bytes: the budget in bytes; 0 or less means no limit (nothing is removed).
        protected_ids: run ids never to remove (e.g. the run a page is showing).
        now: the current time (tests).

    Returns:
        The removed runs, in the order they were removed.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as runs:
        ...     run = Path(runs) / "old-run"
        ...     rundir.atomic_write_json(run / rundir.CONFIG_FILE, {"data": {"dataset": "nuclei"}})
        ...     _ = (run / "model.keras").write_bytes(b"x" * 5000)
        ...     ev.append_event(run, ev.Finished(best_epoch=1, metrics={}))
        ...     removed = enforce_budget(runs, max_bytes=1000)
        ...     [r.run_id for r in removed], run.exists(), removed_run(runs, "old-run").dataset
        (['old-run'], False, 'nuclei')
    """
    folder = _root(root)
    if max_bytes <= 0 or not folder.is_dir():
        return []
    now = time.time() if now is None else float(now)
    protected = {str(run_id) for run_id in protected_ids}
    removed: list[RemovedRun] = []
    with _locked(folder):
        _empty_trash(folder)
        total = folder_size_bytes(folder)
        if total <= max_bytes:
            return []
        queued = _queued_ids(folder)
        candidates = []
        for path in folder.iterdir():
            info = _removable(path, queued, protected, now)
            if info is not None:
                activity = max(_ended_at(path), last_opened(path))
                candidates.append(_Candidate(path, info, activity, run_size_bytes(path)))
        candidates.sort(key=lambda c: (c.activity, c.info.run_id))
        for candidate in candidates:
            if total <= max_bytes:
                break
            # Look again right before removing: a run may have been resumed or pinned since.
            if _removable(candidate.path, _queued_ids(folder), protected, now) is None:
                continue
            record = RemovedRun(
                run_id=candidate.info.run_id,
                label=candidate.info.label,
                dataset=_dataset(candidate.info.spec),
                removed=now,
                bytes=candidate.size,
                reason=f"runs folder over its {_budget_text(max_bytes)} budget",
                budget_bytes=int(max_bytes),
                status=candidate.info.status,
            )
            if _remove_folder(folder, candidate.path):
                _log_removal(folder, record)
                removed.append(record)
                total -= candidate.size
    return removed


def enforce_configured_budget(root: str | Path | None = None,
                              protected_ids: Iterable[str] = ()) -> list[RemovedRun]:
    """`enforce_budget` with ``UNET_DEMO_RUNS_MAX_GB`` (nothing happens when it is 0 or unset).

    Args:
        root: the runs folder (default `unet_demo.settings.runs_dir()`).
        protected_ids: run ids never to remove.

    Example:
        >>> enforce_configured_budget("/nonexistent")
        []
    """
    from unet_demo.settings import runs_max_gb

    return enforce_budget(root, int(runs_max_gb() * GB), protected_ids)


def _dataset(spec: dict[str, Any]) -> str:
    data = spec.get("data") if isinstance(spec, dict) else None
    value = data.get("dataset") if isinstance(data, dict) else None
    return str(value) if value else ""


def _remove_folder(root: Path, path: Path) -> bool:
    """Rename ``path`` into the trash (atomic), then delete it; False when it could not move."""
    trash = root / TRASH_DIR
    target = trash / f"{path.name}-{secrets.token_hex(4)}"
    try:
        trash.mkdir(exist_ok=True)
        os.rename(path, target)
    except OSError:
        return False
    shutil.rmtree(target, ignore_errors=True)
    return True


def _empty_trash(root: Path) -> None:
    """Delete what an earlier removal left in the trash (e.g. a crash during rmtree)."""
    trash = root / TRASH_DIR
    with contextlib.suppress(OSError):
        for entry in os.scandir(trash):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


# --------------------------------------------------------------------------- tombstones

def _log_removal(root: Path, record: RemovedRun) -> None:
    line = json.dumps(dataclasses.asdict(record), sort_keys=True)
    with contextlib.suppress(OSError), open(root / REMOVED_LOG, "a", encoding="utf-8") as log:
        log.write(line + "\n")
        log.flush()


def removed_runs(root: str | Path | None = None) -> list[RemovedRun]:
    """Every removal recorded in ``<root>/.removed.jsonl``, oldest first (unreadable lines skipped).

    Args:
        root: the runs folder (default `unet_demo.settings.runs_dir()`).

    Example:
        >>> removed_runs("/nonexistent")
        []
    """
    path = _root(root) / REMOVED_LOG
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    fields = {field.name for field in dataclasses.fields(RemovedRun)}
    found = []
    for line in lines:
        try:
            data = json.loads(line)
            found.append(RemovedRun(**{k: v for k, v in data.items() if k in fields}))
        except (ValueError, TypeError):
            continue
    return found


def removed_run(root: str | Path | None, run_id: str) -> RemovedRun | None:
    """The latest removal record of ``run_id``, or None when it was never removed.

    Args:
        root: the runs folder (None: `unet_demo.settings.runs_dir()`).
        run_id: the run's folder name.

    Example:
        >>> removed_run("/nonexistent", "20261123-093000-1a2b3c") is None
        True
    """
    matches = [record for record in removed_runs(root) if record.run_id == run_id]
    return matches[-1] if matches else None


__all__ = ["RemovedRun", "after_finished", "compact_finished_run", "enforce_budget",
           "enforce_configured_budget", "folder_size_bytes", "is_pinned", "last_opened",
           "mark_opened", "removed_run", "removed_runs", "run_size_bytes", "set_pinned"]
