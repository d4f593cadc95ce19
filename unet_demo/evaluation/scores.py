"""Evaluate a segmentation model on a split: per-image metrics, error maps, confusion, thresholds.

Pure numpy/scipy/scikit-image; the model is only touched through a ``predict_fn`` callable, so
this module never imports TensorFlow. Per-image numbers come from `unet_demo.metrics` (Dice, IoU,
precision, recall, HD95, ASD); for multi-class masks each foreground class is scored on its own
and the scores are averaged over the classes that appear in the truth or the prediction.

Example:
    >>> import numpy as np
    >>> truth = np.zeros((2, 16, 16), np.uint8); truth[:, 4:12, 4:12] = 1
    >>> rows = per_image_metrics(truth, truth, num_classes=2)
    >>> mean_metrics(rows)["dice"]
    1.0
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from unet_demo.errors import UNetDemoError
from unet_demo.inference.labels import as_batch, foreground_classes

METRIC_KEYS = ("dice", "iou", "precision", "recall", "hd95", "asd")
# Metrics where a higher value is better (the others are distances: lower is better).
HIGHER_IS_BETTER = {"dice": True, "iou": True, "precision": True, "recall": True,
                    "hd95": False, "asd": False}

# RGB colours of the error map; colour-blind friendly (Okabe-Ito palette).


# --------------------------------------------------------------------------- per-image metrics


def score_pair(
    truth: np.ndarray,
    prediction: np.ndarray,
    num_classes: int = 2,
    *,
    distances: bool = True,
    spacing: Sequence[float] | None = None,
) -> dict[str, float]:
    """Score one predicted label mask against its truth, averaged over foreground classes.

    Classes absent from both masks are skipped; if every class is absent from both, the image
    counts as perfect for the overlap metrics (nothing to find, nothing found).

    Args:
        truth: integer (H, W) labels.
        prediction: integer (H, W) labels of the same shape.
        num_classes: label count (1 or 2 = binary).
        distances: also compute HD95 and ASD (slower: distance transforms).
        spacing: pixel size (row, col) in mm for the distances; None = pixels.

    Example:
        >>> t = np.zeros((8, 8), np.uint8); t[2:6, 2:6] = 1
        >>> score_pair(t, t)["iou"]
        1.0
    """
    from unet_demo.evaluation import metrics

    truth = np.asarray(truth)
    prediction = np.asarray(prediction)
    if truth.shape != prediction.shape:
        raise UNetDemoError(
            f"Prediction shape {prediction.shape} differs from mask shape {truth.shape}; "
            "resize the masks to the image size the model was run on."
        )
    keys = METRIC_KEYS if distances else METRIC_KEYS[:4]
    per_class: dict[str, list[float]] = {key: [] for key in keys}
    for cls in foreground_classes(num_classes):
        true_c = truth == cls
        pred_c = prediction == cls
        if not true_c.any() and not pred_c.any():
            continue
        per_class["dice"].append(float(metrics.dice(true_c, pred_c)))
        per_class["iou"].append(float(metrics.iou(true_c, pred_c)))
        per_class["precision"].append(float(metrics.precision(true_c, pred_c)))
        per_class["recall"].append(float(metrics.recall(true_c, pred_c)))
        if distances:
            per_class["hd95"].append(_finite_or_nan(metrics.hd95(true_c, pred_c, spacing=spacing)))
            per_class["asd"].append(_finite_or_nan(metrics.asd(true_c, pred_c, spacing=spacing)))
    scores: dict[str, float] = {}
    for key in keys:
        values = per_class[key]
        if not values:
            scores[key] = 0.0 if key in ("hd95", "asd") else 1.0
        else:
            finite = [v for v in values if not math.isnan(v)]
            scores[key] = float(np.mean(finite)) if finite else math.nan
    return scores


def per_image_metrics(
    truth: np.ndarray,
    prediction: np.ndarray,
    num_classes: int = 2,
    *,
    ids: Sequence[str] | None = None,
    distances: bool = True,
    spacing: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """One dict per image: id, index, Dice, IoU, precision, recall, (HD95, ASD), pixel counts.

    HD95/ASD are NaN when one mask is empty and the other is not (no surface to measure).

    Args:
        truth: integer label masks (N, H, W).
        prediction: predicted integer label masks (N, H, W).
        num_classes: label count (1 or 2 = binary).
        ids: optional names of the images (default "0", "1", ...).
        distances: include HD95 and ASD.
        spacing: pixel size in mm for the distances.

    Example:
        >>> t = np.zeros((1, 8, 8), np.uint8); t[0, 2:6, 2:6] = 1
        >>> row = per_image_metrics(t, t, ids=["a"])[0]
        >>> row["id"], row["dice"], row["truth_pixels"]
        ('a', 1.0, 16)
    """
    truth = as_batch(truth)
    prediction = as_batch(prediction)
    if truth.shape != prediction.shape:
        raise UNetDemoError(
            f"Got {prediction.shape} predictions for {truth.shape} masks; they must match."
        )
    if ids is None:
        ids = [str(i) for i in range(len(truth))]
    rows = []
    for index, (true_mask, pred_mask) in enumerate(zip(truth, prediction, strict=True)):
        row: dict[str, Any] = {"index": index, "id": str(ids[index])}
        row.update(score_pair(true_mask, pred_mask, num_classes, distances=distances,
                              spacing=spacing))
        row["truth_pixels"] = int((true_mask > 0).sum())
        row["pred_pixels"] = int((pred_mask > 0).sum())
        rows.append(row)
    return rows


def mean_metrics(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean of each metric over images, ignoring NaN (e.g. HD95 of an empty prediction).

    Args:
        rows: output of `per_image_metrics`.

    Example:
        >>> mean_metrics([{"dice": 1.0}, {"dice": 0.5}])["dice"]
        0.75
    """
    means: dict[str, float] = {}
    for key in METRIC_KEYS:
        values = [float(row[key]) for row in rows if key in row]
        finite = [v for v in values if not math.isnan(v)]
        if values:
            means[key] = float(np.mean(finite)) if finite else math.nan
    return means


def metrics_table(rows: Sequence[dict[str, Any]], *, with_mean: bool = True):
    """Per-image metrics as a pandas DataFrame, optionally with a final "mean" row.

    Args:
        rows: output of `per_image_metrics`.
        with_mean: append a row with id "mean" holding the NaN-ignoring means.

    Example:
        >>> metrics_table([{"index": 0, "id": "a", "dice": 0.5}])["dice"].tolist()
        [0.5, 0.5]
    """
    import pandas as pd

    table = pd.DataFrame(list(rows))
    if with_mean and len(table):
        mean_row: dict[str, Any] = {"id": "mean"}
        mean_row.update(mean_metrics(rows))
        table = pd.concat([table, pd.DataFrame([mean_row])], ignore_index=True)
    return table


def worst_k(rows: Sequence[dict[str, Any]], k: int = 4, metric: str = "dice") -> list[int]:
    """Indices of the k worst images by a metric (lowest Dice, or highest HD95); NaN is worst.

    Args:
        rows: output of `per_image_metrics`.
        k: how many to return.
        metric: one of METRIC_KEYS.

    Example:
        >>> worst_k([{"dice": 0.9}, {"dice": 0.2}, {"dice": 0.5}], k=2)
        [1, 2]
    """
    if metric not in HIGHER_IS_BETTER:
        raise UNetDemoError(f"metric must be one of {list(METRIC_KEYS)}. Received: {metric!r}.")
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0

    def badness(position: int) -> float:
        value = float(rows[position].get(metric, math.nan))
        return -math.inf if math.isnan(value) else sign * value

    order = sorted(range(len(rows)), key=badness)
    return order[: max(0, int(k))]


# --------------------------------------------------------------------------- error map


def error_counts(truth: np.ndarray, prediction: np.ndarray) -> dict[str, int]:
    """Pixel counts of TP, FP, FN and TN for foreground (any non-zero label) vs background.

    Args:
        truth: integer labels.
        prediction: integer labels of the same shape.

    Example:
        >>> error_counts(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
        {'tp': 1, 'fp': 1, 'fn': 1, 'tn': 1}
    """
    true_fg = np.asarray(truth) > 0
    pred_fg = np.asarray(prediction) > 0
    return {
        "tp": int((true_fg & pred_fg).sum()),
        "fp": int((~true_fg & pred_fg).sum()),
        "fn": int((true_fg & ~pred_fg).sum()),
        "tn": int((~true_fg & ~pred_fg).sum()),
    }


# --------------------------------------------------------------------------- confusion matrix

def confusion_matrix(
    truth: np.ndarray, prediction: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel confusion matrix: rows = true class, columns = predicted class.

    Args:
        truth: integer labels (any shape).
        prediction: integer labels of the same shape.
        num_classes: number of labels (a binary task has 2: background and foreground).

    Returns:
        (counts, row_normalised): int64 counts and each row divided by its sum (0 for empty rows).

    Example:
        >>> counts, rows = confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2)
        >>> counts.tolist(), rows.tolist()
        ([[1, 1], [0, 2]], [[0.5, 0.5], [0.0, 1.0]])
    """
    size = max(2, int(num_classes))
    truth = np.asarray(truth).astype(np.int64).ravel()
    prediction = np.asarray(prediction).astype(np.int64).ravel()
    if truth.shape != prediction.shape:
        raise UNetDemoError("Truth and prediction must have the same number of pixels.")
    for name, labels in (("truth", truth), ("prediction", prediction)):
        if labels.size and (labels.min() < 0 or labels.max() >= size):
            raise UNetDemoError(
                f"{name} has labels outside 0..{size - 1} (found {labels.min()}..{labels.max()}); "
                "check num_classes."
            )
    counts = np.bincount(truth * size + prediction, minlength=size * size).reshape(size, size)
    totals = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float),
                           where=totals > 0)
    return counts, normalised


# --------------------------------------------------------------------------- thresholds

@dataclasses.dataclass(frozen=True)
class ThresholdCurve:
    """Mean per-image Dice, precision and recall of a binary task at each threshold.

    A pixel counts as foreground when its probability is >= the threshold. An image with no
    predicted pixels has precision 1 if its truth is empty too, else 0; with no true pixels,
    recall is 1 if nothing was predicted, else 0; Dice of two empty masks is 1.
    """

    thresholds: np.ndarray
    dice: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    iou: np.ndarray

    def best(self, metric: str = "dice") -> tuple[float, float]:
        """(threshold, value) where the metric is highest (the lowest such threshold)."""
        values = getattr(self, metric)
        position = int(np.argmax(values))
        return float(self.thresholds[position]), float(values[position])


def threshold_curve(
    probabilities: np.ndarray, truth: np.ndarray, thresholds: int | Sequence[float] = 21
) -> ThresholdCurve:
    """Sweep the decision threshold of a binary model over a split in one pass.

    Uses per-image histograms of the foreground probability, so the cost is one pass over the
    pixels however many thresholds are asked for.

    Args:
        probabilities: foreground probabilities (N, H, W) or (N, H, W, 1) in [0, 1].
        truth: binary (or label, >0 = foreground) masks (N, H, W).
        thresholds: how many evenly spaced thresholds from 0 to 1, or the thresholds themselves.

    Example:
        >>> p = np.array([[[0.1, 0.9]]]); t = np.array([[[0, 1]]])
        >>> curve = threshold_curve(p, t, 3)
        >>> curve.thresholds.tolist(), curve.dice.tolist()
        ([0.0, 0.5, 1.0], [0.6666666666666666, 1.0, 0.0])
    """
    probs = np.asarray(probabilities, dtype=np.float32)
    if probs.ndim == 4:
        if probs.shape[-1] != 1:
            raise UNetDemoError(
                "The threshold explorer is for binary models (one sigmoid channel); "
                f"received {probs.shape[-1]} channels. Multi-class models use argmax."
            )
        probs = probs[..., 0]
    probs = as_batch(probs)
    positives = as_batch(np.asarray(truth)) > 0
    if probs.shape != positives.shape:
        raise UNetDemoError(f"Probabilities {probs.shape} and masks {positives.shape} differ.")
    if isinstance(thresholds, int):
        grid = np.linspace(0.0, 1.0, max(2, thresholds))
    else:
        grid = np.sort(np.asarray(thresholds, dtype=np.float64))
    count = len(grid)
    num_images = len(probs)
    # Bin k holds probabilities in [grid[k], grid[k+1]); values below grid[0] go nowhere.
    bins = np.searchsorted(grid, probs.reshape(num_images, -1), side="right") - 1
    valid = bins >= 0
    image_index = np.broadcast_to(np.arange(num_images)[:, None], bins.shape)
    flat_pos = positives.reshape(num_images, -1)

    def cumulative(selected: np.ndarray) -> np.ndarray:
        keys = image_index[selected] * count + bins[selected]
        hist = np.bincount(keys, minlength=num_images * count).reshape(num_images, count)
        return np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]  # pixels with prob >= grid[k]

    tp = cumulative(valid & flat_pos).astype(np.float64)
    fp = cumulative(valid & ~flat_pos).astype(np.float64)
    true_totals = flat_pos.sum(axis=1, keepdims=True).astype(np.float64)
    fn = true_totals - tp
    predicted = tp + fp
    with np.errstate(divide="ignore", invalid="ignore"):
        dice = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 1.0)
        iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), 1.0)
        precision = np.where(predicted > 0, tp / predicted, np.where(true_totals > 0, 0.0, 1.0))
        recall = np.where(true_totals > 0, tp / true_totals, np.where(predicted > 0, 0.0, 1.0))
    return ThresholdCurve(
        thresholds=grid,
        dice=dice.mean(axis=0),
        precision=precision.mean(axis=0),
        recall=recall.mean(axis=0),
        iou=iou.mean(axis=0),
    )


def otsu_threshold(probabilities: np.ndarray) -> float:
    """Otsu's threshold of a probability map (or a whole split of them).

    Otsu picks the cut that best separates the histogram into two groups; on a confident model
    the probabilities pile up near 0 and 1 and the cut lands between the piles.

    Args:
        probabilities: foreground probabilities, any shape, values in [0, 1].

    Example:
        >>> 0.12 < otsu_threshold(np.array([0.1, 0.12, 0.15, 0.8, 0.85, 0.9])) < 0.8
        True
    """
    from skimage.filters import threshold_otsu

    values = np.asarray(probabilities, dtype=np.float64).ravel()
    if values.size == 0:
        raise UNetDemoError("Otsu's threshold needs at least one probability value.")
    if np.all(values == values[0]):
        return float(values[0])
    return float(threshold_otsu(values, nbins=256))


def _finite_or_nan(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else math.nan


def format_metrics_text(rows: Sequence[dict[str, Any]], keys: Sequence[str] = ("dice", "iou",
                                                                                "hd95")) -> str:
    """Plain-text table of per-image metrics plus the mean, for the CLI.

    Args:
        rows: output of `per_image_metrics`.
        keys: metric columns to show.

    Example:
        >>> print(format_metrics_text([{"id": "a", "dice": 1.0, "iou": 1.0, "hd95": 0.0}]))
        image    dice     iou    hd95
        a       1.000   1.000   0.000
        mean    1.000   1.000   0.000
    """
    width = max([len("image")] + [len(str(row["id"])) for row in rows] + [len("mean")])
    lines = [f"{'image':<{width}}" + "".join(f"{key:>8}" for key in keys)]
    means = mean_metrics(rows)
    for row in [*rows, {"id": "mean", **means}]:
        cells = "".join(f"{float(row.get(key, math.nan)):>8.3f}" for key in keys)
        lines.append(f"{str(row['id']):<{width}}{cells}")
    return "\n".join(lines)
