"""Train page: choose data, model and training settings, start a job and watch it learn live.

Training never runs in the Streamlit script: `JobManager.submit` puts the run in the server's
fair queue (it starts at once when a slot is free) and a worker process appends typed events
to ``<run_dir>/events.jsonl``. The browser that started a run owns it (`unet_demo.ui.owner`):
only it, or the operator, can stop or cancel it; anyone with the link watches read-only. The
live panel is a ``st.fragment(run_every=...)`` that tails that file from the last byte offset it read, so each
refresh only parses new lines. The run id lives in session state and in the URL
(``?run=<id>``): leaving the page or reloading the browser re-attaches to the same run.
The event folding, progress, ETA and messages come from `unet_demo.training.live`, so the page
and ``python -m unet_demo train`` say the same; this module only draws.

Example:
    >>> train_page()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any

import streamlit as st

from unet_demo.config import LOSS_LABELS, OPTIMIZER_LABELS, SCHEDULE_LABELS
from unet_demo.errors import UNetDemoError
from unet_demo.training.housekeeping import mark_opened
from unet_demo.training.jobs import owner_key
from unet_demo.training.live import (
    REFERENCE_OVERHEAD_S,
    LiveRun,
    best_epoch,
    clock,
    end_message,
    estimate_run_seconds,
    job_active,
    load_snapshot,
    progress_text,
    run_dir_of,
    run_row,
    settings_diff,
    started_facts,
    training_warnings,
)
from unet_demo.ui.classroom_ui import class_settings
from unet_demo.ui.common import encoder_weights_ui
from unet_demo.ui.housekeeping_ui import disk_caption, pin_toggle, removed_notice
from unet_demo.ui.links_ui import copy_link_ui, restore_link
from unet_demo.ui.owner import operator_token, operator_ui, owner_secret, remember_owner

PREFIX = "train."
RUN_ID_KEY = PREFIX + "run_id"
NOTICE_KEY = PREFIX + "notice"
LIVE_KEY = PREFIX + "live"
START_GUARD_KEY = PREFIX + "starting"
REFRESH_SECONDS = 1.0
MODEL_SOURCES = ("Preset model", "Build page model")
LEARNING_RATES = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
DETERMINISM_NOTE = (
    "Same seed and settings give the same curves on a CPU, bit for bit: Keras seeds every "
    "generator. Whether the training step is compiled with XLA or runs as TensorFlow's graph "
    "on oneDNN kernels, and whether it computes in float32 or bfloat16, is chosen per machine "
    "by a short cached micro-benchmark (bfloat16 only on CPUs that compute it natively); the "
    "run's facts line says what was chosen and why, and UNET_DEMO_XLA / UNET_DEMO_PRECISION "
    "fix it. The XLA-compiled step is deterministic on a CPU, so TensorFlow's op-determinism "
    "mode is left off there (it would switch XLA off); the graph runs with op-determinism mode "
    "on and one op at a time (TF_NUM_INTEROP_THREADS=1; with ops side by side two runs drifted "
    "apart in the 6th digit). A different choice (another machine) repeats a history only up "
    "to round-off. If XLA compilation fails, the run falls back to the graph (its facts then "
    "say XLA off). On a GPU that promise does not hold in general: "
    "some cuDNN kernels (e.g. convolution backward passes) add floating-point numbers in a "
    "varying order, so two runs drift apart slowly. Runs on different machines or library "
    "versions can differ too."
)


# --------------------------------------------------------------------------- settings form

def _preset_spec(dataset: str, preset: str):
    """The engine's preset for a dataset (uploads get the generic synthetic-data preset)."""
    from unet_demo.training.presets import get_preset

    return get_preset(dataset, preset)


_FORM_FIELDS = ("loss", "optimizer", "learning_rate", "schedule", "epochs", "batch_size",
                "early_stopping_patience", "augment", "seed", "init_encoder", "frozen_epochs")


def _apply_preset() -> None:
    """Copy the chosen preset's training settings into the form widgets (widget callback)."""
    state = st.session_state
    spec = _preset_spec(state[PREFIX + "dataset"], state[PREFIX + "preset"])
    for name in _FORM_FIELDS:
        state[PREFIX + name] = getattr(spec.train, name)
    state[PREFIX + "epochs"] = class_settings().capped_epochs(spec.train.epochs)
    state[PREFIX + "max_train_images"] = spec.data.max_train_images
    from unet_demo.data.volumes import is_volume_dataset
    from unet_demo.ui.state import set_dataset

    # Other pages read 2-D bundled datasets only (uploads and 3-D volumes stay on this page).
    if not (state[PREFIX + "dataset"].startswith("upload:")
            or is_volume_dataset(state[PREFIX + "dataset"])):
        set_dataset(state[PREFIX + "dataset"])


def _augment_summary(cfg) -> str:
    """Short list of the enabled transforms of an AugmentConfig, e.g. "hflip 0.5, rotate 0.3"."""
    parts = [f"{f.name[:-2]} {getattr(cfg, f.name):g}" for f in dataclasses.fields(cfg)
             if f.name.endswith("_p") and getattr(cfg, f.name) > 0]
    return ", ".join(parts) if parts else "nothing enabled"


def _apply_link(link) -> None:
    """Write a Train link into the form (and the Build/Augment choices it carries)."""
    from unet_demo.data.sources import dataset_choices
    from unet_demo.training.classroom import apply_class_settings
    from unet_demo.ui.state import set_augment_config, set_dataset, set_unet_config

    spec, state = link.spec, st.session_state
    if spec.data.dataset not in dataset_choices():
        raise UNetDemoError(f"This link trains on the dataset {spec.data.dataset!r}, which this "
                            "server does not have (an uploaded dataset stays on the server it "
                            "was uploaded to).")
    capped = apply_class_settings(spec, class_settings())  # refuses a barred variant
    if capped.train.epochs != spec.train.epochs:
        st.info(f"The link asks for {spec.train.epochs} epochs; this class stops runs at "
                f"{capped.train.epochs}.")
    state[PREFIX + "dataset"] = spec.data.dataset
    state[PREFIX + "preset"] = link.preset
    for name in _FORM_FIELDS:
        state[PREFIX + name] = getattr(capped.train, name)
    state[PREFIX + "max_train_images"] = spec.data.max_train_images
    state[PREFIX + "label"] = link.label
    state[PREFIX + "model_source"] = MODEL_SOURCES[1] if link.built_model else MODEL_SOURCES[0]
    if link.built_model:
        set_unet_config(spec.model)
    set_augment_config(spec.augment)  # the preset's own when the link's pipeline is off
    if not spec.data.dataset.startswith("upload:") and spec.model.variant != "unet3d":
        set_dataset(spec.data.dataset)
    if spec_from_state(state) != capped:
        st.info("This link holds settings this page has no widget for; they were left at the "
                "preset's values.")


def train_link(spec):
    """The `TrainLink` of the form: its spec, preset, model choice and label.

    Args:
        spec: the RunSpec `settings_ui` returned.
    """
    from unet_demo.training.links import TrainLink

    state = st.session_state
    return TrainLink(spec, str(state[PREFIX + "preset"]),
                     state.get(PREFIX + "model_source") == MODEL_SOURCES[1],
                     str(state.get(PREFIX + "label") or "").strip())


def settings_ui(disabled: bool):
    """Draw the training settings and return the RunSpec they describe (None on a bad choice).

    Args:
        disabled: grey the widgets out (a run of this session is in progress).

    Returns:
        (spec, label) or (None, "") when the settings cannot form a run; errors are shown.
    """
    from unet_demo.config import OPTIMIZERS, SCHEDULES, losses_for
    from unet_demo.data.sources import dataset_choices, is_binary
    from unet_demo.training.presets import PRESET_NAMES
    from unet_demo.ui.state import DEFAULT_DATASET, get_dataset, get_unet_config

    state = st.session_state
    # ?x=... from a shared link, once per session; also while this browser's run is busy
    # (after a reload the fresh session would otherwise show, and link, the defaults).
    restore_link("train", _apply_link)
    choices = dataset_choices()
    pinned = class_settings()
    if state.get(PREFIX + "dataset") not in choices:
        chosen = get_dataset(default=pinned.default_dataset or DEFAULT_DATASET)
        state[PREFIX + "dataset"] = chosen if chosen in choices else next(iter(choices))
    state.setdefault(PREFIX + "preset", pinned.preset or PRESET_NAMES[0])
    if PREFIX + "loss" not in state:
        _apply_preset()

    data_col, model_col, train_col = st.columns(3, gap="large")
    with data_col:
        st.subheader("Data")
        st.selectbox("Dataset", list(choices), format_func=choices.get, key=PREFIX + "dataset",
                     on_change=_apply_preset, disabled=disabled, persist_state="session",
                     help="The images and masks to learn from; its fixed validation split "
                          "measures how well the model generalises.")
        st.radio("Preset", PRESET_NAMES, key=PREFIX + "preset", horizontal=True,
                 on_change=_apply_preset, disabled=disabled, persist_state="session",
                 help="classroom: small and fast (minutes on a laptop CPU); quality: bigger "
                      "model and more epochs. Picking one resets the settings below.")
        st.number_input("Training images (0 = all)", min_value=0, max_value=100000, step=8,
                        key=PREFIX + "max_train_images", disabled=disabled,
                        persist_state="session",
                        help="Fewer images make each epoch faster (and the model worse).")
        data_input_ui(disabled)
        _upload_ui(disabled)
    dataset, preset_name = state[PREFIX + "dataset"], state[PREFIX + "preset"]
    try:
        preset = _preset_spec(dataset, preset_name)
        binary = is_binary(dataset)
    except UNetDemoError as error:
        st.error(str(error))
        return None, ""

    with model_col:
        st.subheader("Model")
        built = get_unet_config()
        # The preset's model is the default even after a visit to the Build page: training
        # an experiment from Build (e.g. BatchNorm) must be a choice made here, not a surprise.
        state.setdefault(PREFIX + "model_source", MODEL_SOURCES[0])
        source = st.radio("Model", MODEL_SOURCES, key=PREFIX + "model_source",
                          disabled=disabled, persist_state="session",
                          help="The preset's model is tested to train well in class; pick the "
                               "Build page's U-Net to try your own design.")
        if source == MODEL_SOURCES[1] and built is None:
            st.info("No model from the Build page yet: using the preset's model. Design "
                    "one on the Build page to train it here.")
        elif source == MODEL_SOURCES[1]:
            st.caption("Training **the Build page's model**, not the preset's.")
        model = _chosen_model(state, preset)
        levels = "-".join(str(f) for f in model.level_filters())
        st.caption(f"**{model.variant}** U-Net, depth {model.depth}, filters {levels}, "
                   f"{model.normalization} norm, {model.upsampling}. Input size, channels "
                   "and classes are matched to the data when the run starts.")
        encoder_weights_ui(model)
        transfer_ui(disabled, model)
        st.checkbox("Augment training images", key=PREFIX + "augment", disabled=disabled,
                    persist_state="session",
                    help="Random flips and distortions show the model more variety, which "
                         "helps it generalise but needs more epochs.")
        augment_cfg, augment_source = _chosen_augment(state, preset)
        if state[PREFIX + "augment"]:
            st.caption(f"Uses {augment_source}: {_augment_summary(augment_cfg)}.")
        else:
            st.caption("Off: the model sees the training images unchanged.")

    with train_col:
        st.subheader("Training")
        losses = list(losses_for(binary))
        if state.get(PREFIX + "loss") not in losses:
            state[PREFIX + "loss"] = losses[0]
        st.selectbox("Loss", losses, format_func=LOSS_LABELS.get, key=PREFIX + "loss",
                     disabled=disabled, persist_state="session",
                     help="What training minimises: cross-entropy scores each pixel, Dice the "
                          "overlap; Dice-based losses cope better with small structures.")
        left, right = st.columns(2)
        left.selectbox("Optimiser", OPTIMIZERS, format_func=OPTIMIZER_LABELS.get,
                       key=PREFIX + "optimizer", disabled=disabled, persist_state="session",
                       help="How the weights follow the loss's gradient; Adam adapts the step "
                            "per weight and works well without tuning.")
        rates = sorted({*LEARNING_RATES, float(state[PREFIX + "learning_rate"])})
        right.select_slider("Learning rate", rates, key=PREFIX + "learning_rate",
                            format_func=lambda v: f"{v:.0e}", disabled=disabled,
                            persist_state="session",
                            help="Size of each weight update: too high and the loss jumps "
                                 "around, too low and learning crawls.")
        left.selectbox("LR schedule", SCHEDULES, format_func=SCHEDULE_LABELS.get,
                       key=PREFIX + "schedule", disabled=disabled, persist_state="session",
                       help="How the learning rate changes over the run; lowering it towards "
                            "the end (cosine) settles the weights.")
        cap = pinned.epoch_cap or 1000
        if int(state[PREFIX + "epochs"]) > cap:
            state[PREFIX + "epochs"] = cap
        right.number_input("Epochs", min_value=1, max_value=cap, key=PREFIX + "epochs",
                           disabled=disabled, persist_state="session",
                           help="Passes over the training images: more epochs learn more but "
                                "take longer and can overfit."
                                + (f" This class stops runs at {cap} epochs." if pinned.epoch_cap
                                   else ""))
        left.number_input("Batch size", min_value=1, max_value=512, key=PREFIX + "batch_size",
                          disabled=disabled, persist_state="session",
                          help="Images per weight update: larger batches give steadier "
                               "gradients (and BatchNorm needs them) but fewer updates.")
        right.number_input("Early stopping patience (0 = off)", min_value=0, max_value=1000,
                           key=PREFIX + "early_stopping_patience", disabled=disabled,
                           persist_state="session",
                           help="Stop after this many epochs without a better validation "
                                "Dice (not loss) and keep the weights of the epoch with the "
                                "highest validation Dice.")
        left.number_input("Seed", min_value=0, max_value=2**31 - 1, key=PREFIX + "seed",
                          disabled=disabled, persist_state="session",
                          help="Fixes the random start and data order, so the same settings "
                               "repeat the same curves and an A/B test changes one thing.")
        label = right.text_input("Run label (optional)", key=PREFIX + "label", max_chars=60,
                                 disabled=disabled, placeholder="e.g. dice loss, lr 3e-4",
                                 persist_state="session",
                                 help="A name for this run in the runs list and the A/B "
                                      "comparison.")

    try:
        spec = spec_from_state(state)
    except UNetDemoError as error:
        st.error(str(error))
        return None, ""
    return spec, label.strip()


def data_page_input(state) -> dict | None:
    """The input size and intensity chosen on the Data page for the Train form's dataset.

    Args:
        state: ``st.session_state`` (or a dict with the same keys).

    Returns:
        ``{"dataset", "image_size", "normalization"}`` when the Data page's "Use for training"
        was pressed for this dataset, else None.

    Example:
        >>> data_page_input({"train.dataset": "nuclei", "data.training_input": {
        ...     "dataset": "nuclei", "image_size": 96, "normalization": "clahe"}})["image_size"]
        96
    """
    from unet_demo.ui.data_ui import TRAINING_INPUT_KEY

    chosen = state.get(TRAINING_INPUT_KEY)
    if isinstance(chosen, dict) and chosen.get("dataset") == state.get(PREFIX + "dataset"):
        return chosen
    return None


def data_input_ui(disabled: bool) -> None:
    """A checkbox to train at the Data page's chosen input size and intensity (when chosen)."""
    chosen = data_page_input(st.session_state)
    if not chosen:
        return
    st.checkbox(f"Use the Data page's input: {chosen['image_size']} px, intensity "
                f"{chosen['normalization']}", value=True, key=PREFIX + "use_data_input",
                disabled=disabled,
                help="Chosen with 'Use for training' on the Data page; prediction repeats the "
                     "same input step, because the model records it. Untick to train at the "
                     "preset's size and intensity.")


def transfer_ui(disabled: bool, model) -> None:
    """Transfer learning: which shipped encoder starts the model, and the guide's schedule.

    Args:
        disabled: grey the widgets out.
        model: the chosen model config (its shape follows a chosen encoder).
    """
    from unet_demo.models import transfer

    state = st.session_state
    names = ["", *transfer.list_encoders()]
    if state.get(PREFIX + "init_encoder") not in names:
        state[PREFIX + "init_encoder"] = ""
    name = st.selectbox(
        "Start the encoder from", names, key=PREFIX + "init_encoder", disabled=disabled,
        format_func=lambda n: n or "random weights (no transfer)", persist_state="session",
        help="A shipped encoder was pretrained on another bundled dataset (offline, no "
             "download). Its weights start the encoder; the decoder always starts random.")
    st.number_input(
        "Frozen-encoder epochs (0 = no schedule)", min_value=0, max_value=1000,
        key=PREFIX + "frozen_epochs", disabled=disabled, persist_state="session",
        help="The guide's fine-tuning schedule: these first epochs train only the decoder; "
             "then the deepest encoder level is unfrozen and the rest of the run trains at a "
             "tenth of the learning rate. History and events mark the phases.")
    if name:
        card = transfer.encoder_card(name)
        st.caption(f"Encoder pretrained on **{card['pretraining']['dataset']}** (training "
                   f"split, test Dice {card['pretraining']['test'].get('dice', 0):.2f}); the "
                   f"model takes its shape: {transfer.describe_architecture(model.to_dict())}.")
    elif model.variant != "pretrained":
        st.caption("The encoder starts from **random weights**: no transfer learning.")


def _chosen_model(state, preset):
    """The Build page's UNetConfig when chosen and present, else the preset's model.

    A chosen shipped encoder sets the architecture fields it was made for.
    """
    from unet_demo.models.transfer import match_encoder
    from unet_demo.ui.state import get_unet_config

    built = get_unet_config(state)
    model = preset.model
    if state.get(PREFIX + "model_source") == MODEL_SOURCES[1] and built is not None:
        model = built
    return match_encoder(model, str(state.get(PREFIX + "init_encoder") or ""))


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
        augment=bool(state[PREFIX + "augment"]), seed=int(state[PREFIX + "seed"]),
        init_encoder=str(state.get(PREFIX + "init_encoder") or ""),
        frozen_epochs=int(state.get(PREFIX + "frozen_epochs") or 0))
    data = preset.data.replace(max_train_images=int(state[PREFIX + "max_train_images"]))
    chosen_input = data_page_input(state)
    if chosen_input and state.get(PREFIX + "use_data_input", True):
        data = data.replace(image_size=int(chosen_input["image_size"]),
                            normalization=str(chosen_input["normalization"]))
    from unet_demo.training.classroom import apply_class_settings

    return apply_class_settings(preset.replace(data=data, model=_chosen_model(state, preset),
                                               train=train,
                                               augment=_chosen_augment(state, preset)[0]),
                                class_settings())  # epochs capped, a barred variant refused


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
        st.file_uploader("Dataset ZIP", type=["zip"], key=PREFIX + "zip", disabled=disabled,
                         help="Train on your own images: the files are checked first.")
        st.checkbox("Group files by the name before the first underscore",
                    key=PREFIX + "zip_grouped", disabled=disabled,
                    help="Keeps all slices of one patient in one split, so validation "
                         "never sees a patient the model trained on.")
        st.button("Check and add the dataset", on_click=_add_uploaded_dataset,
                  disabled=disabled, help="Checks the ZIP and adds it to the Dataset list.")
        skipped = st.session_state.get(PREFIX + "zip_skipped")
        if skipped:
            st.caption(f"{len(skipped)} file(s) skipped:")
            st.dataframe(skipped, hide_index=True)


# --------------------------------------------------------------------------- job control

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
    from unet_demo.training.jobs import valid_run_id

    run_id = st.session_state.get(RUN_ID_KEY) or valid_run_id(st.query_params.get("run"))
    if run_id and RUN_ID_KEY not in st.session_state:
        if run_dir_of(run_id).is_dir():
            attach(run_id)
        else:
            removed_notice(run_id)  # says when and why, if the disk budget removed it
            st.query_params.pop("run", None)
            return None
    return run_id


def _preset_tag(spec, state) -> str:
    """The preset name when ``spec`` is exactly that preset, else a tag of its settings.

    Recent runs with the same tag give the queue its time estimate.
    """
    preset = str(state.get(PREFIX + "preset") or "")
    with contextlib.suppress(UNetDemoError, KeyError, ValueError):
        if preset and _preset_spec(spec.data.dataset, preset) == spec:
            return preset
    return "custom-" + hashlib.sha1(spec.to_json().encode()).hexdigest()[:10]


def _start_job() -> None:
    """Start button callback: queue this session's run (it starts at once if a slot is free)."""
    from unet_demo.training.jobs import JobsBusyError, get_job_manager, queue_wait_text

    state = st.session_state
    manager = get_job_manager()
    current = state.get(RUN_ID_KEY)
    if current and _mine(manager, current) and _active(manager, current):
        state[NOTICE_KEY] = ("info", f"Run {current} is still going: stop it first.")
        return
    try:
        spec = spec_from_state(state)
        estimate = None
        with contextlib.suppress(UNetDemoError, OSError):
            images = _train_image_count(spec.data.dataset, int(spec.data.max_train_images))
            estimate = estimate_run_seconds(spec, images, _past_runs()).seconds
        view = manager.submit(spec, owner=owner_secret(), preset=_preset_tag(spec, state),
                              label=str(state.get(PREFIX + "label") or "").strip(),
                              estimate_s=estimate)
    except JobsBusyError as error:
        state[NOTICE_KEY] = ("warning", f"Not queued: {error}")
        return
    except UNetDemoError as error:
        state[NOTICE_KEY] = ("error", str(error))
        return
    attach(view.run_id)
    if view.state == "queued":
        state[NOTICE_KEY] = ("info", f"Queued run {view.run_id}. {queue_wait_text(view)} "
                                     "It starts by itself; the curves appear here.")
    else:
        state[NOTICE_KEY] = ("success", f"Started run {view.run_id}.")


def _stop_job(run_id: str) -> None:
    """Stop/Cancel button callback: only the owner (or the operator) may do it."""
    from unet_demo.training.jobs import NotOwnerError, get_job_manager

    manager = get_job_manager()
    queued = manager.is_queued(run_id)
    try:
        manager.stop(run_id, owner=owner_secret(), token=operator_token() or "")
    except NotOwnerError as error:
        st.session_state[NOTICE_KEY] = ("error", str(error))
        return
    except UNetDemoError as error:
        st.session_state[NOTICE_KEY] = ("error", str(error))
        return
    st.session_state[NOTICE_KEY] = (
        ("info", f"Cancelled run {run_id}: it left the queue.") if queued
        else ("info", f"Stopping run {run_id} after the current batch..."))


def _resume_job(run_id: str) -> None:
    """Resume button callback: queue the run again under its id (it continues from its
    last complete epoch, with the settings in its config.json)."""
    from unet_demo.training.jobs import JobsBusyError, get_job_manager, queue_wait_text
    from unet_demo.training.rundir import CONFIG_FILE
    from unet_demo.training.spec import RunSpec

    state = st.session_state
    try:
        spec = RunSpec.from_json((run_dir_of(run_id) / CONFIG_FILE).read_text(encoding="utf-8"))
        view = get_job_manager().submit(spec, owner=owner_secret(), run_id=run_id)
    except (JobsBusyError, UNetDemoError, OSError) as error:
        state[NOTICE_KEY] = ("warning", f"Not resumed: {error}")
        return
    attach(run_id)
    state[NOTICE_KEY] = ("info", f"Resuming run {run_id}. {queue_wait_text(view)}")


def _resume_ui(run_id: str) -> None:
    """For the owner of a stopped, failed or interrupted run with a checkpoint: Resume."""
    from unet_demo.training.rundir import STATE_FILE, load_run, read_json

    try:
        info = load_run(run_dir_of(run_id))
    except UNetDemoError:
        return
    done = read_json(run_dir_of(run_id) / STATE_FILE)
    if info.status not in ("stopped", "failed", "interrupted") or not done.get("checkpoint"):
        return
    epochs = int((info.spec.get("train") or {}).get("epochs", 0) or 0)
    st.button(f"Resume from epoch {int(done.get('epoch', 0)) + 1}", key=PREFIX + "resume",
              on_click=_resume_job, args=(run_id,), disabled=epochs <= int(done.get("epoch", 0)),
              help="Queues this run again under the same id: it continues from its last "
                   "complete epoch (weights and optimizer state), with the same settings.")


def _mine(manager, run_id: str) -> bool:
    """Whether this browser (or this session's operator token) may stop the run."""
    try:
        return manager.can_control(run_id, owner_secret(), operator_token())
    except UNetDemoError:
        return False


def _active(manager, run_id: str) -> bool:
    """Queued, or training and not yet at its final event."""
    return manager.is_queued(run_id) or job_active(manager, run_id, run_dir_of(run_id))


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
    live.update(run_dir)
    state[LIVE_KEY] = live
    return live


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
        epoch = st.select_slider("Epoch scrubber: predictions after epoch", epochs, key=key,
                                 help="Move back to see how the predictions improved "
                                      "epoch by epoch.")
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
    best, best_dice = best_epoch(live.history)
    columns = st.columns(4)
    columns[0].metric("Status", status)
    columns[1].metric("Epochs done", f"{len(live.history)}/{started.epochs if started else '?'}")
    columns[2].metric(f"Best val Dice (epoch {best})" if best else "Best val Dice",
                      f"{best_dice:.3f}" if best_dice is not None else "-",
                      help="The highest validation Dice so far. At the end, early stopping "
                           "keeps that epoch's weights; without it the last epoch is kept.")
    columns[3].metric("Device", started.device if started else "-")
    if started is not None:
        st.caption(started_facts(started))
    if live.phase is not None:  # the fine-tuning schedule's current phase
        st.caption(f"Fine-tuning phase: {live.phase.text}")
    message = end_message(live, status)
    if message is not None:
        kind, text = message
        getattr(st, kind)(text)
    figure = training_curves_figure(live.history, total_epochs=started.epochs if started else None,
                                    best_epoch=best)
    st.plotly_chart(figure, key=PREFIX + "curves", config={"displayModeBar": False})
    _snapshot_ui(live, run_dir)


def _queued_ui(manager, run_id: str) -> None:
    """A waiting run: its place in line, estimated start and finish, who is ahead."""
    from unet_demo.training.jobs import queue_wait_text

    view = manager.view(run_id)
    if view is None:
        return
    st.info(queue_wait_text(view))
    ahead = [other for other in manager.queue_view()
             if other.state == "running" or other.position < view.position]
    st.caption(f"{len(ahead)} run(s) ahead of it ({sum(v.state == 'running' for v in ahead)} "
               f"training now, at most {manager.max_jobs} at once). The estimate comes from "
               "how long recent runs of the same preset took. This panel starts showing the "
               "live curves by itself when the run begins.")


def live_panel(run_id: str) -> None:
    """The attached run: refreshed every second by a fragment while it waits or trains.

    Args:
        run_id: the run to show.
    """
    from unet_demo.training.jobs import get_job_manager, queue_wait_text

    manager = get_job_manager()
    run_dir = run_dir_of(run_id)
    if not run_dir.is_dir():
        if not removed_notice(run_id):
            st.info(f"Run {run_id} is no longer in the runs folder.")
        return
    mark_opened(run_dir)  # recently looked-at runs are removed last when space runs out
    queued_at_render = manager.is_queued(run_id)
    running_at_render = job_active(manager, run_id, run_dir)
    mine = _mine(manager, run_id)

    @st.fragment(run_every=REFRESH_SECONDS if (running_at_render or queued_at_render) else None)
    def live_fragment() -> None:
        queued = manager.is_queued(run_id)
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
        if not mine:
            st.caption("You are watching someone else's run (read-only): only the person who "
                       "started it, or the operator, can stop it.")
        if queued:
            _queued_ui(manager, run_id)
        else:
            if running:
                view = manager.view(run_id)
                if view is not None:
                    st.caption(queue_wait_text(view))
            _render_live(live, run_dir, running)
        if mine and not queued and not running:
            pin_toggle(run_id)
        if (queued_at_render and not queued) or (running_at_render and not running):
            st.rerun()  # whole page: the run started (or ended); redraw buttons and lists

    live_fragment()


def queue_ui(current: str | None) -> None:
    """The server's training queue: what trains now and who waits, in order."""
    from unet_demo.training.jobs import get_job_manager

    manager = get_job_manager()
    views = manager.queue_view()
    if not views:
        return
    me = owner_key(owner_secret())
    rows = [{"#": str(view.position) if view.position else "now", "run": view.run_id,
             "who": "you" if view.owner == me else "",
             "label": view.label, "dataset": view.dataset, "preset": view.preset,
             "state": view.state, "where": view.node or "-",
             "estimated start": "now" if view.state == "running"
             else time.strftime("%H:%M:%S", time.localtime(view.estimated_start)),
             "estimated finish": time.strftime("%H:%M:%S",
                                               time.localtime(view.estimated_finish))}
            for view in views]
    with st.expander(f"Training queue: {sum(v.state == 'running' for v in views)} training, "
                     f"{sum(v.state == 'queued' for v in views)} waiting",
                     expanded=current in {view.run_id for view in views}):
        st.dataframe(rows, hide_index=True, key=PREFIX + "queue_table")


# --------------------------------------------------------------------------- runs list, A/B

def runs_ui(current: str | None) -> None:
    """Table of all runs, "open" to attach one, and an A/B overlay of two runs' curves.

    Args:
        current: the attached run id (preselected in the A/B picker).
    """
    from unet_demo.plots.training import overlay_runs_figure
    from unet_demo.training.rundir import list_runs, load_history

    st.header("Runs")
    disk_caption()
    runs = list_runs()
    if not runs:
        st.caption("No runs yet: start one above.")
        return
    rows = [run_row(run) for run in runs[:50]]
    st.dataframe(rows, hide_index=True, key=PREFIX + "runs_table",
                 column_config={"best val Dice": st.column_config.ProgressColumn(
                     "best val Dice", min_value=0.0, max_value=1.0, format="%.3f")})
    ids = [row["run"] for row in rows]
    labels = {row["run"]: f"{row['run']} · {row['label'] or row['dataset']} · {row['status']}"
              for row in rows}
    # The pickers' keys carry a fingerprint of the labels: a run whose status changes gets a
    # fresh widget, so the browser never keeps showing an old "running" label.
    fingerprint = hashlib.sha1("|".join(labels.values()).encode()).hexdigest()[:8]
    runs_by_id = {run.run_id: run for run in runs}
    pick_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
    chosen = pick_col.selectbox("Show a run in the panel above", ids, format_func=labels.get,
                                index=ids.index(current) if current in ids else 0,
                                key=f"{PREFIX}open_pick.{fingerprint}",
                                help="Any earlier run, yours or another class's, can be "
                                     "reopened to look at its curves again.")
    button_col.button("Show this run", on_click=attach, args=(chosen,),
                      disabled=chosen == current,
                      help="Shows this run's curves and snapshots in the panel above.")
    st.subheader("Compare runs (A/B)")
    st.caption("Pick two runs trained on the same dataset (the split is fixed per dataset, so "
               "both see the same validation images) to compare their validation Dice; each "
               "run's loss has its own axis, because different losses have different scales. "
               + DETERMINISM_NOTE)
    finished = [row["run"] for row in rows if row["status"] == "finished"]  # newest first
    default = [run_id for run_id in st.session_state.get(PREFIX + "compare_ids", [])
               if run_id in ids] or finished[:2] or ids[:1]
    picked = st.multiselect("Runs to compare", ids, default=default, format_func=labels.get,
                            max_selections=2, key=f"{PREFIX}compare.{fingerprint}",
                            help="Two runs that differ in one setting show what that setting "
                                 "does; the two newest finished runs are picked first.")
    st.session_state[PREFIX + "compare_ids"] = list(picked)
    if len(picked) == 2:
        datasets = {row["run"]: row["dataset"] for row in rows}
        if datasets[picked[0]] != datasets[picked[1]]:
            st.info("These runs use different datasets: their curves are not comparable.")
        names = [f"{'AB'[i]}: {labels[run_id].split(' · ')[1]}" for i, run_id in enumerate(picked)]
        series = [(name, load_history(runs_by_id[run_id].path))
                  for name, run_id in zip(names, picked, strict=True)]
        losses = [LOSS_LABELS.get(str((runs_by_id[run_id].spec or {}).get("train", {})
                                      .get("loss")), "?") for run_id in picked]
        st.plotly_chart(overlay_runs_figure(series, losses), key=PREFIX + "overlay",
                        config={"displayModeBar": False})
        diff = settings_diff({name.split(":")[0]: runs_by_id[run_id].spec or {}
                              for name, run_id in zip(names, picked, strict=True)})
        st.markdown("**Settings that differ** (from each run's config.json)")
        if diff:
            st.dataframe(diff, hide_index=True, key=PREFIX + "settings_diff")
        else:
            st.caption("None: both runs used the same settings.")
    else:
        st.caption("Pick a second run to see the comparison.")


# --------------------------------------------------------------------------- page

def train_page() -> None:
    """The whole Train page below the title: settings, Start/Stop, live run, runs list.

    Example:
        >>> train_page()  # doctest: +SKIP
    """
    from unet_demo.training.jobs import get_job_manager

    manager = get_job_manager()
    manager.start_dispatcher()
    remember_owner()
    run_id = current_run_id()
    if run_id and st.query_params.get("run") != run_id:
        # Switching pages clears the URL's query string: put the run back, so a reload (or
        # a copied link) shows the same run.
        st.query_params["run"] = run_id
    mine = bool(run_id) and _mine(manager, run_id)
    queued = bool(run_id) and manager.is_queued(run_id)
    running = bool(run_id) and (queued or job_active(manager, run_id, run_dir_of(run_id)))
    busy_here = running and mine  # this browser's run is waiting or training
    with st.expander("Settings", expanded=not busy_here):
        spec, _ = settings_ui(disabled=busy_here)
    if spec is not None:
        copy_link_ui(train_link(spec))
    if spec is not None and not busy_here:
        _estimate_ui(spec)
    start_col, stop_col, note_col = st.columns([1, 1, 4], vertical_alignment="center")
    start_col.button("Start training", type="primary", on_click=_start_job,
                     disabled=busy_here or spec is None, key=PREFIX + "start",
                     help="Puts the run in the server's queue; it starts at once when a slot "
                          "is free, and this page shows it live.")
    stop_col.button("Cancel" if queued else "Stop", on_click=_stop_job, args=(run_id,),
                    disabled=not (running and mine), key=PREFIX + "stop",
                    help="Cancel takes a waiting run out of the queue. Stop ends a training "
                         "run after the current batch; finished epochs are kept. Only the "
                         "person who started the run (or the operator) can do either.")
    views = manager.queue_view()
    training = sum(view.state == "running" for view in views)
    waiting = len(views) - training
    note_col.caption(f"{training} training job(s) running on this server (at most "
                     f"{manager.max_jobs} at once), {waiting} waiting in the queue. Training "
                     "runs in a separate process: you may leave the page or reload the "
                     "browser, the run keeps going (or waiting) and reappears here.")
    _show_notice()
    if run_id:
        live_panel(run_id)
        if mine and not running:
            _resume_ui(run_id)
    queue_ui(run_id)
    runs_ui(run_id)
    operator_ui()


@st.cache_data(max_entries=32, show_spinner=False)
def _train_image_count(dataset: str, max_train_images: int) -> int:
    """Training images a run on ``dataset`` uses (cached: the page redraws every second)."""
    from unet_demo.data.sources import load_split_arrays

    count = len(load_split_arrays(dataset, "train")[0])
    return min(count, max_train_images) if max_train_images > 0 else count


def _past_runs() -> list[tuple[dict, list[dict]]]:
    """(config, history) of the 20 newest runs, the throughput the estimate learns from."""
    from unet_demo.training.rundir import list_runs, load_history

    return [(run.spec, load_history(run.path)) for run in list_runs()[:20] if run.spec]


def _estimate_ui(spec) -> None:
    """Before a start: the estimated time, and warnings (BatchNorm + small batch, > 2 min)."""
    try:
        images = _train_image_count(spec.data.dataset, int(spec.data.max_train_images))
    except (UNetDemoError, OSError) as error:
        st.caption(f"No time estimate: {error}")
        return
    estimate = estimate_run_seconds(spec, images, _past_runs())
    st.caption(f"Estimated time: about **{clock(estimate.seconds)}** for {spec.train.epochs} "
               f"epoch(s) of {images} images at {estimate.images_per_sec:.0f} images/s "
               f"({estimate.method}; includes ~{REFERENCE_OVERHEAD_S:.0f} s to load and "
               "compile).")
    for text in training_warnings(spec, estimate):
        st.warning(text)
