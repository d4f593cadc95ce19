"""`run_training`: one Keras training run, from a RunSpec to a complete run directory.

The run reads like a chain of steps (nnU-Net style):

1. prepare data: load the dataset splits, normalise each image, fit them to the image size;
2. seed everything (``keras.utils.set_random_seed``; op determinism when asked);
3. build the U-Net and compile it inside a ``tf.distribute`` strategy scope (default strategy
   on one device, ``MirroredStrategy`` when several GPUs are visible), with XLA
   (``jit_compile=True``) on the CPU, falling back to plain graphs with a recorded reason;
4. train with callbacks: events per batch/epoch, a stop check after every batch, an atomic
   checkpoint + state file after every complete epoch, validation snapshots, early stopping and
   ReduceLROnPlateau whose counters survive a resume;
5. finish: restore the best validation weights (when early stopping is on), save model.keras,
   score the test split, write metrics.json and model_card.md, emit `Finished`.

The training data order and augmentation draws depend only on (seed, epoch, image index), so a
run resumed after epoch k sees the same batches in epoch k+1 as an uninterrupted run would.

Example:
    >>> from unet_demo.training.presets import get_preset
    >>> run_training(get_preset("synthetic_lesions", "classroom"), Path("runs/demo"))  # doctest: +SKIP
    PosixPath('runs/demo')
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from unet_demo.config import UNetConfig
from unet_demo.data import sources
from unet_demo.errors import UNetDemoError
from unet_demo.training import events as ev
from unet_demo.training import rundir
from unet_demo.training.spec import RunSpec

SNAPSHOT_IMAGES = 4
PLATEAU_FACTOR = 0.5
BEST_MONITOR = "val_dice"
PACKAGES = ("tensorflow", "keras", "numpy", "albumentations", "scipy", "scikit-image")


class StopRequested(Exception):
    """Raised inside ``fit`` by the stop check so training ends right after the current batch."""


# --------------------------------------------------------------------------- data

class PreparedData:
    """Normalised arrays of the train and validation splits plus task facts.

    Attributes:
        train_images, train_masks, val_images, val_masks: float32 NHWC and uint8 NHW arrays.
        val_ids: names of the validation images.
        label_count: number of labels including background (2 = binary).
        output_classes: model output channels (1 = sigmoid for binary tasks, else label_count).
        channels: image channels.
    """

    def __init__(self, train, val, label_count: int):
        self.train_images, self.train_masks, self.train_ids = train
        self.val_images, self.val_masks, self.val_ids = val
        self.label_count = int(label_count)
        self.output_classes = 1 if self.label_count <= 2 else self.label_count
        self.channels = int(self.train_images.shape[-1])


def prepare_split(spec: RunSpec, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Model-ready (images, masks, ids) of one split as the run trains or tests on it.

    Args:
        spec: the run spec (dataset, image size, normalisation, max_train_images, seed).
        split: "train", "val" or "test".
    """
    return sources.prepare_split(spec.data, split, seed=spec.train.seed)


def prepare_data(spec: RunSpec) -> PreparedData:
    """Load and prepare the train and validation splits of ``spec.data``."""
    train = prepare_split(spec, "train")
    val = prepare_split(spec, "val")
    if len(train[0]) == 0 or len(val[0]) == 0:
        raise UNetDemoError(
            f"Dataset {spec.data.dataset!r} has {len(train[0])} training and {len(val[0])} "
            "validation images; training needs at least one of each."
        )
    return PreparedData(train, val, sources.label_count(spec.data.dataset, [train[1], val[1]]))


def resolve_spec(spec: RunSpec, data: PreparedData) -> RunSpec:
    """Match the model's input size, channels and output classes to the prepared data.

    Args:
        spec: the requested spec.
        data: the prepared arrays.

    Example:
        >>> resolve_spec(spec, data).model.num_classes  # doctest: +SKIP
        1
    """
    if spec.model.variant == "unet3d":
        raise UNetDemoError(
            "The 3-D U-Net cannot be trained on 2-D slices here. Pick a 2-D variant (e.g. "
            "'classic') on the Build page or with --variant."
        )
    size = spec.data.image_size
    model = spec.model.replace(input_height=size, input_width=size,
                               input_channels=data.channels, num_classes=data.output_classes)
    return spec.replace(model=model)


# --------------------------------------------------------------------------- input pipeline

def _augmenter(spec: RunSpec) -> Callable[[np.ndarray, np.ndarray, int], tuple] | None:
    """(image, mask, seed) -> augmented pair, or None when augmentation is off."""
    if not (spec.train.augment and spec.augment.enabled()):
        return None
    import copy

    from unet_demo.augment import augment_pair, build_augmentation

    template = build_augmentation(spec.augment)
    local = threading.local()

    def run(image: np.ndarray, mask: np.ndarray, seed: int):
        # tf.data calls this from several threads: each thread gets its own pipeline copy, and
        # every pair is drawn from its own seed, so the result does not depend on scheduling.
        compose = getattr(local, "compose", None)
        if compose is None:
            compose = local.compose = copy.deepcopy(template)
        compose.set_random_seed(seed)
        return augment_pair(compose, image, mask)

    return run


def element_seed(seed: int, epoch: int, index: int) -> int:
    """Augmentation seed of one image in one epoch (independent of batch and thread order)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


def epoch_order(seed: int, epoch: int, count: int) -> np.ndarray:
    """Shuffled image order of one epoch: depends only on (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(count).astype(np.int64)


def training_dataset(data: PreparedData, spec: RunSpec, start_epoch: int, epochs: int):
    """tf.data pipeline of the training batches of epochs ``start_epoch``..``epochs - 1``.

    Each epoch is its own shuffled pass (batches never straddle two epochs); augmentation runs
    in numpy (albumentations) through ``tf.numpy_function`` on parallel, order-keeping map
    calls, followed by prefetching so the model does not wait for the next batch.
    """
    import tensorflow as tf

    batch_size = spec.train.batch_size
    seed = spec.train.seed
    count = len(data.train_images)
    epochs_ahead = list(range(start_epoch, epochs))
    orders = np.stack([epoch_order(seed, e, count) for e in epochs_ahead])
    images = tf.constant(data.train_images)
    masks = tf.constant(data.train_masks)
    augment = _augmenter(spec)
    binary = data.output_classes == 1

    def epoch_batches(epoch, order):
        # Full batches only: one batch shape means one XLA compilation (the few images left
        # over land in other batches of later epochs, whose order differs).
        indices = tf.data.Dataset.from_tensor_slices(order).batch(batch_size,
                                                                  drop_remainder=True)
        return indices.map(lambda idx: (epoch, idx))

    def augment_batch(epoch_np, index_np, image_np, mask_np):
        new_images = np.empty_like(image_np)
        new_masks = np.empty_like(mask_np)
        for k, index in enumerate(index_np):
            new_images[k], new_masks[k] = augment(
                image_np[k], mask_np[k], element_seed(seed, int(epoch_np), int(index)))
        return new_images, new_masks

    def load(epoch, idx):
        x = tf.gather(images, idx)
        y = tf.gather(masks, idx)
        if augment is not None:
            x_aug, y_aug = tf.numpy_function(augment_batch, [epoch, idx, x, y],
                                             [tf.float32, tf.uint8], stateful=False)
            x = tf.ensure_shape(x_aug, x.shape)
            y = tf.ensure_shape(y_aug, y.shape)
        y = tf.cast(y, tf.float32)[..., None] if binary else tf.cast(y, tf.int32)
        return x, y

    dataset = tf.data.Dataset.from_tensor_slices(
        (np.asarray(epochs_ahead, np.int64), orders)).flat_map(epoch_batches)
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def validation_batch_size(count: int, train_batch_size: int) -> int:
    """One batch for small validation sets (one shape, one XLA compilation), else 32 or more."""
    return count if count <= 32 else max(32, train_batch_size)


def validation_dataset(data: PreparedData, batch_size: int):
    """Fixed-order, cached validation batches."""
    import tensorflow as tf

    batch_size = validation_batch_size(len(data.val_images), batch_size)
    if data.output_classes == 1:
        masks = data.val_masks.astype(np.float32)[..., None]
    else:
        masks = data.val_masks.astype(np.int32)
    dataset = tf.data.Dataset.from_tensor_slices((data.val_images, masks)).batch(batch_size)
    return dataset.cache().prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------- model pieces

def learning_rate(spec: RunSpec, steps_per_epoch: int):
    """A float (constant/plateau) or a Keras LearningRateSchedule stepped per batch.

    cosine: CosineDecay to 1% of the start over the run; exponential: x(0.01 ** (1/epochs))
    per epoch (ends at 1%); poly: PolynomialDecay(power 0.9) to 0 over the run (nnU-Net's).
    """
    import keras

    train = spec.train
    total = max(1, steps_per_epoch * train.epochs)
    if train.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(train.learning_rate, total, alpha=0.01)
    if train.schedule == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            train.learning_rate, decay_steps=max(1, steps_per_epoch),
            decay_rate=0.01 ** (1.0 / train.epochs))
    if train.schedule == "poly":
        return keras.optimizers.schedules.PolynomialDecay(
            train.learning_rate, total, end_learning_rate=0.0, power=0.9)
    return float(train.learning_rate)


def build_optimizer(spec: RunSpec, steps_per_epoch: int):
    """Adam, AdamW (decoupled weight decay) or SGD with (Nesterov) momentum."""
    import keras

    rate = learning_rate(spec, steps_per_epoch)
    train = spec.train
    if train.optimizer == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=train.weight_decay)
    if train.optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=train.momentum, nesterov=train.momentum > 0)
    return keras.optimizers.Adam(rate)


def training_metrics(output_classes: int, label_count: int) -> list:
    """Dice, IoU, precision, recall, pixel accuracy (+ per-class IoU for multi-class tasks)."""
    import keras

    from unet_demo.training.keras_metrics import keras_metrics

    found = keras_metrics(output_classes)
    if output_classes == 1:
        found.append(keras.metrics.BinaryAccuracy(name="accuracy"))
    else:
        found.append(keras.metrics.SparseCategoricalAccuracy(name="accuracy"))
        for cls in range(1, label_count):
            found.append(keras.metrics.IoU(num_classes=label_count, target_class_ids=[cls],
                                           sparse_y_true=True, sparse_y_pred=False,
                                           name=f"iou_class{cls}"))
    return found


def distribution_strategy():
    """MirroredStrategy over several visible GPUs, otherwise TensorFlow's default strategy."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy(), f"GPU x{len(gpus)}"
    return tf.distribute.get_strategy(), ("GPU" if gpus else "CPU")


def compile_model(model, spec: RunSpec, data: PreparedData, optimizer, jit_compile) -> None:
    """Compile with the spec's loss, the training metrics and the given optimizer."""
    from unet_demo.losses import get_loss

    model.compile(optimizer=optimizer, loss=get_loss(spec.train, data.output_classes),
                  metrics=training_metrics(data.output_classes, data.label_count),
                  jit_compile=jit_compile)


def _to_float(value: Any) -> float:
    try:
        return float(np.asarray(value))
    except (TypeError, ValueError):
        return math.nan


def current_learning_rate(optimizer) -> float:
    """The optimizer's learning rate right now (schedules evaluated at the current step)."""
    return _to_float(optimizer.learning_rate)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide the numbers."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


# --------------------------------------------------------------------------- callbacks

def _callbacks_module():
    import keras

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        """EarlyStopping whose counters can be restored when a run resumes."""

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
            return {"wait": int(self.wait), "best": _to_float(self.best),
                    "best_epoch": int(self.best_epoch)}

    class ResumableReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
        """ReduceLROnPlateau whose counters can be restored when a run resumes."""

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
            return {"wait": int(self.wait), "cooldown_counter": int(self.cooldown_counter),
                    "best": _to_float(self.best)}

    class RunRecorder(keras.callbacks.Callback):
        """Events, stop checks, atomic checkpoints, history and snapshots of one run."""

        def __init__(self, trainer: _Trainer):
            super().__init__()
            self.trainer = trainer
            self.epoch_start = time.perf_counter()
            self.batches_done = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_start = time.perf_counter()
            self.trainer.current_epoch = epoch + 1

        def on_train_batch_end(self, batch, logs=None):
            trainer = self.trainer
            self.batches_done += 1
            elapsed = max(time.perf_counter() - self.epoch_start, 1e-9)
            seen = min((batch + 1) * trainer.spec.train.batch_size, trainer.train_count)
            logs = logs or {}
            shown = {key: _to_float(logs[key]) for key in ("dice", "iou") if key in logs}
            trainer.emit(ev.BatchEnd(epoch=trainer.current_epoch, batch=batch + 1,
                                     num_batches=trainer.steps_per_epoch,
                                     loss=_to_float(logs.get("loss")),
                                     images_per_sec=round(seen / elapsed, 3), metrics=shown))
            if trainer.should_stop is not None and trainer.should_stop():
                trainer.stopped_at = (trainer.current_epoch, batch + 1)
                self.model.stop_training = True
                raise StopRequested()

        def on_epoch_end(self, epoch, logs=None):
            self.trainer.epoch_done(epoch + 1, dict(logs or {}),
                                    time.perf_counter() - self.epoch_start)

    return ResumableEarlyStopping, ResumableReduceLROnPlateau, RunRecorder


# --------------------------------------------------------------------------- the run

class _Trainer:
    """State of one run while it trains (kept out of the public API)."""

    def __init__(self, spec: RunSpec, run_dir: Path, should_stop, on_event):
        self.spec = spec
        self.run_dir = run_dir
        self.should_stop = should_stop
        self.on_event = on_event
        self.current_epoch = 0
        self.stopped_at: tuple[int, int] | None = None
        self.history: list[dict[str, Any]] = []
        self.best_epoch = 0
        self.best_value = -math.inf
        self.steps_per_epoch = 1
        self.train_count = 0
        self.model = None
        self.early_stopping = None
        self.plateau = None
        self.data: PreparedData | None = None
        self.snapshot_index: np.ndarray | None = None

    def emit(self, event: ev.Event) -> None:
        ev.append_event(self.run_dir, event)
        if self.on_event is not None:
            self.on_event(event)

    # ---------------------------------------------------------------- per epoch
    def epoch_done(self, epoch: int, logs: dict[str, Any], seconds: float) -> None:
        row: dict[str, Any] = {"epoch": epoch}
        for key, value in logs.items():
            if key in ("learning_rate",):
                continue
            row[key] = _to_float(value)
        for key in list(row):  # per-class Dice follows from the accumulated IoU
            if "iou_class" in key and row[key] == row[key]:
                row[key.replace("iou_", "dice_")] = 2 * row[key] / (1 + row[key])
        row["lr"] = current_learning_rate(self.model.optimizer)
        row["seconds"] = round(seconds, 3)
        row["images_per_sec"] = round(self.train_count / max(seconds, 1e-9), 3)
        self.history.append(row)
        monitored = row.get(BEST_MONITOR, math.nan)
        if monitored == monitored and monitored > self.best_value:
            self.best_value = monitored
            self.best_epoch = epoch
            self._save_weights(self.run_dir / rundir.CHECKPOINT_DIR / rundir.BEST_WEIGHTS_FILE)
        self._checkpoint(epoch)
        self.emit(ev.EpochEnd(epoch=epoch, metrics={k: v for k, v in row.items()
                                                    if k != "epoch"},
                              seconds=round(seconds, 3)))
        snapshot = self._snapshot(epoch)
        if snapshot:
            self.emit(ev.ValidationSnapshot(epoch=epoch, path=snapshot))

    def _save_weights(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        self.model.save_weights(tmp)
        os.replace(tmp, path)

    def _checkpoint(self, epoch: int) -> None:
        """Save model + optimizer for this epoch, then point state.json at it (both atomic)."""
        folder = self.run_dir / rundir.CHECKPOINT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch_{epoch:04d}.keras"
        tmp = folder / f".tmp-{os.getpid()}-{name}"
        self.model.save(tmp)
        os.replace(tmp, folder / name)
        state = {
            "epoch": epoch,
            "checkpoint": f"{rundir.CHECKPOINT_DIR}/{name}",
            "best_epoch": self.best_epoch,
            "best_value": self.best_value if math.isfinite(self.best_value) else None,
            "history": self.history,
            "early_stopping": self.early_stopping.state() if self.early_stopping else {},
            "plateau": self.plateau.state() if self.plateau else {},
            "optimizer_iterations": int(np.asarray(self.model.optimizer.iterations)),
        }
        rundir.atomic_write_json(self.run_dir / rundir.STATE_FILE, state)
        rundir.write_history_csv(self.run_dir, self.history)
        for old in folder.glob("epoch_*.keras"):
            if old.name != name:
                with contextlib.suppress(OSError):
                    old.unlink()

    def _snapshot(self, epoch: int) -> str:
        if self.data is None or self.snapshot_index is None or not len(self.snapshot_index):
            return ""
        images = self.data.val_images[self.snapshot_index]
        probs = np.asarray(self.model(images, training=False), dtype=np.float32)
        if probs.shape[-1] == 1:
            labels = (probs[..., 0] >= 0.5).astype(np.uint8)
            foreground = probs[..., 0]
        else:
            labels = probs.argmax(-1).astype(np.uint8)
            foreground = 1.0 - probs[..., 0]
        folder = self.run_dir / rundir.SNAPSHOT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        relative = f"{rundir.SNAPSHOT_DIR}/epoch_{epoch:04d}.npz"
        tmp = folder / f".tmp-{os.getpid()}-epoch_{epoch:04d}.npz"
        with open(tmp, "wb") as handle:
            np.savez_compressed(
                handle,
                images=np.clip(images * 255.0, 0, 255).astype(np.uint8),
                masks=self.data.val_masks[self.snapshot_index],
                labels=labels,
                probability=np.clip(foreground * 255.0, 0, 255).astype(np.uint8),
                ids=np.asarray([self.data.val_ids[i] for i in self.snapshot_index]),
            )
        os.replace(tmp, self.run_dir / relative)
        return relative


def snapshot_indices(masks: np.ndarray, count: int = SNAPSHOT_IMAGES) -> np.ndarray:
    """Fixed validation images for snapshots: evenly spread, preferring ones with foreground."""
    with_foreground = np.flatnonzero(masks.reshape(len(masks), -1).max(axis=1) > 0)
    pool = with_foreground if len(with_foreground) >= count else np.arange(len(masks))
    if len(pool) <= count:
        return pool
    return pool[np.linspace(0, len(pool) - 1, count).round().astype(int)]


def _final_model(spec: RunSpec, weights: list) -> Any:
    """A fresh, uncompiled copy of the model with the given weights (no optimizer state)."""
    from unet_demo.models.builder import build_unet

    model = build_unet(spec.model, load_weights=False)
    model.set_weights(weights)
    return model


def evaluate_split(model, spec: RunSpec, split: str = "test", *, distances: bool = True):
    """Score a model on a prepared split with `unet_demo.evaluation` (per-image mean metrics).

    Args:
        model: a Keras model taking the run's prepared images.
        spec: the run spec (for data preparation).
        split: "test", "val" or "train".
        distances: include HD95/ASD.

    Returns:
        `unet_demo.evaluation.EvaluationResult`.
    """
    from unet_demo.evaluation.evaluate import evaluate_model_on_arrays

    images, masks, ids = prepare_split(spec, split)
    num_classes = max(1, int(spec.model.num_classes))
    return evaluate_model_on_arrays(
        lambda batch: np.asarray(model(batch, training=False)), images, masks,
        num_classes if num_classes > 1 else 2, ids=ids, distances=distances, batch_size=16)


def model_card_text(spec: RunSpec, metrics: dict[str, Any], environment: dict[str, Any]) -> str:
    """Short markdown card of a finished run."""
    from unet_demo import DISCLAIMER

    test = metrics.get("test") or {}
    val = metrics.get("val") or {}
    lines = [
        f"# U-Net trained on {spec.data.dataset}",
        "",
        f"> {DISCLAIMER}",
        "",
        f"- Model: {spec.model.variant} U-Net, depth {spec.model.depth}, base filters "
        f"{spec.model.base_filters}, input {spec.model.input_height}x{spec.model.input_width}"
        f"x{spec.model.input_channels}, {spec.model.num_classes} output channel(s)",
        f"- Training: loss {spec.train.loss}, optimiser {spec.train.optimizer} "
        f"(lr {spec.train.learning_rate:g}, schedule {spec.train.schedule}), batch "
        f"{spec.train.batch_size}, {metrics.get('epochs_run', 0)} of {spec.train.epochs} epochs, "
        f"augmentation {'on' if spec.train.augment and spec.augment.enabled() else 'off'}, "
        f"seed {spec.train.seed}",
        f"- Best epoch: {metrics.get('best_epoch', 0)} (validation Dice "
        f"{_fmt(val.get('dice'))})",
        f"- Test split: Dice {_fmt(test.get('dice'))}, IoU {_fmt(test.get('iou'))}, "
        f"HD95 {_fmt(test.get('hd95'))} px over {metrics.get('test_images', 0)} images",
        f"- Wall time: {_fmt(metrics.get('train_seconds'), '.1f')} s on {environment.get('device')}"
        f" (XLA {'on' if environment.get('jit_compile') else 'off'})",
        f"- Packages: {', '.join(f'{k} {v}' for k, v in environment.get('packages', {}).items())}",
        "",
        "Limitations: the bundled datasets come from one subject or one image each, so these "
        "scores overstate how well the model would do on new patients or microscopes.",
        "",
    ]
    return "\n".join(lines)


def _fmt(value: Any, spec: str = ".3f") -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return format(number, spec) if math.isfinite(number) else "n/a"


def _restore_state(run_dir: Path) -> dict[str, Any]:
    """state.json of the last complete epoch when its checkpoint file is there, else {}."""
    state = rundir.read_json(run_dir / rundir.STATE_FILE)
    checkpoint = state.get("checkpoint")
    if not state.get("epoch") or not checkpoint or not (run_dir / checkpoint).is_file():
        return {}
    return state


def run_training(
    spec: RunSpec,
    run_dir: Path,
    *,
    should_stop: Callable[[], bool] | None = None,
    on_event: Callable[[ev.Event], None] | None = None,
    resume: bool = True,
) -> Path:
    """Train ``spec`` into ``run_dir`` and return ``run_dir`` (see the module docstring).

    Args:
        spec: what to train.
        run_dir: the run directory (created if needed).
        should_stop: polled after every batch; True ends training right after that batch
            (a `Stopped` event, checkpoints stay at the last complete epoch).
        on_event: called with every event (they also go to events.jsonl).
        resume: continue from the last complete epoch when the folder holds a checkpoint.

    Raises:
        UNetDemoError: bad config or data (a `Failed` event is written first).

    Example:
        >>> run_training(get_preset("nuclei", "classroom"), Path("runs/n1"))  # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = _Trainer(spec, run_dir, should_stop, on_event)
    try:
        return _run(trainer, resume)
    except StopRequested:  # pragma: no cover - handled inside _run
        return run_dir
    except Exception as error:
        message = str(error) if isinstance(error, UNetDemoError) else (
            f"Training failed: {type(error).__name__}: {error}")
        trainer.emit(ev.Failed(message=message[:4000]))
        raise


def _run(trainer: _Trainer, resume: bool) -> Path:
    import keras
    import tensorflow as tf

    import unet_demo.losses  # noqa: F401  (registers custom losses for checkpoint loading)
    from unet_demo.models.builder import build_unet
    from unet_demo.training.keras_metrics import overlap_metric_class

    overlap_metric_class()
    run_dir = trainer.run_dir
    spec = trainer.spec
    wall_start = time.perf_counter()
    state = _restore_state(run_dir) if resume else {}
    if state:
        previous = rundir.read_json(run_dir / rundir.CONFIG_FILE)
        if previous:
            spec = RunSpec.from_dict(previous)  # a resume continues the stored config

    data = prepare_data(spec)
    spec = resolve_spec(spec, data)
    trainer.spec = spec
    trainer.data = data
    trainer.train_count = len(data.train_images)
    trainer.snapshot_index = snapshot_indices(data.val_masks)
    rundir.atomic_write_text(run_dir / rundir.CONFIG_FILE, spec.to_json())

    train = spec.train
    keras.utils.set_random_seed(train.seed)
    notes = []
    strategy, device = distribution_strategy()
    on_cpu = device == "CPU"
    if train.deterministic and not (on_cpu and os.environ.get("UNET_DEMO_XLA", "1") == "1"):
        # Keras turns XLA off under op determinism. On the CPU the XLA-compiled step is
        # itself deterministic (tests/unit/test_training.py checks identical histories), so
        # there the faster XLA path is kept and op determinism is left off.
        tf.config.experimental.enable_op_determinism()
    if device != "CPU":
        notes.append("On a GPU, results can differ slightly between runs even with one seed.")
    jit_compile: Any = (os.environ.get("UNET_DEMO_XLA", "1") == "1") if on_cpu else "auto"
    if len(data.train_images) < train.batch_size:
        raise UNetDemoError(
            f"The batch size ({train.batch_size}) is larger than the {len(data.train_images)} "
            "training images; lower the batch size or add images.")
    steps_per_epoch = len(data.train_images) // train.batch_size
    trainer.steps_per_epoch = steps_per_epoch

    initial_epoch = int(state.get("epoch", 0)) if state else 0
    with strategy.scope():
        if state:
            loaded = keras.saving.load_model(run_dir / state["checkpoint"], compile=True,
                                             safe_mode=True)
            optimizer = loaded.optimizer
            model = loaded
        else:
            model = build_unet(spec.model, load_weights=True)
            optimizer = build_optimizer(spec, steps_per_epoch)
        compile_model(model, spec, data, optimizer, jit_compile)
    trainer.model = model
    if state:
        trainer.history = [row for row in state.get("history", [])
                           if int(row.get("epoch", 0)) <= initial_epoch]
        trainer.best_epoch = int(state.get("best_epoch", 0))
        best = state.get("best_value")
        trainer.best_value = float(best) if best is not None else -math.inf

    environment = {
        "seed": train.seed,
        "deterministic": train.deterministic,
        "device": device,
        "jit_compile": bool(jit_compile),
        "jit_note": "",
        "packages": package_versions(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "argv": sys.argv,
    }
    rundir.atomic_write_json(run_dir / rundir.ENVIRONMENT_FILE, environment)

    early_cls, plateau_cls, recorder_cls = _callbacks_module()
    callbacks = []
    if train.early_stopping_patience > 0:
        trainer.early_stopping = early_cls(
            restored=state.get("early_stopping") if state else None, monitor=BEST_MONITOR,
            mode="max", patience=train.early_stopping_patience, restore_best_weights=False)
        callbacks.append(trainer.early_stopping)
    if train.schedule == "plateau":
        trainer.plateau = plateau_cls(
            restored=state.get("plateau") if state else None, monitor="val_loss",
            factor=PLATEAU_FACTOR, patience=max(2, train.early_stopping_patience // 2 or 2),
            min_lr=train.learning_rate * 1e-3, verbose=0)
        callbacks.append(trainer.plateau)
    recorder = recorder_cls(trainer)
    callbacks.append(recorder)  # last: sees the counters the others updated this epoch

    params = int(model.count_params())
    if not train.deterministic:
        notes.append("Op determinism is off: the same seed may give slightly different runs.")
    trainer.emit(ev.Started(
        epochs=train.epochs, batches_per_epoch=steps_per_epoch, initial_epoch=initial_epoch,
        train_images=len(data.train_images), val_images=len(data.val_images), device=device,
        params=params, jit_compile=bool(jit_compile), deterministic=train.deterministic,
        note=" ".join(notes)))

    stopped_early = False
    fit_start = time.perf_counter()
    if initial_epoch < train.epochs:
        while True:
            train_data = training_dataset(data, spec, initial_epoch, train.epochs)
            val_data = validation_dataset(data, train.batch_size)
            try:
                model.fit(train_data, validation_data=val_data, epochs=train.epochs,
                          initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
                          callbacks=callbacks, verbose=0,
                          shuffle=False)  # the tf.data pipeline shuffles per (seed, epoch)
            except StopRequested:
                break
            except (tf.errors.OpError, NotImplementedError, ValueError, TypeError) as error:
                if jit_compile is not True or recorder.batches_done:
                    raise
                reason = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
                environment["jit_compile"] = False
                environment["jit_note"] = f"XLA compilation failed, trained without it ({reason})"
                rundir.atomic_write_json(run_dir / rundir.ENVIRONMENT_FILE, environment)
                print(f"warning: {environment['jit_note']}", file=sys.stderr)
                jit_compile = False
                with strategy.scope():
                    compile_model(model, spec, data, model.optimizer, False)
                continue
            break
        if trainer.early_stopping is not None:
            stopped_early = trainer.early_stopping.stopped_epoch > 0
    train_seconds = time.perf_counter() - fit_start

    if trainer.stopped_at is not None:
        epoch, batch = trainer.stopped_at
        _final_model(spec, model.get_weights()).save(run_dir / ".tmp-model.keras")
        os.replace(run_dir / ".tmp-model.keras", run_dir / rundir.MODEL_FILE)
        trainer.emit(ev.Stopped(epoch=epoch, batch=batch))
        return run_dir

    best_path = run_dir / rundir.CHECKPOINT_DIR / rundir.BEST_WEIGHTS_FILE
    if train.early_stopping_patience > 0 and trainer.best_epoch and best_path.is_file():
        model.load_weights(best_path)
        final_epoch = trainer.best_epoch
    else:
        final_epoch = trainer.history[-1]["epoch"] if trainer.history else initial_epoch
    final = _final_model(spec, model.get_weights())
    final.save(run_dir / ".tmp-model.keras")
    os.replace(run_dir / ".tmp-model.keras", run_dir / rundir.MODEL_FILE)

    best_row = next((row for row in trainer.history if row["epoch"] == final_epoch), {})
    test_mean: dict[str, Any] = {}
    test_count = 0
    try:
        result = evaluate_split(final, spec, "test")
        test_mean = dict(result.mean)
        test_count = len(result.rows)
    except UNetDemoError as error:
        test_mean = {"error": str(error)}
    metrics = {
        "best_epoch": final_epoch,
        "epochs_run": trainer.history[-1]["epoch"] if trainer.history else 0,
        "stopped_early": stopped_early,
        "val": {k.removeprefix("val_"): v for k, v in best_row.items() if k.startswith("val_")},
        "train": {k: v for k, v in best_row.items()
                  if not k.startswith("val_") and k not in ("epoch", "lr", "seconds",
                                                            "images_per_sec")},
        "test": test_mean,
        "test_images": test_count,
        "train_seconds": round(train_seconds, 2),
        "wall_seconds": round(time.perf_counter() - wall_start, 2),
    }
    rundir.atomic_write_json(run_dir / rundir.METRICS_FILE, metrics)
    rundir.atomic_write_text(run_dir / rundir.MODEL_CARD_FILE,
                             model_card_text(spec, metrics, environment))
    summary = {f"val_{k}": v for k, v in metrics["val"].items() if isinstance(v, float)}
    summary.update({f"test_{k}": v for k, v in test_mean.items() if isinstance(v, float)})
    trainer.emit(ev.Finished(best_epoch=final_epoch, metrics=summary,
                             epochs_run=metrics["epochs_run"], stopped_early=stopped_early))
    return run_dir


def load_spec(run_dir: str | Path) -> RunSpec:
    """The RunSpec stored in a run directory's config.json."""
    path = Path(run_dir) / rundir.CONFIG_FILE
    if not path.is_file():
        raise UNetDemoError(f"{path} is missing; the folder is not a training run directory.")
    return RunSpec.from_json(path.read_text(encoding="utf-8"))


__all__ = ["RunSpec", "UNetConfig", "run_training", "evaluate_split", "load_spec",
           "prepare_split", "StopRequested"]
