"""Time to Dice: our classroom preset against the guide's chapter 8 recipe on brain_skullstrip.

Both runs go through the same training engine (`unet_demo.training.runner.run_training`), each
in its own process, on the same split:

* **chapter 8**: the guide's model (128x128x1, filters 64-128-256, transposed convolutions, no
  batch norm, sigmoid) trained as the guide trains it: Adam (learning rate 1e-3), Dice loss,
  batch 8, 20 epochs, no augmentation.
* **classroom**: `get_preset("brain_skullstrip", "classroom")`.

The target is the chapter 8 run's final validation Dice. For each run we record, at the end of
every epoch, the wall-clock seconds and the CPU seconds (user + system, all threads) since the
run started (TensorFlow's import, data preparation and compilation included; the per-machine
speed choice is cached before either run starts). The figure is the ratio of the time
chapter 8 needed to reach its final Dice to the time the classroom preset needed to reach the
same Dice. CPU seconds are quoted beside wall seconds because they barely move when other work
shares the machine.

Example:
    .venv/bin/python benchmarks/time_to_dice.py
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

from benchmarks.common import REPO, save_result  # noqa: E402

DATASET = "brain_skullstrip"


def chapter8_spec():
    """The guide's chapter 8 recipe as a RunSpec for the bundled skull-strip data."""
    from unet_demo.config import DataConfig, TrainConfig
    from unet_demo.models.seeds import seed_config
    from unet_demo.training.spec import RunSpec

    return RunSpec(
        data=DataConfig(dataset=DATASET),
        model=seed_config("chapter8"),
        train=TrainConfig(loss="dice", optimizer="adam", learning_rate=1e-3, schedule="constant",
                          epochs=20, batch_size=8, seed=42),
    )


def classroom_spec():
    """The classroom preset for the bundled skull-strip data."""
    from unet_demo.training.presets import get_preset

    return get_preset(DATASET, "classroom")


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all threads)."""
    times = os.times()
    return times.user + times.system


def run_one(which: str) -> dict:
    """Train one recipe in this process; return its per-epoch timeline."""
    from unet_demo.training import events as ev
    from unet_demo.training.runner import run_training

    spec = chapter8_spec() if which == "chapter8" else classroom_spec()
    timeline: list[dict] = []
    wall_start, cpu_start = time.perf_counter(), cpu_seconds()

    def on_event(event) -> None:
        if isinstance(event, ev.EpochEnd):
            timeline.append({
                "epoch": event.epoch,
                "wall_s": time.perf_counter() - wall_start,
                "cpu_s": cpu_seconds() - cpu_start,
                "val_dice": float(event.metrics.get("val_dice", float("nan"))),
            })

    with tempfile.TemporaryDirectory() as run_dir:
        run_training(spec, Path(run_dir), on_event=on_event, resume=False)
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    return {"recipe": which, "timeline": timeline, "metrics": metrics,
            "params_note": f"{spec.model.level_filters()} filters, batch {spec.train.batch_size}"}


def first_reaching(timeline: list[dict], target: float) -> dict | None:
    """The first epoch whose validation Dice is at least ``target``."""
    return next((row for row in timeline if row["val_dice"] >= target), None)


def spawn(which: str) -> dict:
    """Run one recipe in a fresh Python process and return its result."""
    done = subprocess.run(
        [sys.executable, __file__, "--only", which], cwd=REPO, capture_output=True, text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{which} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    """Run both recipes, print and save the comparison; return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("chapter8", "classroom"), help=argparse.SUPPRESS)
    parser.add_argument("--chapter8-result", type=Path,
                        help="reuse a chapter 8 timeline saved by `--only chapter8` (one JSON line)")
    args = parser.parse_args(argv)
    if args.only:
        print(json.dumps(run_one(args.only)))
        return {}

    # The per-machine speed choice is measured once per machine and cached; settle it here so
    # that neither timed run pays for the micro-benchmark (the first run on a machine would).
    from unet_demo.training.runner import distribution_strategy
    from unet_demo.training.speed import choose_speed

    choice = choose_speed(distribution_strategy()[1])
    print(f"speed setting: {choice.reason}")
    if args.chapter8_result:
        chapter8 = json.loads(args.chapter8_result.read_text().strip().splitlines()[-1])
    else:
        chapter8 = spawn("chapter8")
    classroom = spawn("classroom")
    target = chapter8["timeline"][-1]["val_dice"]
    reference = first_reaching(chapter8["timeline"], target)
    ours = first_reaching(classroom["timeline"], target)
    result = {"target_val_dice": target, "chapter8": chapter8, "classroom": classroom}
    print(f"chapter 8 recipe: final val Dice {target:.4f} after {reference['wall_s']:.0f} s wall "
          f"({reference['cpu_s']:.0f} CPU s)")
    if ours is None:
        best = max(row["val_dice"] for row in classroom["timeline"])
        result["speedup_wall"] = None
        print(f"classroom preset never reached {target:.4f} (best val Dice {best:.4f})")
    else:
        result["speedup_wall"] = reference["wall_s"] / ours["wall_s"]
        result["speedup_cpu"] = reference["cpu_s"] / ours["cpu_s"]
        result["classroom_reached"] = ours
        print(f"classroom preset: reached {ours['val_dice']:.4f} at epoch {ours['epoch']} after "
              f"{ours['wall_s']:.0f} s wall ({ours['cpu_s']:.0f} CPU s)")
        print(f"time to Dice: {result['speedup_wall']:.1f}x faster (wall), "
              f"{result['speedup_cpu']:.1f}x (CPU time)")
    result["classroom_test_dice"] = (classroom["metrics"].get("test") or {}).get("dice")
    result["chapter8_test_dice"] = (chapter8["metrics"].get("test") or {}).get("dice")
    save_result("time_to_dice", result)
    return result


if __name__ == "__main__":
    main()
