"""Training throughput and compute efficiency of our U-Nets, with the PyTorch twin beside them.

For each model it times `train_on_batch` on random data after a warm-up and reports images/s,
training FLOP/s (3 x the forward FLOPs per image: the backward pass costs about twice the
forward one) and that rate as a share of the float32 matrix-multiply ceiling measured in the
same run. With `--torch` it also runs `benchmarks/torch_unet.py` in `.venv-bench` (PyTorch is
not a project dependency) on the same net and reports the ratio.

Example:
    .venv/bin/python benchmarks/train_throughput.py --presets --torch
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, matmul_gflops, save_result  # noqa: E402

TORCH_PYTHON = REPO / ".venv-bench" / "bin" / "python"


def time_keras_training(cfg, batch_size: int, steps: int, jit_compile: bool = True) -> dict:
    """Images per second of one Keras training step on random data.

    Args:
        cfg: the UNetConfig to build.
        batch_size: images per step.
        steps: timed steps (after two warm-up steps that include compilation).
        jit_compile: compile the step with XLA (Keras' "auto" leaves XLA off on the CPU).

    Example:
        >>> time_keras_training(UNetConfig(base_filters=4, depth=2), 4, 2)["images_per_s"] > 0
        True
    """
    import keras
    import numpy as np

    from unet_demo.models.builder import build_unet

    keras.utils.set_random_seed(0)
    model = build_unet(cfg)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.BinaryCrossentropy(),
        jit_compile=jit_compile,
    )
    rng = np.random.default_rng(0)
    shape = (batch_size, cfg.input_height, cfg.input_width, cfg.input_channels)
    images = rng.random(shape, dtype=np.float32)
    masks = (rng.random(shape[:3] + (1,)) > 0.5).astype("float32")
    for _ in range(2):
        model.train_on_batch(images, masks)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(images, masks)
    seconds = time.perf_counter() - start
    return {"images_per_s": steps * batch_size / seconds, "params": int(model.count_params())}


def forward_flops(cfg) -> float:
    """Forward FLOPs per image (a multiply-add counts as 2) from the architecture calculator."""
    from unet_demo.models.stats import architecture_stats

    return float(architecture_stats(cfg, batch_size=1).flops)


def time_torch(size: int, base: int, depth: int, batch: int, steps: int) -> dict | None:
    """Run the PyTorch twin in its own environment; None when that environment is missing."""
    if not TORCH_PYTHON.exists():
        return None
    command = [
        str(TORCH_PYTHON), str(REPO / "benchmarks" / "torch_unet.py"), "--size", str(size),
        "--base", str(base), "--depth", str(depth), "--batch", str(batch),
        "--images", str(steps * batch),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def model_rows(use_presets: bool) -> list[tuple[str, object, int]]:
    """(label, UNetConfig, batch size) for every model to time."""
    from unet_demo.config import UNetConfig

    rows = [("plain U-Net 128px base16 depth3 BN", UNetConfig(), 16)]
    if use_presets:
        from unet_demo.training.presets import PRESET_NAMES, get_preset

        for preset in PRESET_NAMES:
            spec = get_preset("brain_skullstrip", preset)
            rows.append((f"brain_skullstrip {preset} preset", spec.model, spec.train.batch_size))
    return rows


def main(argv: list[str] | None = None) -> dict:
    """Measure, print and save the figures; return them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="timed training steps per model")
    parser.add_argument("--presets", action="store_true", help="also time the training presets")
    parser.add_argument("--torch", action="store_true", help="also time the PyTorch twin")
    args = parser.parse_args(argv)

    ceiling = matmul_gflops()
    print(f"float32 matmul ceiling (numpy): {ceiling:.1f} GFLOP/s")
    results: dict = {"matmul_gflops": ceiling, "models": []}
    for label, cfg, batch in model_rows(args.presets):
        timing = time_keras_training(cfg, batch, args.steps)
        flops = forward_flops(cfg)
        train_gflops = 3.0 * flops * timing["images_per_s"] / 1e9
        row = {
            "model": label, "batch_size": batch, "params": timing["params"],
            "forward_gflops_per_image": flops / 1e9, "images_per_s": timing["images_per_s"],
            "train_gflops_per_s": train_gflops, "share_of_ceiling": train_gflops / ceiling,
        }
        results["models"].append(row)
        print(
            f"{label}: {timing['images_per_s']:.1f} img/s, {train_gflops:.1f} GFLOP/s "
            f"= {100 * train_gflops / ceiling:.0f}% of the matmul ceiling"
        )
    if args.torch:
        ours = results["models"][0]
        theirs = time_torch(128, 16, 3, 16, args.steps)
        if theirs is None:
            print("PyTorch twin: not measured (.venv-bench missing or failed)")
        else:
            ratio = ours["images_per_s"] / theirs["images_per_s"]
            results["torch"] = dict(theirs, ratio_ours_over_torch=ratio)
            print(
                f"PyTorch twin: {theirs['images_per_s']:.1f} img/s ({theirs.get('params')} params); "
                f"ours / torch = {ratio:.2f}x"
            )
    results["threads"] = os.cpu_count()
    save_result("train_throughput", results)
    return results


if __name__ == "__main__":
    main()
