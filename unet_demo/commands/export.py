"""``python -m unet_demo export``: write a model in a deployment format, or a run's bundle.

Formats: keras, savedmodel (a ZIP when --out ends in .zip, else a folder), tflite,
tflite-fp16, tflite-int8 (calibrated on the model's training images) and onnx; ``bundle``
writes a finished run's reproducibility ZIP (``train --from-bundle`` reproduces the run).

After writing, the export is loaded back in its own runtime and checked against Keras on the
model's test split: file size, CPU latency for one image, the largest probability difference
and the test Dice change, and whether the format's tolerance holds (exit code 1 when it does
not). ``--no-check`` skips that; ``--all`` prints the table for every format.

Example:
    $ python -m unet_demo export --model bundled:nuclei --format tflite-int8 --out nuclei.tflite
    $ python -m unet_demo export --run runs/demo --format bundle --out demo_bundle.zip
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from unet_demo.errors import UNetDemoError

BUNDLE = "bundle"


def _format_names() -> tuple[str, ...]:
    from unet_demo.inference.deploy import FORMAT_NAMES

    return (*FORMAT_NAMES, BUNDLE)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` sub-command."""
    parser = subparsers.add_parser(
        "export", help="write a model as SavedModel/TFLite/ONNX, or a run's reproducibility ZIP",
        description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="'bundled:NAME', a run folder or a .keras file")
    source.add_argument("--run", type=Path, help="a finished training run directory")
    parser.add_argument("--format", required=True, metavar="FORMAT",
                        help=f"one of: {', '.join(_format_names())}")
    parser.add_argument("--out", type=Path, help="file to write (a folder for an unzipped "
                                                 "SavedModel)")
    parser.add_argument("--no-check", action="store_true",
                        help="skip loading the export back and comparing it with Keras")
    parser.add_argument("--all", action="store_true",
                        help="also measure every other format and print the whole table")
    parser.add_argument("--calibration-images", type=int, default=None, metavar="N",
                        help="training images for int8 calibration (default 64)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary to stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export; 0 when written (and within tolerance), 1 when a check fails, 2 on bad input."""
    names = _format_names()
    if args.format not in names:
        raise UNetDemoError(f"Unknown export format {args.format!r}. Expected one of: "
                            f"{', '.join(names)}.")
    if args.model is None and args.run is None:
        raise UNetDemoError("Give --model bundled:NAME (or a .keras file) or --run DIR: which "
                            "model to export.")
    if args.out is None:
        raise UNetDemoError("Give --out PATH: where to write the export.")
    if args.calibration_images is not None and args.calibration_images < 1:
        raise UNetDemoError("--calibration-images must be at least 1. Received: "
                            f"{args.calibration_images}.")
    if args.format == BUNDLE:
        return export_bundle(args)
    return export_model(args)


def export_bundle(args: argparse.Namespace) -> int:
    """Write a finished run's reproducibility bundle to ``--out``."""
    from unet_demo.inference.deploy import check_writable
    from unet_demo.training.bundle import build_bundle

    if args.run is None:
        raise UNetDemoError("--format bundle needs --run DIR (a finished training run): a "
                            "bundled model has no run to reproduce.")
    check_writable(args.out)
    data = build_bundle(args.run)
    try:
        args.out.write_bytes(data)
    except OSError as error:
        raise UNetDemoError(f"Cannot write the bundle to {args.out}: {error.strerror}. Pick a "
                            "folder you can write to.") from None
    if args.json:
        print(json.dumps({"format": BUNDLE, "out": str(args.out), "size_bytes": len(data)},
                         indent=2))
    else:
        print(f"wrote {args.out} ({len(data) / 1e6:.2f} MB); reproduce with: python -m "
              f"unet_demo train --from-bundle {args.out} --out runs/reproduced")
    return 0


def _open(args: argparse.Namespace):
    from unet_demo.inference.registry import open_model

    if args.run is not None:
        from unet_demo.training import rundir

        info = rundir.load_run(args.run)
        if not (info.path / rundir.MODEL_FILE).is_file():
            raise UNetDemoError(f"Run {info.run_id} has no {rundir.MODEL_FILE} ({info.status}); "
                                "wait for it to finish or train it again.")
        return open_model(str(info.path))
    return open_model(args.model)


def export_model(args: argparse.Namespace) -> int:
    """Write one format, then (unless --no-check) compare it, or all formats, with Keras."""
    from unet_demo.evaluation.deployment import compare_formats, markdown_table, source_keras_file
    from unet_demo.inference import deploy

    deploy.check_writable(args.out)
    handle = _open(args)
    limit = args.calibration_images or deploy.CALIBRATION_IMAGES
    calibration = deploy.calibration_images(handle, limit) if args.format == "tflite-int8" \
        else None
    written = deploy.write_export(handle.shared.keras_model, args.format, args.out,
                                  keras_file=source_keras_file(handle), calibration=calibration)
    summary = {"model": handle.model_id, "format": args.format, "out": str(written)}
    passed = True
    if not args.no_check:
        formats = deploy.FORMAT_NAMES if args.all else (args.format,)
        with tempfile.TemporaryDirectory(prefix="unet_demo_export_check_") as work:
            comparison = compare_formats(handle, formats, folder=work, calibration_limit=limit,
                                         exported={args.format: written})
        summary.update(comparison.to_dict())
        passed = all(report.passed for report in comparison.reports)
        summary["within_tolerance"] = passed
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(f"wrote {written} ({args.format}) from {handle.model_id}")
        if not args.no_check:
            print(f"\nChecked on {comparison.test_images} test image(s) of "
                  f"{comparison.dataset} (Keras test Dice {comparison.keras_test_dice:.4f}; "
                  f"latency on {comparison.cpu}):\n")
            print(markdown_table(comparison.reports))
            print(f"\nKeras against itself: its probabilities move by up to "
                  f"{comparison.keras_batch_difference:.2g} when the batch size changes from 8 "
                  "to 1 (float32 rounding); a float32 export cannot agree more closely than "
                  "that.")
        print("\nEducation and research only, not for diagnosis.")
    if not passed:
        failed = [r.format for r in comparison.reports if not r.passed]
        print(f"error: {', '.join(failed)} differ(s) from Keras by more than the tolerance; "
              "see the table. Use another format.", file=sys.stderr)
        return 1
    return 0
