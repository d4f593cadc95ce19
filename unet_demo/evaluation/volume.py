"""Score a 3D U-Net in 3D (Dice, IoU, HD95/ASD in mm) and compare it with slice-by-slice 2D.

The box is predicted cube by cube (`unet_demo.inference.volume3d.sliding_window_probabilities`)
and scored once as one 3D mask, so distances are surface distances in 3D, in millimetres (the
dataset's voxel size), not per-slice figures. `compare_3d_with_slices` runs a 3D model and a
2D model slice by slice (`unet_demo.inference.segment.segment_volume`) on one volume and reports
the time of each, their Dice agreement and, given a reference mask, the Dice and HD95 of each.

Example:
    >>> scores = evaluate_volume_split(lambda cubes: cubes, "brain_volume", "test", (32, 32, 32))
    >>> sorted(scores)[:4], scores["voxels"] > 0
    (['accuracy', 'asd_mm', 'dice', 'hd95_mm'], True)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from unet_demo.data.volumes import load_volume
from unet_demo.evaluation.metrics import binary_scores, dice, hd95
from unet_demo.inference.labels import labels_from_probabilities
from unet_demo.inference.volume3d import segment_volume_3d, sliding_window_probabilities


def evaluate_volume_split(predict_fn: Callable[[np.ndarray], np.ndarray], name: str,
                          split: str, patch: Sequence[int], *, threshold: float = 0.5,
                          batch_size: int = 32) -> dict[str, float]:
    """Dice, IoU, precision, recall, accuracy, HD95 and ASD (mm) of one split box, in 3D.

    Args:
        predict_fn: 3D model callable, (N, d, h, w, 1) -> (N, d, h, w, K).
        name: volume dataset name.
        split: "train", "val" or "test".
        patch: the model's cube (d, h, w).
        threshold: sigmoid cut.
        batch_size: cubes per model call.

    Returns:
        scores, with ``hd95_mm``/``asd_mm`` in mm and ``voxels``/``spacing_mm`` for the record.
    """
    volume = load_volume(name)
    image, mask = volume.region(split)
    probs = sliding_window_probabilities(predict_fn, image, patch, batch_size=batch_size)
    labels = labels_from_probabilities(probs, probs.shape[-1], threshold)
    scores = binary_scores(mask > 0, labels > 0, spacing=volume.spacing)
    result = {key: float(value) for key, value in scores.items() if key not in ("hd95", "asd")}
    result["hd95_mm"] = float(scores["hd95"])
    result["asd_mm"] = float(scores["asd"])
    result["voxels"] = float(mask.size)
    result["spacing_mm"] = float(volume.spacing[0])
    return result


# --------------------------------------------------------------------------- 3D vs 2D

@dataclasses.dataclass(frozen=True)
class Comparison:
    """3D and slice-by-slice 2D segmentations of one volume, side by side.

    Attributes:
        labels_3d, labels_2d: (X, Y, Z) label volumes.
        seconds_3d, seconds_2d: wall time of each (model already loaded).
        agreement_dice: Dice between the two masks.
        dice_3d, dice_2d: Dice against the reference mask (None without one).
        hd95_3d_mm, hd95_2d_mm: HD95 in mm against the reference (None without one).
    """

    labels_3d: np.ndarray
    labels_2d: np.ndarray
    seconds_3d: float
    seconds_2d: float
    agreement_dice: float
    dice_3d: float | None = None
    dice_2d: float | None = None
    hd95_3d_mm: float | None = None
    hd95_2d_mm: float | None = None


def compare_3d_with_slices(volume_model: Any, handle_2d: Any, volume: np.ndarray,
                           zooms: Sequence[float], *, plane: str = "axial",
                           reference: np.ndarray | None = None,
                           region: tuple[slice, ...] | None = None) -> Comparison:
    """Segment one volume with a 3D model and slice by slice with a 2D model; compare.

    Args:
        volume_model: the 3D model (`open_volume_model`).
        handle_2d: an opened 2D model (`unet_demo.inference.registry.open_model`).
        volume: (X, Y, Z) RAS+ voxels.
        zooms: voxel size in mm.
        plane: slicing plane of the 2D model.
        reference: optional (X, Y, Z) true mask; adds Dice and HD95 of each.
        region: optional box where the scores are computed (e.g. the held-out test box).
    """
    from unet_demo.inference.segment import segment_volume

    start = time.perf_counter()
    labels_3d, _ = segment_volume_3d(
        volume_model.predict_fn(), volume, patch=volume_model.patch,
        num_classes=volume_model.num_classes, zooms=zooms, model_spacing=volume_model.spacing,
        normalization=volume_model.normalization)
    seconds_3d = time.perf_counter() - start
    start = time.perf_counter()
    labels_2d, _ = segment_volume(
        handle_2d.predict_fn(), volume, plane=plane, input_shape=handle_2d.input_shape,
        num_classes=handle_2d.num_classes, zooms=zooms, normalization=handle_2d.normalization)
    seconds_2d = time.perf_counter() - start
    box = region or tuple(slice(None) for _ in range(3))
    one, two = labels_3d[box] > 0, labels_2d[box] > 0
    scores: dict[str, float | None] = {}
    if reference is not None:
        truth = np.asarray(reference)[box] > 0
        spacing = [float(z) for z in zooms[:3]]
        scores = {"dice_3d": dice(truth, one), "dice_2d": dice(truth, two),
                  "hd95_3d_mm": hd95(truth, one, spacing), "hd95_2d_mm": hd95(truth, two, spacing)}
    return Comparison(labels_3d, labels_2d, seconds_3d, seconds_2d, dice(one, two), **scores)
