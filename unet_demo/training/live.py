"""Fold training events into what a page or the CLI shows: progress, ETA, best epoch.

A run reports only through typed events (`unet_demo.training.events`). `LiveRun` folds them
into the state a viewer needs (history, last batch, snapshots, the final event), and the text
functions here turn that state into the lines both the Train page and ``python -m unet_demo
train`` print, so the two always say the same thing. No streamlit and no TensorFlow here.

Example:
    >>> from unet_demo.training.events import EpochEnd
    >>> live = LiveRun("demo")
    >>> live.apply([EpochEnd(epoch=1, metrics={"loss": 0.5, "val_dice": 0.7}, seconds=3.0)])
    >>> live.history[0]["val_dice"], best_epoch(live.history)
    (0.7, (1, 0.7))
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from unet_demo.errors import UNetDemoError
from unet_demo.training.events import (
    TERMINAL_TYPES,
    BatchEnd,
    Cancelled,
    EpochEnd,
    Event,
    Failed,
    Finished,
    PhaseStart,
    Started,
    Stopped,
    ValidationSnapshot,
    last_event,
    read_events,
)


@dataclasses.dataclass
class LiveRun:
    """What a viewer knows about one run, built incrementally from its events.

    Attributes:
        run_id: the run's id.
        offset: byte offset in events.jsonl read so far (pass to `read_events`).
        started: the last Started event (a resumed run starts again).
        last_batch: the latest BatchEnd.
        history: one dict per finished epoch: epoch, seconds and the epoch's metrics.
        snapshots: epoch -> run-relative path of that epoch's validation snapshot.
        terminal: the Finished, Failed or Stopped event once the run ended.
        first_epoch_end: time of the first EpochEnd since the last Started (for the ETA).
        phase: the last PhaseStart of a fine-tuning schedule (None without one).

    Example:
        >>> live = LiveRun("r1")
        >>> live.apply([Stopped(epoch=1, batch=3)])
        >>> live.status
        'stopped'
    """

    run_id: str
    offset: int = 0
    started: Started | None = None
    last_batch: BatchEnd | None = None
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    snapshots: dict[int, str] = dataclasses.field(default_factory=dict)
    terminal: Event | None = None
    first_epoch_end: float | None = None
    phase: PhaseStart | None = None

    def apply(self, events: list[Event]) -> None:
        """Fold new events into the state (epochs are keyed, so a resumed run does not repeat).

        Args:
            events: events in file order.

        Example:
            >>> live = LiveRun("r")
            >>> live.apply([EpochEnd(epoch=1, metrics={"loss": 0.9}, seconds=1.0),
            ...             EpochEnd(epoch=1, metrics={"loss": 0.8}, seconds=1.0)])
            >>> [row["loss"] for row in live.history]
            [0.8]
        """
        for event in events:
            if isinstance(event, Started):
                self.started, self.terminal, self.last_batch = event, None, None
                self.first_epoch_end = None
                self.history = [row for row in self.history
                                if row["epoch"] <= event.initial_epoch]
            elif isinstance(event, BatchEnd):
                self.last_batch = event
            elif isinstance(event, EpochEnd):
                self.history = [row for row in self.history if row["epoch"] < event.epoch]
                if self.first_epoch_end is None:
                    self.first_epoch_end = event.time
                self.history.append({"epoch": event.epoch, "seconds": event.seconds,
                                     **event.metrics})
            elif isinstance(event, ValidationSnapshot):
                self.snapshots[event.epoch] = event.path
            elif isinstance(event, PhaseStart):
                self.phase = event
            elif isinstance(event, TERMINAL_TYPES):
                self.terminal = event

    def update(self, run_dir: str | Path) -> list[Event]:
        """Read the events appended to the run's events.jsonl since the last call and fold them.

        Args:
            run_dir: the run directory.

        Returns:
            The new events (already applied).

        Example:
            >>> import tempfile
            >>> from unet_demo.training.events import append_event
            >>> folder = tempfile.mkdtemp()
            >>> append_event(folder, Stopped(epoch=1, batch=2))
            >>> live = LiveRun("r")
            >>> len(live.update(folder)), len(live.update(folder)), live.status
            (1, 0, 'stopped')
        """
        events, self.offset = read_events(run_dir, self.offset)
        self.apply(events)
        return events

    @property
    def status(self) -> str:
        """"waiting", "running", "finished", "stopped", "failed" or "cancelled" (events alone)."""
        if isinstance(self.terminal, Finished):
            return "finished"
        if isinstance(self.terminal, Stopped):
            return "stopped"
        if isinstance(self.terminal, Failed):
            return "failed"
        if isinstance(self.terminal, Cancelled):
            return "cancelled"
        return "running" if self.started else "waiting"


def clock(seconds: float) -> str:
    """Seconds as "m:ss" (or "h:mm:ss" past an hour).

    Args:
        seconds: a duration.

    Example:
        >>> clock(75), clock(3725)
        ('1:15', '1:02:05')
    """
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _position(live: LiveRun) -> tuple[int, int, int] | None:
    """(epoch, step within it, steps per epoch) of the latest step; None while compiling."""
    started, batch = live.started, live.last_batch
    if started is None:
        return None
    finished_epochs = max((row["epoch"] for row in live.history), default=started.initial_epoch)
    if not _real_rate(batch) and finished_epochs <= started.initial_epoch:
        return None  # no step finished since the (re)start: the model is still being built
    if batch is not None and batch.epoch > finished_epochs:
        return batch.epoch, batch.batch, batch.num_batches
    return finished_epochs, started.batches_per_epoch, started.batches_per_epoch


def _steps_done(live: LiveRun, position: tuple[int, int, int]) -> int:
    epoch, step_in_epoch, _ = position
    return (epoch - 1) * live.started.batches_per_epoch + step_in_epoch


def remaining_seconds(live: LiveRun, now: float | None = None) -> float | None:
    """Seconds the run still needs at its own measured pace; None before it has a pace.

    The pace is the time since the first epoch of this (re)start ended divided by the
    optimizer steps done since then (the first epoch is left out: it includes tracing or XLA
    compilation), so it includes validation. Before that it is the time since the start.

    Args:
        live: the run's state.
        now: current time (seconds since the epoch); defaults to `time.time()`.

    Example:
        >>> live = LiveRun("r")
        >>> live.apply([Started(epochs=2, batches_per_epoch=10, time=0.0),
        ...             BatchEnd(epoch=1, batch=5, num_batches=10, loss=0.5,
        ...                      images_per_sec=12.0, time=5.0)])
        >>> remaining_seconds(live, now=5.0)
        15.0
    """
    started = live.started
    position = _position(live)
    if started is None or position is None:
        return None
    done = _steps_done(live, position)
    total_steps = max(1, started.epochs * started.batches_per_epoch)
    current = time.time() if now is None else now
    steps = done - started.initial_epoch * started.batches_per_epoch
    elapsed = current - started.time
    first_steps = (started.initial_epoch + 1) * started.batches_per_epoch
    if live.first_epoch_end is not None and done > first_steps:
        steps, elapsed = done - first_steps, current - live.first_epoch_end
    if steps <= 0 or elapsed <= 0:
        return None
    return elapsed / steps * max(0, total_steps - done)


def progress_text(live: LiveRun, now: float | None = None) -> tuple[float, str]:
    """Progress fraction and a line "Epoch e/E · batch b/B · ETA m:ss · n images/s".

    The ETA is `remaining_seconds`. Until the first BatchEnd with a real rate it says
    "compiling the model…" (the model is being built and compiled).

    Args:
        live: the run's state.
        now: current time (seconds since the epoch); defaults to `time.time()`.

    Example:
        >>> live = LiveRun("r")
        >>> live.apply([Started(epochs=2, batches_per_epoch=10, time=0.0)])
        >>> progress_text(live, now=3.0)[1]
        'Epoch 1/2 · compiling the model… (the first batch waits for it)'
        >>> live.apply([BatchEnd(epoch=1, batch=5, num_batches=10, loss=0.5,
        ...                      images_per_sec=12.0, time=5.0)])
        >>> progress_text(live, now=5.0)
        (0.25, 'Epoch 1/2 · batch 5/10 · ETA 0:15 · 12.0 images/s')
    """
    started = live.started
    if started is None:
        return 0.0, "Waiting for the worker to load the data and build the model..."
    total_steps = max(1, started.epochs * started.batches_per_epoch)
    position = _position(live)
    if position is None:
        # No step finished since the (re)start: the worker builds and XLA-compiles the model,
        # which takes seconds to a minute; "batch 12/12" would be a lie here.
        done = started.initial_epoch * started.batches_per_epoch
        return (min(1.0, done / total_steps),
                f"Epoch {started.initial_epoch + 1}/{started.epochs} · {COMPILING}")
    epoch, step_in_epoch, per_epoch = position
    fraction = min(1.0, max(0.0, _steps_done(live, position) / total_steps))
    remaining = remaining_seconds(live, now)
    eta = clock(remaining) if remaining is not None else "estimating"
    batch = live.last_batch
    speed = f" · {batch.images_per_sec:.1f} images/s" if batch is not None else ""
    text = (f"Epoch {max(epoch, 1)}/{started.epochs} · batch {step_in_epoch}/{per_epoch} · "
            f"ETA {eta}{speed}")
    return fraction, text


COMPILING = "compiling the model… (the first batch waits for it)"


def _real_rate(batch: BatchEnd | None) -> bool:
    """True for a BatchEnd that carries a measured, positive images-per-second rate."""
    rate = getattr(batch, "images_per_sec", None)
    return isinstance(rate, int | float) and math.isfinite(rate) and rate > 0


def best_epoch(history: list[dict[str, Any]]) -> tuple[int | None, float | None]:
    """(epoch, value) of the highest finite validation Dice so far, or (None, None).

    Args:
        history: `LiveRun.history` or `unet_demo.training.rundir.load_history` rows.

    Example:
        >>> best_epoch([{"epoch": 1, "val_dice": 0.4}, {"epoch": 2, "val_dice": float("nan")},
        ...             {"epoch": 3, "val_dice": 0.6}, {"epoch": 4, "val_dice": None}])
        (3, 0.6)
        >>> best_epoch([])
        (None, None)
    """
    best = None
    for row in history:
        value = row.get("val_dice")
        if isinstance(value, int | float) and math.isfinite(value) and (
                best is None or value > best[1]):
            best = (row["epoch"], float(value))
    return best if best else (None, None)


def kept_weights_text(kept_epoch: int | None, history: list[dict[str, Any]]) -> str:
    """The one sentence on which epoch's weights a finished run keeps and why.

    The Train page, the CLI, metrics.json ("kept_text") and model_card.md all use it, so "best"
    never means two things. With early stopping the runner restores the epoch with the highest
    validation Dice; without it, it keeps the last epoch (the training the user asked for),
    and the sentence then names the best epoch separately.

    Args:
        kept_epoch: the epoch whose weights model.keras holds (``Finished.best_epoch``).
        history: the run's per-epoch rows (with ``val_dice``).

    Example:
        >>> rows = [{"epoch": 1, "val_dice": 0.5}, {"epoch": 2, "val_dice": 0.7},
        ...         {"epoch": 3, "val_dice": 0.6}]
        >>> kept_weights_text(2, rows)
        'Kept: epoch 2 (best validation Dice 0.700 of 3 epochs).'
        >>> kept_weights_text(3, rows)
        'Kept: epoch 3 (last epoch, validation Dice 0.600); best validation Dice 0.700 at epoch 2.'
        >>> kept_weights_text(3, [{"epoch": 3, "val_dice": float("nan")}])
        'Kept: epoch 3 (no validation Dice recorded).'
    """
    best, best_dice = best_epoch(history)
    last = max((int(row["epoch"]) for row in history), default=None)
    if kept_epoch is None or kept_epoch == 0:
        kept_epoch = last
    if kept_epoch is None:
        return "Kept: no finished epoch."
    if best is None:
        return f"Kept: epoch {kept_epoch} (no validation Dice recorded)."
    if kept_epoch == best:
        return f"Kept: epoch {kept_epoch} (best validation Dice {best_dice:.3f} of {last} epochs)."
    row = next((r for r in history if int(r["epoch"]) == kept_epoch), {})
    value = row.get("val_dice")
    dice = (f", validation Dice {float(value):.3f}"
            if isinstance(value, int | float) and math.isfinite(value) else "")
    why = "last epoch" if kept_epoch == last else "chosen epoch"
    return (f"Kept: epoch {kept_epoch} ({why}{dice}); best validation Dice {best_dice:.3f} "
            f"at epoch {best}.")


# Measured on the shared 2-core "Intel(R) Xeon(R) Processor" dev machine (load 1.5-3), with
# `python -m unet_demo train --dataset brain_skullstrip --preset classroom` (classic, depth 3,
# base 8, GroupNorm, 128x128, batch 8, XLA on, 101 training images): median images/s of
# epochs 2..8 in history.csv (train images / epoch seconds, so validation is included) = 20.7;
# overhead = the 62.6 s wall time (process start to test scores) minus 8 x 101 / 20.7 s
# (imports, data, model build, XLA compilation, test evaluation).
REFERENCE_IMAGES_PER_SEC = 20.7
REFERENCE_OVERHEAD_S = 24.0
ETA_WARN_SECONDS = 120.0
SMALL_BATCH = 16
_SIMILAR_MODEL_KEYS = ("variant", "depth", "base_filters", "normalization", "convs_per_block",
                       "backbone", "filter_growth")


@dataclasses.dataclass(frozen=True)
class TimeEstimate:
    """A run's estimated wall time and how it was estimated.

    Attributes:
        seconds: estimated wall time from start to the end of the last epoch.
        images_per_sec: the training throughput assumed (validation included).
        method: one phrase saying where the throughput comes from.
    """

    seconds: float
    images_per_sec: float
    method: str


def _get(spec: Any, section: str, name: str, default: Any = None) -> Any:
    """A field of a RunSpec or of its config.json dict."""
    part = spec.get(section, {}) if isinstance(spec, dict) else getattr(spec, section, None)
    if isinstance(part, dict):
        return part.get(name, default)
    return getattr(part, name, default)


def estimate_run_seconds(spec: Any, train_images: int,
                         past_runs: list[tuple[dict[str, Any], list[dict[str, Any]]]] = (),
                         ) -> TimeEstimate:
    """Estimate a run's wall time: overhead + epochs x training images / images per second.

    The throughput is the median ``images_per_sec`` (epochs after the first, which includes
    compilation) of past runs with the same model (variant, depth, base filters, normalisation,
    ...) and image size. Without such a run it scales the measured classroom reference
    (`REFERENCE_IMAGES_PER_SEC`) by the convolution cost, which grows with base_filters**2 and
    with the number of pixels.

    Args:
        spec: a RunSpec (or its config.json dict).
        train_images: training images the run will use (after ``max_train_images``).
        past_runs: (config dict, history rows) of earlier runs on this server.

    Example:
        >>> from unet_demo.training.presets import get_preset
        >>> spec = get_preset("brain_skullstrip", "classroom")
        >>> estimate = estimate_run_seconds(spec, 101)
        >>> round(estimate.seconds), estimate.method.split(" (")[0]
        (63, 'measured classroom reference')
    """
    size = int(_get(spec, "data", "image_size", 128) or 128)
    rates = []
    for config, rows in past_runs:
        same = all(_get(config, "model", key) == _get(spec, "model", key)
                   for key in _SIMILAR_MODEL_KEYS)
        if same and int(_get(config, "data", "image_size", 0) or 0) == size:
            rates += [float(row["images_per_sec"]) for row in rows[1:]
                      if isinstance(row.get("images_per_sec"), int | float)
                      and math.isfinite(row["images_per_sec"]) and row["images_per_sec"] > 0]
    if rates:
        rate = float(np.median(rates))
        method = f"median of {len(rates)} epochs of similar past runs on this server"
    else:
        base = float(_get(spec, "model", "base_filters", 8) or 8)
        scale = (base / 8.0) ** 2 * (size / 128.0) ** 2
        rate = REFERENCE_IMAGES_PER_SEC / max(scale, 1e-6)
        method = (f"measured classroom reference ({REFERENCE_IMAGES_PER_SEC:g} images/s at base "
                  "8, 128 px) scaled by base filters² x pixels")
    epochs = max(1, int(_get(spec, "train", "epochs", 1) or 1))
    # images_per_sec in history.csv is training images / epoch seconds, so this is per epoch.
    seconds = REFERENCE_OVERHEAD_S + epochs * max(1, int(train_images)) / rate
    return TimeEstimate(seconds=seconds, images_per_sec=rate, method=method)


def training_warnings(spec: Any, estimate: TimeEstimate | None = None) -> list[str]:
    """Warnings to show before a start: BatchNorm with small batches, a run longer than ~2 min.

    Args:
        spec: a RunSpec (or its config.json dict).
        estimate: the run's `estimate_run_seconds`, when known.

    Example:
        >>> from unet_demo.training.presets import get_preset
        >>> spec = get_preset("brain_skullstrip", "classroom")
        >>> training_warnings(spec)
        []
        >>> bn = spec.replace(model=spec.model.replace(normalization="batch"))
        >>> training_warnings(bn)[0].split(":")[0]
        'BatchNorm with batches of 8'
    """
    warnings = []
    batch = int(_get(spec, "train", "batch_size", 8) or 8)
    if _get(spec, "model", "normalization") == "batch" and batch < SMALL_BATCH:
        warnings.append(
            f"BatchNorm with batches of {batch}: its running averages need many large "
            f"batches (say {SMALL_BATCH} or more) to settle. With small batches the validation "
            "loss can spike and validation Dice stay far below training Dice (measured here: "
            "val Dice 0.23 vs train 0.97). Use GroupNorm (the presets do) or larger batches.")
    if estimate is not None and estimate.seconds > ETA_WARN_SECONDS:
        warnings.append(
            f"This run is estimated to take about {clock(estimate.seconds)} "
            f"({estimate.images_per_sec:.0f} images/s: {estimate.method}), longer than "
            f"{clock(ETA_WARN_SECONDS)}. In class, pick the classroom preset, fewer epochs or "
            "fewer training images.")
    return warnings


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def settings_diff(configs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows "setting, <run A>, <run B>, ..." for the config.json settings that differ.

    Args:
        configs: run label -> its config.json dict (sections data, model, train, augment).

    Example:
        >>> settings_diff({"A": {"train": {"loss": "bce", "epochs": 8}},
        ...                "B": {"train": {"loss": "dice", "epochs": 8}}})
        [{'setting': 'train.loss', 'A': 'bce', 'B': 'dice'}]
    """
    flats = {label: _flatten(config or {}) for label, config in configs.items()}
    keys = sorted({key for flat in flats.values() for key in flat})
    rows = []
    for key in keys:
        values = [flat.get(key, "-") for flat in flats.values()]
        if any(value != values[0] for value in values[1:]):
            rows.append({"setting": key, **{label: str(flat.get(key, "-"))
                                            for label, flat in flats.items()}})
    return rows


def started_facts(started: Started) -> str:
    """One sentence about a (re)started run: images, parameters, batches, XLA, repeatability.

    Args:
        started: the run's Started event.

    Example:
        >>> started_facts(Started(epochs=2, batches_per_epoch=3, train_images=24,
        ...                       val_images=8, params=1234))
        '24 training / 8 validation images, 1,234 parameters, 3 batches per epoch, XLA off; \
seeded: the same seed and settings repeat this history on a CPU.'
    """
    precision = getattr(started, "precision", "float32")
    facts = (f"{started.train_images} training / {started.val_images} validation images, "
             f"{started.params:,} parameters, {started.batches_per_epoch} batches per "
             f"epoch, XLA {'on' if getattr(started, 'jit_compile', False) else 'off'}"
             + (f", {precision} compute" if precision != "float32" else "") + "; "
             + ("seeded: the same seed and settings repeat this history on a CPU."
                if getattr(started, "deterministic", False)
                else "not seeded for repeatability."))
    reason = getattr(started, "speed_reason", "")
    note = getattr(started, "note", "")
    return facts + "".join(f" {text}" for text in (reason, note) if text)


def epoch_text(row: dict[str, Any]) -> str:
    """One line per finished epoch: "epoch 3: loss 0.4000 dice 0.6000 val_loss ... (2.0 s)".

    Args:
        row: a `LiveRun.history` row (epoch, seconds and the epoch's metrics).

    Example:
        >>> epoch_text({"epoch": 3, "seconds": 2.0, "loss": 0.4, "dice": 0.6, "val_dice": 0.5})
        'epoch 3: loss 0.4000 dice 0.6000 val_loss nan val_dice 0.5000 (2.0 s)'
    """
    def number(key: str) -> str:
        value = row.get(key)
        return f"{float(value):.4f}" if isinstance(value, int | float) else "nan"

    return (f"epoch {row['epoch']}: loss {number('loss')} dice {number('dice')} "
            f"val_loss {number('val_loss')} val_dice {number('val_dice')} "
            f"({float(row.get('seconds') or 0.0):.1f} s)")


def end_message(live: LiveRun, status: str | None = None) -> tuple[str, str] | None:
    """(kind, text) saying how the run ended, or None while it runs.

    ``kind`` is "success", "warning" or "error" (a page picks its colour, the CLI ignores it).

    Args:
        live: the run's state.
        status: the run's status when known from elsewhere (e.g. "interrupted" from
            `unet_demo.training.rundir.load_run` when the worker died without a final event).

    Example:
        >>> live = LiveRun("r")
        >>> live.apply([Stopped(epoch=2, batch=5)])
        >>> end_message(live)[1]
        'Stopped during epoch 2 after batch 5. Completed epochs are kept in the run folder.'
        >>> end_message(LiveRun("r")) is None, end_message(LiveRun("r"), "interrupted")[0]
        (True, 'warning')
    """
    terminal = live.terminal
    if isinstance(terminal, Finished):
        early = " (early stopping)" if terminal.stopped_early else ""
        return "success", (f"Finished after {terminal.epochs_run or len(live.history)} "
                           f"epoch(s){early}. "
                           + kept_weights_text(terminal.best_epoch, live.history))
    if isinstance(terminal, Stopped):
        return "warning", (f"Stopped during epoch {terminal.epoch} after batch "
                           f"{terminal.batch}. Completed epochs are kept in the run folder.")
    if isinstance(terminal, Failed):
        return "error", f"Training failed: {terminal.message}"
    if isinstance(terminal, Cancelled):
        who = "by the operator" if terminal.by == "operator" else "by its owner"
        return "info", f"Cancelled {who} while it waited in the queue; nothing was trained."
    if status == "interrupted":
        return "warning", ("The worker ended without a final event (server restart or "
                           "crash). The run can be resumed from its last complete epoch with "
                           "the CLI.")
    return None


def event_lines(live: LiveRun, events: list[Event]) -> list[str]:
    """Fold ``events`` into ``live`` and return the lines a console prints for them.

    A start prints its facts, each finished epoch one `epoch_text` line, the end its
    `end_message`; batches print nothing (a console is not redrawn).

    Args:
        live: the run's state (updated in place).
        events: new events in order.

    Example:
        >>> live = LiveRun("r")
        >>> event_lines(live, [EpochEnd(epoch=1, metrics={"loss": 0.5}, seconds=1.0),
        ...                    Stopped(epoch=2, batch=1)])[1]
        'Stopped during epoch 2 after batch 1. Completed epochs are kept in the run folder.'
    """
    lines = []
    for event in events:
        live.apply([event])
        if isinstance(event, Started):
            lines.append(f"Started epochs {event.initial_epoch + 1}..{event.epochs} on "
                         f"{event.device}: {started_facts(event)}")
        elif isinstance(event, EpochEnd):
            lines.append(epoch_text(live.history[-1]))
        elif isinstance(event, PhaseStart):
            lines.append(event.text)
        elif isinstance(event, TERMINAL_TYPES):
            message = end_message(live)
            if message is not None:
                lines.append(message[1])
    return lines


def load_snapshot(run_dir: Path, relative_path: str) -> dict[str, np.ndarray] | None:
    """Read a validation snapshot (npz: images, masks, labels, probability, ids) of a run.

    Args:
        run_dir: the run directory.
        relative_path: the path from the ValidationSnapshot event.

    Returns:
        The arrays by name, or None when the file is missing, unreadable (yet) or outside
        the run directory.

    Example:
        >>> load_snapshot(Path("/tmp"), "../etc/passwd") is None
        True
    """
    run_dir = Path(run_dir)
    path = (run_dir / relative_path).resolve()
    if run_dir.resolve() not in path.parents:
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    except (OSError, ValueError):
        return None


def run_dir_of(run_id: str) -> Path:
    """The folder of a run: where `rundir.load_run` finds it, else ``<runs>/<id>``.

    Args:
        run_id: a run id (folder name under the runs folder).

    Example:
        >>> run_dir_of("20261123-101500-ab12cd").name
        '20261123-101500-ab12cd'
    """
    from unet_demo.settings import runs_dir
    from unet_demo.training.rundir import load_run

    try:
        return Path(load_run(run_id).path)
    except (UNetDemoError, OSError):
        return runs_dir() / run_id


def job_active(manager, run_id: str, run_dir: Path) -> bool:
    """True while the run trains: its worker lives and it has not written its final event.

    After the final event the worker only tidies up and exits, so a viewer already treats
    the run as over (a start in that second may still be told "busy").

    Args:
        manager: the `unet_demo.training.jobs.JobManager`.
        run_id: the run.
        run_dir: its folder.

    Example:
        >>> from unet_demo.training.jobs import JobManager
        >>> job_active(JobManager(root=Path("/tmp/no-runs")), "r", Path("/tmp/no-runs/r"))
        False
    """
    if not manager.is_running(run_id):
        return False
    try:
        return not isinstance(last_event(run_dir), TERMINAL_TYPES)
    except UNetDemoError:
        return True


def run_row(run) -> dict[str, Any]:
    """One runs-table row for a RunInfo: id, label, status, dataset, model, best val Dice, ...

    Args:
        run: a `unet_demo.training.rundir.RunInfo`.

    Example:
        >>> from unet_demo.training.rundir import list_runs
        >>> [run_row(run)["run"] for run in list_runs("/tmp/no-runs")]
        []
    """
    from unet_demo.training.rundir import load_history

    history = load_history(run.path)
    _, best_dice = best_epoch(history)
    seconds = sum(float(row.get("seconds") or 0.0) for row in history)
    spec = run.spec or {}
    model = spec.get("model", {})
    return {
        "run": run.run_id,
        "label": run.label,
        "status": run.status,
        "dataset": spec.get("data", {}).get("dataset", "?"),
        "model": f"{model.get('variant', '?')} d{model.get('depth', '?')}",
        "loss": spec.get("train", {}).get("loss", "?"),
        "epochs": len(history),
        "best val Dice": round(best_dice, 4) if best_dice is not None else None,
        "duration": clock(seconds),
        "created": datetime.datetime.fromtimestamp(run.created).strftime("%Y-%m-%d %H:%M"),
    }
