"""Pixel-level ROC and precision-recall curves with their areas, and per-image A/B comparison.

Every pixel of a binary model is one decision: its foreground probability against its true
label. Sweeping the threshold from 1 down to 0 traces

- the **ROC curve**: true-positive rate (recall) against false-positive rate. Its area (AUC)
  is the chance that a random foreground pixel gets a higher probability than a random
  background pixel (0.5 = guessing, 1 = perfect ranking).
- the **precision-recall curve**: precision against recall. Its summary, the *average
  precision* (AP), is sum_n (R_n - R_{n-1}) P_n over the thresholds, as scikit-learn computes
  it. With few foreground pixels (lesions, nuclei) the PR curve shows what the ROC curve
  hides: thousands of background pixels barely move the FPR but ruin the precision.

Counts are taken once per distinct probability (sort, cumulative sums), then every rate comes
from the counts.

Example:
    >>> curves = roc_pr_curves(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 0, 1, 0]))
    >>> curves.roc_auc, round(curves.average_precision, 4)
    (0.75, 0.8333)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from unet_demo.errors import UNetDemoError

MAX_CURVE_POINTS = 400
"""Points kept per curve for plotting (the areas use every threshold)."""


@dataclasses.dataclass(frozen=True)
class RocPrCurves:
    """ROC and precision-recall curves of binary scores (points thinned for plotting).

    Attributes:
        fpr, tpr: ROC points from (0, 0) to (1, 1).
        recall, precision: PR points, recall rising from 0.
        thresholds: the threshold of each ROC point (inf for the first).
        roc_auc: area under the ROC curve (trapezoids over every threshold).
        average_precision: AP over every threshold.
        positives, negatives: foreground and background pixel counts.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    recall: np.ndarray
    precision: np.ndarray
    thresholds: np.ndarray
    roc_auc: float
    average_precision: float
    positives: int
    negatives: int

    @property
    def prevalence(self) -> float:
        """Share of foreground pixels: the precision of guessing (the PR baseline)."""
        return self.positives / max(1, self.positives + self.negatives)


def _counts(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, tp, fp) at each distinct score, thresholds falling."""
    order = np.argsort(-scores, kind="mergesort")
    scores, truth = scores[order], truth[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tp = np.cumsum(truth)[last_of_value]
    fp = (last_of_value + 1) - tp
    return scores[last_of_value], tp.astype(np.float64), fp.astype(np.float64)


def _thin(count: int, limit: int) -> np.ndarray:
    if count <= limit:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, limit).round().astype(int))


def roc_pr_curves(scores: Any, truth: Any, *, max_points: int = MAX_CURVE_POINTS) -> RocPrCurves:
    """ROC and PR curves with ROC AUC and average precision of binary scores.

    Args:
        scores: foreground probabilities, any shape (e.g. (N, H, W, 1) model outputs).
        truth: labels of the same number of elements; anything above 0 is foreground.
        max_points: points kept per curve for plotting (the areas use all thresholds).

    Raises:
        UNetDemoError: sizes differ, or the truth holds only one class (no curve to draw).

    Example:
        >>> curves = roc_pr_curves(np.array([0.2, 0.7, 0.7, 0.9]), np.array([0, 0, 1, 1]))
        >>> curves.roc_auc, curves.fpr.tolist(), curves.tpr.tolist()
        (0.875, [0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0])
    """
    scores = np.asarray(scores, np.float64).ravel()
    truth = (np.asarray(truth).ravel() > 0).astype(np.int64)
    if scores.size != truth.size:
        raise UNetDemoError(f"Got {scores.size} scores but {truth.size} labels; they must pair "
                            "up one per pixel.")
    positives = int(truth.sum())
    negatives = int(truth.size - positives)
    if positives == 0 or negatives == 0:
        raise UNetDemoError(
            "ROC and precision-recall curves need both foreground and background pixels in the "
            f"truth; these masks hold {positives} foreground and {negatives} background pixels. "
            "Pick a split (or more images) with some of each.")
    thresholds, tp, fp = _counts(scores, truth)
    tpr = np.r_[0.0, tp / positives]
    fpr = np.r_[0.0, fp / negatives]
    roc_auc = float(np.trapezoid(tpr, fpr))
    precision = tp / (tp + fp)
    recall = tp / positives
    average_precision = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    keep_roc = _thin(len(tpr), max_points)
    keep_pr = _thin(len(recall), max_points)
    return RocPrCurves(
        fpr=fpr[keep_roc], tpr=tpr[keep_roc], thresholds=np.r_[np.inf, thresholds][keep_roc],
        recall=np.r_[0.0, recall[keep_pr]], precision=np.r_[1.0, precision[keep_pr]],
        roc_auc=roc_auc, average_precision=average_precision,
        positives=positives, negatives=negatives)


def compare_runs(rows_a: Sequence[dict[str, Any]], rows_b: Sequence[dict[str, Any]],
                 metric: str = "dice", *, margin: float = 0.01) -> list[dict[str, Any]]:
    """Per-image A/B table of two models scored on the same images (matched by id).

    Args:
        rows_a, rows_b: per-image rows (with "id" and ``metric``) of model A and model B, e.g.
            ``EvaluationResult.rows``.
        metric: the score to compare ("dice", "iou", ...; higher is better).
        margin: differences smaller than this count as "same".

    Returns:
        One row per shared image: id, A, B, change (B - A) and verdict ("B better",
        "A better", "same"), the largest gains first.

    Raises:
        UNetDemoError: the two lists share no image id.

    Example:
        >>> a = [{"id": "x", "dice": 0.5}, {"id": "y", "dice": 0.9}]
        >>> b = [{"id": "x", "dice": 0.8}, {"id": "y", "dice": 0.9}]
        >>> [(row["id"], row["verdict"]) for row in compare_runs(a, b)]
        [('x', 'B better'), ('y', 'same')]
    """
    by_id = {row["id"]: row for row in rows_b}
    table = []
    for row in rows_a:
        other = by_id.get(row["id"])
        if other is None:
            continue
        a, b = float(row.get(metric, np.nan)), float(other.get(metric, np.nan))
        change = b - a
        if np.isnan(change):
            verdict = "n/a"
        elif change > margin:
            verdict = "B better"
        elif change < -margin:
            verdict = "A better"
        else:
            verdict = "same"
        table.append({"id": row["id"], "A": a, "B": b, "change": change, "verdict": verdict})
    if not table:
        raise UNetDemoError("Models A and B were scored on different images (no image id in "
                            "common). Score both on the same dataset and split.")
    return sorted(table, key=lambda r: (-r["change"] if not np.isnan(r["change"]) else np.inf,
                                        r["id"]))


def comparison_summary(table: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts of images where B is better, A is better or both are the same, and the mean change.

    Args:
        table: from `compare_runs`.

    Example:
        >>> comparison_summary([{"change": 0.3, "verdict": "B better"},
        ...                     {"change": 0.0, "verdict": "same"}])
        {'B better': 1, 'A better': 0, 'same': 1, 'mean change': 0.15}
    """
    changes = [row["change"] for row in table if not np.isnan(row["change"])]
    summary: dict[str, Any] = {verdict: sum(row["verdict"] == verdict for row in table)
                               for verdict in ("B better", "A better", "same")}
    summary["mean change"] = round(float(np.mean(changes)), 6) if changes else float("nan")
    return summary
