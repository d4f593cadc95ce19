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

import unet_demo  # noqa: E402,F401  (turns TensorFlow's oneDNN kernels on before TF loads)
from benchmarks.common import REPO, matmul_gflops, save_result  # noqa: E402

TORCH_PYTHON = REPO / ".venv-bench" / "bin" / "python"


def time_keras_training(cfg, batch_size: int, steps: int, jit_compile: bool = True,
                        policy: str = "float32") -> dict:
    """Images per second of one Keras training step on random data.

    Args:
        cfg: the UNetConfig to build.
        batch_size: images per step.
        steps: timed steps (after two warm-up steps that include compilation).
        jit_compile: compile the step with XLA (Keras' "auto" leaves XLA off on the CPU).
        policy: Keras dtype policy to build under ("float32" or "mixed_bfloat16").

    Example:
        >>> time_keras_training(UNetConfig(base_filters=4, depth=2), 4, 2)["images_per_s"] > 0
        True
    """
    import keras
    import numpy as np

    from unet_demo.models.builder import build_unet
    from unet_demo.training.optimizers import fused_adam_class
    from unet_demo.training.speed import dtype_policy

    keras.utils.set_random_seed(0)
    with dtype_policy(policy):
        model = build_unet(cfg)
    model.compile(
        optimizer=fused_adam_class()(1e-3),  # the runner's Adam
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


def time_eigen_graph(batch_size: int, steps: int) -> float | None:
    """Images/s of the plain net's default graph with oneDNN off (TensorFlow's own default on
    CPUs without AVX-512 deep-learning features), timed in a child process."""
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, __file__, "--eigen-graph-only", "--steps", str(steps),
                           "--batch", str(batch_size)], env=env, capture_output=True,
                          text=True, check=False, timeout=1800)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return None
    return float(json.loads(done.stdout.strip().splitlines()[-1])["images_per_s"])


def tf_bfloat16_matmul_gflops(size: int = 1024, repeats: int = 3) -> float:
    """Best-of-N square bfloat16 matmul throughput of TensorFlow (GFLOP/s): the bf16 ceiling."""
    import tensorflow as tf

    a = tf.cast(tf.random.normal((size, size)), tf.bfloat16)
    b = tf.cast(tf.random.normal((size, size)), tf.bfloat16)
    matmul = tf.function(lambda x, y: tf.linalg.matmul(x, y))
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9


def forward_flops(cfg) -> float:
    """Forward FLOPs per image (a multiply-add counts as 2) from the architecture calculator."""
    from unet_demo.models.stats import architecture_stats

    return float(architecture_stats(cfg, batch_size=1).flops)


def run_torch(*options: str) -> dict | None:
    """Run the PyTorch twin script with ``options`` in `.venv-bench`; its JSON, or None."""
    if not TORCH_PYTHON.exists():
        return None
    command = [str(TORCH_PYTHON), str(REPO / "benchmarks" / "torch_unet.py"), *options]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=1800)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_torch(size: int, base: int, depth: int, batch: int, steps: int, *,
               bf16: bool = False, channels_last: bool = False) -> dict | None:
    """The PyTorch twin's training images/s with one setting; None when it cannot run."""
    options = ["--size", str(size), "--base", str(base), "--depth", str(depth),
               "--batch", str(batch), "--images", str(steps * batch)]
    options += ["--bf16"] * bf16 + ["--channels-last"] * channels_last
    return run_torch(*options)


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


KERAS_SETTINGS = ((True, "float32"), (False, "float32"), (True, "mixed_bfloat16"),
                  (False, "mixed_bfloat16"))
TORCH_SETTINGS = ((False, False), (False, True), (True, False), (True, True))  # (bf16, ch-last)


def compare_settings(steps: int, with_torch: bool, emulated_bf16: bool) -> dict:
    """Every speed setting of our plain net and of the PyTorch twin, in one run; the best of each.

    bfloat16 runs only where the CPU has native bfloat16 (or with ``emulated_bf16``): without
    it TensorFlow and PyTorch emulate it, 3-100x slower, and no automatic choice would take it.
    """
    from unet_demo.config import UNetConfig
    from unet_demo.training.speed import choose_speed, cpu_flags, label, native_bfloat16

    native = native_bfloat16(cpu_flags())
    cfg, batch = UNetConfig(), 16
    flops = forward_flops(cfg)
    out: dict = {"native_bfloat16": native, "keras": [], "torch": []}
    for jit, policy in KERAS_SETTINGS:
        if policy != "float32" and not (native or emulated_bf16):
            continue
        speed = time_keras_training(cfg, batch, steps, jit_compile=jit, policy=policy)
        out["keras"].append({"setting": label(jit, policy), "images_per_s": speed["images_per_s"],
                             "train_gflops_per_s": 3.0 * flops * speed["images_per_s"] / 1e9})
        print(f"  ours  {label(jit, policy):34s} {speed['images_per_s']:6.1f} img/s")
    from unet_demo.training.speed import onednn_enabled

    if onednn_enabled() and os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1":
        eigen = time_eigen_graph(batch, steps)
        if eigen is not None:
            name = "default graph float32, oneDNN off (Eigen)"
            out["keras"].append({"setting": name, "images_per_s": eigen,
                                 "train_gflops_per_s": 3.0 * flops * eigen / 1e9})
            print(f"  ours  {name:34s} {eigen:6.1f} img/s")
    for bf16, channels_last in TORCH_SETTINGS if with_torch else ():
        if bf16 and not (native or emulated_bf16):
            continue
        speed = time_torch(128, 16, 3, batch, steps, bf16=bf16, channels_last=channels_last)
        if speed is None:
            print("  torch: not measured (.venv-bench missing or failed)")
            break
        name = ("bf16 autocast" if bf16 else "float32") + (", channels_last" * channels_last)
        out["torch"].append({"setting": name, "images_per_s": speed["images_per_s"],
                             "train_gflops_per_s": 3.0 * flops * speed["images_per_s"] / 1e9})
        print(f"  torch {name:34s} {speed['images_per_s']:6.1f} img/s")
    for side in ("keras", "torch"):
        if out[side]:
            out[f"best_{side}"] = max(out[side], key=lambda row: row["images_per_s"])
    if out.get("best_keras") and out.get("best_torch"):
        out["ratio_best_ours_over_best_torch"] = (out["best_keras"]["images_per_s"]
                                                  / out["best_torch"]["images_per_s"])
    auto = choose_speed("CPU", environ={})
    out["auto_choice"] = {"setting": label(auto.jit_compile, auto.policy),
                          "source": auto.source, "reason": auto.reason}
    return out


def main(argv: list[str] | None = None) -> dict:
    """Measure, print and save the figures; return them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="timed training steps per model")
    parser.add_argument("--presets", action="store_true", help="also time the training presets")
    parser.add_argument("--torch", action="store_true", help="also time the PyTorch twin")
    parser.add_argument("--emulated-bf16", action="store_true",
                        help="time bfloat16 even where the CPU has no native bfloat16")
    parser.add_argument("--eigen-graph-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=16, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.eigen_graph_only:  # the child of `time_eigen_graph`
        from unet_demo.config import UNetConfig

        timing = time_keras_training(UNetConfig(), args.batch, args.steps, jit_compile=False)
        print(json.dumps(timing))
        return timing

    ceiling = matmul_gflops()
    bf16_ceiling = tf_bfloat16_matmul_gflops()
    print(f"float32 matmul ceiling (numpy): {ceiling:.1f} GFLOP/s; bfloat16 (TensorFlow): "
          f"{bf16_ceiling:.1f} GFLOP/s")
    results: dict = {"matmul_gflops": ceiling, "bf16_matmul_gflops": bf16_ceiling,
                     "models": []}
    if args.torch:
        torch_ceilings = run_torch("--matmul")
        if torch_ceilings:
            results["torch_matmul"] = torch_ceilings
            print(f"torch matmul: float32 {torch_ceilings['float32_gflops']:.1f}, bfloat16 "
                  f"{torch_ceilings['bfloat16_gflops']:.1f} GFLOP/s")
    from unet_demo.training.speed import choose_speed
    from unet_demo.training.speed import label as setting_label

    chosen = choose_speed("CPU")  # what a run on this machine trains with
    results["model_setting"] = setting_label(chosen.jit_compile, chosen.policy)
    print(f"models below: {results['model_setting']} ({chosen.source})")
    for label_, cfg, batch in model_rows(args.presets):
        timing = time_keras_training(cfg, batch, args.steps, jit_compile=chosen.jit_compile,
                                     policy=chosen.policy)
        flops = forward_flops(cfg)
        train_gflops = 3.0 * flops * timing["images_per_s"] / 1e9
        row = {
            "model": label_, "batch_size": batch, "params": timing["params"],
            "forward_gflops_per_image": flops / 1e9, "images_per_s": timing["images_per_s"],
            "train_gflops_per_s": train_gflops, "share_of_ceiling": train_gflops / ceiling,
        }
        results["models"].append(row)
        print(
            f"{label_}: {timing['images_per_s']:.1f} img/s, {train_gflops:.1f} GFLOP/s "
            f"= {100 * train_gflops / ceiling:.0f}% of the matmul ceiling"
        )
    print("Speed settings, plain U-Net 128px base16 depth3 BN, batch 16:")
    settings = compare_settings(args.steps, args.torch, args.emulated_bf16)
    results["settings"] = settings
    best = settings.get("best_keras")
    if best:
        ceiling_here = bf16_ceiling if "bfloat16" in best["setting"] else ceiling
        best["share_of_its_ceiling"] = best["train_gflops_per_s"] / ceiling_here
        print(f"best ours: {best['setting']} {best['images_per_s']:.1f} img/s = "
              f"{100 * best['share_of_its_ceiling']:.0f}% of its matmul ceiling")
    if "ratio_best_ours_over_best_torch" in settings:
        theirs = settings["best_torch"]
        ratio = settings["ratio_best_ours_over_best_torch"]
        results["torch"] = dict(theirs, ratio_ours_over_torch=ratio)
        print(f"best torch: {theirs['setting']} {theirs['images_per_s']:.1f} img/s; "
              f"ours / torch = {ratio:.2f}x (each at its best)")
    print(f"automatic choice on this machine: {settings['auto_choice']['setting']} "
          f"({settings['auto_choice']['source']})")
    results["threads"] = os.cpu_count()
    save_result("train_throughput", results)
    return results


if __name__ == "__main__":
    main()
