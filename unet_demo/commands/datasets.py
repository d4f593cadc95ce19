"""``python -m unet_demo datasets``: list the bundled datasets with split counts and classes.

Reads only the dataset cards (and generates the synthetic set's labels to count its classes),
so it runs in well under a second and never imports TensorFlow.

Example:
    $ python -m unet_demo datasets
    $ python -m unet_demo datasets --json
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``datasets`` sub-command.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers``.

    Example:
        >>> from unet_demo.cli import build_parser
        >>> build_parser().parse_args(["datasets", "--json"]).json
        True
    """
    parser = subparsers.add_parser(
        "datasets",
        help="list the bundled datasets (split counts, classes, image size)",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list instead of a table")
    parser.set_defaults(func=run)


def dataset_summaries() -> list[dict[str, Any]]:
    """One plain dict per bundled dataset, in the fixed order of `list_datasets`.

    Example:
        >>> [d["name"] for d in dataset_summaries()][:1]
        ['brain_skullstrip']
    """
    from unet_demo.data.bundled import list_datasets, load_card

    summaries = []
    for info in list_datasets():
        card = load_card(info.name)
        summaries.append({
            "name": info.name,
            "title": info.title,
            "modality": info.modality,
            "task": info.task,
            "num_classes": info.num_classes,
            "class_names": list(info.class_names),
            "image_size": list(info.image_size),
            "channels": info.channels,
            "split_counts": dict(info.split_counts),
            "total_images": info.total_images,
            "class_balance": card["class_balance"],
            "split_rule": card["split_rule"],
            "sources": [f"{s['package']} {s['version']}: {s['file']}" for s in card["sources"]],
        })
    return summaries


def format_table(summaries: list[dict[str, Any]]) -> str:
    """Render the summaries as a fixed-width text table.

    Args:
        summaries: the output of `dataset_summaries`.

    Example:
        >>> format_table(dataset_summaries()).splitlines()[0].split()[:2]
        ['dataset', 'train']
    """
    header = ("dataset", "train", "val", "test", "size", "classes")
    rows = [header]
    for summary in summaries:
        counts = summary["split_counts"]
        height, width = summary["image_size"]
        rows.append((
            summary["name"], str(counts["train"]), str(counts["val"]), str(counts["test"]),
            f"{height}x{width}x{summary['channels']}",
            f"{summary['num_classes']}: " + ", ".join(summary["class_names"]),
        ))
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join(cells + [row[-1]]))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the datasets as a table or as JSON; return 0.

    Args:
        args: parsed arguments with a boolean ``json``.
    """
    summaries = dataset_summaries()
    if args.json:
        print(json.dumps(summaries, indent=2))
    else:
        print(format_table(summaries))
        print("\nCards: sample_data/<name>/README.md (synthetic_lesions: unet_demo/data/synthetic.py)")
    return 0
