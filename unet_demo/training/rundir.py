"""Run directories: what a training run writes, and how to list, reload and compare runs.

Layout of ``<runs_dir>/<run_id>/`` (all written by `unet_demo.training.runner`):

    config.json       the RunSpec (data, augmentation, model, training), as used
    environment.json  seed, package versions, device, whether XLA was used, and why not
    events.jsonl      typed events, one per line (`unet_demo.training.events`)
    state.json        last complete epoch, its checkpoint, history, callback state (for resume)
    checkpoints/      epoch_NNNN.keras (latest complete epoch, with optimizer state),
                      best.weights.h5 (weights of the best validation epoch; only with
                      early stopping, which restores them at the end)
    history.csv       one row per epoch: loss, val_loss, dice, val_dice, ..., lr, seconds
    snapshots/        epoch_NNNN.npz: predictions on fixed validation images
    model.keras       the final model (no optimizer; safe_mode loadable)
    metrics.json      best epoch, validation and test metrics
    model_card.md     short human-readable summary
    worker.json       backend ("local" process or "ray" actor), pid / actor name, node
    job.json          who owns the run (a hash of the browser session's secret), preset, when
                      it was queued and its estimated duration (job manager runs only)
    QUEUED            present while the run waits in the training queue
    STOP              present when a stop was requested

Every file is replaced atomically (written to a temporary name, then ``os.replace``), so a
crash never leaves a half-written checkpoint that a resume would load.

This module does not import TensorFlow (except `load_model`).

Example:
    >>> [run.status for run in list_runs("/nonexistent")]
    []
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from unet_demo.errors import UNetDemoError
from unet_demo.inference.registry import (
    BUNDLED_PREFIX,
    MODEL_FILE,
    dataset_of,
    list_bundled_models,
    nested_value,
)
from unet_demo.training import events as ev

CONFIG_FILE = "config.json"
ENVIRONMENT_FILE = "environment.json"
STATE_FILE = "state.json"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
MODEL_CARD_FILE = "model_card.md"
WORKER_FILE = "worker.json"
LABEL_FILE = "label.txt"
JOB_FILE = "job.json"
QUEUED_FILE = "QUEUED"
STOP_FILE = "STOP"
CHECKPOINT_DIR = "checkpoints"
SNAPSHOT_DIR = "snapshots"
BEST_WEIGHTS_FILE = "best.weights.h5"
STATUSES = ("running", "finished", "stopped", "failed", "interrupted")


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What a page or the CLI shows about one run without loading its model.

    Attributes:
        run_id: folder name.
        path: the run directory.
        status: "queued", "running", "finished", "stopped", "failed", "cancelled" or
            "interrupted" (the worker died without a final event; resume it).
        spec: the config.json contents (a RunSpec dict).
        created: creation time (seconds since the epoch).
        metrics: metrics.json contents ({} until the run finishes).
        label: the user's label ("" when none).
        epochs_done: last complete epoch.
        message: failure message for failed runs.
    """

    run_id: str
    path: Path
    status: str
    spec: dict[str, Any]
    created: float
    metrics: dict[str, Any]
    label: str = ""
    epochs_done: int = 0
    message: str = ""


# --------------------------------------------------------------------------- atomic writes

def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text to ``path`` through a temporary file and ``os.replace`` (never half-written).

    Args:
        path: destination file.
        text: the content.

    Example:
        >>> atomic_write_text("/tmp/unet_demo_atomic.txt", "ok")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | Path, data: Any) -> None:
    """`atomic_write_text` of indented JSON (NaN written as null).

    Args:
        path: destination file.
        data: JSON-serialisable data.
    """
    atomic_write_text(path, json.dumps(ev._clean_tree(data), indent=2, sort_keys=True,
                                       default=str, allow_nan=False))


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON object from a file, {} when it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --------------------------------------------------------------------------- history

def write_history_csv(run_dir: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write history rows (one dict per epoch) to history.csv atomically.

    Args:
        run_dir: the run directory.
        rows: dicts with at least "epoch"; missing values are left blank.
    """
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    lines = [",".join(columns)]
    for row in rows:
        cells = []
        for key in columns:
            value = row.get(key)
            cells.append("" if value is None else (f"{value:.6g}" if isinstance(value, float)
                                                   else str(value)))
        lines.append(",".join(cells))
    atomic_write_text(Path(run_dir) / HISTORY_FILE, "\n".join(lines) + "\n")


def load_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """One dict per complete epoch: epoch, loss, val_loss, dice, val_dice, lr, seconds, ...

    Args:
        run_dir: the run directory (a missing history reads as []).

    Example:
        >>> load_history("/nonexistent")
        []
    """
    path = Path(run_dir) / HISTORY_FILE
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = []
            for raw in reader:
                row: dict[str, Any] = {}
                for key, value in raw.items():
                    if value in ("", None):
                        row[key] = None
                    elif key == "epoch":
                        row[key] = int(float(value))
                    else:
                        try:
                            row[key] = float(value)
                        except ValueError:
                            row[key] = value
                rows.append(row)
            return rows
    except FileNotFoundError:
        return []


# --------------------------------------------------------------------------- process liveness

def worker_pid(run_dir: str | Path) -> int | None:
    """Pid recorded by the job manager for this run's worker, or None."""
    pid = read_json(Path(run_dir) / WORKER_FILE).get("pid")
    return int(pid) if isinstance(pid, int) else None


def worker_alive(run_dir: str | Path) -> bool:
    """Whether the run's worker (local process or Ray actor, from worker.json) is alive.

    Args:
        run_dir: the run directory.

    Example:
        >>> worker_alive("/nonexistent")
        False
    """
    info = read_json(Path(run_dir) / WORKER_FILE)
    if info.get("backend") == "ray":
        from unet_demo.training.ray_backend import ray_worker_alive

        return ray_worker_alive(Path(run_dir), info)
    pid = info.get("pid")
    return pid_alive(int(pid) if isinstance(pid, int) else None, run_dir)


def pid_alive(pid: int | None, run_dir: str | Path | None = None) -> bool:
    """True when process ``pid`` exists and (on Linux) is the worker of ``run_dir``.

    The command-line check guards against a recycled pid belonging to another program.
    """
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            if (proc / "stat").read_text().split(")")[-1].split()[0] == "Z":
                return False  # a zombie: finished, not yet reaped
            if run_dir is not None:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    "utf-8", "replace")
                return Path(run_dir).name in cmdline
        except OSError:
            return False
    return True


# --------------------------------------------------------------------------- listing

def _status(run_dir: Path) -> tuple[str, str]:
    last = ev.last_event(run_dir) if (run_dir / ev.EVENTS_FILE).is_file() else None
    if isinstance(last, ev.Finished):
        return "finished", ""
    if isinstance(last, ev.Stopped):
        return "stopped", ""
    if isinstance(last, ev.Failed):
        return "failed", last.message
    if isinstance(last, ev.Cancelled):
        return "cancelled", ""
    if (run_dir / WORKER_FILE).is_file() and worker_alive(run_dir):
        return "running", ""
    if (run_dir / QUEUED_FILE).is_file():
        return "queued", ""
    return "interrupted", ""


def _run_dir_of(run_id_or_path: str | Path, root: str | Path | None = None) -> Path:
    from unet_demo.settings import runs_dir

    candidate = Path(run_id_or_path)
    if candidate.is_dir() and (candidate / CONFIG_FILE).is_file():
        return candidate
    text = str(run_id_or_path)
    if "/" not in text and "\\" not in text and not text.startswith("."):
        folder = Path(root) if root is not None else runs_dir()
        if (folder / text / CONFIG_FILE).is_file():
            return folder / text
    raise UNetDemoError(
        f"No training run found at {text!r}. Expected a run id under the runs folder or a run "
        f"directory containing {CONFIG_FILE}; list runs with the Train page or `ls runs/`."
    )


def load_run(run_id_or_path: str | Path, root: str | Path | None = None) -> RunInfo:
    """Read one run's config, status, metrics and label.

    Args:
        run_id_or_path: a run id (folder name under ``root``) or a run directory path.
        root: runs folder (default `unet_demo.settings.runs_dir()`).

    Example:
        >>> with tempfile.TemporaryDirectory() as runs:
        ...     run_dir = Path(runs) / "20261123-093000-1a2b3c"
        ...     atomic_write_json(run_dir / CONFIG_FILE, {"data": {"dataset": "nuclei"}})
        ...     ev.append_event(run_dir, ev.Finished(best_epoch=3, metrics={"val_dice": 0.8}))
        ...     run = load_run("20261123-093000-1a2b3c", root=runs)
        >>> run.status, run.spec["data"]["dataset"]
        ('finished', 'nuclei')
    """
    path = _run_dir_of(run_id_or_path, root)
    status, message = _status(path)
    state = read_json(path / STATE_FILE)
    label_file = path / LABEL_FILE
    label = label_file.read_text(encoding="utf-8").strip() if label_file.is_file() else ""
    return RunInfo(
        run_id=path.name,
        path=path,
        status=status,
        spec=read_json(path / CONFIG_FILE),
        created=(path / CONFIG_FILE).stat().st_mtime if (path / CONFIG_FILE).exists() else 0.0,
        metrics=read_json(path / METRICS_FILE),
        label=label,
        epochs_done=int(state.get("epoch", 0) or 0),
        message=message,
    )


def list_runs(root: str | Path | None = None) -> list[RunInfo]:
    """Every run under ``root`` (default: the runs folder), newest first.

    Args:
        root: folder holding run directories.

    Example:
        >>> list_runs("/nonexistent")
        []
    """
    from unet_demo.settings import runs_dir

    folder = Path(root) if root is not None else runs_dir()
    if not folder.is_dir():
        return []
    runs = []
    for path in folder.iterdir():
        if path.is_dir() and (path / CONFIG_FILE).is_file():
            with contextlib.suppress(UNetDemoError, OSError, ValueError):
                runs.append(load_run(path))
    return sorted(runs, key=lambda run: (run.created, run.run_id), reverse=True)


def load_model(run_dir: str | Path):
    """Load a run's final model.keras with ``safe_mode=True`` (no optimizer, not compiled).

    Args:
        run_dir: the run directory (or run id under the runs folder).

    Example:
        >>> import shutil
        >>> from unet_demo.settings import REPO_ROOT
        >>> with tempfile.TemporaryDirectory() as run_dir:  # a run folder holding a bundled model
        ...     atomic_write_json(Path(run_dir) / CONFIG_FILE, {})
        ...     _ = shutil.copy(REPO_ROOT / "models/bundled/nuclei/model.keras", run_dir)
        ...     load_model(run_dir).input_shape
        (None, 128, 128, 1)
    """
    import keras

    import unet_demo.losses  # noqa: F401  (registers the custom losses)
    import unet_demo.models.norm  # noqa: F401  (registers the normalisation layers)
    from unet_demo.training.keras_metrics import overlap_metric_class

    overlap_metric_class()
    path = _run_dir_of(run_dir) / MODEL_FILE
    if not path.is_file():
        raise UNetDemoError(
            f"Run {path.parent.name} has no {MODEL_FILE} yet: it is still running, was stopped "
            "before it saved one, or failed. Wait for it to finish or train it again."
        )
    return keras.saving.load_model(path, compile=False, safe_mode=True)


def list_model_choices(prefer: str = "runs") -> list[tuple[str, str]]:
    """(label, spec) for every usable model: finished training runs and bundled models.

    Args:
        prefer: "runs" lists trained runs first (newest first), "bundled" lists bundled first.

    Example:
        >>> list_model_choices("bundled")[0]  # doctest: +ELLIPSIS
        ('Bundled: U-Net for Brain extraction on a T1 MRI head...', 'bundled:brain_skullstrip')
    """
    bundled = [(f"Bundled: {info.title}", BUNDLED_PREFIX + info.name)
               for info in list_bundled_models()]
    runs = [(f"Run: {label}", str(path)) for label, path in _finished_runs()]
    return bundled + runs if prefer == "bundled" else runs + bundled


def _finished_runs() -> list[tuple[str, Path]]:
    """(label, folder) of finished or stopped training runs that saved a model.keras."""
    found = []
    for run in list_runs():
        if run.status not in ("finished", "stopped") or not (run.path / MODEL_FILE).is_file():
            continue
        dataset = dataset_of(run.spec)
        split = "test"
        dice = nested_value(run.metrics, "test", "dice")
        if not isinstance(dice, int | float):
            split, dice = "val", nested_value(run.metrics, "val", "dice")
        details = [part for part in (
            dataset, run.status if run.status != "finished" else "",
            f"{split} Dice {float(dice):.3f}" if isinstance(dice, int | float) else "",
        ) if part]
        name = run.label or run.run_id
        found.append((name + (f" ({', '.join(details)})" if details else ""), run.path))
    return found
