"""Training runner: event sequence, run directory, stop within one batch, reproducibility."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from tests.unit.training_helpers import tiny_spec  # noqa: E402
from unet_demo.errors import UNetDemoError  # noqa: E402
from unet_demo.training import events as ev  # noqa: E402
from unet_demo.training import rundir  # noqa: E402
from unet_demo.training.presets import PRESET_NAMES, get_preset  # noqa: E402
from unet_demo.training.runner import run_training  # noqa: E402
from unet_demo.training.spec import RunSpec  # noqa: E402

TIMING_KEYS = {"seconds", "images_per_sec"}


def comparable(history):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


def test_tiny_run_emits_expected_events_and_writes_run_directory(tmp_path):
    seen = []
    run_training(tiny_spec(epochs=2, images=8), tmp_path, on_event=seen.append)
    kinds = [type(e).__name__ for e in seen]
    per_epoch = ["BatchEnd", "BatchEnd", "EpochEnd", "ValidationSnapshot"]
    assert kinds == ["Started", *per_epoch, *per_epoch, "Finished"]
    on_disk, _ = ev.read_events(tmp_path)
    assert [type(e).__name__ for e in on_disk] == kinds
    started = seen[0]
    assert (started.epochs, started.batches_per_epoch, started.train_images) == (2, 2, 8)
    assert [e.epoch for e in seen if isinstance(e, ev.EpochEnd)] == [1, 2]
    snapshot = seen[4]
    with np.load(tmp_path / snapshot.path) as stored:
        assert stored["labels"].shape == stored["masks"].shape == (4, 32, 32)
    for name in (rundir.CONFIG_FILE, rundir.ENVIRONMENT_FILE, rundir.HISTORY_FILE,
                 rundir.MODEL_FILE, rundir.METRICS_FILE, rundir.MODEL_CARD_FILE):
        assert (tmp_path / name).is_file(), name
    history = rundir.load_history(tmp_path)
    assert [row["epoch"] for row in history] == [1, 2]
    assert {"loss", "val_loss", "dice", "val_dice", "iou", "precision", "recall", "accuracy",
            "lr"} <= set(history[0])
    metrics = json.loads((tmp_path / rundir.METRICS_FILE).read_text())
    assert metrics["test_images"] == 30 and 0.0 <= metrics["test"]["dice"] <= 1.0
    environment = json.loads((tmp_path / rundir.ENVIRONMENT_FILE).read_text())
    assert environment["seed"] == 7 and "tensorflow" in environment["packages"]
    info = rundir.load_run(tmp_path)
    assert info.status == "finished" and info.epochs_done == 2
    model = rundir.load_model(tmp_path)
    assert model.input_shape == (None, 32, 32, 1)
    # The last snapshot shows what the final model (no early stopping: the last epoch's
    # weights) predicts for the snapshot images.
    from unet_demo.training.runner import prepare_data, snapshot_indices

    data = prepare_data(tiny_spec(epochs=2, images=8))
    index = snapshot_indices(data.val_masks)
    expected = model.predict(data.val_images[index], verbose=0)[..., 0]
    with np.load(tmp_path / seen[-2].path) as stored:
        assert list(stored["ids"]) == [data.val_ids[i] for i in index]
        np.testing.assert_allclose(stored["probability"] / 255.0, expected, atol=1.01 / 255)
    # Best weights are kept only for early stopping, which restores them.
    assert not (tmp_path / rundir.CHECKPOINT_DIR / rundir.BEST_WEIGHTS_FILE).exists()


def test_stop_request_ends_right_after_the_current_batch(tmp_path):
    batches = []

    def on_event(event):
        if isinstance(event, ev.BatchEnd):
            batches.append(event)

    run_training(tiny_spec(epochs=3, images=16), tmp_path, on_event=on_event,
                 should_stop=lambda: len(batches) >= 2)
    assert len(batches) == 2
    last = ev.last_event(tmp_path)
    assert isinstance(last, ev.Stopped) and (last.epoch, last.batch) == (1, 2)
    assert rundir.load_run(tmp_path).status == "stopped"
    assert rundir.load_history(tmp_path) == []  # no epoch completed, none recorded


@pytest.mark.parametrize("xla", ["0", "1"], ids=["graph", "xla"])
def test_same_seed_gives_identical_history(tmp_path, monkeypatch, xla):
    monkeypatch.setenv("UNET_DEMO_XLA", xla)  # both speed settings repeat a run exactly
    spec = tiny_spec(epochs=2, images=8)
    run_training(spec, tmp_path / "a")
    run_training(spec, tmp_path / "b")
    first, second = rundir.load_history(tmp_path / "a"), rundir.load_history(tmp_path / "b")
    assert len(first) == 2
    assert comparable(first) == comparable(second)


def test_multiclass_run_records_per_class_scores(tmp_path):
    spec = tiny_spec(epochs=1, images=8, loss="cce_dice")
    spec = spec.replace(data=spec.data.replace(dataset="brain_tissue"))
    try:
        run_training(spec, tmp_path)
    except UNetDemoError as error:  # sample_data not built in this checkout
        pytest.skip(str(error))
    row = rundir.load_history(tmp_path)[0]
    assert {"dice_class1", "dice_class2", "dice_class3", "val_iou_class3"} <= set(row)
    assert rundir.load_model(tmp_path).output_shape[-1] == 4


def test_bad_batch_size_fails_with_clear_event(tmp_path):
    with pytest.raises(UNetDemoError, match="batch size"):
        run_training(tiny_spec(images=2, batch_size=4), tmp_path)
    assert isinstance(ev.last_event(tmp_path), ev.Failed)
    assert rundir.load_run(tmp_path).status == "failed"


def test_xla_failure_before_the_first_batch_falls_back_and_says_why(tmp_path, monkeypatch):
    import keras
    import tensorflow as tf

    real_fit = keras.Model.fit
    calls = []

    def fit_failing_once(self, *args, **kwargs):
        calls.append(kwargs["epochs"])
        if len(calls) == 1:
            raise tf.errors.InternalError(None, None, "XLA cannot compile this op\nmore detail")
        return real_fit(self, *args, **kwargs)

    monkeypatch.setenv("UNET_DEMO_XLA", "1")
    monkeypatch.setattr(keras.Model, "fit", fit_failing_once)
    seen = []
    run_training(tiny_spec(epochs=1, images=8), tmp_path, on_event=seen.append)
    assert len(calls) == 2
    assert seen[0].jit_compile is True and isinstance(seen[-1], ev.Finished)
    environment = json.loads((tmp_path / rundir.ENVIRONMENT_FILE).read_text())
    assert environment["jit_compile"] is False
    assert environment["jit_note"] == ("XLA compilation failed, trained without it "
                                       "(InternalError: XLA cannot compile this op)")
    assert [row["epoch"] for row in rundir.load_history(tmp_path)] == [1]


def test_importing_the_runner_does_not_import_tensorflow():
    code = ("import sys, unet_demo.training.runner; "
            "print('tensorflow' in sys.modules or 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("dataset", ["brain_skullstrip", "brain_tissue", "nuclei",
                                     "synthetic_lesions"])
def test_presets_exist_and_round_trip(dataset):
    for name in PRESET_NAMES:
        spec = get_preset(dataset, name)
        assert spec.data.dataset == dataset
        assert RunSpec.from_dict(json.loads(spec.to_json())) == spec
    with pytest.raises(UNetDemoError, match="preset must be one of"):
        get_preset(dataset, "fastest")


def test_compile_creates_the_optimizer_slots_before_the_first_step():
    # Left to Keras, Adam's moments are created inside the first traced training step, and
    # TensorFlow traces a function that creates variables twice (the classroom net's first
    # epoch took 16 s instead of 10 s under the same load).
    import types

    import keras

    from unet_demo.models.builder import build_unet
    from unet_demo.training.runner import compile_model

    spec = tiny_spec()
    model = build_unet(spec.model, load_weights=False)
    optimizer = keras.optimizers.Adam(1e-3)
    compile_model(model, spec, types.SimpleNamespace(output_classes=1, label_count=2),
                  optimizer, jit_compile=False)
    assert optimizer.built
    slots = [v for v in optimizer.variables if "momentum" in v.path or "velocity" in v.path]
    assert len(slots) == 2 * len(model.trainable_variables) > 0
