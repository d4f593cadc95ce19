"""``python -m unet_demo summary``: parameters, FLOPs, memory and shapes of a configured U-Net.

Options set fields of UNetConfig; the ones left out keep their defaults, or those of
``--seed-model`` (chapter4, chapter8, notebook) when one is named. Invalid values are refused
with a message that names the valid choices (e.g. input sizes not divisible by 2**depth).

Example:
    $ python -m unet_demo summary --seed-model chapter8 --json
    $ python -m unet_demo summary --variant attention --depth 4 --input-size 256 --norm group
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from unet_demo.config import (
    ACTIVATIONS,
    BACKBONES,
    DROPOUT_PLACES,
    INITIALIZERS,
    INTERPOLATIONS,
    NORMALIZATIONS,
    UPSAMPLINGS,
    VARIANTS,
    UNetConfig,
)
from unet_demo.errors import UNetDemoError

# command-line option -> UNetConfig field
_FIELD_OPTIONS: dict[str, str] = {
    "variant": "variant",
    "depth": "depth",
    "base_filters": "base_filters",
    "filter_growth": "filter_growth",
    "input_height": "input_height",
    "input_width": "input_width",
    "input_depth": "input_depth",
    "channels": "input_channels",
    "classes": "num_classes",
    "kernel_size": "kernel_size",
    "convs_per_block": "convs_per_block",
    "norm": "normalization",
    "dropout": "dropout_rate",
    "dropout_where": "dropout_where",
    "l1": "l1",
    "l2": "l2",
    "upsampling": "upsampling",
    "interpolation": "interpolation",
    "activation": "activation",
    "initializer": "kernel_initializer",
    "backbone": "backbone",
    "encoder_weights": "encoder_weights",
}


def _choices(options: tuple[str, ...]) -> str:
    return "|".join(options)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``summary`` sub-command."""
    parser = subparsers.add_parser(
        "summary",
        help="print parameters, FLOPs, memory and shapes of a U-Net config",
        description=__doc__.splitlines()[0],
    )
    add = parser.add_argument
    add("--seed-model", help="start from a seed model: chapter4|chapter8|notebook")
    add("--variant", help=_choices(VARIANTS))
    add("--depth", type=int, help="number of poolings, 1-5")
    add("--base-filters", type=int, help="filters at the top level")
    add("--filter-growth", type=float, help="filter multiplier per level (2.0)")
    add("--input-size", type=int, help="square input side (sets height and width)")
    add("--input-height", type=int)
    add("--input-width", type=int)
    add("--input-depth", type=int, help="slices, unet3d only")
    add("--channels", type=int, help="input channels (1 grey, 3 RGB)")
    add("--classes", type=int, help="output classes (1 = sigmoid, >1 = softmax)")
    add("--kernel-size", type=int)
    add("--convs-per-block", type=int)
    add("--norm", help=_choices(NORMALIZATIONS))
    add("--dropout", type=float, help="dropout rate, 0 disables")
    add("--dropout-where", help=_choices(DROPOUT_PLACES))
    add("--l1", type=float, help="L1 weight decay")
    add("--l2", type=float, help="L2 weight decay")
    add("--upsampling", help=_choices(UPSAMPLINGS))
    add("--interpolation", help=_choices(INTERPOLATIONS))
    add("--activation", help=_choices(ACTIVATIONS))
    add("--initializer", help=_choices(INITIALIZERS))
    add("--deep-supervision", action="store_true", help="unetpp: average all nested heads")
    add("--backbone", help=f"pretrained only: {_choices(BACKBONES)}")
    add("--encoder-weights", help="pretrained only: imagenet|none (never downloaded)")
    add("--freeze-encoder", action="store_true", help="pretrained only: freeze the backbone")
    add("--batch-size", type=int, default=8, help="batch for the memory figures (default 8)")
    add("--keras-summary", action="store_true", help="also print Keras' layer table")
    add("--export-code", action="store_true", help="print the standalone Keras code instead")
    add("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> UNetConfig:
    """Return the UNetConfig described by the parsed options.

    Args:
        args: parsed ``summary`` options.

    Example:
        >>> ns = argparse.Namespace(seed_model="chapter8", input_size=None, deep_supervision=False,
        ...                         freeze_encoder=False, **{k: None for k in _FIELD_OPTIONS})
        >>> config_from_args(ns).base_filters
        64
    """
    base = UNetConfig()
    if args.seed_model:
        from unet_demo.models.seeds import seed_config

        base = seed_config(args.seed_model)
    changes: dict[str, Any] = {}
    if args.input_size is not None:
        changes["input_height"] = changes["input_width"] = args.input_size
    for option, field in _FIELD_OPTIONS.items():
        value = getattr(args, option)
        if value is not None:
            changes[field] = value
    if args.deep_supervision:
        changes["deep_supervision"] = True
    if args.freeze_encoder:
        changes["freeze_encoder"] = True
    try:
        return base.replace(**changes)
    except TypeError as error:  # a value of the wrong type slipped past argparse
        raise UNetDemoError(f"Invalid model option: {error}.") from None


def _text_report(stats, cfg: UNetConfig, notice: str | None) -> str:
    from unet_demo.models.stats import format_bytes

    lines = [
        f"U-Net variant {stats.variant}: input {stats.input_shape} -> output {stats.output_shape}",
        f"  parameters            {stats.params:,} ({stats.trainable_params:,} trainable, "
        f"{stats.non_trainable_params:,} non-trainable)",
        f"  forward FLOPs/image   {stats.flops / 1e9:,.3f} GFLOPs (multiply-add = 2 FLOPs)",
        f"  weights               {format_bytes(stats.weights_bytes)}",
        f"  activations, batch {stats.batch_size:<3}training {format_bytes(stats.training_activation_bytes)}"
        f", inference peak {format_bytes(stats.inference_activation_bytes)}",
        f"  training total        {format_bytes(stats.training_total_bytes)} "
        "(weights, gradients, Adam moments, activations)",
        f"  receptive field       {stats.receptive_field} px",
        "  level  encoder              decoder              filters  skip",
    ]
    for level in stats.levels:
        encoder = "x".join(map(str, level.encoder_shape)) if level.encoder_shape else "-"
        decoder = "x".join(map(str, level.decoder_shape)) if level.decoder_shape else "-"
        lines.append(f"  {level.level:<6} {encoder:<20} {decoder:<20} {level.filters:<8} "
                     f"{level.skip}")
    if notice:
        lines.append(f"note: {notice}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the stats (or code) of the configured model; return 0."""
    cfg = config_from_args(args)
    if args.export_code:
        from unet_demo.models.export import export_keras_code

        print(export_keras_code(cfg))
        return 0
    from unet_demo.models.checks import encoder_weights_notice
    from unet_demo.models.stats import architecture_stats

    stats = architecture_stats(cfg, batch_size=args.batch_size)
    notice = encoder_weights_notice(cfg)
    if args.json:
        data = stats.to_dict()
        data["memory"] = {
            "batch_size": stats.batch_size,
            "weights_bytes": stats.weights_bytes,
            "training_activation_bytes": stats.training_activation_bytes,
            "inference_activation_bytes": stats.inference_activation_bytes,
            "training_total_bytes": stats.training_total_bytes,
        }
        data["flops_convention"] = "forward pass per image; one multiply-add = 2 FLOPs"
        data["config"] = cfg.to_dict()
        data["notice"] = notice
        print(json.dumps(data))
    else:
        print(_text_report(stats, cfg, notice))
    if args.keras_summary and not args.json:
        from unet_demo.models.builder import build_unet, summary_text

        print(summary_text(build_unet(cfg, load_weights=False)))
    return 0
