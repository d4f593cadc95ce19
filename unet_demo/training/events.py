"""Typed training events and their JSON-lines form (one event per line in events.jsonl).

A training run reports only through these events: the CLI prints them, the job manager's worker
appends them to ``<run_dir>/events.jsonl`` and the Train page tails that file with
`read_events`. Epoch numbers are 1-based (epoch 1 is the first), batch numbers too.

Example:
    >>> line = event_to_json(Stopped(epoch=2, batch=5))
    >>> event_from_json(line).batch
    5
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

from unet_demo.errors import UNetDemoError

EVENTS_FILE = "events.jsonl"


def _now() -> float:
    return round(time.time(), 3)


@dataclasses.dataclass(frozen=True)
class Started:
    """Training began (or resumed).

    Attributes:
        epochs: total epochs planned.
        batches_per_epoch: optimizer steps per epoch.
        initial_epoch: epochs already done (0 for a fresh run, k when resuming after epoch k).
        train_images, val_images: split sizes used.
        device: "CPU" or e.g. "GPU x2".
        params: trainable + non-trainable parameter count of the model.
        jit_compile: whether the train step is compiled with XLA.
        deterministic: the run asked for repeatable results (same seed -> same history on CPU;
            op determinism itself is only switched on where XLA is off).
        note: anything the user should know (e.g. why results may not repeat on a GPU).
        precision: "float32", "bfloat16" or "float16" (the layers' compute type).
        speed_reason: why this XLA and precision setting (measured, cached or set).
    """

    epochs: int
    batches_per_epoch: int
    initial_epoch: int = 0
    train_images: int = 0
    val_images: int = 0
    device: str = "CPU"
    params: int = 0
    jit_compile: bool = False
    deterministic: bool = True
    note: str = ""
    precision: str = "float32"
    speed_reason: str = ""
    time: float = dataclasses.field(default_factory=_now)


@dataclasses.dataclass(frozen=True)
class BatchEnd:
    """One optimizer step finished; ``loss`` is the running mean over the epoch so far."""

    epoch: int
    batch: int
    num_batches: int
    loss: float
    images_per_sec: float
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    time: float = dataclasses.field(default_factory=_now)


@dataclasses.dataclass(frozen=True)
class EpochEnd:
    """An epoch finished; ``metrics`` holds loss, val_loss, dice, val_dice, ..., lr."""

    epoch: int
    metrics: dict[str, float]
    seconds: float
    time: float = dataclasses.field(default_factory=_now)


@dataclasses.dataclass(frozen=True)
class ValidationSnapshot:
    """Predictions on a fixed set of validation images were saved (``path`` is run-relative)."""

    epoch: int
    path: str
    time: float = dataclasses.field(default_factory=_now)


@dataclasses.dataclass(frozen=True)
class Finished:
    """Training ended normally (all epochs or early stopping); metrics of the best epoch."""

    best_epoch: int
    metrics: dict[str, float]
    epochs_run: int = 0
    stopped_early: bool = False
    time: float = dataclasses.field(default_factory=_now)


@dataclasses.dataclass(frozen=True)
class Failed:
    """Training raised an error; ``message`` is what the user sees."""

    message: str
    time: float = dataclasses.field(default_factory=_now)


@dataclasses.dataclass(frozen=True)
class Stopped:
    """The user asked to stop; training ended during ``epoch`` after ``batch``."""

    epoch: int
    batch: int
    time: float = dataclasses.field(default_factory=_now)


@dataclasses.dataclass(frozen=True)
class PhaseStart:
    """A phase of the fine-tuning schedule begins (`unet_demo.models.transfer.phase_plan`).

    Attributes:
        epoch: the phase's first epoch (1-based).
        phase: "decoder" (encoder frozen) or "last_level" (deepest encoder level unfrozen).
        trainable_params, frozen_params: parameter counts in this phase.
        learning_rate: the phase's starting learning rate.
        text: one sentence for the page and the CLI.
    """

    epoch: int
    phase: str
    trainable_params: int = 0
    frozen_params: int = 0
    learning_rate: float = 0.0
    text: str = ""
    time: float = dataclasses.field(default_factory=_now)


@dataclasses.dataclass(frozen=True)
class Cancelled:
    """A queued run was taken out of the queue before it started; ``by`` says who did it."""

    by: str = "owner"
    time: float = dataclasses.field(default_factory=_now)


Event = (Started | BatchEnd | EpochEnd | ValidationSnapshot | Finished | Failed | Stopped
         | Cancelled | PhaseStart)
EVENT_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (Started, BatchEnd, EpochEnd, ValidationSnapshot, Finished, Failed, Stopped,
                Cancelled, PhaseStart)
}
TERMINAL_TYPES = (Finished, Failed, Stopped, Cancelled)


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: store them as null (the UI shows a gap)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    return value


def _clean_tree(value: Any) -> Any:
    """Like `_clean`, also through lists/tuples and numpy scalars (for run-directory JSON)."""
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        with contextlib.suppress(ValueError, TypeError):
            value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_tree(v) for v in value]
    return value


def event_to_json(event: Event) -> str:
    """One-line JSON for an event: ``{"type": "EpochEnd", ...fields}``.

    Args:
        event: any event instance.

    Example:
        >>> event_to_json(Failed("out of memory", time=1.0))
        '{"type": "Failed", "message": "out of memory", "time": 1.0}'
    """
    name = type(event).__name__
    if name not in EVENT_TYPES:
        raise UNetDemoError(f"Not a training event: {event!r}.")
    payload = {"type": name, **_clean(dataclasses.asdict(event))}
    return json.dumps(payload, allow_nan=False)


def event_from_json(line: str) -> Event:
    """Parse one line written by `event_to_json` back into its event.

    Args:
        line: a JSON object with a "type" key naming an event class.

    Example:
        >>> event_from_json('{"type": "Stopped", "epoch": 1, "batch": 3, "time": 0}').batch
        3
    """
    try:
        data = json.loads(line)
        kind = EVENT_TYPES[data.pop("type")]
        return kind(**data)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UNetDemoError(
            f"Could not read a training event from {line[:120]!r} ({error}). Expected one JSON "
            f"object per line with a type in {sorted(EVENT_TYPES)}."
        ) from None


def append_event(run_dir: str | Path, event: Event) -> None:
    """Append one event as a line to ``<run_dir>/events.jsonl`` (flushed at once).

    Args:
        run_dir: the run directory.
        event: the event to record.
    """
    with open(Path(run_dir) / EVENTS_FILE, "a", encoding="utf-8") as handle:
        handle.write(event_to_json(event) + "\n")
        handle.flush()


def read_events(run_dir: str | Path, offset: int = 0) -> tuple[list[Event], int]:
    """Read the events appended since byte ``offset``; returns (events, new offset).

    Only complete lines are read, so a line being written is picked up on the next call. Pass
    the returned offset next time to tail the file cheaply.

    Args:
        run_dir: the run directory (a missing events file reads as no events).
        offset: byte position returned by the previous call (0 = from the start).

    Example:
        >>> events, offset = read_events("/nonexistent")
        >>> events, offset
        ([], 0)
    """
    path = Path(run_dir) / EVENTS_FILE
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
    except FileNotFoundError:
        return [], offset
    end = chunk.rfind(b"\n")
    if end < 0:
        return [], offset
    events = []
    for raw in chunk[: end + 1].splitlines():
        if raw.strip():
            events.append(event_from_json(raw.decode("utf-8")))
    return events, offset + end + 1


def last_event(run_dir: str | Path) -> Event | None:
    """The most recent event of a run, or None when there is none yet.

    Args:
        run_dir: the run directory.
    """
    path = Path(run_dir) / EVENTS_FILE
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 65536))
            tail = handle.read()
    except FileNotFoundError:
        return None
    # The piece after the last newline is a line still being written: skip it.
    lines = [line for line in tail.split(b"\n")[:-1] if line.strip()]
    return event_from_json(lines[-1].decode("utf-8")) if lines else None
