"""``python -m unet_demo inspect``: look inside a U-Net for one image (the Inside page's twin).

Writes into ``--out`` one PNG per tensor down the U and back up (encoder, bottleneck, and per
decoder level the up-sampled tensor, the skip it joins and the block output), most active
channels first, plus ``input.png`` and one ``attention_level{L}.png`` per attention gate.
With ``--json`` it prints the layer names, shapes and receptive fields, and the mean Dice on
a split with each skip connection switched off (``--split test``; the model was trained with
its skips, so this measures how much it relies on them).

Example:
    $ python -m unet_demo inspect --model bundled:brain_skullstrip --input slice.png --out inside/ --json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from unet_demo import DISCLAIMER
from unet_demo.errors import UNetDemoError

SPLITS = ("train", "val", "test", "none")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``inspect`` sub-command."""
    parser = subparsers.add_parser(
        "inspect",
        help="feature maps, receptive fields and skip-ablation Dice of a model for one image",
        description=__doc__.splitlines()[0],
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="'bundled:NAME' or a .keras file")
    which.add_argument("--run", type=Path, help="a training run folder (with model.keras)")
    parser.add_argument("--input", required=True, type=Path, metavar="FILE",
                        help="one image file (PNG/JPEG/TIFF/DICOM/NIfTI middle slice)")
    parser.add_argument("--out", required=True, type=Path, help="folder for the PNG grids")
    parser.add_argument("--channels", type=int, default=16,
                        help="channels per grid, most active first (default 16)")
    parser.add_argument("--split", default="test", choices=SPLITS,
                        help="split for the skip-ablation Dice ('none' skips it; default test)")
    parser.add_argument("--dataset", default=None,
                        help="dataset for the ablation Dice (default: the model's own)")
    parser.add_argument("--ablation", default="zeros", choices=("zeros", "mean"),
                        help="what replaces a switched-off skip (default zeros)")
    parser.add_argument("--limit", type=int, default=None,
                        help="score only the first N images of the split")
    parser.add_argument("--json", action="store_true", help="print a JSON summary to stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the grids and print the summary; 0 on success."""
    from unet_demo.inference.registry import open_model

    if args.channels < 1:
        raise UNetDemoError(f"--channels must be at least 1. Received: {args.channels}.")
    if args.limit is not None and args.limit < 1:
        raise UNetDemoError(f"--limit must be at least 1. Received: {args.limit}.")
    handle = open_model(args.run if args.run is not None else args.model)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UNetDemoError(f"Cannot create the output folder {args.out}: {error}.") from None
    summary = inspect_image(handle, args.input, args.out, args.channels)
    summary["skip_ablation"] = _ablation(handle, args)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for layer in summary["layers"]:
        print(f"{layer['role']:>10} {layer['level']}  {layer['name']:<16} "
              f"{'x'.join(map(str, layer['shape'])):>12}  field {layer['receptive_field']:.0f} px"
              f"  -> {layer.get('png', '')}")
    ablation = summary["skip_ablation"]
    if ablation.get("rows"):
        print(f"Skip ablation ({ablation['mode']}) on {ablation['dataset']} {ablation['split']}:")
        for row in ablation["rows"]:
            print(f"  skip off: {row['ablated']:<8} Dice {row['dice']:.3f}")
    elif ablation.get("note"):
        print(ablation["note"])
    print(f"{len(summary['layers'])} tensors written to {args.out}. {DISCLAIMER}")
    return 0


def inspect_image(handle: Any, path: Path, out: Path, channels: int) -> dict[str, Any]:
    """Run one image file through the model and write a PNG per tensor; return the summary.

    Args:
        handle: the opened model.
        path: the image file.
        out: the output folder (exists).
        channels: channels per grid.
    """
    import numpy as np
    from PIL import Image

    from unet_demo.data.preprocess import prepare_image
    from unet_demo.data.readers import read_image_bytes
    from unet_demo.inference.activations import (
        feature_maps,
        rank_channels,
        theoretical_receptive_fields,
        unet_anatomy,
    )
    from unet_demo.plots.images import to_display_rgb
    from unet_demo.plots.inside import channel_grid, heat_overlay

    try:
        data = path.read_bytes()
    except OSError as error:
        raise UNetDemoError(f"Cannot read '{path}': {error.strerror or error}.") from None
    loaded = read_image_bytes(data, path.name)
    height, width, model_channels = handle.input_shape
    image = prepare_image(loaded.pixels, size=(height, width), channels=model_channels,
                          normalization=handle.normalization).model_input
    model = handle.shared.keras_model
    anatomy = unet_anatomy(model)
    maps = feature_maps(model, image)
    fields = theoretical_receptive_fields(model)
    Image.fromarray(to_display_rgb(image)).save(out / "input.png")
    layers = []
    for number, tap in enumerate(anatomy.taps):
        entry = {**tap.to_dict(), "receptive_field": fields[tap.name][0]}
        activation = maps[tap.name]
        if tap.role == "attention":
            alpha = activation[..., 0]
            factor = height // alpha.shape[0]
            full = np.repeat(np.repeat(alpha, factor, axis=0), factor, axis=1)
            picture = heat_overlay(image, full, opacity=0.8, scale=False)
            file = out / f"attention_level{tap.level}.png"
            entry["mean_coefficient"] = float(alpha.mean())
        else:
            order = rank_channels(activation)[:channels]
            picture = channel_grid(activation, order, tile=48)
            file = out / f"{number:02d}_{tap.role}{tap.level}_{tap.name}.png"
            entry["channels_shown"] = [int(c) for c in order]
        Image.fromarray(picture).save(file)
        entry["png"] = file.name
        layers.append(entry)
    return {"model": handle.model_id, "input": str(path), "input_shape": list(image.shape),
            "depth": anatomy.depth, "attention": anatomy.has_attention, "layers": layers}


def _ablation(handle: Any, args: argparse.Namespace) -> dict[str, Any]:
    from unet_demo.evaluation.ablation import skip_ablation_scores

    if args.split == "none":
        return {"note": "Skip ablation not run (--split none)."}
    dataset = args.dataset or handle.dataset
    if not dataset:
        return {"note": "Skip ablation not run: the model's dataset is unknown; pass --dataset."}
    rows = skip_ablation_scores(handle, dataset, args.split, mode=args.ablation, limit=args.limit)
    return {"dataset": dataset, "split": args.split, "mode": args.ablation,
            "trained_with_skips": True, "rows": rows}
