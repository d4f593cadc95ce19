"""Transfer learning curve: test Dice against the number of training images, scratch vs transfer.

Target task: ``brain_skullstrip`` (Colin27 head, binary brain mask) at 64x64 px. Every run goes
through the app's own training engine (`unet_demo.training.runner.run_training`) with one
model, a classic U-Net (depth 3, 16 base filters, GroupNorm), and differs only in:

* **scratch**: random weights, every layer learns at the base learning rate all along;
* **transfer**: the encoder starts from the shipped encoder ``brain_tissue_classic16``
  (pretrained on the brain_tissue training split: another template, another task; see
  scripts/pretrain_encoder.py), and the guide's schedule runs: the first half of the epochs
  train the decoder with the encoder frozen, then the deepest encoder level (the bottleneck)
  is unfrozen and the rest trains at a tenth of the learning rate.

For each training-set size N (drawn from the training split with the run's seed, the same
images for both arms) both arms get the same epochs: enough for about ``--steps`` optimizer
steps (batch 2), at least 4 epochs. No augmentation, no early stopping: the last epoch's
weights are scored on the full test split (18 slices never trained or validated on).

Example:
    .venv/bin/python benchmarks/transfer_curve.py --sizes 5 10 20 0 --seeds 3
    .venv/bin/python benchmarks/transfer_curve.py --table-from benchmarks/results/transfer_curve*.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine_description, save_result  # noqa: E402
from unet_demo.config import DataConfig, TrainConfig, UNetConfig  # noqa: E402
from unet_demo.training.spec import RunSpec  # noqa: E402

ENCODER = "brain_tissue_classic16"
BATCH = 2
TRAIN_IMAGES_ALL = 101


def epochs_for(count: int, steps: int) -> int:
    """Epochs that give about ``steps`` optimizer steps on ``count`` images (at least 4).

    Example:
        >>> epochs_for(5, 120), epochs_for(101, 120)
        (60, 4)
    """
    return max(4, math.ceil(steps / (count // BATCH)))


def spec_for(arm: str, count: int, seed: int, steps: int) -> RunSpec:
    """The RunSpec of one run: ``arm`` "scratch" or "transfer", ``count`` images (0 = all)."""
    epochs = epochs_for(count or TRAIN_IMAGES_ALL, steps)
    train = TrainConfig(loss="bce_dice", optimizer="adam", learning_rate=3e-3,
                        schedule="cosine", epochs=epochs, batch_size=BATCH, seed=seed)
    if arm == "transfer":
        train = train.replace(init_encoder=ENCODER, frozen_epochs=epochs // 2,
                              unfreeze_lr_factor=0.1)
    elif arm == "encoder_only":  # the shipped encoder, every layer learning from epoch 1
        train = train.replace(init_encoder=ENCODER)
    return RunSpec(data=DataConfig(dataset="brain_skullstrip", image_size=64,
                                   max_train_images=count),
                   model=UNetConfig(variant="classic", depth=3, base_filters=16,
                                    normalization="group"),
                   train=train)


def one_run(spec: RunSpec, folder: Path) -> dict:
    """Train one spec into ``folder``; its test Dice, epochs and seconds."""
    import keras

    from unet_demo.training.runner import run_training

    keras.backend.clear_session()
    start = time.perf_counter()
    run_dir = run_training(spec, folder)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    phases = [json.loads(line)["phase"] for line in (run_dir / "events.jsonl").open()
              if '"PhaseStart"' in line]
    return {"test_dice": metrics["test"].get("dice"), "test_iou": metrics["test"].get("iou"),
            "val_dice": metrics["val"].get("dice"), "epochs": metrics["epochs_run"],
            "phases": phases, "seconds": round(time.perf_counter() - start, 1)}


def table(rows: list[dict]) -> str:
    """Markdown table: mean (min-max) test Dice per size and arm, and paired wins per seed.

    Rows of the "encoder_only" arm (shipped encoder, no freezing) are left out; `extra_arm`
    summarises them.
    """
    sizes = sorted({r["images"] for r in rows}, key=lambda n: n or 10**6)
    lines = ["| training images | epochs | seeds | scratch test Dice | transfer test Dice | "
             "transfer - scratch | transfer better (same seed) |", "|---|---|---|---|---|---|---|"]
    for size in sizes:
        cells, means = [], {}
        for arm in ("scratch", "transfer"):
            values = [r["test_dice"] for r in rows if r["images"] == size and r["arm"] == arm]
            means[arm] = statistics.fmean(values) if values else float("nan")
            cells.append(f"{means[arm]:.3f} ({min(values):.3f}-{max(values):.3f})"
                         if values else "-")
        runs = sum(r["images"] == size and r["arm"] == "scratch" for r in rows)
        epochs = next(r["epochs"] for r in rows if r["images"] == size)
        label = f"all ({TRAIN_IMAGES_ALL})" if size == 0 else str(size)
        dice = {(r["arm"], r["seed"]): r["test_dice"] for r in rows if r["images"] == size}
        pairs = [seed for arm, seed in dice if arm == "scratch" and ("transfer", seed) in dice]
        wins = sum(dice[("transfer", seed)] > dice[("scratch", seed)] for seed in pairs)
        lines.append(f"| {label} | {epochs} | {runs} | {cells[0]} | {cells[1]} | "
                     f"{means['transfer'] - means['scratch']:+.3f} | {wins} of {len(pairs)} |")
    return "\n".join(lines)


def extra_arm(rows: list[dict], arm: str = "encoder_only") -> str:
    """One line per size for ``arm`` against scratch and transfer on the same seeds."""
    lines = []
    for size in sorted({r["images"] for r in rows if r["arm"] == arm}):
        dice = {(r["arm"], r["seed"]): r["test_dice"] for r in rows if r["images"] == size}
        seeds = sorted(seed for a, seed in dice if a == arm)
        values = [dice[(arm, seed)] for seed in seeds]
        lines.append(f"{arm} at {size or 'all'} images, seeds {seeds}: mean "
                     f"{statistics.fmean(values):.3f} ({min(values):.3f}-{max(values):.3f}); "
                     + ", ".join(f"seed {seed}: {dice[(arm, seed)]:.3f} vs scratch "
                                 f"{dice.get(('scratch', seed), float('nan')):.3f} / transfer "
                                 f"{dice.get(('transfer', seed), float('nan')):.3f}"
                                 for seed in seeds))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 20, 0],
                        help="training images per run (0 = all)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per size (1, 2, ...)")
    parser.add_argument("--arms", nargs="+", default=["scratch", "transfer"],
                        choices=["scratch", "transfer", "encoder_only"])
    parser.add_argument("--first-seed", type=int, default=1, help="first seed")
    parser.add_argument("--steps", type=int, default=120, help="optimizer steps per run")
    parser.add_argument("--name", default="transfer_curve", help="results file name")
    parser.add_argument("--table-from", type=Path, nargs="+",
                        help="print the table of these results files instead of training")
    args = parser.parse_args(argv)
    if args.table_from:
        rows = [row for path in args.table_from
                for row in json.loads(path.read_text())["rows"]]
        print(table([r for r in rows if r["arm"] != "encoder_only"]))
        print(extra_arm(rows))
        return 0
    rows = []
    results = Path(__file__).resolve().parent / "results" / f"{args.name}.json"
    with tempfile.TemporaryDirectory() as work:
        for size in args.sizes:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                for arm in args.arms:
                    spec = spec_for(arm, size, seed, args.steps)
                    found = one_run(spec, Path(work) / f"{arm}-{size}-{seed}")
                    rows.append({"arm": arm, "images": size, "seed": seed, **found})
                    print(json.dumps(rows[-1]), flush=True)
                    save_result(args.name, {"rows": rows, "steps": args.steps,
                                            "batch_size": BATCH, "encoder": ENCODER})
    print(table(rows))
    print(f"({machine_description()}; results in {results})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
