"""Score models on the external test sets (benchmarks/external/), next to their bundled test Dice.

For every bundled dataset that an external set can score, the script opens the model (the
bundled one by default, or any model.keras given with ``--model DATASET=PATH``), scores it on
its own bundled test split and on each external set that lists the dataset, and prints one
row per pair. For a bundled model (a folder with its ``ood_features.npz``) the OOD column is the
share of external images its out-of-distribution detector warns about (score > 1). ``--save NAME`` writes the rows to benchmarks/results/NAME.json.

Example:
    .venv/bin/python benchmarks/external_eval.py --save external_baseline
    .venv/bin/python benchmarks/external_eval.py --model brain_tissue=/tmp/run/model.keras
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine_description, save_result  # noqa: E402


def score_model(dataset: str, model: str) -> list[dict]:
    """Rows for one model: its bundled test split, then every external set for its dataset.

    Args:
        dataset: bundled dataset name.
        model: "bundled:<dataset>" or a model.keras path.
    """
    from unet_demo.commands.evaluate import score_model_on_split
    from unet_demo.evaluation.external import external_sets_for, score_external
    from unet_demo.inference.registry import open_model

    handle = open_model(model)
    bundled = score_model_on_split(handle, dataset, "test", 0.5, True)
    rows = [{"dataset": dataset, "model": model, "set": f"{dataset}/test", "rule": "own",
             "num_images": len(bundled.rows), **bundled.mean}]
    from unet_demo.inference import ood

    detector = ood.load_feature_detector(handle.source) if handle.source.is_dir() else None
    for name in external_sets_for(dataset):
        row = {"dataset": dataset, "model": model, **score_external(handle, name)}
        if detector is not None:  # how often Segment would show its out-of-distribution notice
            from benchmarks.ood_matrix import score_images
            from unet_demo.evaluation.external import load_external_set

            images = list(load_external_set(name).images)
            scores, stats = score_images(handle, detector, images)
            row["ood_warned"] = float((scores > 1).mean())
            row["ood_warned_image_stats"] = float(stats.mean())
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Score and print; return 0."""
    from unet_demo.evaluation.external import external_sets_for

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=None,
                        help="bundled datasets (default: every one an external set scores)")
    parser.add_argument("--model", action="append", default=[],
                        help="DATASET=PATH: score this model.keras instead of the bundled one")
    parser.add_argument("--save", default="", help="write benchmarks/results/NAME.json")
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.model)
    names = args.datasets or [d for d in ("brain_skullstrip", "brain_tissue", "nuclei",
                                          "synthetic_lesions") if external_sets_for(d)]
    rows = []
    for dataset in names:
        rows += score_model(dataset, overrides.get(dataset, f"bundled:{dataset}"))
    print(f"{'model':<40} {'set':<28} {'n':>3} {'Dice':>6} {'IoU':>6} {'HD95px':>7} {'OOD':>5}")
    for row in rows:
        print(f"{row['model'][-40:]:<40} {row['set']:<28} {row['num_images']:>3} "
              f"{row['dice']:6.3f} {row['iou']:6.3f} {row.get('hd95', float('nan')):7.2f} "
              f"{row.get('ood_warned', float('nan')):5.2f}")
    if args.save:
        print(save_result(args.save, {"machine": machine_description(), "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
