"""Where a training step's time goes: each convolution of the plain U-Net timed on its own.

The whole training step of the plain U-Net (128 px, 16 filters, depth 3, batch 16) is timed,
then every convolution layer of the same network is timed alone at its real input shape
(forward + backward, the same XLA/graph setting), with its FLOPs from the layer shapes. The
table shows how fast each convolution runs (GFLOP/s, share of the float32 matmul ceiling) and
what share of the step it takes; what the convolutions do not explain is the rest (normalisation,
activations, pooling, concatenation, optimizer, loss). It answers "why is the step not at the
matmul ceiling": thin convolutions (few channels, large images) run far below it.

Example:
    .venv/bin/python benchmarks/profile_step.py --xla 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import matmul_gflops, save_result  # noqa: E402


def _time(function, repeats: int) -> float:
    """Best-of-``repeats`` seconds of ``function()`` after two warm-up calls."""
    function()
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def conv_rows(model, batch: int, jit: bool, repeats: int) -> list[dict]:
    """Forward + backward time and FLOPs of every Conv2D / Conv2DTranspose at its shape."""
    import keras
    import tensorflow as tf

    rows = []
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2D | keras.layers.Conv2DTranspose):
            continue
        in_shape = (batch, *layer.input.shape[1:])
        out_shape = (batch, *layer.output.shape[1:])
        kernel = layer.kernel
        x = tf.random.normal(in_shape)
        w = tf.Variable(tf.random.normal(kernel.shape))
        strides = layer.strides
        transposed = isinstance(layer, keras.layers.Conv2DTranspose)

        @tf.function(jit_compile=jit)
        def step(x=x, w=w, strides=strides, transposed=transposed, out_shape=out_shape):
            with tf.GradientTape() as tape:
                tape.watch(x)
                if transposed:
                    y = tf.nn.conv2d_transpose(x, w, out_shape, strides, padding="SAME")
                else:
                    y = tf.nn.conv2d(x, w, strides, padding="SAME")
                loss = tf.reduce_sum(y)
            return tape.gradient(loss, [x, w])

        seconds = _time(lambda step=step: [g.numpy() for g in step()], repeats)
        k_h, k_w = kernel.shape[:2]
        c_in, c_out = (kernel.shape[3], kernel.shape[2]) if transposed else kernel.shape[2:]
        spatial = (in_shape[1] * in_shape[2]) if transposed else (out_shape[1] * out_shape[2])
        flops = 3 * 2 * batch * spatial * k_h * k_w * c_in * c_out  # forward + 2x backward
        rows.append({"layer": layer.name, "shape": f"{in_shape[1]}x{in_shape[2]}x{c_in}->"
                     f"{c_out} k{k_h}", "seconds": seconds, "gflops_per_s": flops / seconds / 1e9,
                     "flops": flops})
    return rows


def main(argv: list[str] | None = None) -> dict:
    """Time the step and its convolutions; print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xla", type=int, default=1, help="1: XLA, 0: Keras' default graph")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import keras
    import numpy as np

    from unet_demo.config import UNetConfig
    from unet_demo.models.builder import build_unet

    jit = bool(args.xla)
    ceiling = matmul_gflops()
    cfg = UNetConfig()
    model = build_unet(cfg)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.BinaryCrossentropy(),
                  jit_compile=jit)
    rng = np.random.default_rng(0)
    images = rng.random((args.batch, 128, 128, 1), dtype=np.float32)
    masks = (rng.random((args.batch, 128, 128, 1)) > 0.5).astype("float32")
    step_seconds = _time(lambda: model.train_on_batch(images, masks), args.repeats)
    rows = conv_rows(model, args.batch, jit, args.repeats)
    conv_seconds = sum(row["seconds"] for row in rows)
    print(f"{'XLA' if jit else 'default graph'}: training step {1000 * step_seconds:.0f} ms "
          f"({args.batch / step_seconds:.1f} img/s); float32 matmul ceiling {ceiling:.0f} GFLOP/s")
    print(f"{'layer':24s} {'shape':22s} {'ms':>7s} {'GFLOP/s':>8s} {'ceiling':>8s} {'step':>6s}")
    for row in sorted(rows, key=lambda r: -r["seconds"]):
        row["share_of_step"] = row["seconds"] / step_seconds
        row["share_of_ceiling"] = row["gflops_per_s"] / ceiling
        print(f"{row['layer']:24s} {row['shape']:22s} {1000 * row['seconds']:7.1f} "
              f"{row['gflops_per_s']:8.1f} {100 * row['share_of_ceiling']:7.0f}% "
              f"{100 * row['share_of_step']:5.0f}%")
    rest = max(step_seconds - conv_seconds, 0.0)
    print(f"convolutions alone: {1000 * conv_seconds:.0f} ms = {100 * conv_seconds / step_seconds:.0f}% "
          f"of the step; the rest (norm, activations, pooling, concat, loss, Adam): "
          f"{1000 * rest:.0f} ms")
    result = {"xla": jit, "batch": args.batch, "step_seconds": step_seconds,
              "images_per_s": args.batch / step_seconds, "matmul_gflops": ceiling,
              "conv_seconds": conv_seconds, "rest_seconds": rest, "convs": rows}
    save_result(f"profile_step_{'xla' if jit else 'graph'}", result)
    return result


if __name__ == "__main__":
    main()
