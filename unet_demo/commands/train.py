"""``python -m unet_demo train``: train a U-Net on a bundled or uploaded dataset.

The run directory (``--out``) gets config.json, history.csv, checkpoints, snapshots,
model.keras, metrics.json and model_card.md (see `unet_demo.training.rundir`). Progress is
printed one line per epoch, in the words of the Train page (`unet_demo.training.live`); Ctrl-C
stops after the current batch, and running the same command again resumes from the last
complete epoch.

Example:
    $ python -m unet_demo train --dataset brain_skullstrip --preset classroom --out runs/demo
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from unet_demo.config import LOSSES, OPTIMIZERS, SCHEDULES, VARIANTS
from unet_demo.errors import UNetDemoError
from unet_demo.training.presets import PRESET_NAMES

# (flag, section, field, type) of the command-line overrides.
OVERRIDES = (
    ("--epochs", "train", "epochs", int),
    ("--batch-size", "train", "batch_size", int),
    ("--learning-rate", "train", "learning_rate", float),
    ("--loss", "train", "loss", str),
    ("--optimizer", "train", "optimizer", str),
    ("--schedule", "train", "schedule", str),
    ("--patience", "train", "early_stopping_patience", int),
    ("--seed", "train", "seed", int),
    ("--max-train-images", "data", "max_train_images", int),
    ("--image-size", "data", "image_size", int),
    ("--variant", "model", "variant", str),
    ("--depth", "model", "depth", int),
    ("--base-filters", "model", "base_filters", int),
    ("--normalization", "model", "normalization", str),
)
CHOICES = {"loss": LOSSES, "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "variant": VARIANTS}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    parser = subparsers.add_parser("train", help="train a U-Net on a dataset",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="bundled dataset name or 'upload:<id>'")
    parser.add_argument("--preset", default=PRESET_NAMES[0], choices=PRESET_NAMES,
                        help=f"starting settings (default {PRESET_NAMES[0]})")
    parser.add_argument("--config", type=Path,
                        help="a run config.json to start from instead of a preset")
    parser.add_argument("--out", required=True, type=Path, help="run directory to write")
    for flag, _, field, kind in OVERRIDES:
        parser.add_argument(flag, type=kind, choices=CHOICES.get(field), default=None,
                            help=f"override {field}")
    augment = parser.add_mutually_exclusive_group()
    augment.add_argument("--augment", dest="augment", action="store_true", default=None,
                         help="use the preset's augmentation")
    augment.add_argument("--no-augment", dest="augment", action="store_false",
                         help="train without augmentation")
    parser.add_argument("--fresh", action="store_true",
                        help="do not resume; refuse if --out already holds a run")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def build_spec(args: argparse.Namespace):
    """The RunSpec from --config or the preset, with the command-line overrides applied."""
    from unet_demo.training.presets import get_preset
    from unet_demo.training.spec import RunSpec

    if args.config is not None:
        try:
            spec = RunSpec.from_json(Path(args.config).read_text(encoding="utf-8"))
        except OSError as error:
            raise UNetDemoError(f"Cannot read --config {args.config}: {error}.") from None
        if args.dataset:
            spec = spec.replace(data=spec.data.replace(dataset=args.dataset))
    elif args.dataset:
        spec = get_preset(args.dataset, args.preset)
    else:
        raise UNetDemoError("Give --dataset NAME (see `python -m unet_demo datasets`) or "
                            "--config path/to/config.json.")
    changes: dict[str, dict] = {"data": {}, "model": {}, "train": {}}
    for flag, section, field, _ in OVERRIDES:
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            changes[section][field] = value
    if args.augment is not None:
        changes["train"]["augment"] = args.augment
    return spec.replace(**{section: getattr(spec, section).replace(**values)
                           for section, values in changes.items() if values})


def event_printer(stream=None):
    """An ``on_event`` callback that prints each event's `live.event_lines` to ``stream``.

    Args:
        stream: where to print (default: ``sys.stderr`` at call time).

    Example:
        >>> import io
        >>> from unet_demo.training.events import Stopped
        >>> out = io.StringIO()
        >>> event_printer(out)(Stopped(epoch=1, batch=2))
        >>> out.getvalue().split(".")[0]
        'Stopped during epoch 1 after batch 2'
    """
    from unet_demo.training.live import LiveRun, event_lines

    live = LiveRun("cli")

    def print_event(event) -> None:
        for line in event_lines(live, [event]):
            print(line, file=stream or sys.stderr, flush=True)

    return print_event


def run(args: argparse.Namespace) -> int:
    """Train; 0 when finished, 130 when stopped with Ctrl-C, 1 on failure."""
    from unet_demo.training import rundir
    from unet_demo.training.runner import run_training

    spec = build_spec(args)
    out = Path(args.out)
    if args.fresh and (out / rundir.STATE_FILE).exists():
        raise UNetDemoError(f"{out} already holds a training run; pick another --out or drop "
                            "--fresh to resume it.")
    stop = {"requested": False}

    def request_stop(signum, frame):
        stop["requested"] = True

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        run_training(spec, out, should_stop=lambda: stop["requested"], on_event=event_printer(),
                     resume=not args.fresh)
    finally:
        signal.signal(signal.SIGINT, previous)
    info = rundir.load_run(out)
    if args.json:
        print(json.dumps({"run_dir": str(out), "status": info.status, "metrics": info.metrics},
                         indent=2, default=str))
    else:
        test = info.metrics.get("test") or {}
        print(f"{info.status}: {out} (test Dice {test.get('dice', float('nan')):.4f})")
    return 130 if info.status == "stopped" else 0
