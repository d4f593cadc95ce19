"""Train page: choose data, model and training settings, start a job and watch it learn live.

Training never runs in the Streamlit script: `JobManager.start` hands the run to a worker
process, which appends typed events to ``<run_dir>/events.jsonl``. The live panel is a
``st.fragment(run_every=...)`` that tails that file from the last byte offset it read, so each
refresh only parses new lines. The run id lives in session state and in the URL
(``?run=<id>``): leaving the page or reloading the browser re-attaches to the same run.

Example:
    >>> from unet_demo.training.events import EpochEnd
    >>> live = LiveRun("demo")
    >>> live.apply([EpochEnd(epoch=1, metrics={"loss": 0.5, "val_dice": 0.7}, seconds=3.0)])
    >>> live.history[0]["val_dice"]
    0.7
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from unet_demo.errors import UNetDemoError
from unet_demo.training.events import (
    BatchEnd,
    EpochEnd,
    Event,
    Failed,
    Finished,
    Started,
    Stopped,
    ValidationSnapshot,
    read_events,
)
from unet_demo.ui.common import encoder_weights_ui

PREFIX = "train."
RUN_ID_KEY = PREFIX + "run_id"
NOTICE_KEY = PREFIX + "notice"
LIVE_KEY = PREFIX + "live"
START_GUARD_KEY = PREFIX + "starting"
REFRESH_SECONDS = 1.0
MODEL_SOURCES = ("Preset model", "Build page model")
_RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
LOSS_LABELS = {
    "bce": "Binary cross-entropy", "dice": "Dice", "bce_dice": "BCE + Dice",
    "focal": "Focal", "tversky": "Tversky", "generalized_dice": "Generalised Dice",
    "cce": "Categorical cross-entropy", "cce_dice": "CCE + Dice",
}
BINARY_LOSSES = ("bce_dice", "bce", "dice", "focal", "tversky")
MULTICLASS_LOSSES = ("cce_dice", "cce", "generalized_dice", "dice")
OPTIMIZER_LABELS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD + momentum"}
SCHEDULE_LABELS = {
    "constant": "constant", "plateau": "reduce on plateau", "cosine": "cosine decay",
    "exponential": "exponential decay", "poly": "polynomial decay",
}
LEARNING_RATES = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
DETERMINISM_NOTE = (
    "Same seed and settings give the same curves on a CPU: Keras seeds every generator, and "
    "the training step is compiled with XLA (the default, UNET_DEMO_XLA=1), which runs "
    "deterministically on a CPU, so TensorFlow's op-determinism mode is left off there (it "
    "would switch XLA off). With UNET_DEMO_XLA=0 the step runs as a plain graph and "
    "op-determinism mode is switched on instead. If XLA compilation fails, the run falls back "
    "to a plain graph without op determinism (its facts then say XLA off) and may not repeat "
    "exactly. On a GPU that promise does not hold in general: "
    "some cuDNN kernels (e.g. convolution backward passes) add floating-point numbers in a "
    "varying order, so two runs drift apart slowly. Runs on different machines or library "
    "versions can differ too."
)


# --------------------------------------------------------------------------- live state

@dataclasses.dataclass
class LiveRun:
    """What the page knows about one run, built incrementally from its events.

    Attributes:
        run_id: the run's id.
        offset: byte offset in events.jsonl read so far (pass to `read_events`).
        started: the last Started event (a resumed run starts again).
        last_batch: the latest BatchEnd.
        history: one dict per finished epoch: epoch, seconds and the epoch's metrics.
        snapshots: epoch -> run-relative path of that epoch's validation snapshot.
        terminal: the Finished, Failed or Stopped event once the run ended.

    Example:
        >>> from unet_demo.training.events import Stopped
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

    def apply(self, events: list[Event]) -> None:
        """Fold new events into the state (epochs are keyed, so a resumed run does not repeat).

        Args:
            events: events in file order.
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
            elif isinstance(event, Finished | Failed | Stopped):
                self.terminal = event

    @property
    def status(self) -> str:
        """"waiting", "running", "finished", "stopped" or "failed" from the events alone."""
        if isinstance(self.terminal, Finished):
            return "finished"
        if isinstance(self.terminal, Stopped):
            return "stopped"
        if isinstance(self.terminal, Failed):
            return "failed"
        return "running" if self.started else "waiting"


def progress_text(live: LiveRun, now: float | None = None) -> tuple[float, str]:
    """Progress fraction and a line "Epoch e/E · batch b/B · ETA m:ss · n images/s".

    The ETA divides the time since the first epoch of this (re)start ended by the optimizer
    steps done since then (the first epoch is left out: it includes XLA compilation), so it
    includes validation. Before that it uses the time since the start; before the first step it
    says "estimating".

    Args:
        live: the run's state.
        now: current time (seconds since the epoch); defaults to `time.time()`.

    Example:
        >>> from unet_demo.training.events import BatchEnd, Started
        >>> live = LiveRun("r")
        >>> live.apply([Started(epochs=2, batches_per_epoch=10, time=0.0),
        ...             BatchEnd(epoch=1, batch=5, num_batches=10, loss=0.5,
        ...                      images_per_sec=12.0, time=5.0)])
        >>> progress_text(live, now=5.0)
        (0.25, 'Epoch 1/2 · batch 5/10 · ETA 0:15 · 12.0 images/s')
    """
    started = live.started
    if started is None:
        return 0.0, "Waiting for the worker to load the data and build the model..."
    total_steps = max(1, started.epochs * started.batches_per_epoch)
    batch = live.last_batch
    finished_epochs = max((row["epoch"] for row in live.history), default=started.initial_epoch)
    if batch is not None and batch.epoch > finished_epochs:
        epoch, step_in_epoch, per_epoch = batch.epoch, batch.batch, batch.num_batches
    else:
        epoch, step_in_epoch, per_epoch = finished_epochs, started.batches_per_epoch, \
            started.batches_per_epoch
    done = (epoch - 1) * started.batches_per_epoch + step_in_epoch
    fraction = min(1.0, max(0.0, done / total_steps))
    steps_since_start = done - started.initial_epoch * started.batches_per_epoch
    elapsed = (time.time() if now is None else now) - started.time
    first_steps = (started.initial_epoch + 1) * started.batches_per_epoch
    if live.first_epoch_end is not None and done > first_steps:
        steps_since_start = done - first_steps
        elapsed = (time.time() if now is None else now) - live.first_epoch_end
    if steps_since_start > 0 and elapsed > 0:
        eta = _clock(elapsed / steps_since_start * (total_steps - done))
    else:
        eta = "estimating"
    speed = f" · {batch.images_per_sec:.1f} images/s" if batch is not None else ""
    text = (f"Epoch {max(epoch, 1)}/{started.epochs} · batch {step_in_epoch}/{per_epoch} · "
            f"ETA {eta}{speed}")
    return fraction, text


def _clock(seconds: float) -> str:
    """Seconds as "m:ss" (or "h:mm:ss" past an hour)."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def load_snapshot(run_dir: Path, relative_path: str) -> dict[str, np.ndarray] | None:
    """Read a validation snapshot (npz: images, masks, labels, probability, ids) of a run.

    Args:
        run_dir: the run directory.
        relative_path: the path from the ValidationSnapshot event.

    Returns:
        The arrays by name, or None when the file is missing or unreadable (yet).
    """
    path = (run_dir / relative_path).resolve()
    if run_dir.resolve() not in path.parents:
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    except (OSError, ValueError):
        return None


def valid_run_id(value: Any) -> str | None:
    """The run id if it looks like one (letters, digits, ``._-``), else None (URL input).

    Args:
        value: e.g. ``st.query_params.get("run")``.

    Example:
        >>> valid_run_id("20261123-101500-ab12"), valid_run_id("../etc")
        ('20261123-101500-ab12', None)
    """
    if isinstance(value, str) and _RUN_ID_PATTERN.match(value) and ".." not in value:
        return value
    return None


# --------------------------------------------------------------------------- settings form

def _dataset_choices() -> dict[str, str]:
    """Dataset key -> label: the bundled datasets, then datasets uploaded as a ZIP."""
    from unet_demo.data.bundled import list_datasets

    choices = {info.name: f"{info.title} ({info.name})" for info in list_datasets()}
    try:
        from unet_demo.data.upload_dataset import list_uploaded_datasets

        for card in list_uploaded_datasets():
            choices[card["name"]] = f"{card.get('title', card['name'])} ({card['name']})"
    except (UNetDemoError, OSError, KeyError):
        pass
    return choices


def _is_binary(dataset: str) -> bool:
    """True when the dataset has one foreground class (bundled: 2 labels; upload: 1 class)."""
    if dataset.startswith("upload:"):
        from unet_demo.data.upload_dataset import load_uploaded_info

        return int(load_uploaded_info(dataset).get("num_classes", 1)) <= 2
    from unet_demo.data.bundled import get_dataset_info

    return get_dataset_info(dataset).is_binary


def _preset_spec(dataset: str, preset: str):
    """The engine's preset for a dataset (uploads get the generic synthetic-data preset)."""
    from unet_demo.training.presets import get_preset

    return get_preset(dataset, preset)


_FORM_FIELDS = ("loss", "optimizer", "learning_rate", "schedule", "epochs", "batch_size",
                "early_stopping_patience", "augment", "seed")


def _apply_preset() -> None:
    """Copy the chosen preset's training settings into the form widgets (widget callback)."""
    state = st.session_state
    spec = _preset_spec(state[PREFIX + "dataset"], state[PREFIX + "preset"])
    for name in _FORM_FIELDS:
        state[PREFIX + name] = getattr(spec.train, name)
    state[PREFIX + "max_train_images"] = spec.data.max_train_images
    from unet_demo.ui.state import set_dataset

    if not state[PREFIX + "dataset"].startswith("upload:"):
        set_dataset(state[PREFIX + "dataset"])


def _augment_summary(cfg) -> str:
    """Short list of the enabled transforms of an AugmentConfig, e.g. "hflip 0.5, rotate 0.3"."""
    parts = [f"{f.name[:-2]} {getattr(cfg, f.name):g}" for f in dataclasses.fields(cfg)
             if f.name.endswith("_p") and getattr(cfg, f.name) > 0]
    return ", ".join(parts) if parts else "nothing enabled"


def settings_ui(disabled: bool):
    """Draw the training settings and return the RunSpec they describe (None on a bad choice).

    Args:
        disabled: grey the widgets out (a run of this session is in progress).

    Returns:
        (spec, label) or (None, "") when the settings cannot form a run; errors are shown.
    """
    from unet_demo.config import LOSSES, OPTIMIZERS, SCHEDULES
    from unet_demo.training.presets import PRESET_NAMES
    from unet_demo.ui.state import get_dataset, get_unet_config

    state = st.session_state
    choices = _dataset_choices()
    if state.get(PREFIX + "dataset") not in choices:
        chosen = get_dataset()
        state[PREFIX + "dataset"] = chosen if chosen in choices else next(iter(choices))
    state.setdefault(PREFIX + "preset", PRESET_NAMES[0])
    if PREFIX + "loss" not in state:
        _apply_preset()

    data_col, model_col, train_col = st.columns(3, gap="large")
    with data_col:
        st.subheader("Data")
        st.selectbox("Dataset", list(choices), format_func=choices.get, key=PREFIX + "dataset",
                     on_change=_apply_preset, disabled=disabled, persist_state="session")
        st.radio("Preset", PRESET_NAMES, key=PREFIX + "preset", horizontal=True,
                 on_change=_apply_preset, disabled=disabled, persist_state="session",
                 help="classroom: small and fast (minutes on a laptop CPU); quality: bigger "
                      "model and more epochs. Picking one resets the settings below.")
        st.number_input("Training images (0 = all)", min_value=0, max_value=100000, step=8,
                        key=PREFIX + "max_train_images", disabled=disabled,
                        persist_state="session",
                        help="Fewer images make each epoch faster (and the model worse).")
        _upload_ui(disabled)
    dataset, preset_name = state[PREFIX + "dataset"], state[PREFIX + "preset"]
    try:
        preset = _preset_spec(dataset, preset_name)
        binary = _is_binary(dataset)
    except UNetDemoError as error:
        st.error(str(error))
        return None, ""

    with model_col:
        st.subheader("Model")
        built = get_unet_config()
        state.setdefault(PREFIX + "model_source", MODEL_SOURCES[1] if built else MODEL_SOURCES[0])
        source = st.radio("Model", MODEL_SOURCES, key=PREFIX + "model_source",
                          disabled=disabled, persist_state="session",
                          help="The Build page's U-Net, or the model that comes with the preset.")
        if source == MODEL_SOURCES[1] and built is None:
            st.info("No model from the Build page yet: using the preset's model. Design "
                    "one on the Build page to train it here.")
        model = _chosen_model(state, preset)
        levels = "-".join(str(f) for f in model.level_filters())
        st.caption(f"**{model.variant}** U-Net, depth {model.depth}, filters {levels}, "
                   f"{model.normalization} norm, {model.upsampling}. Input size, channels "
                   "and classes are matched to the data when the run starts.")
        encoder_weights_ui(model)
        st.checkbox("Augment training images", key=PREFIX + "augment", disabled=disabled,
                    persist_state="session")
        augment_cfg, augment_source = _chosen_augment(state, preset)
        if state[PREFIX + "augment"]:
            st.caption(f"Uses {augment_source}: {_augment_summary(augment_cfg)}.")
        else:
            st.caption("Off: the model sees the training images unchanged.")

    with train_col:
        st.subheader("Training")
        losses = [name for name in (BINARY_LOSSES if binary else MULTICLASS_LOSSES)
                  if name in LOSSES]
        if state.get(PREFIX + "loss") not in losses:
            state[PREFIX + "loss"] = losses[0]
        st.selectbox("Loss", losses, format_func=LOSS_LABELS.get, key=PREFIX + "loss",
                     disabled=disabled, persist_state="session")
        left, right = st.columns(2)
        left.selectbox("Optimiser", OPTIMIZERS, format_func=OPTIMIZER_LABELS.get,
                       key=PREFIX + "optimizer", disabled=disabled, persist_state="session")
        rates = sorted({*LEARNING_RATES, float(state[PREFIX + "learning_rate"])})
        right.select_slider("Learning rate", rates, key=PREFIX + "learning_rate",
                            format_func=lambda v: f"{v:.0e}", disabled=disabled,
                            persist_state="session")
        left.selectbox("LR schedule", SCHEDULES, format_func=SCHEDULE_LABELS.get,
                       key=PREFIX + "schedule", disabled=disabled, persist_state="session")
        right.number_input("Epochs", min_value=1, max_value=1000, key=PREFIX + "epochs",
                           disabled=disabled, persist_state="session")
        left.number_input("Batch size", min_value=1, max_value=512, key=PREFIX + "batch_size",
                          disabled=disabled, persist_state="session")
        right.number_input("Early stopping patience (0 = off)", min_value=0, max_value=1000,
                           key=PREFIX + "early_stopping_patience", disabled=disabled,
                           persist_state="session",
                           help="Stop after this many epochs without a better validation "
                                "Dice (not loss) and keep the weights of the epoch with the "
                                "highest validation Dice.")
        left.number_input("Seed", min_value=0, max_value=2**31 - 1, key=PREFIX + "seed",
                          disabled=disabled, persist_state="session")
        label = right.text_input("Run label (optional)", key=PREFIX + "label", max_chars=60,
                                 disabled=disabled, placeholder="e.g. dice loss, lr 3e-4",
                                 persist_state="session")

    try:
        spec = spec_from_state(state)
    except UNetDemoError as error:
        st.error(str(error))
        return None, ""
    return spec, label.strip()


def _chosen_model(state, preset):
    """The Build page's UNetConfig when chosen and present, else the preset's model."""
    from unet_demo.ui.state import get_unet_config

    built = get_unet_config(state)
    if state.get(PREFIX + "model_source") == MODEL_SOURCES[1] and built is not None:
        return built
    return preset.model


def _chosen_augment(state, preset):
    """(AugmentConfig, source): the Augment page's pipeline if set, else the preset's."""
    from unet_demo.ui.state import get_augment_config

    cfg = get_augment_config(state)
    if cfg is not None and cfg.enabled():
        return cfg, "the Augment page's pipeline"
    return preset.augment, "the preset's pipeline"


def spec_from_state(state) -> Any:
    """The RunSpec described by the form's session-state values (read at click time).

    Building the spec inside the Start callback, not from values bound when the button was
    drawn, means an edit made just before the click is never lost.

    Args:
        state: ``st.session_state`` (or a dict with the same ``train.*`` keys).

    Raises:
        UNetDemoError: a value the configs refuse (the message says which and why).
    """
    preset = _preset_spec(state[PREFIX + "dataset"], state[PREFIX + "preset"])
    train = preset.train.replace(
        loss=str(state[PREFIX + "loss"]), optimizer=str(state[PREFIX + "optimizer"]),
        learning_rate=float(state[PREFIX + "learning_rate"]),
        schedule=str(state[PREFIX + "schedule"]), epochs=int(state[PREFIX + "epochs"]),
        batch_size=int(state[PREFIX + "batch_size"]),
        early_stopping_patience=int(state[PREFIX + "early_stopping_patience"]),
        augment=bool(state[PREFIX + "augment"]), seed=int(state[PREFIX + "seed"]))
    data = preset.data.replace(max_train_images=int(state[PREFIX + "max_train_images"]))
    return preset.replace(data=data, model=_chosen_model(state, preset), train=train,
                          augment=_chosen_augment(state, preset)[0])


def _add_uploaded_dataset() -> None:
    """Button callback: check the uploaded ZIP, store it as "upload:<id>" and select it."""
    from unet_demo.data.upload_dataset import inspect_zip, save_uploaded_dataset

    state = st.session_state
    upload = state.get(PREFIX + "zip")
    if upload is None:
        state[NOTICE_KEY] = ("info", "Choose a ZIP file first.")
        return
    try:
        report = inspect_zip(upload.getvalue(), name=upload.name,
                             group_separator="_" if state.get(PREFIX + "zip_grouped") else None)
    except UNetDemoError as error:
        state[NOTICE_KEY] = ("error", str(error))
        return
    state[PREFIX + "zip_skipped"] = [row for row in report.table() if row["status"] != "ok"]
    if min(report.split_counts().values()) < 1:
        state[NOTICE_KEY] = ("error", f"{upload.name}: {report.summary()} Training needs at "
                             "least one image in each of train, val and test: add more pairs "
                             "or fix the skipped ones listed below.")
        return
    try:
        dataset_id = "upload:" + save_uploaded_dataset(report)
    except (UNetDemoError, OSError) as error:
        state[NOTICE_KEY] = ("error", f"Could not store the dataset: {error}")
        return
    state[PREFIX + "dataset"] = dataset_id
    _apply_preset()
    state[NOTICE_KEY] = ("success", f"{report.summary()} Added as {dataset_id} and selected.")


def _upload_ui(disabled: bool) -> None:
    """Optional: a ZIP with images/ and masks/ becomes a dataset "upload:<id>" to train on."""
    with st.expander("Your own data (ZIP upload)"):
        st.caption("A ZIP with `images/` and `masks/` folders holding files of the same names "
                   "(PNG, JPEG, TIFF, DICOM or NIfTI slices). Files are checked before use; "
                   "valid pairs are split 70/15/15 by name. Name slices `<patient>_<slice>` "
                   "and tick the box below so one patient never lands in two splits.")
        st.file_uploader("Dataset ZIP", type=["zip"], key=PREFIX + "zip", disabled=disabled)
        st.checkbox("Group files by the name before the first underscore",
                    key=PREFIX + "zip_grouped", disabled=disabled)
        st.button("Check and add the dataset", on_click=_add_uploaded_dataset,
                  disabled=disabled)
        skipped = st.session_state.get(PREFIX + "zip_skipped")
        if skipped:
            st.caption(f"{len(skipped)} file(s) skipped:")
            st.dataframe(skipped, hide_index=True)


# --------------------------------------------------------------------------- job control

def _run_dir(run_id: str) -> Path:
    """The folder of a run (rundir.load_run knows it; fall back to <runs>/<id>)."""
    from unet_demo.settings import runs_dir

    try:
        from unet_demo.training.rundir import load_run

        return Path(load_run(run_id).path)
    except (UNetDemoError, FileNotFoundError, OSError):
        return runs_dir() / run_id


def job_active(manager, run_id: str, run_dir: Path) -> bool:
    """True while the run trains: its worker lives and it has not written its final event.

    After the final event the worker only tidies up and exits, so the page already treats
    the run as over (Start comes back; a start in that second may still be told "busy").

    Args:
        manager: the JobManager.
        run_id: the run.
        run_dir: its folder.
    """
    from unet_demo.training.events import TERMINAL_TYPES, last_event

    if not manager.is_running(run_id):
        return False
    try:
        return not isinstance(last_event(run_dir), TERMINAL_TYPES)
    except UNetDemoError:
        return True


def attach(run_id: str | None) -> None:
    """Make ``run_id`` the run shown by the live panel (session state and the URL).

    Args:
        run_id: the run to show, or None to detach.
    """
    state = st.session_state
    if run_id is None:
        state.pop(RUN_ID_KEY, None)
        st.query_params.pop("run", None)
        return
    if state.get(RUN_ID_KEY) != run_id:
        state[LIVE_KEY] = LiveRun(run_id)
    state[RUN_ID_KEY] = run_id
    st.query_params["run"] = run_id


def current_run_id() -> str | None:
    """The attached run: session state first, else ``?run=`` from the URL (after a reload)."""
    run_id = st.session_state.get(RUN_ID_KEY) or valid_run_id(st.query_params.get("run"))
    if run_id and RUN_ID_KEY not in st.session_state:
        if _run_dir(run_id).is_dir():
            attach(run_id)
        else:
            st.query_params.pop("run", None)
            return None
    return run_id


def _start_job() -> None:
    """Start button callback: start one job unless this session's run is still going."""
    from unet_demo.training.jobs import JobsBusyError, get_job_manager

    state = st.session_state
    manager = get_job_manager()
    current = state.get(RUN_ID_KEY)
    if current and job_active(manager, current, _run_dir(current)):
        state[NOTICE_KEY] = ("info", f"Run {current} is still going: stop it first.")
        return
    try:
        spec = spec_from_state(state)
        run_id = manager.start(spec, label=str(state.get(PREFIX + "label") or "").strip())
    except JobsBusyError as error:
        state[NOTICE_KEY] = ("warning", f"Busy: {error}")
        return
    except UNetDemoError as error:
        state[NOTICE_KEY] = ("error", str(error))
        return
    attach(run_id)
    state[NOTICE_KEY] = ("success", f"Started run {run_id}.")


def _stop_job(run_id: str) -> None:
    """Stop button callback: ask the worker to stop after its current batch."""
    from unet_demo.training.jobs import get_job_manager

    get_job_manager().stop(run_id)
    st.session_state[NOTICE_KEY] = ("info", f"Stopping run {run_id} after the current batch...")


def _show_notice() -> None:
    """Show (once) the message left by a button callback."""
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice:
        kind, text = notice
        getattr(st, kind)(text)


# --------------------------------------------------------------------------- live panel

def _update_live(run_id: str, run_dir: Path) -> LiveRun:
    """Read the events appended since the last refresh into this session's LiveRun."""
    state = st.session_state
    live = state.get(LIVE_KEY)
    if not isinstance(live, LiveRun) or live.run_id != run_id:
        live = LiveRun(run_id)
    events, live.offset = read_events(run_dir, live.offset)
    live.apply(events)
    state[LIVE_KEY] = live
    return live


def _best_epoch(history: list[dict[str, Any]]) -> tuple[int | None, float | None]:
    """(epoch, value) of the highest validation Dice so far, or (None, None)."""
    best = None
    for row in history:
        value = row.get("val_dice")
        if isinstance(value, int | float) and math.isfinite(value) and (
                best is None or value > best[1]):
            best = (row["epoch"], float(value))
    return best if best else (None, None)


def _snapshot_ui(live: LiveRun, run_dir: Path) -> None:
    """Strip of validation predictions for one epoch, with a scrubber over finished epochs."""
    from unet_demo.plots.images import snapshot_overlay

    epochs = sorted(live.snapshots)
    if not epochs:
        st.caption("Validation snapshots appear here after the first epoch.")
        return
    key = PREFIX + "scrub." + live.run_id
    follow_key = key + ".latest"
    state = st.session_state
    # Follow the newest epoch unless the user moved the scrubber back to an older one.
    if state.get(key) not in epochs or state.get(key) == state.get(follow_key):
        state[key] = epochs[-1]
    state[follow_key] = epochs[-1]
    if len(epochs) > 1:
        epoch = st.select_slider("Epoch scrubber: predictions after epoch", epochs, key=key)
    else:
        epoch = epochs[0]
    snapshot = load_snapshot(run_dir, live.snapshots[epoch])
    if snapshot is None:
        st.caption(f"Snapshot of epoch {epoch} is not readable yet.")
        return
    images = snapshot.get("images")
    truths = snapshot.get("masks")
    predictions = snapshot.get("labels")  # the runner's thresholded / arg-maxed labels
    if images is None or truths is None or predictions is None:
        st.caption(f"Snapshot of epoch {epoch} has unexpected contents: {sorted(snapshot)}.")
        return
    count = min(len(images), 8)
    pictures = [snapshot_overlay(images[i], truths[i], predictions[i]) for i in range(count)]
    st.caption(f"Validation images after epoch {epoch}: prediction tinted orange, ground "
               "truth outlined in blue.")
    st.image(pictures, width=150)


def _render_live(live: LiveRun, run_dir: Path, running: bool) -> None:
    """Progress, learning curves, snapshot strip and the end message of one run."""
    from unet_demo.plots.training import training_curves_figure

    status = live.status
    if not running and status in ("running", "waiting"):
        from unet_demo.training.rundir import load_run

        try:
            status = load_run(run_dir).status
        except UNetDemoError:
            status = "interrupted"
    fraction, text = progress_text(live)
    if status in ("running", "waiting"):
        st.progress(fraction, text=text)
    started = live.started
    best_epoch, best_dice = _best_epoch(live.history)
    columns = st.columns(4)
    columns[0].metric("Status", status)
    columns[1].metric("Epochs done", f"{len(live.history)}/{started.epochs if started else '?'}")
    columns[2].metric("Best val Dice", f"{best_dice:.3f}" if best_dice is not None else "-",
                      help=f"epoch {best_epoch}" if best_epoch else None)
    columns[3].metric("Device", started.device if started else "-")
    if started is not None:
        facts = (f"{started.train_images} training / {started.val_images} validation images, "
                 f"{started.params:,} parameters, {started.batches_per_epoch} batches per "
                 f"epoch, XLA {'on' if getattr(started, 'jit_compile', False) else 'off'}; "
                 + ("seeded: the same seed and settings repeat this history on a CPU."
                    if getattr(started, "deterministic", False)
                    else "not seeded for repeatability."))
        note = getattr(started, "note", "")
        st.caption(facts + (f" {note}" if note else ""))
    if isinstance(live.terminal, Finished):
        early = " (early stopping)" if live.terminal.stopped_early else ""
        st.success(f"Finished after {live.terminal.epochs_run or len(live.history)} epoch(s)"
                   f"{early}; best epoch {live.terminal.best_epoch}.")
    elif isinstance(live.terminal, Stopped):
        st.warning(f"Stopped during epoch {live.terminal.epoch} after batch "
                   f"{live.terminal.batch}. Completed epochs are kept in the run folder.")
    elif isinstance(live.terminal, Failed):
        st.error(f"Training failed: {live.terminal.message}")
    elif status == "interrupted":
        st.warning("The worker ended without a final event (server restart or crash). The "
                   "run can be resumed from its last complete epoch with the CLI.")
    figure = training_curves_figure(live.history, total_epochs=started.epochs if started else None,
                                    best_epoch=best_epoch)
    st.plotly_chart(figure, key=PREFIX + "curves", config={"displayModeBar": False})
    _snapshot_ui(live, run_dir)


def live_panel(run_id: str) -> None:
    """The attached run: refreshed every second by a fragment while its job runs.

    Args:
        run_id: the run to show.
    """
    from unet_demo.training.jobs import get_job_manager

    manager = get_job_manager()
    run_dir = _run_dir(run_id)
    running_at_render = job_active(manager, run_id, run_dir)

    @st.fragment(run_every=REFRESH_SECONDS if running_at_render else None)
    def live_fragment() -> None:
        running = manager.is_running(run_id)  # ask first: events read next include the end
        live = _update_live(run_id, run_dir)
        running = running and live.terminal is None
        label = ""
        try:
            from unet_demo.training.rundir import load_run

            label = load_run(run_dir).label
        except UNetDemoError:
            pass
        st.subheader(f"Run {run_id}" + (f" · {label}" if label else ""))
        _render_live(live, run_dir, running)
        if running_at_render and not running:
            st.rerun()  # whole page: re-enable Start, stop the timer, refresh the runs list

    live_fragment()


# --------------------------------------------------------------------------- runs list, A/B

def _run_row(run) -> dict[str, Any]:
    """One table row for a RunInfo: id, label, status, dataset, best val Dice, duration."""
    from unet_demo.training.rundir import load_history

    history = load_history(run.path)
    dice = [row.get("val_dice") for row in history if isinstance(row.get("val_dice"), float)]
    seconds = sum(row.get("seconds") or 0.0 for row in history)
    spec = run.spec or {}
    return {
        "run": run.run_id,
        "label": run.label,
        "status": run.status,
        "dataset": spec.get("data", {}).get("dataset", "?"),
        "model": f"{spec.get('model', {}).get('variant', '?')} "
                 f"d{spec.get('model', {}).get('depth', '?')}",
        "loss": spec.get("train", {}).get("loss", "?"),
        "epochs": len(history),
        "best val Dice": round(max(dice), 4) if dice else None,
        "duration": _clock(seconds),
        "created": datetime.datetime.fromtimestamp(run.created).strftime("%Y-%m-%d %H:%M"),
    }


def runs_ui(current: str | None) -> None:
    """Table of all runs, "open" to attach one, and an A/B overlay of two runs' curves.

    Args:
        current: the attached run id (preselected in the A/B picker).
    """
    from unet_demo.plots.training import overlay_runs_figure
    from unet_demo.training.rundir import list_runs, load_history

    st.header("Runs")
    runs = list_runs()
    if not runs:
        st.caption("No runs yet: start one above.")
        return
    rows = [_run_row(run) for run in runs[:50]]
    st.dataframe(rows, hide_index=True, key=PREFIX + "runs_table",
                 column_config={"best val Dice": st.column_config.ProgressColumn(
                     "best val Dice", min_value=0.0, max_value=1.0, format="%.3f")})
    ids = [row["run"] for row in rows]
    labels = {row["run"]: f"{row['run']} · {row['label'] or row['dataset']} · {row['status']}"
              for row in rows}
    # The pickers' keys carry a fingerprint of the labels: a run whose status changes gets a
    # fresh widget, so the browser never keeps showing an old "running" label.
    fingerprint = hashlib.sha1("|".join(labels.values()).encode()).hexdigest()[:8]
    pick_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
    chosen = pick_col.selectbox("Show a run in the panel above", ids, format_func=labels.get,
                                index=ids.index(current) if current in ids else 0,
                                key=f"{PREFIX}open_pick.{fingerprint}")
    button_col.button("Show this run", on_click=attach, args=(chosen,),
                      disabled=chosen == current)
    st.subheader("Compare runs (A/B)")
    st.caption("Pick two runs trained on the same dataset (the split is fixed per dataset, so "
               "both see the same validation images) to compare their validation curves. "
               + DETERMINISM_NOTE)
    default = [run_id for run_id in st.session_state.get(PREFIX + "compare_ids", [])
               if run_id in ids] or ([current] if current in ids else ids[:1])
    picked = st.multiselect("Runs to overlay", ids, default=default, format_func=labels.get,
                            max_selections=2, key=f"{PREFIX}compare.{fingerprint}")
    st.session_state[PREFIX + "compare_ids"] = list(picked)
    if len(picked) == 2:
        datasets = {row["run"]: row["dataset"] for row in rows}
        if datasets[picked[0]] != datasets[picked[1]]:
            st.info("These runs use different datasets: their curves are not comparable.")
        runs_by_id = {run.run_id: run for run in runs}
        series = [(f"{'AB'[i]}: {labels[run_id].split(' · ')[1]}",
                   load_history(runs_by_id[run_id].path)) for i, run_id in enumerate(picked)]
        st.plotly_chart(overlay_runs_figure(series), key=PREFIX + "overlay",
                        config={"displayModeBar": False})
    else:
        st.caption("Pick a second run to see the overlay.")


# --------------------------------------------------------------------------- page

def train_page() -> None:
    """The whole Train page below the title: settings, Start/Stop, live run, runs list.

    Example:
        >>> train_page()  # doctest: +SKIP
    """
    from unet_demo.training.jobs import get_job_manager

    manager = get_job_manager()
    run_id = current_run_id()
    running = bool(run_id) and job_active(manager, run_id, _run_dir(run_id))
    with st.expander("Settings", expanded=not running):
        spec, _ = settings_ui(disabled=running)
    start_col, stop_col, note_col = st.columns([1, 1, 4], vertical_alignment="center")
    start_col.button("Start training", type="primary", on_click=_start_job,
                     disabled=running or spec is None, key=PREFIX + "start")
    stop_col.button("Stop", on_click=_stop_job, args=(run_id,), disabled=not running,
                    key=PREFIX + "stop")
    busy = len(manager.running_ids())
    note_col.caption(f"{busy} training job(s) running on this server (at most "
                     f"{_max_jobs()}). Training runs in a separate process: you may leave the "
                     "page or reload the browser, the run keeps going and reappears here.")
    _show_notice()
    if run_id:
        live_panel(run_id)
    runs_ui(run_id)


def _max_jobs() -> int:
    from unet_demo.settings import max_concurrent_jobs

    return max_concurrent_jobs()
