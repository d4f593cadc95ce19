"""The fused Adam: same updates as Keras' Adam/AdamW, its fallbacks, checkpoints that load."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from unet_demo.training.optimizers import fused_adam_class  # noqa: E402


def _model():
    """A small conv net with a normalisation layer (what the optimizer sees of a U-Net)."""
    return keras.Sequential([
        keras.Input((16, 16, 1)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        keras.layers.GroupNormalization(groups=2),
        keras.layers.Conv2D(1, 1, activation="sigmoid"),
    ])


def _train(make_optimizer, steps: int = 6, *, strategy=None) -> list[np.ndarray]:
    """Weights of a seeded small net after ``steps`` steps of ``make_optimizer()``."""
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(0)
    images = rng.random((4, 16, 16, 1), dtype=np.float32)
    masks = (rng.random((4, 16, 16, 1)) > 0.5).astype(np.float32)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = _model()
        model.compile(optimizer=make_optimizer(), loss=keras.losses.BinaryCrossentropy())
        for _ in range(steps):
            model.train_on_batch(images, masks)
    return model.get_weights()


def _assert_close(ours: list[np.ndarray], theirs: list[np.ndarray], *, moved: list[np.ndarray]):
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    # ... and training really changed the weights (a no-op update would also "agree").
    assert max(float(np.abs(a - s).max()) for a, s in zip(ours, moved, strict=True)) > 1e-3


def _start() -> list[np.ndarray]:
    return _train(lambda: keras.optimizers.SGD(0.0), steps=1)


def test_fused_adam_takes_the_steps_of_keras_adam():
    fused = _train(lambda: fused_adam_class()(learning_rate=1e-2))
    plain = _train(lambda: keras.optimizers.Adam(learning_rate=1e-2))
    _assert_close(fused, plain, moved=_start())


def test_fused_adam_with_weight_decay_takes_the_steps_of_keras_adamw():
    fused = _train(lambda: fused_adam_class()(learning_rate=1e-2, weight_decay=0.05))
    plain = _train(lambda: keras.optimizers.AdamW(learning_rate=1e-2, weight_decay=0.05))
    _assert_close(fused, plain, moved=_start())
    no_decay = _train(lambda: fused_adam_class()(learning_rate=1e-2))
    assert not all(np.allclose(a, b) for a, b in zip(fused, no_decay, strict=True))


def test_the_fused_kernel_is_used_and_strategies_take_keras_update(monkeypatch):
    calls = []
    real = tf.raw_ops.ResourceApplyAdam

    def counting(**kwargs):
        calls.append(1)
        return real(**kwargs)

    monkeypatch.setattr(tf.raw_ops, "ResourceApplyAdam", counting)
    _train(lambda: fused_adam_class()(learning_rate=1e-2), steps=1)
    assert calls  # traced once per variable into the step
    calls.clear()
    one_device = tf.distribute.OneDeviceStrategy("/cpu:0")
    with_strategy = _train(lambda: fused_adam_class()(learning_rate=1e-2), strategy=one_device)
    assert not calls
    _assert_close(with_strategy, _train(lambda: keras.optimizers.Adam(learning_rate=1e-2)),
                  moved=_start())


def test_a_model_compiled_with_it_saves_and_loads_with_its_optimizer_state(tmp_path):
    keras.utils.set_random_seed(3)
    model = _model()
    model.compile(optimizer=fused_adam_class()(learning_rate=1e-2),
                  loss=keras.losses.BinaryCrossentropy())
    model.train_on_batch(np.ones((2, 16, 16, 1), np.float32), np.ones((2, 16, 16, 1), np.float32))
    model.save(tmp_path / "checkpoint.keras")
    loaded = keras.saving.load_model(tmp_path / "checkpoint.keras", compile=True, safe_mode=True)
    assert type(loaded.optimizer).__name__ == "FusedAdam"
    assert int(loaded.optimizer.iterations) == 1
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
