"""Skip-connection ablation on a split: the Dice of a trained U-Net with skips switched off.

The network keeps its trained weights; at inference the skip entering one decoder level (or
every level) is replaced by zeros, or by each channel's spatial mean
(`unet_demo.inference.activations.ablated_model`). A network trained *with* skips is being
deprived of them here, so the drop measures how much its decoder relies on each skip, not how
well a U-Net trained without skips would do.

Images are prepared exactly as for evaluation (`prepare_batch` with the model's recorded
normalisation and size), labels come from `unet_demo.inference.labels`, Dice from
`unet_demo.evaluation.scores`.

Example:
    >>> from unet_demo.inference.registry import open_model
    >>> rows = skip_ablation_scores(open_model("bundled:nuclei"), "nuclei", "test", limit=2)
    >>> [row["ablated"] for row in rows]
    ['none', 'level 0', 'level 1', 'level 2', 'all']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from unet_demo.data.preprocess import prepare_batch
from unet_demo.data.sources import load_split_arrays
from unet_demo.errors import UNetDemoError
from unet_demo.evaluation.scores import mean_metrics, per_image_metrics
from unet_demo.inference.activations import predict_ablated, unet_anatomy
from unet_demo.inference.labels import labels_from_probabilities


def ablation_settings(depth: int) -> list[tuple[str, tuple[int, ...]]]:
    """(label, levels) for the intact model, each skip alone, and all skips.

    Example:
        >>> ablation_settings(2)
        [('none', ()), ('level 0', (0,)), ('level 1', (1,)), ('all', (0, 1))]
    """
    return ([("none", ())] + [(f"level {level}", (level,)) for level in range(depth)]
            + [("all", tuple(range(depth)))])


def ablation_dice(model, images: np.ndarray, masks: np.ndarray, num_classes: int,
                  levels: Sequence[int], mode: str = "zeros", threshold: float = 0.5,
                  batch_size: int = 8) -> tuple[float, np.ndarray]:
    """(mean Dice, predicted labels) of the model with the skips at ``levels`` switched off.

    Args:
        model: the Keras U-Net.
        images: prepared inputs (N, H, W, C).
        masks: truth labels (N, H, W) on the same grid.
        num_classes: the model's class count (1 = sigmoid).
        levels: skip levels to switch off (empty = intact).
        mode: "zeros" or "mean".
        threshold: sigmoid cut.
        batch_size: images per model call.
    """
    probabilities = predict_ablated(model, images, levels, mode, batch_size=batch_size)
    labels = labels_from_probabilities(probabilities, num_classes, threshold)
    rows = per_image_metrics(masks, labels, num_classes, distances=False)
    return float(mean_metrics(rows)["dice"]), labels


def skip_ablation_scores(handle: Any, dataset: str, split: str = "test", *, mode: str = "zeros",
                         limit: int | None = None, threshold: float = 0.5,
                         batch_size: int = 8) -> list[dict[str, Any]]:
    """Mean Dice on a split for the intact model, each skip switched off alone, and all off.

    Args:
        handle: an opened model (`unet_demo.inference.registry.ModelHandle`).
        dataset: bundled dataset name or "upload:<id>".
        split: "train", "val" or "test".
        mode: "zeros" or "mean" (what replaces a switched-off skip).
        limit: score only the first this many images (None = all).
        threshold: sigmoid cut.
        batch_size: images per model call.

    Returns:
        one row per setting: ``ablated`` ("none", "level L", "all"), ``levels``, ``dice``,
        ``drop`` (intact Dice minus this Dice), ``images``, ``split``, ``mode``.
    """
    images, masks, _ids = load_split_arrays(dataset, split)
    if limit is not None:
        images, masks = images[:limit], masks[:limit]
    if len(images) == 0:
        raise UNetDemoError(f"The {split} split of {dataset!r} has no images; pick another split.")
    height, width, channels = handle.input_shape
    prepared, labels = prepare_batch(images, masks, size=(height, width), channels=channels,
                                     normalization=handle.normalization)
    model = handle.shared.keras_model
    depth = unet_anatomy(model).depth
    rows: list[dict[str, Any]] = []
    for label, levels in ablation_settings(depth):
        dice, _ = ablation_dice(model, prepared, labels, handle.num_classes, levels, mode,
                                threshold, batch_size)
        rows.append({"ablated": label, "levels": list(levels), "dice": dice,
                     "images": int(len(prepared)), "split": split, "mode": mode})
    for row in rows:
        row["drop"] = rows[0]["dice"] - row["dice"]
    return rows
