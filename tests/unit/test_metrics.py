"""Property and reference tests for unet_demo.metrics (numpy scores and Keras training metrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist, directed_hausdorff

from unet_demo.evaluation import metrics
from unet_demo.training import keras_metrics

RNG = np.random.default_rng(3)


def random_blob_mask(shape=(24, 24), seed=0):
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    for _ in range(3):
        r, c = rng.integers(2, shape[0] - 6, 2)
        h, w = rng.integers(2, 6, 2)
        mask[r:r + h, c:c + w] = True
    return mask


PAIRS = [(random_blob_mask(seed=s), random_blob_mask(seed=s + 100)) for s in range(6)]


def counting_reference(t, p):
    tp = sum(1 for a, b in zip(t.ravel(), p.ravel(), strict=True) if a and b)
    fp = sum(1 for a, b in zip(t.ravel(), p.ravel(), strict=True) if not a and b)
    fn = sum(1 for a, b in zip(t.ravel(), p.ravel(), strict=True) if a and not b)
    return tp, fp, fn


@pytest.mark.parametrize(("truth", "pred"), PAIRS)
def test_overlap_scores_match_plain_counting(truth, pred):
    tp, fp, fn = counting_reference(truth, pred)
    assert metrics.dice(truth, pred) == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert metrics.iou(truth, pred) == pytest.approx(tp / (tp + fp + fn))
    assert metrics.precision(truth, pred) == pytest.approx(tp / (tp + fp))
    assert metrics.recall(truth, pred) == pytest.approx(tp / (tp + fn))
    assert metrics.pixel_accuracy(truth, pred) == pytest.approx(np.mean(truth == pred))
    d, j = metrics.dice(truth, pred), metrics.iou(truth, pred)
    assert d == pytest.approx(2 * j / (1 + j))


@pytest.mark.parametrize(("truth", "pred"), PAIRS)
def test_identical_and_disjoint_masks(truth, pred):
    scores = metrics.binary_scores(truth, truth)
    assert scores["dice"] == scores["iou"] == scores["precision"] == scores["recall"] == 1.0
    assert scores["hd95"] == 0.0 and scores["asd"] == 0.0
    disjoint = truth & ~pred
    other = pred & ~truth
    if disjoint.any() and other.any():
        assert metrics.dice(disjoint, other) == 0.0
        assert metrics.iou(disjoint, other) == 0.0


def test_empty_mask_conventions():
    empty = np.zeros((8, 8), bool)
    full = np.zeros((8, 8), bool)
    full[2:5, 2:5] = True
    both = metrics.binary_scores(empty, empty)
    assert both["dice"] == both["iou"] == both["precision"] == both["recall"] == 1.0
    assert both["hd95"] == 0.0 and both["asd"] == 0.0
    for truth, pred in ((empty, full), (full, empty)):
        one = metrics.binary_scores(truth, pred)
        assert one["dice"] == one["iou"] == one["precision"] == one["recall"] == 0.0
        assert math.isnan(one["hd95"]) and math.isnan(one["asd"])


def surface_points(mask):
    return np.argwhere(metrics.surface(mask)).astype(float)


@pytest.mark.parametrize(("truth", "pred"), PAIRS)
def test_hausdorff_matches_scipy_directed_hausdorff(truth, pred):
    a, b = surface_points(truth), surface_points(pred)
    expected = max(directed_hausdorff(a, b)[0], directed_hausdorff(b, a)[0])
    assert metrics.hausdorff(truth, pred, 100.0) == pytest.approx(expected)


@pytest.mark.parametrize(("truth", "pred"), PAIRS)
def test_hd95_and_asd_match_brute_force_pairwise_distances(truth, pred):
    a, b = surface_points(truth), surface_points(pred)
    d = cdist(a, b)
    forward, backward = d.min(axis=1), d.min(axis=0)
    hd95 = max(np.percentile(forward, 95), np.percentile(backward, 95))
    asd = np.concatenate([forward, backward]).mean()
    assert metrics.hd95(truth, pred) == pytest.approx(hd95)
    assert metrics.asd(truth, pred) == pytest.approx(asd)


def test_spacing_scales_distances():
    a = np.zeros((10, 10), bool)
    a[2:4, 2:4] = True
    b = np.roll(a, 4, axis=1)
    assert metrics.hausdorff(a, b) == pytest.approx(4.0)
    assert metrics.hausdorff(a, b, spacing=(1.0, 0.5)) == pytest.approx(2.0)


def test_multiclass_scores_per_class_and_mean():
    truth = RNG.integers(0, 3, (12, 12))
    pred = truth.copy()
    pred[:4] = (pred[:4] + 1) % 3
    result = metrics.multiclass_scores(truth, pred, 3)
    assert set(result["per_class"]) == {1, 2}
    for c in (1, 2):
        assert result["per_class"][c]["dice"] == pytest.approx(metrics.dice(truth == c, pred == c))
    assert result["mean"]["dice"] == pytest.approx(
        np.mean([result["per_class"][c]["dice"] for c in (1, 2)]))
    assert result["accuracy"] == pytest.approx(np.mean(truth == pred))


# --------------------------------------------------------------------------- Keras metrics


def test_keras_binary_metrics_match_numpy():
    keras = pytest.importorskip("keras")
    truth = np.stack([PAIRS[0][0], PAIRS[1][0]]).astype(np.float32)[..., None]
    probs = np.stack([PAIRS[0][1], PAIRS[1][1]]).astype(np.float32)[..., None] * 0.8 + 0.1
    pred = probs >= 0.5
    tp, fp, fn = counting_reference(truth.astype(bool), pred)
    expected = {"dice": 2 * tp / (2 * tp + fp + fn), "iou": tp / (tp + fp + fn),
                "precision": tp / (tp + fp), "recall": tp / (tp + fn)}
    for metric in keras_metrics.keras_metrics(1):
        metric.update_state(truth[:1], probs[:1])
        metric.update_state(truth[1:, ..., 0], probs[1:])  # masks with or without channel axis
        assert float(metric.result()) == pytest.approx(expected[metric.name], rel=1e-5)
        again = keras.metrics.deserialize(keras.metrics.serialize(metric))
        assert again.name == metric.name


def test_keras_multiclass_metrics_mean_over_foreground():
    truth = RNG.integers(0, 3, (2, 8, 8))
    logits = RNG.normal(size=(2, 8, 8, 3)) + 3 * np.eye(3)[truth] * (RNG.random((2, 8, 8, 1)) > 0.3)
    probs = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)).astype(np.float32)
    labels = probs.argmax(-1)
    per_class = {k: [] for k in ("dice", "iou", "precision", "recall")}
    for c in (1, 2):
        tp, fp, fn = counting_reference(truth == c, labels == c)
        per_class["dice"].append(2 * tp / (2 * tp + fp + fn))
        per_class["iou"].append(tp / (tp + fp + fn))
        per_class["precision"].append(tp / (tp + fp))
        per_class["recall"].append(tp / (tp + fn))
    for metric in keras_metrics.keras_metrics(3):
        metric.update_state(truth.astype(np.uint8), probs)
        assert float(metric.result()) == pytest.approx(np.mean(per_class[metric.name]), rel=1e-5)
        metric.reset_state()
        metric.update_state(truth[..., None].astype(np.uint8), probs)
        assert float(metric.result()) == pytest.approx(np.mean(per_class[metric.name]), rel=1e-5)


def test_keras_per_class_iou_scores_one_class_without_a_confusion_matrix():
    keras = pytest.importorskip("keras")
    truth = RNG.integers(0, 4, (2, 8, 8))
    probs = RNG.random((2, 8, 8, 4)).astype(np.float32)
    labels = probs.argmax(-1)
    overlap = keras_metrics.overlap_metric_class()
    for cls in (1, 2, 3):
        tp, fp, fn = counting_reference(truth == cls, labels == cls)
        metric = overlap("iou", 4, name=f"iou_class{cls}", class_id=cls)
        metric.update_state(truth.astype(np.uint8), probs)
        assert float(metric.result()) == pytest.approx(tp / (tp + fp + fn), rel=1e-5)
        again = keras.metrics.deserialize(keras.metrics.serialize(metric))
        assert (again.name, again.class_id) == (f"iou_class{cls}", cls)
    with pytest.raises(ValueError, match="class_id must be a foreground class"):
        overlap("iou", 4, class_id=0)
