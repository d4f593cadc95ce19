"""Is the bfloat16 fast path correct? Test Dice of float32 against mixed_bfloat16, preset by preset.

For every bundled dataset and each preset asked for, the same run (same seed, same data, same
XLA setting) is trained twice through the CLI, once with ``UNET_DEMO_PRECISION=float32`` and
once with ``bfloat16``, each in its own process, and the test-split Dice of the two saved models
is compared. The goal is a difference of at most 0.01. Training seconds are reported too; on a
CPU without native bfloat16 (AVX2 only) they show the cost of emulation, not the speed-up.

Example:
    .venv/bin/python benchmarks/bf16_correctness.py --presets classroom
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, RESULTS_DIR, save_result  # noqa: E402

DATASETS = ("brain_skullstrip", "brain_tissue", "nuclei", "synthetic_lesions", "brain_volume")
PRESET_SEED = 42  # every preset's own seed; rows saved without a seed were trained with it
GOAL = 0.01


def train_once(dataset: str, preset: str, precision: str, out: Path, xla: str,
               seed: int = PRESET_SEED) -> dict:
    """Train one preset run with one precision (and seed) in a fresh process; its metrics.json."""
    env = dict(os.environ, UNET_DEMO_PRECISION=precision, UNET_DEMO_XLA=xla)
    command = [sys.executable, "-m", "unet_demo", "train", "--dataset", dataset, "--preset",
               preset, "--seed", str(seed), "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{dataset} {preset} {precision} failed:\n{done.stderr[-1500:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    environment = json.loads((out / "environment.json").read_text())
    return {"test_dice": metrics["test"]["dice"], "train_seconds": metrics["train_seconds"],
            "precision": environment["precision"], "jit_compile": environment["jit_compile"]}


def row_key(row: dict) -> tuple[str, str, int]:
    """A saved row's (dataset, preset, seed); rows from before seeds were recorded used 42.

    Example:
        >>> row_key({"dataset": "nuclei", "preset": "quality"})
        ('nuclei', 'quality', 42)
    """
    return row["dataset"], row["preset"], row.get("seed", PRESET_SEED)


def seed_summary(rows: list[dict]) -> list[dict]:
    """Per (dataset, preset): seeds run, mean bfloat16-minus-float32 delta, float32 spread.

    The spread (highest minus lowest float32 test Dice over the seeds) is the yardstick for
    the delta: a delta well inside it is not a bfloat16 effect.

    Args:
        rows: result rows, each with dataset, preset, delta and float32_dice.

    Example:
        >>> seed_summary([{"dataset": "a", "preset": "quality", "seed": 1, "delta": -0.01,
        ...                "float32_dice": 0.80}, {"dataset": "a", "preset": "quality",
        ...                "seed": 2, "delta": 0.0, "float32_dice": 0.83}])[0]["mean_delta"]
        -0.005
    """
    pairs: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        pairs.setdefault((row["dataset"], row["preset"]), []).append(row)
    summary = []
    for (dataset, preset), group in pairs.items():
        float32 = [row["float32_dice"] for row in group]
        summary.append({"dataset": dataset, "preset": preset, "seeds": len(group),
                        "mean_delta": round(sum(row["delta"] for row in group) / len(group), 6),
                        "float32_spread": round(max(float32) - min(float32), 6),
                        "all_within_goal": all(abs(row["delta"]) <= GOAL for row in group)})
    return summary


def main(argv: list[str] | None = None) -> dict:
    """Train, print the table and save it; return the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["classroom", "quality"])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--xla", default="1", help="UNET_DEMO_XLA for both runs (default 1)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[PRESET_SEED],
                        help="train each pair with these seeds (default: the presets' 42); "
                             "more seeds tell a bfloat16 effect from seed-to-seed noise")
    parser.add_argument("--add", action="store_true",
                        help="keep the saved rows of other (dataset, preset, seed) triples")
    args = parser.parse_args(argv)

    from unet_demo.training.speed import cpu_flags, native_bfloat16

    rows = []
    with tempfile.TemporaryDirectory(prefix="bf16-") as tmp:
        for preset in args.presets:
            for dataset, seed in ((d, s) for d in args.datasets for s in args.seeds):
                pair = {}
                for precision in ("float32", "bfloat16"):
                    out = Path(tmp) / f"{dataset}-{preset}-{seed}-{precision}"
                    pair[precision] = train_once(dataset, preset, precision, out, args.xla,
                                                 seed)
                delta = pair["bfloat16"]["test_dice"] - pair["float32"]["test_dice"]
                row = {"dataset": dataset, "preset": preset, "seed": seed, "xla": args.xla,
                       "measured_at": time.strftime("%Y-%m-%d %H:%M"),
                       "float32_dice": pair["float32"]["test_dice"],
                       "bfloat16_dice": pair["bfloat16"]["test_dice"], "delta": delta,
                       "within_goal": abs(delta) <= GOAL,
                       "float32_seconds": pair["float32"]["train_seconds"],
                       "bfloat16_seconds": pair["bfloat16"]["train_seconds"]}
                rows.append(row)
                print(f"{dataset:18s} {preset:9s} seed {seed:<4d} "
                      f"float32 {row['float32_dice']:.4f} "
                      f"bfloat16 {row['bfloat16_dice']:.4f} delta {delta:+.4f} "
                      f"({'ok' if row['within_goal'] else 'OVER 0.01'}); train s "
                      f"{row['float32_seconds']:.0f} / {row['bfloat16_seconds']:.0f}",
                      flush=True)
    if args.add:  # rows of pairs not run now stay, each with its own time and XLA setting
        saved = RESULTS_DIR / "bf16_correctness.json"
        done = {row_key(row) for row in rows}
        old = json.loads(saved.read_text()) if saved.exists() else {"rows": []}
        kept = [dict(row, seed=row.get("seed", PRESET_SEED), xla=row.get("xla", old.get("xla")),
                     measured_at=row.get("measured_at", old.get("measured_at")))
                for row in old["rows"] if row_key(row) not in done]
        rows = kept + rows
    result = {"rows": rows, "by_pair": seed_summary(rows), "goal_abs_delta": GOAL,
              "xla": args.xla, "native_bfloat16": native_bfloat16(cpu_flags())}
    for pair in result["by_pair"]:
        if pair["seeds"] > 1:
            print(f"{pair['dataset']:18s} {pair['preset']:9s} {pair['seeds']} seeds: mean delta "
                  f"{pair['mean_delta']:+.4f} (float32 Dice spread between seeds "
                  f"{pair['float32_spread']:.4f})")
    save_result("bf16_correctness", result)
    return result


if __name__ == "__main__":
    main()
