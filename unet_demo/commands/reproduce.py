"""``train --from-bundle ZIP``: the bundle's settings for `train`, and the verdict afterwards.

Not a command of its own: `unet_demo.commands.train` calls `bundle_spec` instead of building a
spec from a preset, and `reproduction_report` when the run has finished. The bundle comes from
``python -m unet_demo export --run DIR --format bundle`` (`unet_demo.training.bundle`).

Example:
    $ python -m unet_demo train --from-bundle demo_bundle.zip --out runs/reproduced
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from unet_demo.errors import UNetDemoError

# Options of `train` that would change what is trained; a bundle fixes all of them.
SETTING_OPTIONS = ("dataset", "config", "epochs", "batch_size", "learning_rate", "loss",
                   "optimizer", "schedule", "patience", "seed", "workers", "max_train_images",
                   "image_size", "variant", "depth", "base_filters", "normalization", "augment",
                   "folds")


def bundle_spec(args: argparse.Namespace):
    """The RunSpec of ``args.from_bundle``, after checking the bundle and this machine's data.

    Args:
        args: parsed ``train`` options; none that changes the training may be given.

    Example:
        >>> bundle_spec(argparse.Namespace(from_bundle=Path("b.zip"), epochs=3))
        Traceback (most recent call last):
        ...
        unet_demo.errors.UNetDemoError: --from-bundle reproduces the bundled run exactly, so it cannot be combined with --epochs. Drop them (or use --config to train a changed copy).
    """
    given = [f"--{name.replace('_', '-')}" for name in SETTING_OPTIONS
             if getattr(args, name, None) not in (None, "")]
    if given:
        raise UNetDemoError(f"--from-bundle reproduces the bundled run exactly, so it cannot be "
                            f"combined with {', '.join(given)}. Drop them (or use --config to "
                            "train a changed copy).")
    from unet_demo.training.bundle import check_split, read_bundle

    bundle = read_bundle(Path(args.from_bundle))
    check_split(bundle)
    return bundle.spec


def reproduction_report(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    """Compare the finished run in ``run_dir`` with ``args.from_bundle`` (see `compare_runs`).

    Args:
        args: parsed ``train`` options with ``from_bundle``.
        run_dir: the reproduced run.
    """
    from unet_demo.training.bundle import compare_runs, read_bundle

    return compare_runs(read_bundle(Path(args.from_bundle)), run_dir)
