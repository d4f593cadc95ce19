"""`run_training`: one Keras training run, from a RunSpec to a complete run directory.

The run is a chain of small hooks on one trainer (nnU-Net style), each a method of
``_Trainer``:

1. ``on_train_start``:
   ``prepare`` (resume state, load and fit the data to the spec, config.json) ->
   ``setup_device`` (seed everything, ``tf.distribute`` strategy: the default one on one
   device, ``MirroredStrategy`` over several GPUs; op determinism when asked; XLA
   ``jit_compile=True`` on the CPU) -> ``build`` (new U-Net + optimizer, or the checkpoint to
   resume) -> ``compile`` -> ``restore_progress`` -> ``record_environment`` ->
   ``make_callbacks`` (`unet_demo.training.callbacks`: early stopping and ReduceLROnPlateau
   whose counters survive a resume, and the recorder) -> ``announce`` (`Started`);
2. ``fit``: ``model.fit`` over `unet_demo.data.pipeline` (falling back to plain graphs, with a
   recorded reason, when XLA cannot compile the step); per epoch Keras calls
   ``on_epoch_start`` -> ``on_batch_end`` (events, a stop check after every batch) ->
   ``on_epoch_end`` (history, best weights when early stopping is on, an atomic checkpoint +
   state file, a validation snapshot);
3. ``on_train_end``: ``finish_stopped``, or ``restore_best`` (when early stopping is on) ->
   ``save_model`` -> ``score_test`` -> ``write_metrics`` -> model_card.md -> ``emit_finished``.

The training data order and augmentation draws depend only on (seed, epoch, image index) (see
`unet_demo.data.pipeline`), so a run resumed after epoch k sees the same batches in epoch k+1 as
an uninterrupted run would.

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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from unet_demo.config import UNetConfig
from unet_demo.data import sources
from unet_demo.errors import UNetDemoError
from unet_demo.inference import ood
from unet_demo.inference.labels import foreground_probability, labels_from_probabilities
from unet_demo.settings import INTEROP_THREADS_ENV
from unet_demo.training import events as ev
from unet_demo.training import housekeeping, rundir
from unet_demo.training.spec import RunSpec
from unet_demo.training.speed import (  # noqa: F401  (cpu_description: re-exported)
    CPU_FEATURES,
    SpeedChoice,
    choose_speed,
    cpu_description,
    dtype_policy,
    onednn_enabled,
)

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
        train_targets, val_targets: float32 NHW soft masks the loss trains and validates on
            instead of the labels (``DataConfig.mask_resize`` other than "nearest"), or None.
        val_ids: names of the validation images.
        label_count: number of labels including background (2 = binary).
        output_classes: model output channels (1 = sigmoid for binary tasks, else label_count).
        channels: image channels.
    """

    def __init__(self, train, val, label_count: int, targets=(None, None)):
        self.train_images, self.train_masks, self.train_ids = train
        self.val_images, self.val_masks, self.val_ids = val
        # What the loss sees: the labels, or the soft masks of a mask_resize lesson run.
        self.train_targets, self.val_targets = targets
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
    targets = tuple(sources.mask_targets(spec.data, split, seed=spec.train.seed)
                    for split in ("train", "val"))
    return PreparedData(train, val, sources.label_count(spec.data.dataset, [train[1], val[1]]),
                        targets)


def resolve_spec(spec: RunSpec, data: PreparedData) -> RunSpec:
    """Match the model's input size, channels and output classes to the prepared data.

    Args:
        spec: the requested spec.
        data: the prepared arrays.

    Example:
        >>> resolve_spec(spec, data).model.num_classes  # doctest: +SKIP
        1
    """
    from unet_demo.data.volumes import VOLUME_DATASET_NAMES, is_volume_dataset

    volumetric = is_volume_dataset(spec.data.dataset)
    if (spec.model.variant == "unet3d") != volumetric:
        raise UNetDemoError(
            f"The {spec.model.variant!r} U-Net cannot train on {spec.data.dataset!r}: the 3-D "
            f"U-Net trains on volume datasets ({', '.join(VOLUME_DATASET_NAMES)}) and 2-D "
            "variants on image datasets. Pick 'unet3d' with a volume dataset, or a 2-D "
            "variant (on the Build page, or e.g. --variant classic) with an image dataset."
        )
    size = spec.data.image_size
    if volumetric:  # cubic patches: the patch side is the image size
        return spec.replace(model=spec.model.replace(
            input_depth=size, input_height=size, input_width=size,
            input_channels=data.channels, num_classes=data.output_classes))
    model = spec.model.replace(input_height=size, input_width=size,
                               input_channels=data.channels, num_classes=data.output_classes)
    return spec.replace(model=model)


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
    """Adam (Keras' with a fused update, `unet_demo.training.optimizers`), AdamW (decoupled
    weight decay) or SGD with (Nesterov) momentum."""
    import keras

    from unet_demo.training.optimizers import fused_adam_class

    rate = learning_rate(spec, steps_per_epoch)
    train = spec.train
    if train.optimizer == "adamw":  # Keras' AdamW is Adam with decoupled weight decay
        return fused_adam_class()(rate, weight_decay=train.weight_decay)
    if train.optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=train.momentum, nesterov=train.momentum > 0)
    return fused_adam_class()(rate)


def training_metrics(output_classes: int, label_count: int) -> list:
    """Dice, IoU, precision, recall, pixel accuracy (+ per-class IoU for multi-class tasks)."""
    import keras

    from unet_demo.training.keras_metrics import keras_metrics, overlap_metric_class

    found = keras_metrics(output_classes)
    if output_classes == 1:
        found.append(keras.metrics.BinaryAccuracy(name="accuracy"))
    else:
        found.append(keras.metrics.SparseCategoricalAccuracy(name="accuracy"))
        overlap = overlap_metric_class()
        for cls in range(1, label_count):
            found.append(overlap("iou", output_classes, name=f"iou_class{cls}", class_id=cls))
    return found


def distribution_strategy():
    """MultiWorkerMirroredStrategy when TF_CONFIG describes >1 workers, MirroredStrategy over
    several visible GPUs, otherwise TensorFlow's default strategy."""
    import tensorflow as tf

    from unet_demo.training import distributed

    _, workers = distributed.cluster_task()
    if workers > 1:  # the strategy first: it must exist before other TensorFlow ops run
        strategy = distributed.multi_worker_strategy()
        kind = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
        return strategy, f"{kind} x{workers} workers"
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
    if not optimizer.built:
        # Create the optimizer's slots (Adam's moments) now. Left to Keras they are created
        # inside the first traced training step, and a tf.function that creates variables is
        # traced twice: the classroom net's first step took 9-11 s instead of 4.7 s.
        optimizer.build(model.trainable_variables)


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


# --------------------------------------------------------------------------- the run

class _Trainer:
    """One run while it trains: the chain of hooks `run` calls and the state they share.

    The order of the hooks is in the module docstring; each one reads and sets attributes of
    the trainer, so any of them can be read (or replaced in a subclass) on its own. Kept out
    of the public API: `run_training` is the way in.

    Args:
        spec: what to train (a resume replaces it with the run's stored config.json).
        run_dir: the run directory (exists).
        should_stop: polled after every batch, or None.
        on_event: called with every event, or None.
    """

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
        self.snapshot_forward: Callable | None = None  # the compiled model call of `_snapshot`
        self.state: dict[str, Any] = {}
        self.initial_epoch = 0
        self.strategy = None
        self.device = "CPU"
        self.jit_compile: Any = False
        self.speed = SpeedChoice(False, "float32", "default", "")
        self.notes: list[str] = []
        self.environment: dict[str, Any] = {}
        self.callbacks: list = []
        self.recorder = None
        self.stopped_early = False
        self.wall_start = time.perf_counter()
        self.train_seconds = 0.0
        self.agree_stop: Callable[[bool], bool] | None = None  # multi-worker: shared stop
        # Fine-tuning schedule (`unet_demo.models.transfer`): its phases, the current one and
        # the epochs (first, stop) the next model.fit covers.
        self.phases: list[tuple[str, int, int]] = [("all", 0, spec.train.epochs)]
        self.phase = self.phases[0]
        self.phase_params = {"trainable": 0, "frozen": 0}
        self.segment = (0, spec.train.epochs)

    def emit(self, event: ev.Event) -> None:
        """Append ``event`` to events.jsonl and hand it to ``on_event``."""
        ev.append_event(self.run_dir, event)
        if self.on_event is not None:
            self.on_event(event)

    def run(self, resume: bool) -> Path:
        """The whole run: `on_train_start` -> `fit` -> `on_train_end`; returns the run dir."""
        self.on_train_start(resume)
        self.fit()
        return self.on_train_end()

    # ---------------------------------------------------------------- on_train_start
    def on_train_start(self, resume: bool) -> None:
        """Everything before the first batch, in order (see the module docstring)."""
        import unet_demo.losses  # noqa: F401  (registers custom losses for checkpoint loading)
        from unet_demo.training.keras_metrics import overlap_metric_class
        from unet_demo.training.optimizers import fused_adam_class

        overlap_metric_class()
        fused_adam_class()  # registered before a checkpoint is loaded
        self.wall_start = time.perf_counter()
        self.prepare(resume)
        self.setup_device()
        self.build()
        self.restore_progress()
        self.record_environment()
        self.make_callbacks()
        self.announce()

    def prepare(self, resume: bool) -> None:
        """Read a resumable state, prepare the data, fit the spec to it, write config.json."""
        from unet_demo.data.pipeline import steps_per_epoch

        self.state = _restore_state(self.run_dir) if resume else {}
        spec = self.spec
        if self.state:
            previous = rundir.read_json(self.run_dir / rundir.CONFIG_FILE)
            if previous:
                spec = RunSpec.from_dict(previous)  # a resume continues the stored config
        self.data = prepare_data(spec)
        self.spec = resolve_spec(spec, self.data)
        self.train_count = len(self.data.train_images)
        self.snapshot_index = snapshot_indices(self.data.val_masks)
        rundir.atomic_write_text(self.run_dir / rundir.CONFIG_FILE, self.spec.to_json())
        self.steps_per_epoch = steps_per_epoch(self.train_count, self.spec.train.batch_size)
        self.initial_epoch = int(self.state.get("epoch", 0))

    def setup_device(self) -> None:
        """Seed everything; pick the strategy and device; choose op determinism and XLA."""
        import keras
        import tensorflow as tf

        train = self.spec.train
        keras.utils.set_random_seed(train.seed)
        self.strategy, self.device = distribution_strategy()
        on_cpu = self.device.split(" ")[0] == "CPU"
        # XLA on/off and float32/bfloat16 per machine: env override, cache or micro-benchmark.
        self.speed = choose_speed(self.device)
        xla = self.speed.jit_compile is True
        if train.deterministic and not (on_cpu and xla):
            # Keras turns XLA off under op determinism. On the CPU the XLA-compiled step is
            # itself deterministic (tests/unit/test_training.py checks identical histories), so
            # there the faster XLA path is kept and op determinism is left off.
            tf.config.experimental.enable_op_determinism()
        else:
            # Op determinism is process-wide: an earlier run in this process (a fold, a test)
            # without XLA leaves it on, and Keras would then drop XLA silently for this run.
            # TensorFlow's public API can only switch it on, hence the framework module.
            from tensorflow.python.framework import config as framework_config

            if framework_config.is_op_determinism_enabled():
                framework_config.disable_op_determinism()
        if not on_cpu:
            self.notes.append("On a GPU, results can differ slightly between runs even with "
                              "one seed.")
        elif train.deterministic and not xla and os.environ.get(INTEROP_THREADS_ENV) != "1":
            self.notes.append(f"{INTEROP_THREADS_ENV} is not 1, so graph ops run side by side "
                              "and the same seed repeats this history only up to round-off.")
        self.jit_compile = xla if on_cpu else self.speed.jit_compile

    def build(self) -> None:
        """Build the U-Net and its optimizer, or load the checkpoint to resume; compile."""
        import keras

        import unet_demo.models.norm  # noqa: F401  (registers the layers a checkpoint names)
        from unet_demo.models.builder import build_unet

        with self.strategy.scope():
            if self.state:
                self.model = keras.saving.load_model(
                    self.run_dir / self.state["checkpoint"], compile=True, safe_mode=True)
                optimizer = self.model.optimizer
            else:
                with dtype_policy(self.speed.policy):  # the saved model.keras is float32 again
                    self.model = build_unet(self.spec.model, load_weights=True)
                optimizer = build_optimizer(self.spec, self.steps_per_epoch)
            self.start_transfer()
        self.compile(optimizer)

    def start_transfer(self) -> None:
        """Load the shipped encoder (a fresh run) and set the current phase's trainable flags."""
        from unet_demo.models import transfer

        train = self.spec.train
        if train.init_encoder and not self.state:
            loaded = transfer.load_encoder(self.model, self.spec.model, train.init_encoder)
            self.notes.append(f"Encoder started from the shipped encoder "
                              f"{train.init_encoder!r} ({loaded} layers).")
        self.phases = transfer.phase_plan(train)
        # The phase of the last epoch done (a resume at a phase boundary enters the next one
        # in `enter_phase`, with its own optimizer); a fresh run starts in the first phase.
        done = max(self.initial_epoch - 1, 0)
        self.phase = next((p for p in self.phases if p[1] <= done < p[2]), self.phases[-1])
        if self.phase[0] != "all":
            self.phase_params = transfer.set_phase(self.model, self.spec.model, self.phase[0])

    def compile(self, optimizer) -> None:
        """Compile with the spec's loss, the training metrics, ``optimizer`` and the XLA choice."""
        with self.strategy.scope():
            compile_model(self.model, self.spec, self.data, optimizer, self.jit_compile)

    def restore_progress(self) -> None:
        """On a resume: the history up to the checkpoint and the best epoch so far."""
        if not self.state:
            return
        self.history = [row for row in self.state.get("history", [])
                        if int(row.get("epoch", 0)) <= self.initial_epoch]
        self.best_epoch = int(self.state.get("best_epoch", 0))
        best = self.state.get("best_value")
        self.best_value = float(best) if best is not None else -math.inf

    def record_environment(self) -> None:
        """Write environment.json: seed, device, XLA choice, package versions, platform."""
        train = self.spec.train
        self.environment = {
            "seed": train.seed,
            "deterministic": train.deterministic,
            "device": self.device,
            "jit_compile": bool(self.jit_compile),
            "jit_note": "",
            "precision": self.speed.precision,
            "dtype_policy": self.speed.policy,
            "speed_choice": self.speed.to_dict(),
            "onednn": onednn_enabled(),
            "interop_threads": os.environ.get(INTEROP_THREADS_ENV, ""),
            "packages": package_versions(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            **cpu_description(),
            "argv": sys.argv,
            # Where it ran: set by the job manager's launcher (local process or Ray actor).
            "backend": os.environ.get("UNET_DEMO_WORKER_BACKEND", "in-process"),
            "node": platform.node(),
            "ray_node_id": os.environ.get("UNET_DEMO_RAY_NODE_ID", ""),
        }
        rundir.atomic_write_json(self.run_dir / rundir.ENVIRONMENT_FILE, self.environment)

    def make_callbacks(self) -> None:
        """Early stopping and LR plateau when the spec asks (counters restored), the recorder."""
        from unet_demo.training.callbacks import (
            ResumableEarlyStopping,
            ResumableReduceLROnPlateau,
            RunRecorder,
        )

        train = self.spec.train
        self.callbacks = []
        if train.early_stopping_patience > 0:
            self.early_stopping = ResumableEarlyStopping(
                restored=self.state.get("early_stopping"), monitor=BEST_MONITOR,
                mode="max", patience=train.early_stopping_patience, restore_best_weights=False)
            self.callbacks.append(self.early_stopping)
        if train.schedule == "plateau":
            self.plateau = ResumableReduceLROnPlateau(
                restored=self.state.get("plateau"), monitor="val_loss",
                factor=PLATEAU_FACTOR, patience=max(2, train.early_stopping_patience // 2 or 2),
                min_lr=train.learning_rate * 1e-3, verbose=0)
            self.callbacks.append(self.plateau)
        self.recorder = RunRecorder(self)
        self.callbacks.append(self.recorder)  # last: sees the counters the others updated

    def announce(self) -> None:
        """Emit `Started`: sizes, device, parameter count, XLA and determinism notes."""
        train = self.spec.train
        if not train.deterministic:
            self.notes.append("Op determinism is off: the same seed may give slightly different "
                              "runs.")
        self.emit(ev.Started(
            epochs=train.epochs, batches_per_epoch=self.steps_per_epoch,
            initial_epoch=self.initial_epoch, train_images=self.train_count,
            val_images=len(self.data.val_images), device=self.device,
            params=int(self.model.count_params()), jit_compile=bool(self.jit_compile),
            deterministic=train.deterministic, note=" ".join(self.notes),
            precision=self.speed.precision, speed_reason=self.speed.reason))

    # ---------------------------------------------------------------- fit
    def fit(self) -> None:
        """Train the remaining epochs, phase by phase; when XLA fails first, again without it."""
        fit_start = time.perf_counter()
        for phase in self.phases:
            if phase[2] <= self.initial_epoch or self.initial_epoch >= self.spec.train.epochs:
                continue
            self.enter_phase(phase)
            while not self._fit_once():
                pass  # XLA could not compile the step; _fit_once recompiled without it
            if self.early_stopping is not None:
                self.stopped_early = self.early_stopping.stopped_epoch > 0
            if self.stopped_at is not None or self.stopped_early:
                break
        self.train_seconds = time.perf_counter() - fit_start

    def enter_phase(self, phase: tuple[str, int, int]) -> None:
        """Start a phase of the fine-tuning schedule: flags, optimizer, `PhaseStart` event.

        The first phase was set up by `build`; a later one unfreezes the deepest encoder level
        and recompiles with a new optimizer at ``learning_rate * unfreeze_lr_factor`` (its
        schedule runs over the phase's epochs). Early stopping and plateau counters go on.
        """
        from unet_demo.models import transfer

        name, first, stop = phase
        self.segment = (max(first, self.initial_epoch), stop)
        if phase is not self.phase:
            self.phase = phase
            self.phase_params = transfer.set_phase(self.model, self.spec.model, name)
            train = self.spec.train
            lowered = self.spec.replace(train=train.replace(
                learning_rate=max(1e-7, train.learning_rate * train.unfreeze_lr_factor),
                epochs=max(1, stop - first)))
            with self.strategy.scope():
                self.compile(build_optimizer(lowered, self.steps_per_epoch))
            for callback in (self.early_stopping, self.plateau):
                if callback is not None:  # the next fit's on_train_begin restores these
                    callback.restored = callback.state()
        if name != "all":
            counts = self.phase_params
            self.emit(ev.PhaseStart(
                epoch=self.segment[0] + 1, phase=name, trainable_params=counts["trainable"],
                frozen_params=counts["frozen"],
                learning_rate=current_learning_rate(self.model.optimizer),
                text=f"Epoch {self.segment[0] + 1}: {transfer.PHASE_TEXT[name]} "
                     f"({counts['trainable']:,} trainable, {counts['frozen']:,} frozen "
                     "parameters)."))

    def datasets(self):
        """(training, validation) tf.data pipelines of the remaining epochs."""
        from unet_demo.data import pipeline

        data, train = self.data, self.spec.train
        augment = None
        if train.augment and self.spec.augment.enabled():
            from unet_demo.augment import make_augment_fn

            augment = make_augment_fn(self.spec.augment)
        soft = data.train_targets is not None
        training = pipeline.training_dataset(
            data.train_images, data.train_targets if soft else data.train_masks,
            batch_size=train.batch_size, seed=train.seed, epochs=self.segment[1],
            start_epoch=self.segment[0], num_classes=data.output_classes, augment=augment,
            soft_masks=soft)
        validation = pipeline.validation_dataset(
            data.val_images, data.val_targets if soft else data.val_masks,
            num_classes=data.output_classes, soft_masks=soft,
            batch_size=pipeline.validation_batch_size(len(data.val_images), train.batch_size))
        return training, validation

    def _fit_once(self) -> bool:
        """One ``model.fit``; False when XLA failed before any batch and was turned off."""
        import tensorflow as tf

        train_data, val_data = self.datasets()
        try:
            self.model.fit(train_data, validation_data=val_data, epochs=self.segment[1],
                           initial_epoch=self.segment[0], steps_per_epoch=self.steps_per_epoch,
                           callbacks=self.callbacks, verbose=0,
                           shuffle=False)  # the tf.data pipeline shuffles per (seed, epoch)
        except StopRequested:
            return True
        except (tf.errors.OpError, NotImplementedError, ValueError, TypeError) as error:
            if self.jit_compile is not True or self.recorder.batches_done:
                raise
            self._fall_back_from_xla(error)
            return False
        return True

    def _fall_back_from_xla(self, error: Exception) -> None:
        """Record why XLA failed (environment.json, stderr) and recompile without it."""
        reason = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:300]}"
        self.environment["jit_compile"] = False
        self.environment["jit_note"] = f"XLA compilation failed, trained without it ({reason})"
        rundir.atomic_write_json(self.run_dir / rundir.ENVIRONMENT_FILE, self.environment)
        print(f"warning: {self.environment['jit_note']}", file=sys.stderr)
        self.jit_compile = False
        self.compile(self.model.optimizer)

    # ---------------------------------------------------------------- per epoch
    def on_epoch_start(self, epoch: int) -> None:
        """Keras starts epoch ``epoch`` (1-based)."""
        self.current_epoch = epoch

    def on_batch_end(self, batch: int, logs: dict[str, Any], seconds: float) -> None:
        """Emit `BatchEnd`; when a stop is requested, end right here (raises StopRequested).

        Args:
            batch: 1-based batch of the current epoch.
            logs: Keras' running means of this epoch.
            seconds: since the epoch began.
        """
        seen = min(batch * self.spec.train.batch_size, self.train_count)
        shown = {key: _to_float(logs[key]) for key in ("dice", "iou") if key in logs}
        self.emit(ev.BatchEnd(epoch=self.current_epoch, batch=batch,
                              num_batches=self.steps_per_epoch, loss=_to_float(logs.get("loss")),
                              images_per_sec=round(seen / max(seconds, 1e-9), 3), metrics=shown))
        stop = self.should_stop is not None and self.should_stop()
        if self.agree_stop is not None:  # every worker stops after the same batch
            stop = self.agree_stop(stop)
        if stop:
            self.stopped_at = (self.current_epoch, batch)
            self.model.stop_training = True
            raise StopRequested()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any], seconds: float) -> None:
        """History row, best weights, checkpoint + state.json, `EpochEnd`, snapshot."""
        row: dict[str, Any] = {"epoch": epoch}
        for key, value in logs.items():
            if key in ("learning_rate",):
                continue
            row[key] = _to_float(value)
        for key in list(row):  # per-class Dice follows from the accumulated IoU
            if "iou_class" in key and row[key] == row[key]:
                row[key.replace("iou_", "dice_")] = 2 * row[key] / (1 + row[key])
        row["lr"] = current_learning_rate(self.model.optimizer)
        if self.phase[0] != "all":  # the fine-tuning phase: 1 decoder only, 2 last level too
            row["phase"] = float(self.phases.index(self.phase) + 1)
        row["seconds"] = round(seconds, 3)
        row["images_per_sec"] = round(self.train_count / max(seconds, 1e-9), 3)
        self.history.append(row)
        monitored = row.get(BEST_MONITOR, math.nan)
        if monitored == monitored and monitored > self.best_value:
            self.best_value = monitored
            self.best_epoch = epoch
            if self.spec.train.early_stopping_patience > 0:  # its only reader: restore_best
                self._save_weights(
                    self.run_dir / rundir.CHECKPOINT_DIR / rundir.BEST_WEIGHTS_FILE)
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

    def snapshot_view(self, array: np.ndarray) -> np.ndarray:
        """What a snapshot stores of an image-shaped array (2-D: itself; volumes: a slice)."""
        return array

    def _snapshot(self, epoch: int) -> str:
        if self.data is None or self.snapshot_index is None or not len(self.snapshot_index):
            return ""
        images = self.data.val_images[self.snapshot_index]
        if self.snapshot_forward is None:
            import tensorflow as tf

            # Traced once (0.6-0.8 s for the classroom net, then 0.05 s a call) instead of an
            # eager call every epoch, which walks every layer in Python (0.13-0.29 s).
            self.snapshot_forward = tf.function(lambda batch: self.model(batch, training=False))
        probs = np.asarray(self.snapshot_forward(images), dtype=np.float32)
        labels = labels_from_probabilities(probs, probs.shape[-1])
        foreground = foreground_probability(probs)
        folder = self.run_dir / rundir.SNAPSHOT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        relative = f"{rundir.SNAPSHOT_DIR}/epoch_{epoch:04d}.npz"
        tmp = folder / f".tmp-{os.getpid()}-epoch_{epoch:04d}.npz"
        with open(tmp, "wb") as handle:
            np.savez_compressed(
                handle,
                images=np.clip(self.snapshot_view(images) * 255.0, 0, 255).astype(np.uint8),
                masks=self.snapshot_view(self.data.val_masks[self.snapshot_index]),
                labels=self.snapshot_view(labels),
                probability=np.clip(self.snapshot_view(foreground) * 255.0, 0,
                                    255).astype(np.uint8),
                ids=np.asarray([self.data.val_ids[i] for i in self.snapshot_index]),
            )
        os.replace(tmp, self.run_dir / relative)
        return relative

    # ---------------------------------------------------------------- on_train_end
    def on_train_end(self) -> Path:
        """Finish a stopped run, or restore the best weights, save, score, report; run dir."""
        if self.stopped_at is not None:
            return self.finish_stopped()
        final_epoch = self.restore_best()
        final_model = self.save_model()
        # Feature-space OOD statistics next to model.keras (never fails the run); 2-D only.
        if self.spec.model.variant != "unet3d":
            ood.fit_run_detector(final_model, self.data.train_images, self.data.val_images,
                                 self.run_dir)
        test_mean, test_count = self.score_test(final_model)
        metrics = self.write_metrics(final_epoch, test_mean, test_count)
        rundir.atomic_write_text(self.run_dir / rundir.MODEL_CARD_FILE,
                                 model_card_text(self.spec, metrics, self.environment))
        self.emit_finished(metrics)
        housekeeping.after_finished(self.run_dir)  # drop resume-only checkpoints; the budget
        return self.run_dir

    def finish_stopped(self) -> Path:
        """Stopped: save the current weights as model.keras and emit `Stopped`.

        Checkpoints and state.json stay at the last complete epoch, so a resume starts there.
        """
        epoch, batch = self.stopped_at
        self.save_model()
        self.emit(ev.Stopped(epoch=epoch, batch=batch))
        return self.run_dir

    def restore_best(self) -> int:
        """Load the best validation weights when early stopping is on; the final model's epoch."""
        best_path = self.run_dir / rundir.CHECKPOINT_DIR / rundir.BEST_WEIGHTS_FILE
        if self.spec.train.early_stopping_patience > 0 and self.best_epoch and best_path.is_file():
            self.model.load_weights(best_path)
            return self.best_epoch
        return self.history[-1]["epoch"] if self.history else self.initial_epoch

    def save_model(self):
        """Write model.keras (atomically): an uncompiled copy with the current weights."""
        final = _final_model(self.spec, self.model.get_weights())
        final.save(self.run_dir / ".tmp-model.keras")
        os.replace(self.run_dir / ".tmp-model.keras", self.run_dir / rundir.MODEL_FILE)
        return final

    def score_test(self, model) -> tuple[dict[str, Any], int]:
        """Mean test-split scores and image count; ({"error": ...}, 0) when it cannot be scored."""
        try:
            result = evaluate_split(model, self.spec, "test")
        except UNetDemoError as error:
            return {"error": str(error)}, 0
        return dict(result.mean), len(result.rows)

    def write_metrics(self, final_epoch: int, test_mean: dict[str, Any],
                      test_count: int) -> dict[str, Any]:
        """Write metrics.json: the final epoch's train/val scores, test scores, timings."""
        best_row = next((row for row in self.history if row["epoch"] == final_epoch), {})
        metrics = {
            "best_epoch": final_epoch,
            "epochs_run": self.history[-1]["epoch"] if self.history else 0,
            "stopped_early": self.stopped_early,
            "val": {k.removeprefix("val_"): v for k, v in best_row.items()
                    if k.startswith("val_")},
            "train": {k: v for k, v in best_row.items()
                      if not k.startswith("val_") and k not in ("epoch", "lr", "seconds", "phase",
                                                                "images_per_sec")},
            "test": test_mean,
            "test_images": test_count,
            "train_seconds": round(self.train_seconds, 2),
            "wall_seconds": round(time.perf_counter() - self.wall_start, 2),
        }
        # Added keys (best_epoch keeps its meaning: the epoch whose weights model.keras holds):
        # the one wording of the Train page, the CLI and the model card (training/live.py).
        from unet_demo.training.live import best_epoch, kept_weights_text

        top_epoch, top_dice = best_epoch(self.history)
        metrics.update({
            "kept_epoch": final_epoch,
            "kept_reason": "best validation Dice" if final_epoch == top_epoch else "last epoch",
            "best_val_dice_epoch": top_epoch,
            "best_val_dice": top_dice,
            "kept_text": kept_weights_text(final_epoch, self.history),
        })
        rundir.atomic_write_json(self.run_dir / rundir.METRICS_FILE, metrics)
        return metrics

    def emit_finished(self, metrics: dict[str, Any]) -> None:
        """Emit `Finished` with the final epoch's validation and the test scores."""
        summary = {f"val_{k}": v for k, v in metrics["val"].items() if isinstance(v, float)}
        summary.update({f"test_{k}": v for k, v in metrics["test"].items()
                        if isinstance(v, float)})
        self.emit(ev.Finished(best_epoch=metrics["best_epoch"], metrics=summary,
                              epochs_run=metrics["epochs_run"], stopped_early=self.stopped_early))


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
        *_transfer_lines(spec.train),
        "- " + metrics.get("kept_text", f"Kept: epoch {metrics.get('best_epoch', 0)} "
                                        f"(validation Dice {_fmt(val.get('dice'))})."),
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


def _transfer_lines(train) -> list[str]:
    """The model card's transfer-learning line (none for a run from random weights)."""
    if not train.init_encoder and not train.frozen_epochs:
        return []
    start = (f"encoder from the shipped encoder {train.init_encoder}" if train.init_encoder
             else "encoder from its own start weights")
    schedule = (f"; encoder frozen for {train.frozen_epochs} epoch(s), then its deepest level "
                f"unfrozen at x{train.unfreeze_lr_factor:g} the learning rate"
                if train.frozen_epochs else "")
    return [f"- Transfer: {start}{schedule}"]


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

    With ``spec.train.workers > 1`` the run trains on that many local processes
    (`unet_demo.training.distributed.run_local`); each of them trains its part with
    `unet_demo.training.multiworker.train_worker` (the chief rule).

    Raises:
        UNetDemoError: bad config or data (a `Failed` event is written first).

    Example:
        >>> run_training(get_preset("nuclei", "classroom"), Path("runs/n1"))  # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    from unet_demo.training import distributed

    if distributed.in_multi_worker_cluster():  # one worker of a TF_CONFIG cluster
        raise UNetDemoError(
            "run_training was called inside a multi-worker TF_CONFIG cluster; each worker "
            "trains its part with unet_demo.training.multiworker.train_worker (the local "
            "launcher and Ray Train call it), or unset TF_CONFIG to train in one process.")
    if spec.train.workers > 1:  # start the workers on this machine
        return distributed.run_local(spec, run_dir, should_stop=should_stop,
                                     on_event=on_event, resume=resume)
    trainer_class: type[_Trainer] = _Trainer
    if spec.model.variant == "unet3d":  # volumes: 3-D snapshots and test scores
        from unet_demo.training.volume import VolumeHooks

        trainer_class = type("VolumeTrainer", (VolumeHooks, _Trainer), {})
    trainer = trainer_class(spec, run_dir, should_stop, on_event)
    try:
        return trainer.run(resume)
    except StopRequested:  # pragma: no cover - handled inside _Trainer.fit
        return run_dir
    except Exception as error:
        message = str(error) if isinstance(error, UNetDemoError) else (
            f"Training failed: {type(error).__name__}: {error}")
        trainer.emit(ev.Failed(message=message[:4000]))
        raise


def load_spec(run_dir: str | Path) -> RunSpec:
    """The RunSpec stored in a run directory's config.json."""
    path = Path(run_dir) / rundir.CONFIG_FILE
    if not path.is_file():
        raise UNetDemoError(f"{path} is missing; the folder is not a training run directory.")
    return RunSpec.from_json(path.read_text(encoding="utf-8"))


__all__ = ["RunSpec", "UNetConfig", "run_training", "evaluate_split", "load_spec",
           "prepare_split", "StopRequested"]
