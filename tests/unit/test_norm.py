"""The fast normalisation layers give Keras' outputs, gradients and moving statistics."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from unet_demo.config import UNetConfig  # noqa: E402
from unet_demo.models import norm  # noqa: E402
from unet_demo.models.builder import build_unet  # noqa: E402
from unet_demo.models.safe_load import load_model_file  # noqa: E402

RNG = np.random.default_rng(11)


def _pair(fast, reference, shape):
    """Both layers built with the same random gamma/beta; returns (x, upstream gradient)."""
    fast.build(shape)
    reference.build(shape)
    for weight in fast.trainable_weights:
        weight.assign(RNG.normal(1.0, 0.5, size=weight.shape).astype("float32"))
    reference.set_weights(fast.get_weights())
    x = tf.constant(RNG.normal(1.5, 2.0, size=shape).astype("float32"))
    upstream = tf.constant(RNG.normal(size=shape).astype("float32"))
    return x, upstream


def _forward_backward(layer, x, upstream, training=True):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        loss = tf.reduce_sum(y * upstream)
    grads = tape.gradient(loss, [x, *layer.trainable_weights])
    return y.numpy(), [g.numpy() for g in grads]


@pytest.mark.parametrize(("groups", "shape"), [
    (4, (3, 16, 16, 8)),        # group norm, 2 channels per group
    (8, (2, 4, 8, 8, 8)),       # 3-D volumes
    (16, (2, 8, 8, 16)),        # instance norm: one group per channel
    (1, (2, 6, 6, 4)),          # one group: layer-norm-like
])
def test_group_norm_matches_keras(groups, shape, monkeypatch):
    calls = []
    real = norm.grouped_normalize
    monkeypatch.setattr(norm, "grouped_normalize",
                        lambda *args: calls.append(1) or real(*args))
    fast = norm.GroupNormalization(groups=groups)
    reference = keras.layers.GroupNormalization(groups=groups)
    x, upstream = _pair(fast, reference, shape)
    y_fast, g_fast = _forward_backward(fast, x, upstream)
    assert calls, "the training call did not take the fast path"
    y_ref, g_ref = _forward_backward(reference, x, upstream)
    np.testing.assert_allclose(y_fast, y_ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(g_fast, g_ref, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    calls.clear()
    np.testing.assert_allclose(fast(x, training=False).numpy(), y_ref, rtol=1e-5, atol=1e-5)
    assert not calls, "inference must run Keras' own ops (exports see plain ops)"


@pytest.mark.parametrize("shape", [(4, 16, 16, 8), (2, 4, 8, 8, 6)])
def test_batch_norm_matches_keras_including_moving_statistics(shape, monkeypatch):
    calls = []
    real = tf.compat.v1.nn.fused_batch_norm
    monkeypatch.setattr(tf.compat.v1.nn, "fused_batch_norm",
                        lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    fast = norm.BatchNormalization(momentum=0.9)
    reference = keras.layers.BatchNormalization(momentum=0.9)
    x, upstream = _pair(fast, reference, shape)
    for _ in range(2):  # two updates of the moving averages
        y_fast, g_fast = _forward_backward(fast, x, upstream)
        y_ref, g_ref = _forward_backward(reference, x, upstream)
    assert len(calls) == 2, "the training call did not use the fused kernel"
    np.testing.assert_allclose(y_fast, y_ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(g_fast, g_ref, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    for got, want in zip(fast.non_trainable_weights, reference.non_trainable_weights,
                         strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    assert not np.allclose(fast.moving_mean.numpy(), 0.0)  # the averages really moved


def test_frozen_batch_norm_uses_moving_statistics():
    layer = norm.BatchNormalization()
    x = tf.constant(RNG.normal(3.0, 2.0, size=(2, 4, 4, 3)).astype("float32"))
    layer.build(x.shape)
    layer.trainable = False
    y = layer(x, training=True).numpy()
    np.testing.assert_allclose(y, x.numpy() / np.sqrt(1.0 + layer.epsilon), rtol=1e-5)
    assert np.allclose(layer.moving_mean.numpy(), 0.0)


def test_bfloat16_policy_keeps_statistics_in_float32():
    layer = norm.GroupNormalization(groups=2, dtype="mixed_bfloat16")
    x = tf.constant(RNG.normal(100.0, 1.0, size=(2, 8, 8, 4)).astype("float32"))
    y = layer(tf.cast(x, tf.bfloat16), training=True)
    assert y.dtype == tf.bfloat16
    # 100 +- 1 in bfloat16 keeps ~3 significant digits; float32 statistics still centre it
    assert abs(float(tf.reduce_mean(tf.cast(y, tf.float32)))) < 0.05


@pytest.mark.parametrize("normalization", ["batch", "group", "instance"])
def test_built_models_use_the_fast_layers_and_load_back(tmp_path, normalization):
    cfg = UNetConfig(input_height=32, input_width=32, depth=2, base_filters=4,
                     normalization=normalization)
    model = build_unet(cfg)
    kinds = {type(layer) for layer in model.layers}
    assert (norm.BatchNormalization in kinds) == (normalization == "batch")
    assert (norm.GroupNormalization in kinds) == (normalization != "batch")
    x = RNG.random((2, 32, 32, 1), dtype=np.float32)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x, (x > 0.5).astype("float32"), epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    again = load_model_file(path)
    assert {type(layer) for layer in again.layers} == kinds
    np.testing.assert_allclose(again(x, training=False).numpy(), model(x, training=False).numpy(),
                               rtol=1e-6, atol=1e-6)


def test_models_saved_with_keras_layers_still_load(tmp_path):
    inputs = keras.Input((8, 8, 2))
    outputs = keras.layers.GroupNormalization(groups=2)(keras.layers.BatchNormalization()(inputs))
    path = tmp_path / "old.keras"
    keras.Model(inputs, outputs).save(path)
    again = load_model_file(path)
    assert [type(layer) for layer in again.layers[1:]] == [
        keras.layers.BatchNormalization, keras.layers.GroupNormalization]


def test_a_fresh_process_loads_a_run_model_with_the_fast_layers(tmp_path):
    """A resume or an evaluation starts in a new process that has not built a model yet."""
    import subprocess
    import sys

    from unet_demo.training import rundir

    cfg = UNetConfig(input_height=16, input_width=16, depth=1, base_filters=4,
                     normalization="group")
    build_unet(cfg).save(tmp_path / rundir.MODEL_FILE)
    (tmp_path / rundir.CONFIG_FILE).write_text("{}")
    code = ("import sys; from unet_demo.training.rundir import load_model; "
            "print(sorted({type(l).__module__ for l in load_model(sys.argv[1]).layers}))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "unet_demo.models.norm" in done.stdout
