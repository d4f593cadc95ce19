"""Evaluation engine: error-map colours, confusion counts, threshold sweep, Otsu, tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unet_demo.errors import UNetDemoError
from unet_demo.evaluation.evaluate import evaluate_model_on_arrays
from unet_demo.evaluation.scores import (
    confusion_matrix,
    error_counts,
    mean_metrics,
    metrics_table,
    otsu_threshold,
    per_image_metrics,
    threshold_curve,
    worst_k,
)
from unet_demo.inference.labels import labels_from_probabilities
from unet_demo.plots.images import ERROR_COLOURS, error_legend, error_map


def test_error_map_colours_each_outcome():
    truth = np.array([[1, 1, 0, 0]])
    pred = np.array([[1, 0, 1, 0]])
    image = error_map(truth, pred)
    assert image.dtype == np.uint8 and image.shape == (1, 4, 3)
    assert tuple(image[0, 0]) == ERROR_COLOURS["true positive"]
    assert tuple(image[0, 1]) == ERROR_COLOURS["false negative"]
    assert tuple(image[0, 2]) == ERROR_COLOURS["false positive"]
    assert tuple(image[0, 3]) == (0, 0, 0)
    assert len({rgb for rgb in ERROR_COLOURS.values()}) == 3
    assert [name for name, _ in error_legend()] == list(ERROR_COLOURS)
    assert error_counts(truth, pred) == {"tp": 1, "fp": 1, "fn": 1, "tn": 1}


def test_error_map_wrong_class_is_a_miss():
    image = error_map(np.array([[2]]), np.array([[1]]))
    assert tuple(image[0, 0]) == ERROR_COLOURS["false negative"]
    only_class_1 = error_map(np.array([[2, 1]]), np.array([[1, 1]]), foreground=1)
    assert tuple(only_class_1[0, 0]) == ERROR_COLOURS["false positive"]
    assert tuple(only_class_1[0, 1]) == ERROR_COLOURS["true positive"]


def test_confusion_matrix_counts_and_rows():
    truth = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    pred = np.array([0, 0, 1, 1, 1, 2, 0, 2])
    counts, rows = confusion_matrix(truth, pred, 3)
    assert counts.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert counts.sum() == truth.size
    np.testing.assert_allclose(rows.sum(axis=1), 1.0)
    np.testing.assert_allclose(rows[0], [2 / 3, 1 / 3, 0])
    with pytest.raises(UNetDemoError, match="num_classes"):
        confusion_matrix(truth, pred, 2)


def test_threshold_curve_endpoints():
    rng = np.random.default_rng(0)
    truth = np.zeros((3, 16, 16), np.uint8)
    truth[:, 4:12, 4:12] = 1
    probs = np.clip(truth * 0.7 + rng.random(truth.shape) * 0.3, 0.001, 0.999)
    curve = threshold_curve(probs[..., None], truth, 11)
    assert curve.thresholds[0] == 0.0 and curve.thresholds[-1] == 1.0
    # threshold 0: everything is foreground -> recall 1, precision = foreground share
    assert curve.recall[0] == pytest.approx(1.0)
    assert curve.precision[0] == pytest.approx(64 / 256)
    # threshold 1: nothing reaches it -> empty prediction, recall 0, Dice 0
    assert curve.recall[-1] == 0.0 and curve.dice[-1] == 0.0
    assert np.all(np.diff(curve.recall) <= 1e-12)  # recall never rises with the threshold
    best_t, best_dice = curve.best("dice")
    assert best_dice == pytest.approx(1.0)
    assert 0.3 <= best_t <= 0.7


def test_threshold_curve_matches_direct_computation():
    rng = np.random.default_rng(1)
    probs = rng.random((2, 10, 10))
    truth = (rng.random((2, 10, 10)) > 0.6).astype(np.uint8)
    curve = threshold_curve(probs, truth, [0.25, 0.5])
    for k, t in enumerate((0.25, 0.5)):
        dices = []
        for p, m in zip(probs, truth, strict=True):
            pred = p >= t
            tp = (pred & (m > 0)).sum()
            dices.append(2 * tp / (pred.sum() + m.sum()))
        assert curve.dice[k] == pytest.approx(np.mean(dices))


def test_threshold_curve_refuses_multiclass():
    with pytest.raises(UNetDemoError, match="binary"):
        threshold_curve(np.zeros((1, 4, 4, 3)), np.zeros((1, 4, 4)))


def test_otsu_splits_bimodal_map():
    rng = np.random.default_rng(0)
    low = rng.normal(0.15, 0.04, 5000)
    high = rng.normal(0.8, 0.04, 3000)
    values = np.clip(np.concatenate([low, high]), 0, 1)
    threshold = otsu_threshold(values)
    assert 0.2 < threshold < 0.7
    labels = np.r_[np.zeros(low.size), np.ones(high.size)]
    assert np.mean((values >= threshold) == labels) > 0.99  # the cut separates the two modes
    assert otsu_threshold(np.full(10, 0.2)) == pytest.approx(0.2)


def test_labels_from_probabilities_sigmoid_and_softmax():
    sigmoid = np.array([[[[0.49], [0.5]]]])
    assert labels_from_probabilities(sigmoid, 1).tolist() == [[[0, 1]]]
    softmax = np.array([[[[0.1, 0.7, 0.2], [0.1, 0.2, 0.7]]]])
    assert labels_from_probabilities(softmax, 3).tolist() == [[[1, 2]]]


def test_per_image_metrics_table_and_worst():
    truth = np.zeros((3, 16, 16), np.uint8)
    truth[:, 4:12, 4:12] = 1
    pred = truth.copy()
    pred[1, 4:8, 4:12] = 0  # half missed
    pred[2] = 0  # everything missed
    rows = per_image_metrics(truth, pred, 2, ids=["a", "b", "c"])
    assert [row["id"] for row in rows] == ["a", "b", "c"]
    assert rows[0]["dice"] == pytest.approx(1.0) and rows[0]["hd95"] == pytest.approx(0.0)
    assert rows[1]["dice"] == pytest.approx(2 * 32 / (32 + 64))
    assert rows[1]["recall"] == pytest.approx(0.5) and rows[1]["precision"] == pytest.approx(1.0)
    assert rows[2]["dice"] == pytest.approx(0.0) and math.isnan(rows[2]["hd95"])
    assert worst_k(rows, 2) == [2, 1]
    assert worst_k(rows, 1, "hd95") == [2]  # NaN (no prediction) counts as worst
    table = metrics_table(rows)
    assert list(table["id"]) == ["a", "b", "c", "mean"]
    assert table.iloc[-1]["dice"] == pytest.approx(np.mean([1.0, 2 / 3, 0.0]))
    assert mean_metrics(rows)["hd95"] == pytest.approx(np.nanmean([r["hd95"] for r in rows]))


def test_multiclass_scores_average_present_classes():
    truth = np.zeros((1, 8, 8), np.uint8)
    truth[0, :4] = 1
    truth[0, 4:] = 2
    pred = truth.copy()
    pred[0, 4:] = 1  # class 2 entirely predicted as class 1
    row = per_image_metrics(truth, pred, 3, distances=False)[0]
    # class 1: tp 32, fp 32 -> dice 2/3; class 2: dice 0 -> mean 1/3
    assert row["dice"] == pytest.approx((2 / 3 + 0.0) / 2)


def test_evaluate_model_on_arrays_with_postprocessing():
    images = np.zeros((2, 16, 16, 1), np.float32)
    images[:, 4:12, 4:12] = 0.9
    images[:, 0, 15] = 0.9  # a speck the "model" will predict
    masks = np.zeros((2, 16, 16), np.uint8)
    masks[:, 4:12, 4:12] = 1
    calls = []

    def predict_fn(batch):
        calls.append(len(batch))
        return batch

    raw = evaluate_model_on_arrays(predict_fn, images, masks, 1, batch_size=1)
    assert calls == [1, 1]
    assert raw.mean["dice"] < 1.0
    cleaned = evaluate_model_on_arrays(predict_fn, images, masks, 1, 0.5, ["largest_component"])
    assert cleaned.mean["dice"] == pytest.approx(1.0)
    assert cleaned.predictions.shape == (2, 16, 16)
    assert list(cleaned.table()["id"])[-1] == "mean"
    with pytest.raises(UNetDemoError):
        evaluate_model_on_arrays(predict_fn, images, masks[:1], 1)
    with pytest.raises(UNetDemoError, match="threshold"):
        evaluate_model_on_arrays(predict_fn, images, masks, 1, threshold=1.5)


def test_evaluate_folders_pairs_names_and_scores_at_mask_size(tmp_path, monkeypatch):
    from tests.bad_files import png_bytes
    from tests.tiny_model import BUNDLED_DIR_ENV, TINY_DATASET, shared_tiny_models_dir
    from unet_demo.data.bundled import load_split
    from unet_demo.evaluation.evaluate import evaluate_folders
    from unet_demo.inference.registry import open_model

    monkeypatch.setenv(BUNDLED_DIR_ENV, str(shared_tiny_models_dir()))
    handle = open_model(f"bundled:{TINY_DATASET}")
    split = load_split(TINY_DATASET, "test")
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for index in range(3):
        image = np.round(split.images[index, :96, :112, 0] * 255).astype(np.uint8)
        (images / f"case{index}.png").write_bytes(png_bytes(image))
        mask = (split.masks[index, :96, :112] > 0).astype(np.uint8) * 255
        (masks / f"case{index}_mask.png").write_bytes(png_bytes(mask))
    (images / "orphan.png").write_bytes(png_bytes(np.zeros((8, 8), np.uint8)))
    with pytest.warns(UserWarning, match="orphan.png"):
        result = evaluate_folders(handle, images, masks)
    assert [row["id"] for row in result.rows] == ["case0.png", "case1.png", "case2.png"]
    assert result.predictions.shape == (3, 96, 112)
    for row, prediction in zip(result.rows, result.predictions, strict=True):
        assert 0.0 <= row["dice"] <= 1.0
        assert row["pred_pixels"] == int((prediction > 0).sum())
    assert result.mean["dice"] == pytest.approx(np.mean([r["dice"] for r in result.rows]))


def test_evaluate_folders_refuses_size_mismatch_and_no_pairs(tmp_path, monkeypatch):
    from tests.bad_files import png_bytes
    from tests.tiny_model import BUNDLED_DIR_ENV, TINY_DATASET, shared_tiny_models_dir
    from unet_demo.evaluation.evaluate import evaluate_folders
    from unet_demo.inference.registry import open_model

    monkeypatch.setenv(BUNDLED_DIR_ENV, str(shared_tiny_models_dir()))
    handle = open_model(f"bundled:{TINY_DATASET}")
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    (images / "a.png").write_bytes(png_bytes(np.zeros((32, 32), np.uint8)))
    (masks / "b.png").write_bytes(png_bytes(np.zeros((32, 32), np.uint8)))
    with pytest.raises(UNetDemoError, match="No image in"):
        evaluate_folders(handle, images, masks)
    (masks / "a.png").write_bytes(png_bytes(np.zeros((16, 32), np.uint8)))
    with pytest.raises(UNetDemoError, match="masks must have the image's size"):
        evaluate_folders(handle, images, masks)
