"""Forward + backward time of one normalisation layer: ours (`unet_demo.models.norm`) vs Keras'.

Each shape is timed as ours, Keras', then ours again in one process (a layer timed first
can run slower for reasons that have nothing to do with it, so the repeat brackets Keras'
figure). The layer's training call is differentiated for its input, scale and shift inside
one `tf.function`, at the activation shapes of the U-Nets the presets train: batch norm at
the plain 16-filter net's first levels (batch 16), group norm at the classroom net's (batch 8).

Example:
    .venv/bin/python benchmarks/norm_layers.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import unet_demo  # noqa: E402,F401  (TensorFlow's oneDNN and thread switches first)
from benchmarks.common import machine_description, save_result  # noqa: E402

BATCH_NORM_SHAPES = ((16, 128, 128, 16), (16, 64, 64, 32), (16, 32, 32, 64))
GROUP_NORM_SHAPES = ((8, 128, 128, 8), (8, 64, 64, 16), (8, 32, 32, 32))


def time_layer(layer, shape: tuple[int, ...], calls: int = 20, rounds: int = 5) -> float:
    """Best-of-``rounds`` milliseconds of one forward + backward training call of ``layer``.

    Args:
        layer: a Keras layer (built here for ``shape``).
        shape: the activation shape (batch, height, width, channels).
        calls: calls per timed round.
        rounds: timed rounds after two warm-up calls.

    Example:
        >>> import keras
        >>> time_layer(keras.layers.BatchNormalization(), (2, 8, 8, 4), calls=2, rounds=1) > 0
        True
    """
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=shape).astype("float32"))
    upstream = tf.constant(rng.normal(size=shape).astype("float32"))
    layer.build(shape)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
        return tape.gradient(y, [x, *layer.trainable_weights], output_gradients=upstream)

    step()
    step()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            result = step()
        _ = result[0].numpy()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1000.0


def main() -> dict:
    import keras

    from unet_demo.models import norm
    from unet_demo.models.blocks import group_count

    rows = []
    makers = [("batch norm", BATCH_NORM_SHAPES, norm.BatchNormalization,
               keras.layers.BatchNormalization, lambda channels: {})]
    makers.append(("group norm", GROUP_NORM_SHAPES, norm.GroupNormalization,
                   keras.layers.GroupNormalization,
                   lambda channels: {"groups": group_count(channels)}))
    print(f"{machine_description()}: forward + backward of one training call, ms")
    for kind, shapes, ours, theirs, options in makers:
        for shape in shapes:
            first = time_layer(ours(**options(shape[-1])), shape)
            keras_ms = time_layer(theirs(**options(shape[-1])), shape)
            again = time_layer(ours(**options(shape[-1])), shape)
            ours_ms = min(first, again)
            rows.append({"layer": kind, "shape": "x".join(map(str, shape)),
                         "ours_ms": round(ours_ms, 2), "ours_runs_ms": [round(first, 2),
                                                                       round(again, 2)],
                         "keras_ms": round(keras_ms, 2),
                         "speedup": round(keras_ms / ours_ms, 2)})
            print(f"  {kind:10s} {rows[-1]['shape']:15s} ours {first:6.2f} / {again:6.2f}  "
                  f"Keras {keras_ms:6.2f}  -> {keras_ms / ours_ms:.2f}x")
    result = {"machine": machine_description(), "rows": rows}
    save_result("norm_layers", result)
    return result


if __name__ == "__main__":
    main()
