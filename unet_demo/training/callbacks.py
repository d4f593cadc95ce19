"""Keras callbacks of a training run: resumable early stopping and LR plateau, the run recorder.

This module imports Keras; `unet_demo.training.runner` imports it lazily, inside the run.

* `ResumableEarlyStopping`, `ResumableReduceLROnPlateau`: Keras' own callbacks whose counters
  (``wait``, ``best``, ...) can be written to state.json after an epoch and restored when a run
  resumes, so a resumed run stops (or lowers the rate) at the same epoch as an uninterrupted one.
* `RunRecorder`: hands Keras' epoch and batch hooks to the trainer (nnU-Net style
  ``on_epoch_start`` / ``on_batch_end`` / ``on_epoch_end``), which emits events, checks for a
  stop request, writes checkpoints, history and snapshots.

Example:
    >>> stopper = ResumableEarlyStopping(restored={"wait": 2, "best": 0.5, "best_epoch": 3},
    ...                                  monitor="val_dice", mode="max", patience=5)
    >>> stopper.on_train_begin()
    >>> stopper.state()
    {'wait': 2, 'best': 0.5, 'best_epoch': 3}
"""

from __future__ import annotations

import math
import time
from typing import Any, Protocol

import keras
import numpy as np


def _as_float(value: Any) -> float:
    try:
        return float(np.asarray(value))
    except (TypeError, ValueError):
        return math.nan


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping whose counters can be restored when a run resumes.

    Args:
        restored: the `state` of the previous run's last complete epoch (None: fresh start).
        **kwargs: `keras.callbacks.EarlyStopping` arguments.

    Example:
        >>> ResumableEarlyStopping(monitor="val_dice", mode="max", patience=3).patience
        3
    """

    def __init__(self, restored: dict[str, Any] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.restored = restored or {}

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.restored:
            self.wait = int(self.restored.get("wait", 0))
            best = self.restored.get("best")
            if best is not None:
                self.best = float(best)
            self.best_epoch = int(self.restored.get("best_epoch", 0))

    def state(self) -> dict[str, Any]:
        """The counters to store with a checkpoint (JSON-ready)."""
        return {"wait": int(self.wait), "best": _as_float(self.best),
                "best_epoch": int(self.best_epoch)}


class ResumableReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau whose counters can be restored when a run resumes.

    Args:
        restored: the `state` of the previous run's last complete epoch (None: fresh start).
        **kwargs: `keras.callbacks.ReduceLROnPlateau` arguments.

    Example:
        >>> plateau = ResumableReduceLROnPlateau(restored={"wait": 1, "cooldown_counter": 0,
        ...                                               "best": 0.3}, monitor="val_loss")
        >>> plateau.on_train_begin()
        >>> plateau.state()
        {'wait': 1, 'cooldown_counter': 0, 'best': 0.3}
    """

    def __init__(self, restored: dict[str, Any] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.restored = restored or {}

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.restored:
            self.wait = int(self.restored.get("wait", 0))
            self.cooldown_counter = int(self.restored.get("cooldown_counter", 0))
            best = self.restored.get("best")
            if best is not None:
                self.best = float(best)

    def state(self) -> dict[str, Any]:
        """The counters to store with a checkpoint (JSON-ready)."""
        return {"wait": int(self.wait), "cooldown_counter": int(self.cooldown_counter),
                "best": _as_float(self.best)}


class EpochHooks(Protocol):
    """What `RunRecorder` calls: the trainer's per-epoch and per-batch steps."""

    def on_epoch_start(self, epoch: int) -> None: ...

    def on_batch_end(self, epoch_batch: int, logs: dict[str, Any], seconds: float) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict[str, Any], seconds: float) -> None: ...


class RunRecorder(keras.callbacks.Callback):
    """Hands Keras' epoch and batch hooks to the trainer, with 1-based numbers and timings.

    Put it last in the callback list: it then sees the counters the other callbacks updated in
    the same epoch (the trainer stores them in state.json).

    Args:
        trainer: an object with `EpochHooks`' methods (in the runner: ``_Trainer``).

    Attributes:
        batches_done: training batches finished so far in this ``fit`` (0 means a failure
            happened before the first step, e.g. while XLA compiled it).

    Example:
        >>> class Hooks:
        ...     def on_epoch_start(self, epoch): print("epoch", epoch)
        ...     def on_batch_end(self, batch, logs, seconds): print("batch", batch, logs)
        ...     def on_epoch_end(self, epoch, logs, seconds): print("done", epoch)
        >>> recorder = RunRecorder(Hooks())
        >>> recorder.on_epoch_begin(0); recorder.on_train_batch_end(0, {"loss": 1.0})
        epoch 1
        batch 1 {'loss': 1.0}
        >>> recorder.on_epoch_end(0); recorder.batches_done
        done 1
        1
    """

    def __init__(self, trainer: EpochHooks):
        super().__init__()
        self.trainer = trainer
        self.epoch_start = time.perf_counter()
        self.batches_done = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.perf_counter()
        self.trainer.on_epoch_start(epoch + 1)

    def on_train_batch_end(self, batch, logs=None):
        self.batches_done += 1
        self.trainer.on_batch_end(batch + 1, logs or {}, time.perf_counter() - self.epoch_start)

    def on_epoch_end(self, epoch, logs=None):
        self.trainer.on_epoch_end(epoch + 1, dict(logs or {}),
                                  time.perf_counter() - self.epoch_start)
