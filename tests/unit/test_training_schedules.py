"""Training engine behaviour: early stopping, reduce-on-plateau, learning-rate schedules, variants.

Every case runs the real `run_training` on a tiny spec (32-pixel synthetic images, 8 training
images, batch 4 = 2 steps per epoch, base filters 4) and checks what the run directory and the
events record. A "stalled" run uses learning rate 1e-7: the weights move (so the last and the
best epoch differ), but no validation pixel flips, so validation Dice and loss stay flat.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tests.unit.training_helpers import tiny_spec  # noqa: E402
from unet_demo.config import SCHEDULES, VARIANTS  # noqa: E402
from unet_demo.errors import UNetDemoError  # noqa: E402
from unet_demo.training import events as ev  # noqa: E402
from unet_demo.training import rundir  # noqa: E402
from unet_demo.training.runner import (  # noqa: E402
    BEST_MONITOR,
    PLATEAU_FACTOR,
    learning_rate,
    run_training,
)

STALLED_LR = 1e-7  # the smallest TrainConfig accepts
STEPS_PER_EPOCH = 2  # 8 images, batch 4 (tiny_spec's defaults)
PLATEAU_PATIENCE = 2  # the runner's patience when early stopping is off
PLATEAU_MIN_DELTA = 1e-4  # keras.callbacks.ReduceLROnPlateau's default


@pytest.fixture(autouse=True)
def _no_xla(monkeypatch):
    # XLA compilation costs several seconds per run on two cores and changes none of what is
    # checked here (tests/unit/test_training.py trains with XLA on as well).
    monkeypatch.setenv("UNET_DEMO_XLA", "0")


def spec_of(epochs: int, lr: float = 3e-3, **train):
    """tiny_spec with a chosen learning rate (tiny_spec fixes it at 3e-3) and a depth-1 U-Net
    without normalisation layers: half the graph to trace, the same callbacks and schedules."""
    spec = tiny_spec(epochs=epochs, **train)
    return spec.replace(train=spec.train.replace(learning_rate=lr),
                        model=spec.model.replace(depth=1, normalization="none"))


def train(spec, run_dir):
    """Run training; return (history rows from the EpochEnd events, history.csv, metrics)."""
    seen = []
    run_training(spec, run_dir, on_event=seen.append)
    from_events = [{"epoch": e.epoch, **e.metrics} for e in seen if isinstance(e, ev.EpochEnd)]
    metrics = json.loads((run_dir / rundir.METRICS_FILE).read_text())
    return from_events, rundir.load_history(run_dir), metrics


def weights_of(path):
    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    return model.get_weights()


def same_weights(first, second) -> bool:
    return len(first) == len(second) and all(np.array_equal(a, b)
                                             for a, b in zip(first, second, strict=True))


# ------------------------------------------------------------------ early stopping

# (id, requested epochs, patience). Patience 0 (off) is checked by every schedule case below:
# all epochs run and the run is not stopped early.
EARLY_STOPPING_CASES = [
    ("patience1", 4, 1),
    ("patience2", 5, 2),
]


@pytest.mark.parametrize(("epochs", "patience"), [c[1:] for c in EARLY_STOPPING_CASES],
                         ids=[c[0] for c in EARLY_STOPPING_CASES])
def test_early_stopping_on_stalled_validation_dice(tmp_path, monkeypatch, epochs, patience):
    # A finished run keeps only its best checkpoint; keep the last one too, to compare.
    monkeypatch.setattr("unet_demo.training.housekeeping.compact_finished_run",
                        lambda run_dir: 0)
    assert BEST_MONITOR == "val_dice"
    spec = spec_of(epochs, STALLED_LR, early_stopping_patience=patience)
    history, on_disk, metrics = train(spec, tmp_path)
    val_dice = [row[BEST_MONITOR] for row in history]
    assert len(set(val_dice)) == 1, val_dice  # stalled: no epoch improves on the first
    assert [row["epoch"] for row in on_disk] == [row["epoch"] for row in history]
    # Best is epoch 1; after `patience` epochs without a better val Dice the run ends.
    assert metrics["stopped_early"] is True
    assert len(history) == metrics["epochs_run"] == 1 + patience < epochs
    assert metrics["best_epoch"] == 1
    assert metrics["val"]["dice"] == pytest.approx(history[0][BEST_MONITOR])
    final = weights_of(tmp_path / rundir.MODEL_FILE)
    best = keras.saving.load_model(tmp_path / rundir.MODEL_FILE, compile=False, safe_mode=True)
    best.load_weights(tmp_path / rundir.CHECKPOINT_DIR / rundir.BEST_WEIGHTS_FILE)
    last = weights_of(tmp_path / rundir.CHECKPOINT_DIR / f"epoch_{1 + patience:04d}.keras")
    assert same_weights(final, best.get_weights())  # model.keras = the best epoch's weights
    assert not same_weights(final, last)  # ... not those of the last epoch run


# ------------------------------------------------------------------ learning-rate schedules

def expected_plateau_lrs(start: float, val_losses: list[float]) -> list[float]:
    """ReduceLROnPlateau(val_loss, min, factor PLATEAU_FACTOR, patience 2, min_delta 1e-4),
    replayed on the recorded validation losses: the learning rate after each epoch."""
    rate, best, wait, out = start, math.inf, 0, []
    for loss in val_losses:
        if loss < best - PLATEAU_MIN_DELTA:
            best, wait = loss, 0
        else:
            wait += 1
            if wait >= PLATEAU_PATIENCE:
                rate, wait = max(rate * PLATEAU_FACTOR, start * 1e-3), 0
        out.append(rate)
    return out


def expected_schedule_lrs(spec, epochs: int) -> list[float]:
    """The runner's own schedule evaluated at the end of each epoch (step = epoch * steps)."""
    rate = learning_rate(spec, STEPS_PER_EPOCH)
    if isinstance(rate, float):
        return [rate] * epochs
    return [float(rate(e * STEPS_PER_EPOCH)) for e in range(1, epochs + 1)]


# (schedule, learning rate, epochs, shape of the lr column)
SCHEDULE_CASES = [
    ("constant", 3e-3, 3, "flat"),
    ("cosine", 3e-3, 3, "decreasing"),
    ("exponential", 3e-3, 3, "decreasing"),
    ("poly", 3e-3, 3, "decreasing"),
    ("plateau", STALLED_LR, 5, "halves-after-plateau"),
]


def test_schedule_table_covers_every_schedule():
    assert sorted(c[0] for c in SCHEDULE_CASES) == sorted(SCHEDULES)


@pytest.mark.parametrize(("schedule", "lr", "epochs", "shape"), SCHEDULE_CASES,
                         ids=[c[0] for c in SCHEDULE_CASES])
def test_learning_rate_column_follows_schedule(tmp_path, schedule, lr, epochs, shape):
    spec = spec_of(epochs, lr, schedule=schedule)
    history, on_disk, metrics = train(spec, tmp_path)
    rates = [row["lr"] for row in history]
    assert len(rates) == epochs  # early stopping off (patience 0): every epoch runs
    assert metrics["stopped_early"] is False and metrics["best_epoch"] == epochs
    assert [row["lr"] for row in on_disk] == pytest.approx(rates, rel=1e-3)  # history.csv
    if schedule == "plateau":
        expected = expected_plateau_lrs(lr, [row["val_loss"] for row in history])
    else:
        expected = expected_schedule_lrs(spec, epochs)
    assert rates == pytest.approx(expected, rel=1e-5)
    steps = np.diff(rates)
    if shape == "flat":
        assert rates == pytest.approx([lr] * epochs, rel=1e-6)
    elif shape == "decreasing":
        assert rates[0] < lr and np.all(steps < 0), rates
    else:
        # Flat val loss: patience 2, so the rate halves after epochs 3 and 5.
        assert rates == pytest.approx([lr, lr, lr * PLATEAU_FACTOR, lr * PLATEAU_FACTOR,
                                       lr * PLATEAU_FACTOR ** 2], rel=1e-5)
    if schedule == "exponential":  # x 0.01 ** (1 / epochs) per epoch
        assert rates == pytest.approx([lr * 0.01 ** (e / epochs) for e in range(1, epochs + 1)],
                                      rel=1e-5)
    if schedule == "poly":  # PolynomialDecay to 0 at the last step
        assert rates[-1] == pytest.approx(0.0, abs=1e-9)
    if schedule == "cosine":  # CosineDecay to 1% of the start at the last step
        assert rates[-1] == pytest.approx(0.01 * lr, rel=1e-4)


# ------------------------------------------------------------------ every 2-D variant

# (variant, model changes that keep it tiny and offline)
VARIANT_CASES = [
    ("classic", {}),
    ("attention", {}),
    ("residual", {}),
    ("dense", {}),
    ("unetpp", {"deep_supervision": True}),
    ("lightweight", {"depth": 1}),
    # MobileNetV2's five poolings fix depth 5; random encoder weights (no download).
    ("pretrained", {"depth": 5, "encoder_weights": "none", "freeze_encoder": True}),
]


def test_variant_table_covers_every_variant():
    assert sorted([c[0] for c in VARIANT_CASES] + ["unet3d"]) == sorted(VARIANTS)


@pytest.mark.parametrize(("variant", "changes"), VARIANT_CASES, ids=[v for v, _ in VARIANT_CASES])
def test_every_2d_variant_trains_through_the_engine(tmp_path, variant, changes):
    spec = tiny_spec(epochs=1)  # depth 2, 4 base filters; normalisation layers: test_models.py
    spec = spec.replace(model=spec.model.replace(variant=variant, normalization="none",
                                                 **changes))
    history, _, metrics = train(spec, tmp_path)
    assert len(history) == 1 and math.isfinite(history[0]["loss"])
    assert 0.0 <= metrics["test"]["dice"] <= 1.0 and metrics["test_images"] == 30
    assert rundir.load_run(tmp_path).status == "finished"
    stored = json.loads((tmp_path / rundir.CONFIG_FILE).read_text())
    assert stored["model"]["variant"] == variant
    model = rundir.load_model(tmp_path)
    images = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)
    probabilities = np.asarray(model(images, training=False))
    assert probabilities.shape == (2, 32, 32, 1)
    assert float(probabilities.min()) >= 0.0 and float(probabilities.max()) <= 1.0


def test_unet3d_is_refused_with_a_clear_error(tmp_path):
    spec = spec_of(1)
    spec = spec.replace(model=spec.model.replace(variant="unet3d"))
    with pytest.raises(UNetDemoError, match="'unet3d' U-Net cannot train on 'synthetic_lesions'"):
        run_training(spec, tmp_path)
    last = ev.last_event(tmp_path)
    assert isinstance(last, ev.Failed) and "--variant" in last.message
    assert not (tmp_path / rundir.MODEL_FILE).exists()
