"""Segmentation metrics: numpy per-image scores for display, Keras metrics for training.

Overlap metrics come from the pixel counts of one foreground class:
TP (predicted and true), FP (predicted, not true), FN (true, missed), TN (neither).

    dice      = 2 TP / (2 TP + FP + FN)
    iou       = TP / (TP + FP + FN)              (Jaccard index; dice = 2 iou / (1 + iou))
    precision = TP / (TP + FP)                   (how much of the prediction is right)
    recall    = TP / (TP + FN)                   (sensitivity: how much of the truth is found)
    accuracy  = (TP + TN) / (TP + FP + FN + TN)  (misleading when background dominates)

Empty masks (0 / 0) have fixed answers. Both truth and prediction empty: every overlap score
is 1 (nothing to find, nothing found) and HD95/ASD are 0. Exactly one empty: dice, iou,
precision and recall are 0, and HD95/ASD are NaN (there is no surface to measure to; NaN keeps
such images out of NaN-ignoring means instead of inventing a distance).

Distances use scipy.ndimage.distance_transform_edt on the mask surfaces (pixels of the mask
that touch the background, 4-connectivity), in pixels or in mm when a spacing is given.
HD95 is the larger of the two directed 95th percentiles (truth->prediction and
prediction->truth), the convention of MONAI; `hausdorff(..., percentile=100)` is the classic
Hausdorff distance.

Example:
    >>> import numpy as np
    >>> t = np.zeros((8, 8), bool); t[2:6, 2:6] = True
    >>> p = np.zeros((8, 8), bool); p[2:6, 3:7] = True
    >>> round(dice(t, p), 3), round(iou(t, p), 3), hd95(t, p)
    (0.75, 0.6, 1.0)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

# --------------------------------------------------------------------------- counting


@dataclasses.dataclass(frozen=True)
class Counts:
    """Pixel counts of one class: true positives, false positives, false negatives, true negatives."""

    tp: int
    fp: int
    fn: int
    tn: int


def confusion_counts(truth: np.ndarray, prediction: np.ndarray) -> Counts:
    """Count TP/FP/FN/TN of two boolean (or 0/1) masks of the same shape.

    Args:
        truth: ground-truth mask, non-zero = foreground.
        prediction: predicted mask, non-zero = foreground.

    Example:
        >>> confusion_counts(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
        Counts(tp=1, fp=1, fn=1, tn=1)
    """
    t = np.asarray(truth).astype(bool)
    p = np.asarray(prediction).astype(bool)
    if t.shape != p.shape:
        from unet_demo.errors import UNetDemoError

        raise UNetDemoError(
            f"Truth shape {t.shape} and prediction shape {p.shape} differ; they must match."
        )
    tp = int(np.count_nonzero(t & p))
    fp = int(np.count_nonzero(~t & p))
    fn = int(np.count_nonzero(t & ~p))
    return Counts(tp=tp, fp=fp, fn=fn, tn=int(t.size - tp - fp - fn))


def _ratio(numerator: int, denominator: int, both_empty: bool) -> float:
    if denominator == 0:
        return 1.0 if both_empty else 0.0
    return numerator / denominator


def dice_from_counts(c: Counts) -> float:
    """Dice = 2 TP / (2 TP + FP + FN); 1 when both masks are empty."""
    return _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn, c.tp + c.fp + c.fn == 0)


def iou_from_counts(c: Counts) -> float:
    """IoU = TP / (TP + FP + FN); 1 when both masks are empty."""
    return _ratio(c.tp, c.tp + c.fp + c.fn, c.tp + c.fp + c.fn == 0)


def precision_from_counts(c: Counts) -> float:
    """Precision = TP / (TP + FP); 1 when both masks are empty, 0 when only the truth has pixels."""
    return _ratio(c.tp, c.tp + c.fp, c.tp + c.fp + c.fn == 0)


def recall_from_counts(c: Counts) -> float:
    """Recall = TP / (TP + FN); 1 when both masks are empty, 0 when only the prediction has any."""
    return _ratio(c.tp, c.tp + c.fn, c.tp + c.fp + c.fn == 0)


def accuracy_from_counts(c: Counts) -> float:
    """Pixel accuracy = (TP + TN) / all pixels; 1 for an empty image."""
    total = c.tp + c.fp + c.fn + c.tn
    return 1.0 if total == 0 else (c.tp + c.tn) / total


def dice(truth: np.ndarray, prediction: np.ndarray) -> float:
    """Dice coefficient 2|A∩B| / (|A| + |B|) of two binary masks (see module docstring).

    Args:
        truth: ground-truth mask, non-zero = foreground.
        prediction: predicted mask.

    Example:
        >>> dice(np.array([1, 1, 0]), np.array([1, 0, 0]))
        0.6666666666666666
    """
    return dice_from_counts(confusion_counts(truth, prediction))


def iou(truth: np.ndarray, prediction: np.ndarray) -> float:
    """Intersection over union |A∩B| / |A∪B| of two binary masks.

    Args:
        truth: ground-truth mask.
        prediction: predicted mask.

    Example:
        >>> iou(np.array([1, 1, 0]), np.array([1, 0, 0]))
        0.5
    """
    return iou_from_counts(confusion_counts(truth, prediction))


def precision(truth: np.ndarray, prediction: np.ndarray) -> float:
    """Share of predicted pixels that are true: TP / (TP + FP).

    Args:
        truth: ground-truth mask.
        prediction: predicted mask.

    Example:
        >>> precision(np.array([1, 0, 0]), np.array([1, 1, 0]))
        0.5
    """
    return precision_from_counts(confusion_counts(truth, prediction))


def recall(truth: np.ndarray, prediction: np.ndarray) -> float:
    """Share of true pixels that were found: TP / (TP + FN) (sensitivity).

    Args:
        truth: ground-truth mask.
        prediction: predicted mask.

    Example:
        >>> recall(np.array([1, 1, 0]), np.array([1, 0, 0]))
        0.5
    """
    return recall_from_counts(confusion_counts(truth, prediction))


def pixel_accuracy(truth: np.ndarray, prediction: np.ndarray) -> float:
    """Share of pixels whose label matches (works for binary or integer label masks).

    Args:
        truth: ground-truth labels.
        prediction: predicted labels of the same shape.

    Example:
        >>> pixel_accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 2, 1]))
        0.75
    """
    t = np.asarray(truth)
    p = np.asarray(prediction)
    return 1.0 if t.size == 0 else float(np.mean(t == p))


# --------------------------------------------------------------------------- distances


def surface(mask: np.ndarray) -> np.ndarray:
    """Boolean map of the mask pixels that touch background (4-connected) or the image edge.

    Args:
        mask: binary mask (any number of dimensions).

    Example:
        >>> m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
        >>> int(surface(m).sum())
        8
    """
    m = np.asarray(mask).astype(bool)
    if not m.any():
        return m
    structure = ndimage.generate_binary_structure(m.ndim, 1)
    return m & ~ndimage.binary_erosion(m, structure=structure, border_value=0)


def surface_distances(
    from_mask: np.ndarray, to_mask: np.ndarray, spacing: Sequence[float] | None = None
) -> np.ndarray:
    """Distances from each surface pixel of ``from_mask`` to the nearest surface pixel of ``to_mask``.

    Args:
        from_mask: binary mask whose surface points are measured.
        to_mask: binary mask (non-empty) whose surface is the target.
        spacing: pixel size per axis (e.g. mm); None = 1 pixel.

    Example:
        >>> a = np.zeros((4, 6), bool); a[1:3, 0:2] = True
        >>> b = np.zeros((4, 6), bool); b[1:3, 4:6] = True
        >>> surface_distances(a, b).tolist()
        [4.0, 3.0, 4.0, 3.0]
    """
    target = surface(to_mask)
    distance_map = ndimage.distance_transform_edt(~target, sampling=spacing)
    return distance_map[surface(from_mask)].astype(np.float64)


def hausdorff(
    truth: np.ndarray,
    prediction: np.ndarray,
    percentile: float = 100.0,
    spacing: Sequence[float] | None = None,
) -> float:
    """Symmetric percentile Hausdorff distance between mask surfaces.

    max(P_q(d(truth -> prediction)), P_q(d(prediction -> truth))) with q = ``percentile``;
    0 when both masks are empty, NaN when exactly one is empty.

    Args:
        truth: ground-truth mask.
        prediction: predicted mask.
        percentile: 100 = classic Hausdorff distance, 95 = HD95.
        spacing: pixel size per axis; None = pixels.

    Example:
        >>> a = np.zeros((6, 6), bool); a[1:3, 1:3] = True
        >>> hausdorff(a, np.roll(a, 3, axis=1))
        3.0
    """
    t = np.asarray(truth).astype(bool)
    p = np.asarray(prediction).astype(bool)
    if not t.any() and not p.any():
        return 0.0
    if not t.any() or not p.any():
        return math.nan
    forward = np.percentile(surface_distances(t, p, spacing), percentile)
    backward = np.percentile(surface_distances(p, t, spacing), percentile)
    return float(max(forward, backward))


def hd95(truth: np.ndarray, prediction: np.ndarray,
         spacing: Sequence[float] | None = None) -> float:
    """95th-percentile Hausdorff distance (robust to a few stray pixels); see `hausdorff`.

    Args:
        truth: ground-truth mask.
        prediction: predicted mask.
        spacing: pixel size per axis; None = pixels.

    Example:
        >>> a = np.zeros((6, 6), bool); a[1:3, 1:3] = True
        >>> hd95(a, a)
        0.0
    """
    return hausdorff(truth, prediction, 95.0, spacing)


def asd(truth: np.ndarray, prediction: np.ndarray,
        spacing: Sequence[float] | None = None) -> float:
    """Average symmetric surface distance: mean of all surface-to-surface distances, both ways.

    (sum d(truth -> pred) + sum d(pred -> truth)) / (|surface truth| + |surface pred|);
    0 when both masks are empty, NaN when exactly one is empty.

    Args:
        truth: ground-truth mask.
        prediction: predicted mask.
        spacing: pixel size per axis; None = pixels.

    Example:
        >>> a = np.zeros((4, 6), bool); a[1:3, 0:2] = True
        >>> asd(a, np.roll(a, 4, axis=1))
        3.5
    """
    t = np.asarray(truth).astype(bool)
    p = np.asarray(prediction).astype(bool)
    if not t.any() and not p.any():
        return 0.0
    if not t.any() or not p.any():
        return math.nan
    both = np.concatenate([surface_distances(t, p, spacing), surface_distances(p, t, spacing)])
    return float(both.mean())


# --------------------------------------------------------------------------- per image

OVERLAP_METRICS = ("dice", "iou", "precision", "recall")


def binary_scores(truth: np.ndarray, prediction: np.ndarray, *, distances: bool = True,
                  spacing: Sequence[float] | None = None) -> dict[str, float]:
    """Dice, IoU, precision, recall, accuracy (and HD95, ASD) of one binary mask pair.

    Args:
        truth: ground-truth mask.
        prediction: predicted mask.
        distances: also compute HD95 and ASD.
        spacing: pixel size per axis for the distances.

    Example:
        >>> m = np.eye(4, dtype=bool)
        >>> binary_scores(m, m)["dice"]
        1.0
    """
    c = confusion_counts(truth, prediction)
    scores = {
        "dice": dice_from_counts(c),
        "iou": iou_from_counts(c),
        "precision": precision_from_counts(c),
        "recall": recall_from_counts(c),
        "accuracy": accuracy_from_counts(c),
    }
    if distances:
        scores["hd95"] = hd95(truth, prediction, spacing)
        scores["asd"] = asd(truth, prediction, spacing)
    return scores


def multiclass_scores(truth: np.ndarray, prediction: np.ndarray, num_classes: int, *,
                      distances: bool = True,
                      spacing: Sequence[float] | None = None) -> dict[str, object]:
    """Per-class scores of label masks plus their mean over the foreground classes.

    Class c is scored as the binary problem "label == c". The mean skips background (label 0)
    and NaN distances; pixel accuracy is over all labels.

    Args:
        truth: integer labels (H, W).
        prediction: integer labels (H, W).
        num_classes: K; binary tasks may pass 1 or 2.
        distances: also compute HD95 and ASD per class.
        spacing: pixel size per axis.

    Returns:
        {"per_class": {c: scores}, "mean": scores averaged over foreground classes,
         "accuracy": pixel accuracy}

    Example:
        >>> t = np.array([[0, 1], [2, 2]]); p = np.array([[0, 1], [2, 1]])
        >>> round(multiclass_scores(t, p, 3, distances=False)["mean"]["dice"], 3)
        0.667
    """
    t = np.asarray(truth)
    p = np.asarray(prediction)
    classes = [1] if num_classes <= 2 else list(range(1, num_classes))
    per_class = {c: binary_scores(t == c, p == c, distances=distances, spacing=spacing)
                 for c in classes}
    keys = list(next(iter(per_class.values())))
    mean = {}
    for key in keys:
        values = [s[key] for s in per_class.values() if not math.isnan(s[key])]
        mean[key] = float(np.mean(values)) if values else math.nan
    return {"per_class": per_class, "mean": mean, "accuracy": pixel_accuracy(t, p)}


# --------------------------------------------------------------------------- Keras metrics


