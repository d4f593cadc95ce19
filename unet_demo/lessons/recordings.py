"""Recorded lesson runs: write a finished run compactly into ``lessons/``, and read it back.

A recorded run is a folder ``lessons/<experiment>/<run>/`` with

* ``spec.json``: the catalogue's `RunSpec` the run trained (what "Run it live" trains again);
* ``events.jsonl``: the run's events without the per-batch ones (Started, EpochEnd,
  Finished): the curves;
* ``metrics.json``: the engine's final train/val/test scores and timings;
* ``environment.json``: machine, packages, XLA, seed;
* ``snapshots.npz``: the fixed validation images and masks once, and for every epoch the
  foreground probability (uint8) and labels the model gave them;
* ``cost.json``: what the run cost independently of the machine's load: parameters, forward
  FLOPs per image, training compute (3 x forward FLOPs x images seen) and receptive field
  (`unet_demo.models.stats`; the recorded seconds are wall time on a shared machine).

Reading never imports TensorFlow, so the Lessons page replays a recording at once.

Example:
    >>> from unet_demo.lessons.catalogue import get_experiment
    >>> recording = load_experiment(get_experiment("skip_connections"))  # doctest: +SKIP
    >>> recording.runs["none"].test_dice  # doctest: +SKIP
    0.87
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from unet_demo.errors import UNetDemoError
from unet_demo.lessons.catalogue import Experiment
from unet_demo.settings import REPO_ROOT
from unet_demo.training import events as ev
from unet_demo.training.spec import RunSpec

SPEC_FILE = "spec.json"
EVENTS_FILE = "events.jsonl"
METRICS_FILE = "metrics.json"
ENVIRONMENT_FILE = "environment.json"
SNAPSHOTS_FILE = "snapshots.npz"
COST_FILE = "cost.json"
RUN_FILES = (SPEC_FILE, EVENTS_FILE, METRICS_FILE, ENVIRONMENT_FILE, SNAPSHOTS_FILE)
"""Files every recorded run has; ``cost.json`` is added by the recorder's cost pass."""
MEASURE_NAMES = ("test_dice", "gap", "train_seconds", "train_gflop", "receptive_field")
MAX_TOTAL_BYTES = 8 * 1024 * 1024
"""All recordings together stay under 8 MB (a test checks it)."""
MAX_FRAMES = 12
"""Snapshot epochs kept per run: all of them up to 12, else 12 spread out (first and last kept)."""
_KEPT_EVENTS = ("Started", "EpochEnd", "Finished")


def lessons_dir() -> Path:
    """Folder of the recordings (``UNET_DEMO_LESSONS_DIR``, default ``./lessons``)."""
    return Path(os.environ.get("UNET_DEMO_LESSONS_DIR", REPO_ROOT / "lessons"))


@dataclasses.dataclass(frozen=True)
class RunRecording:
    """One recorded run, read back.

    Attributes:
        key: the run's key in the catalogue.
        spec: the RunSpec it trained.
        history: one dict per epoch (epoch, loss, val_loss, dice, val_dice, ..., seconds).
        metrics: metrics.json (``test``, ``train``, ``val``, ``train_seconds``, ...).
        environment: environment.json.
        epochs: epochs that have a snapshot, ascending.
        images, masks: (N, H, W) uint8 validation images and their true masks.
        probability, labels: (E, N, H, W) uint8 per snapshot epoch.
        cost: cost.json ({} when missing).
    """

    key: str
    spec: RunSpec
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    environment: dict[str, Any]
    epochs: tuple[int, ...]
    images: np.ndarray
    masks: np.ndarray
    probability: np.ndarray
    labels: np.ndarray
    cost: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def test_dice(self) -> float:
        """Mean test Dice of the final model (NaN when the test split could not be scored)."""
        return float(self.metrics.get("test", {}).get("dice", math.nan))

    @property
    def gap(self) -> float:
        """Training Dice minus validation Dice at the last epoch (how much was memorised)."""
        last = self.history[-1] if self.history else {}
        return float(last.get("dice", math.nan)) - float(last.get("val_dice", math.nan))

    @property
    def train_seconds(self) -> float:
        """Seconds spent in ``model.fit`` (on the recording machine)."""
        return float(self.metrics.get("train_seconds", math.nan))

    @property
    def train_gflop(self) -> float:
        """Training compute in GFLOP (3 x forward FLOPs x images seen; NaN when unknown)."""
        return float(self.cost.get("train_gflop", math.nan))

    @property
    def receptive_field(self) -> float:
        """Theoretical receptive field side in input pixels (NaN when unknown)."""
        return float(self.cost.get("receptive_field", math.nan))

    def measure(self, name: str) -> float:
        """The value of a catalogue measure (one of `MEASURE_NAMES`)."""
        if name not in MEASURE_NAMES:
            raise UNetDemoError(f"Unknown measure {name!r}. Expected one of {MEASURE_NAMES}.")
        return float(getattr(self, name))

    def frame(self, epoch: int) -> int:
        """Index into ``epochs`` of the last snapshot at or before ``epoch`` (0 if none)."""
        index = int(np.searchsorted(np.asarray(self.epochs), epoch, side="right")) - 1
        return max(0, min(index, len(self.epochs) - 1))


@dataclasses.dataclass(frozen=True)
class ExperimentRecording:
    """The recorded runs of one experiment (``missing`` lists runs not recorded yet)."""

    experiment: Experiment
    runs: dict[str, RunRecording]
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """True when every run of the experiment is recorded."""
        return not self.missing


def run_folder(experiment_key: str, run_key: str, root: Path | None = None) -> Path:
    """``lessons/<experiment>/<run>``."""
    return (root or lessons_dir()) / experiment_key / run_key


def kept_frames(epochs: int, most: int = MAX_FRAMES) -> list[int]:
    """0-based indices of the snapshot epochs a recording keeps: dense early, sparse late.

    Example:
        >>> [i + 1 for i in kept_frames(6)]
        [1, 2, 3, 4, 5, 6]
        >>> [i + 1 for i in kept_frames(30)]
        [1, 2, 3, 4, 5, 6, 7, 9, 13, 17, 22, 30]
    """
    if epochs <= most:
        return list(range(epochs))
    chosen = set(range(most // 2))
    for value in np.geomspace(most // 2 + 1, epochs, most - most // 2):
        chosen.add(int(round(value)) - 1)
    return sorted(chosen)


def thin_snapshots(folder: str | Path, most: int = MAX_FRAMES) -> None:
    """Keep `kept_frames` of a recording's snapshots.npz (in place)."""
    path = Path(folder) / SNAPSHOTS_FILE
    with np.load(path) as data:
        arrays = {name: np.asarray(data[name]) for name in data.files}
    keep = kept_frames(len(arrays["epochs"]), most)
    if len(keep) == len(arrays["epochs"]):
        return
    for name in ("epochs", "probability", "labels"):
        arrays[name] = arrays[name][keep]
    with open(path.with_name(".tmp-" + path.name), "wb") as handle:
        np.savez_compressed(handle, **arrays)
    os.replace(path.with_name(".tmp-" + path.name), path)


def compact_run(run_dir: str | Path, dest: str | Path, spec: RunSpec) -> Path:
    """Copy the parts of a finished training run that a replay needs into ``dest``.

    Args:
        run_dir: a finished run directory written by `run_training`.
        dest: the recording folder (replaced).
        spec: the catalogue's spec the run trained (stored as spec.json).
    """
    run_dir, dest = Path(run_dir), Path(dest)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise UNetDemoError(f"{run_dir} has no metrics.json: the run did not finish.")
    events, _ = ev.read_events(run_dir)
    lines = [ev.event_to_json(e) for e in events if type(e).__name__ in _KEPT_EVENTS]
    snapshots = sorted((run_dir / "snapshots").glob("epoch_*.npz"))
    if not snapshots:
        raise UNetDemoError(f"{run_dir} has no validation snapshots.")
    epochs, probability, labels = [], [], []
    for path in snapshots:
        with np.load(path) as data:
            epochs.append(int(path.stem.split("_")[1]))
            probability.append(np.asarray(data["probability"], np.uint8))
            labels.append(np.asarray(data["labels"], np.uint8))
            images = np.asarray(data["images"], np.uint8)[..., 0]
            masks = np.asarray(data["masks"], np.uint8)
            ids = np.asarray(data["ids"])
    tmp = dest.with_name(f".tmp-{dest.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / SPEC_FILE).write_text(spec.to_json() + "\n", encoding="utf-8")
    (tmp / EVENTS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.copyfile(metrics_path, tmp / METRICS_FILE)
    environment = json.loads((run_dir / "environment.json").read_text(encoding="utf-8"))
    environment.pop("argv", None)
    (tmp / ENVIRONMENT_FILE).write_text(json.dumps(environment, indent=2, sort_keys=True) + "\n",
                                        encoding="utf-8")
    with open(tmp / SNAPSHOTS_FILE, "wb") as handle:
        np.savez_compressed(handle, epochs=np.asarray(epochs, np.int16), images=images,
                            masks=masks, ids=ids, probability=np.stack(probability),
                            labels=np.stack(labels))
    thin_snapshots(tmp)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def load_run(folder: str | Path, key: str = "") -> RunRecording:
    """Read one recorded run folder.

    Raises:
        UNetDemoError: a file is missing or unreadable (the message names it).
    """
    folder = Path(folder)
    missing = [name for name in RUN_FILES if not (folder / name).is_file()]
    if missing:
        raise UNetDemoError(f"Recording {folder} lacks {missing}; record it again with "
                            "scripts/record_lessons.py.")
    spec = RunSpec.from_json((folder / SPEC_FILE).read_text(encoding="utf-8"))
    history = []
    for line in (folder / EVENTS_FILE).read_text(encoding="utf-8").splitlines():
        if line.strip():
            event = ev.event_from_json(line)
            if isinstance(event, ev.EpochEnd):
                history.append({"epoch": event.epoch, **event.metrics})
    metrics = json.loads((folder / METRICS_FILE).read_text(encoding="utf-8"))
    environment = json.loads((folder / ENVIRONMENT_FILE).read_text(encoding="utf-8"))
    with np.load(folder / SNAPSHOTS_FILE) as data:
        arrays = {name: np.asarray(data[name]) for name in
                  ("epochs", "images", "masks", "probability", "labels")}
    cost_path = folder / COST_FILE
    cost = json.loads(cost_path.read_text(encoding="utf-8")) if cost_path.is_file() else {}
    return RunRecording(key or folder.name, spec, history, metrics, environment,
                        tuple(int(e) for e in arrays["epochs"]), arrays["images"],
                        arrays["masks"], arrays["probability"], arrays["labels"], cost)


def started_event(folder: str | Path) -> ev.Started | None:
    """The recorded run's `Started` event (split sizes, parameters), if any."""
    for line in (Path(folder) / EVENTS_FILE).read_text(encoding="utf-8").splitlines():
        if line.strip():
            event = ev.event_from_json(line)
            if isinstance(event, ev.Started):
                return event
    return None


def training_cost(spec: RunSpec, train_images: int) -> dict[str, Any]:
    """cost.json of a run: parameters, forward FLOPs, training GFLOP, receptive field.

    Builds the model once (Keras), so only the recorder calls it, never the page.

    Args:
        spec: the run's spec (its model is sized to the data as the runner does).
        train_images: training images per epoch (from the `Started` event).
    """
    from unet_demo.models.stats import architecture_stats

    size = spec.data.image_size
    stats = architecture_stats(spec.model.replace(input_height=size, input_width=size,
                                                  input_channels=1, num_classes=1))
    seen = int(train_images) * spec.train.epochs
    return {"params": stats.params, "forward_flops_per_image": stats.flops,
            "images_seen": seen, "train_gflop": round(3 * stats.flops * seen / 1e9, 3),
            "receptive_field": stats.receptive_field,
            "note": "train_gflop = 3 x forward FLOPs per image x images seen (forward + "
                    "backward); independent of the machine's load"}


def load_experiment(experiment: Experiment, root: Path | None = None) -> ExperimentRecording:
    """Every recorded run of ``experiment`` (runs not recorded yet are listed as missing)."""
    runs, missing = {}, []
    for run in experiment.runs:
        folder = run_folder(experiment.key, run.key, root)
        if (folder / METRICS_FILE).is_file():
            runs[run.key] = load_run(folder, run.key)
        else:
            missing.append(run.key)
    return ExperimentRecording(experiment, runs, tuple(missing))


def recordings_size(root: Path | None = None) -> int:
    """Bytes of every file under the lessons folder."""
    base = root or lessons_dir()
    return sum(path.stat().st_size for path in base.rglob("*") if path.is_file())
