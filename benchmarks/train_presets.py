"""Time a training preset end to end and print its test scores (the presets' evidence).

Usage:
    .venv/bin/python benchmarks/train_presets.py brain_skullstrip classroom
    .venv/bin/python benchmarks/train_presets.py nuclei quality --out /tmp/nuclei_q

Prints one line per epoch and a JSON summary: wall seconds from process start (TensorFlow
import included), training seconds, epochs, validation and test Dice. Run it on an otherwise
idle machine for figures worth quoting. Education and research only, not for diagnosis.
"""

from __future__ import annotations

import time

START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from unet_demo.training import events as ev
    from unet_demo.training.presets import PRESET_NAMES, get_preset
    from unet_demo.training.rundir import read_json
    from unet_demo.training.runner import run_training

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("preset", choices=PRESET_NAMES)
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: temp)")
    args = parser.parse_args()

    def show(event) -> None:
        if isinstance(event, ev.EpochEnd):
            m = event.metrics
            print(f"epoch {event.epoch}: {event.seconds:.1f} s, loss {m['loss']:.3f}, "
                  f"val_dice {m.get('val_dice') or float('nan'):.3f}, "
                  f"t={time.perf_counter() - START:.0f} s", flush=True)

    out = args.out or Path(tempfile.mkdtemp(prefix="preset-bench-"))
    run_training(get_preset(args.dataset, args.preset), out, on_event=show, resume=False)
    metrics = read_json(out / "metrics.json")
    print(json.dumps({
        "dataset": args.dataset, "preset": args.preset,
        "wall_seconds": round(time.perf_counter() - START, 1),
        "train_seconds": metrics.get("train_seconds"), "epochs": metrics.get("epochs_run"),
        "val_dice": (metrics.get("val") or {}).get("dice"),
        "test_dice": (metrics.get("test") or {}).get("dice"), "run_dir": str(out),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
