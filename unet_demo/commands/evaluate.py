"""``python -m unet_demo evaluate``: per-image and mean Dice/IoU/precision/recall/HD95.

Three ways to say what to score:

* ``--run DIR [--split test]``: a training run on a split of the dataset it was trained on
  (images prepared exactly as in training);
* ``--model bundled:NAME|RUN_DIR|FILE.keras --dataset NAME [--split test]``: any model on a
  dataset split, each image prepared with the model's recorded normalisation and input size
  (`unet_demo.data.preprocess.prepare_image`, as in training and ``predict``);
* ``--model ... --images DIR --masks DIR``: any model on a folder of images and masks with
  matching names (each image goes through the ``predict`` path at its own size).

Example:
    $ python -m unet_demo evaluate --run runs/demo --split test --json
    $ python -m unet_demo evaluate --model bundled:nuclei --dataset nuclei
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from unet_demo.data.bundled import SPLITS
from unet_demo.errors import UNetDemoError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` sub-command."""
    parser = subparsers.add_parser("evaluate", help="score a model against ground-truth masks",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a training run directory")
    parser.add_argument("--model", help="'bundled:NAME', a run folder or a .keras file")
    parser.add_argument("--dataset", help="bundled dataset to score --model on")
    parser.add_argument("--split", default="test", choices=SPLITS,
                        help="dataset split (default test)")
    parser.add_argument("--images", type=Path, help="folder of images (with --masks)")
    parser.add_argument("--masks", type=Path, help="folder of masks named like the images")
    parser.add_argument("--threshold", type=float, default=0.5, help="sigmoid cut (default 0.5)")
    parser.add_argument("--no-distances", action="store_true", help="skip HD95/ASD (faster)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def score_model_on_split(handle, dataset: str, split: str, threshold: float,
                         distances: bool):
    """Score an opened model on a dataset split, prepared with the model's own input settings.

    Args:
        handle: `unet_demo.inference.registry.ModelHandle`.
        dataset: bundled dataset name or "upload:<id>".
        split: "train", "val" or "test".
        threshold: sigmoid cut.
        distances: include HD95/ASD.
    """
    from unet_demo.evaluation.evaluate import evaluate_predictions, predict_split

    prediction = predict_split(handle, dataset, split)
    return evaluate_predictions(prediction.probabilities, prediction.masks,
                                max(handle.num_classes, 2), threshold, ids=prediction.ids,
                                distances=distances)


def evaluate_args(args: argparse.Namespace) -> dict[str, Any]:
    """Run the evaluation the arguments ask for; returns {"source", "rows", "mean"}."""
    distances = not args.no_distances
    if args.run is not None:
        if args.model or args.images or args.masks:
            raise UNetDemoError("Use either --run or --model, not both.")
        from unet_demo.evaluation.evaluate import evaluate_model_on_arrays
        from unet_demo.training.rundir import load_model
        from unet_demo.training.runner import load_spec, prepare_split

        spec = load_spec(args.run)
        model = load_model(args.run)
        if spec.model.variant == "unet3d":  # the split's whole box, scored once in 3D
            from unet_demo.evaluation.volume import evaluate_volume_split

            cfg = spec.model
            scores = evaluate_volume_split(
                lambda cubes: np.asarray(model(cubes, training=False)), spec.data.dataset,
                args.split, (cfg.input_depth, cfg.input_height, cfg.input_width),
                threshold=args.threshold)
            row = {"id": f"{args.split} box (3D)", **scores}
            return {"source": f"run {args.run} on {spec.data.dataset}/{args.split} in 3D, "
                              f"HD95/ASD in mm", "rows": [row], "mean": scores}
        images, masks, ids = prepare_split(spec, args.split)
        result = evaluate_model_on_arrays(
            lambda batch: np.asarray(model(batch, training=False)), images, masks,
            max(spec.model.num_classes, 2), args.threshold, ids=ids, distances=distances,
            batch_size=16)
        source = f"run {args.run} on {spec.data.dataset}/{args.split}"
    elif args.model:
        from unet_demo.inference.registry import open_model

        handle = open_model(args.model)
        if args.images or args.masks:
            if not (args.images and args.masks):
                raise UNetDemoError("--images and --masks go together; give both folders.")
            from unet_demo.evaluation.evaluate import evaluate_folders

            result = evaluate_folders(handle, args.images, args.masks, threshold=args.threshold)
            source = f"{args.model} on {args.images}"
        else:
            dataset = args.dataset or handle.dataset
            if not dataset:
                raise UNetDemoError("Say what to score on: --dataset NAME or --images/--masks.")
            result = score_model_on_split(handle, dataset, args.split, args.threshold, distances)
            source = f"{args.model} on {dataset}/{args.split}"
    else:
        raise UNetDemoError("Give --run DIR, or --model with --dataset or --images/--masks.")
    return {"source": source, "rows": result.rows, "mean": result.mean}


def run(args: argparse.Namespace) -> int:
    """Print per-image and mean metrics; returns 0."""
    from unet_demo.evaluation.scores import format_metrics_text

    outcome = evaluate_args(args)
    if args.json:
        print(json.dumps(outcome, indent=2, default=float, allow_nan=True))
    else:
        print(outcome["source"])
        keys = ("dice", "iou", "precision", "recall") + (() if args.no_distances else ("hd95",))
        if "hd95_mm" in outcome["mean"]:  # a 3D run: one box, distances in mm
            print("  ".join(f"{key} {outcome['mean'][key]:.3f}" for key in
                            ("dice", "iou", "precision", "recall", "hd95_mm", "asd_mm")))
            return 0
        print(format_metrics_text(outcome["rows"], keys))
    return 0
