"""Training throughput and compute efficiency of our U-Nets, with the PyTorch twin beside them.

Every timing runs `train_on_batch` on random data after a warm-up, in a fresh process of its
own (ours with `.venv`'s Python, the twin with `.venv-bench`'s: PyTorch is not a project
dependency), and every setting is timed ``--rounds`` times with the order reversed every other
round; the figure is the median. One process per timing, because in one process the models
built first and later did not run at the same speed. It reports images/s, training FLOP/s
(3 x the forward FLOPs per image: the backward pass costs about twice the forward one) and that
rate as a share of the float32 matrix-multiply ceiling, measured before and after the timings.

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
        >>> from unet_demo.config import UNetConfig
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


MODEL_KEYS = ("plain", "classroom", "quality")


def model_row(key: str) -> tuple[str, object, int]:
    """(label, UNetConfig, batch size) of a timed model: the plain net or a skull-strip preset.

    Args:
        key: "plain", "classroom" or "quality".

    Example:
        >>> model_row("plain")[0], model_row("plain")[2]
        ('plain U-Net 128px base16 depth3 BN', 16)
    """
    from unet_demo.config import UNetConfig

    if key == "plain":
        return "plain U-Net 128px base16 depth3 BN", UNetConfig(), 16
    from unet_demo.training.presets import get_preset

    spec = get_preset("brain_skullstrip", key)
    return f"brain_skullstrip {key} preset", spec.model, spec.train.batch_size


def time_keras_in_child(key: str, steps: int, jit_compile: bool, policy: str,
                        onednn: bool = True) -> dict | None:
    """`time_keras_training` of ``model_row(key)`` in a fresh Python process (its JSON, or None).

    Every timing gets its own process, as the PyTorch twin's do: in one process the model built
    first and the ones built later did not run at the same speed (docs/performance.md).
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if not onednn:
        env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    command = [sys.executable, __file__, "--child", key, "--steps", str(steps),
               "--jit", str(int(jit_compile)), "--policy", policy]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False,
                          timeout=1800)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def bracketed(contenders: list[tuple[str, object]], rounds: int) -> dict[str, list[float]]:
    """Images/s of every contender, ``rounds`` times, the order reversed every other round.

    Args:
        contenders: (name, function returning a timing dict or None) pairs.
        rounds: how many times each one is timed (A B C, C B A, A B C, ...), so a slow spell of
            the machine does not fall on one contender only.

    Example:
        >>> bracketed([("a", lambda: {"images_per_s": 2.0}), ("b", lambda: None)], 2)
          round 1: a                                                   2.0 img/s
          round 2: a                                                   2.0 img/s
        {'a': [2.0, 2.0], 'b': []}
    """
    speeds: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for round_index in range(rounds):
        order = contenders if round_index % 2 == 0 else contenders[::-1]
        for name, timing in order:
            result = timing()
            if result is not None:
                speeds[name].append(float(result["images_per_s"]))
                print(f"  round {round_index + 1}: {name:48s} {speeds[name][-1]:6.1f} img/s",
                      flush=True)
    return speeds


def summary(speeds: list[float]) -> dict:
    """Median, lowest and highest of one contender's images/s (the median is the figure).

    Example:
        >>> summary([3.0, 1.0, 2.0])
        {'images_per_s': 2.0, 'lowest': 1.0, 'highest': 3.0, 'runs': [3.0, 1.0, 2.0]}
    """
    import statistics

    return {"images_per_s": statistics.median(speeds), "lowest": min(speeds),
            "highest": max(speeds), "runs": speeds}


KERAS_SETTINGS = ((True, "float32"), (False, "float32"), (True, "mixed_bfloat16"),
                  (False, "mixed_bfloat16"))
TORCH_SETTINGS = ((False, False), (False, True), (True, False), (True, True))  # (bf16, ch-last)
EIGEN = "default graph float32, oneDNN off (Eigen)"


def contenders(steps: int, with_torch: bool, emulated_bf16: bool, presets: bool,
               chosen: tuple[bool, str], native: bool) -> list[tuple[str, str, object]]:
    """(side, name, timing function) of everything one run times; side is keras, torch or
    model (the presets at the machine's chosen setting)."""
    from unet_demo.training.speed import label, onednn_enabled

    found: list[tuple[str, str, object]] = []
    for jit, policy in KERAS_SETTINGS:
        if policy == "float32" or native or emulated_bf16:
            found.append(("keras", label(jit, policy),
                          lambda jit=jit, policy=policy: time_keras_in_child(
                              "plain", steps, jit, policy)))
    if onednn_enabled() and os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1":
        found.append(("keras", EIGEN,
                      lambda: time_keras_in_child("plain", steps, False, "float32", onednn=False)))
    for bf16, channels_last in TORCH_SETTINGS if with_torch and TORCH_PYTHON.exists() else ():
        if not bf16 or native or emulated_bf16:
            name = ("bf16 autocast" if bf16 else "float32") + (", channels_last" * channels_last)
            found.append(("torch", name, lambda bf16=bf16, cl=channels_last: time_torch(
                128, 16, 3, 16, steps, bf16=bf16, channels_last=cl)))
    for key in MODEL_KEYS[1:] if presets else ():
        found.append(("model", model_row(key)[0], lambda key=key: time_keras_in_child(
            key, steps, chosen[0], chosen[1])))
    return found


def compare_settings(steps: int, with_torch: bool, emulated_bf16: bool, rounds: int = 3,
                     presets: bool = False) -> dict:
    """Every speed setting of our plain net and of the PyTorch twin (and the presets at the
    chosen setting), each in its own process, ``rounds`` times; the best of each side.

    bfloat16 runs only where the CPU has native bfloat16 (or with ``emulated_bf16``): without
    it TensorFlow and PyTorch emulate it, 3-100x slower, and no automatic choice would take it.
    """
    from unet_demo.config import UNetConfig
    from unet_demo.training.speed import choose_speed, cpu_flags, label, native_bfloat16

    native = native_bfloat16(cpu_flags())
    auto = choose_speed("CPU", environ={})
    chosen = (auto.jit_compile is True, auto.policy)
    flops = forward_flops(UNetConfig())
    found = contenders(steps, with_torch, emulated_bf16, presets, chosen, native)
    speeds = bracketed([(name, timing) for _, name, timing in found], rounds)
    out: dict = {"native_bfloat16": native, "rounds": rounds, "steps": steps,
                 "keras": [], "torch": [], "presets": []}
    for side, name, _ in found:
        if not speeds[name]:
            print(f"  {name}: not measured (failed; see above)")
            continue
        row = dict(summary(speeds[name]), setting=name)
        if side == "model":
            out["presets"].append(row)
            continue
        row["train_gflops_per_s"] = 3.0 * flops * row["images_per_s"] / 1e9
        out[side].append(row)
    for side in ("keras", "torch"):
        if out[side]:
            out[f"best_{side}"] = max(out[side], key=lambda row: row["images_per_s"])
    if out.get("best_keras") and out.get("best_torch"):
        out["ratio_best_ours_over_best_torch"] = (out["best_keras"]["images_per_s"]
                                                  / out["best_torch"]["images_per_s"])
    out["auto_choice"] = {"setting": label(auto.jit_compile, auto.policy),
                          "source": auto.source, "reason": auto.reason}
    return out


def model_rows(settings: dict, ceiling: float) -> list[dict]:
    """Efficiency rows: the plain net at the chosen setting, then the presets (medians)."""
    chosen = settings["auto_choice"]["setting"]
    plain = next((row for row in settings["keras"] if row["setting"] == chosen), None)
    timed = [("plain", plain)] + [(key, next((row for row in settings["presets"]
                                              if row["setting"] == model_row(key)[0]), None))
                                  for key in MODEL_KEYS[1:]]
    rows = []
    for key, timing in timed:
        if timing is None:
            continue
        label_, cfg, batch = model_row(key)
        flops = forward_flops(cfg)
        train_gflops = 3.0 * flops * timing["images_per_s"] / 1e9
        rows.append({
            "model": label_, "batch_size": batch, "setting": chosen,
            "forward_gflops_per_image": flops / 1e9,
            "images_per_s": timing["images_per_s"], "lowest": timing["lowest"],
            "highest": timing["highest"], "train_gflops_per_s": train_gflops,
            "share_of_ceiling": train_gflops / ceiling,
        })
    return rows


def main(argv: list[str] | None = None) -> dict:
    """Measure, print and save the figures; return them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16, help="timed training steps per timing")
    parser.add_argument("--rounds", type=int, default=3,
                        help="times each setting is timed, each time in a new process")
    parser.add_argument("--presets", action="store_true", help="also time the training presets")
    parser.add_argument("--torch", action="store_true", help="also time the PyTorch twin")
    parser.add_argument("--emulated-bf16", action="store_true",
                        help="time bfloat16 even where the CPU has no native bfloat16")
    parser.add_argument("--child", choices=MODEL_KEYS, help=argparse.SUPPRESS)
    parser.add_argument("--jit", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--policy", default="float32", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # one timing, in the process `time_keras_in_child` started
        _, cfg, batch = model_row(args.child)
        timing = time_keras_training(cfg, batch, args.steps, jit_compile=bool(args.jit),
                                     policy=args.policy)
        print(json.dumps(timing))
        return timing

    ceilings = [matmul_gflops()]
    bf16_ceiling = tf_bfloat16_matmul_gflops()
    print(f"float32 matmul ceiling (numpy): {ceilings[0]:.1f} GFLOP/s; bfloat16 (TensorFlow): "
          f"{bf16_ceiling:.1f} GFLOP/s")
    results: dict = {"bf16_matmul_gflops": bf16_ceiling}
    if args.torch:
        torch_ceilings = run_torch("--matmul")
        if torch_ceilings:
            results["torch_matmul"] = torch_ceilings
            print(f"torch matmul: float32 {torch_ceilings['float32_gflops']:.1f}, bfloat16 "
                  f"{torch_ceilings['bfloat16_gflops']:.1f} GFLOP/s")
    print(f"Each timing in its own process, {args.rounds} rounds (plain U-Net 128px base16 "
          "depth3 BN, batch 16; presets at the automatic setting):")
    settings = compare_settings(args.steps, args.torch, args.emulated_bf16, args.rounds,
                                args.presets)
    ceilings.append(matmul_gflops())  # again at the end: the higher one is the ceiling
    ceiling = max(ceilings)
    print(f"float32 matmul ceiling again: {ceilings[1]:.1f} GFLOP/s (using {ceiling:.1f})")
    results.update(matmul_gflops=ceiling, matmul_gflops_start_end=ceilings, settings=settings,
                   model_setting=settings["auto_choice"]["setting"],
                   models=model_rows(settings, ceiling))
    for row in results["models"]:
        print(f"{row['model']} ({row['setting']}): median {row['images_per_s']:.1f} img/s "
              f"({row['lowest']:.1f}-{row['highest']:.1f}), {row['train_gflops_per_s']:.1f} "
              f"GFLOP/s = {100 * row['share_of_ceiling']:.0f}% of the matmul ceiling")
    best = settings.get("best_keras")
    if best:
        ceiling_here = bf16_ceiling if "bfloat16" in best["setting"] else ceiling
        best["share_of_its_ceiling"] = best["train_gflops_per_s"] / ceiling_here
        print(f"best ours: {best['setting']} median {best['images_per_s']:.1f} img/s = "
              f"{100 * best['share_of_its_ceiling']:.0f}% of its matmul ceiling")
    if "ratio_best_ours_over_best_torch" in settings:
        theirs = settings["best_torch"]
        ratio = settings["ratio_best_ours_over_best_torch"]
        low = best["lowest"] / theirs["highest"]
        high = best["highest"] / theirs["lowest"]
        results["torch"] = dict(theirs, ratio_ours_over_torch=ratio, ratio_range=[low, high])
        print(f"best torch: {theirs['setting']} median {theirs['images_per_s']:.1f} img/s; "
              f"ours / torch = {ratio:.2f}x of the medians (any pair of runs: {low:.2f}-"
              f"{high:.2f}x)")
    print(f"automatic choice on this machine: {settings['auto_choice']['setting']} "
          f"({settings['auto_choice']['source']})")
    results["threads"] = os.cpu_count()
    save_result("train_throughput", results)
    return results


if __name__ == "__main__":
    main()
