"""Every loss from get_loss against an independent numpy computation on small fixed arrays."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from unet_demo.config import TrainConfig  # noqa: E402
from unet_demo.errors import UNetDemoError  # noqa: E402
from unet_demo.losses import get_loss  # noqa: E402

RNG = np.random.default_rng(7)
Y_BIN = (RNG.random((2, 4, 4, 1)) > 0.6).astype(np.float32)
P_BIN = RNG.uniform(0.05, 0.95, (2, 4, 4, 1)).astype(np.float32)
K = 3
Y_MULTI = RNG.integers(0, K, (2, 4, 4)).astype(np.uint8)
Y_MULTI[Y_MULTI == 2] = 1  # class 2 absent: exercises the absent-class rules
_LOGITS = RNG.normal(size=(2, 4, 4, K))
P_MULTI = (np.exp(_LOGITS) / np.exp(_LOGITS).sum(-1, keepdims=True)).astype(np.float32)


def np_bce(y, p):
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def np_dice(y, p):
    return float(1 - 2 * np.sum(y * p) / (np.sum(y) + np.sum(p)))


def np_one_hot(labels, k):
    return np.eye(k, dtype=np.float64)[labels]


def np_multi_dice(labels, p):
    onehot = np_one_hot(labels, p.shape[-1])
    return float(np.mean([np_dice(onehot[..., c], p[..., c]) for c in range(p.shape[-1])]))


def np_scce(labels, p):
    picked = np.take_along_axis(p, labels[..., None].astype(int), axis=-1)
    return float(-np.mean(np.log(picked)))


def np_generalized_dice(onehot, p):
    volume = onehot.reshape(-1, onehot.shape[-1]).sum(0)
    with np.errstate(divide="ignore"):
        weights = 1.0 / volume**2
    weights[~np.isfinite(weights)] = weights[np.isfinite(weights)].max()
    inter = (weights * (onehot * p).reshape(-1, p.shape[-1]).sum(0)).sum()
    total = (weights * (onehot + p).reshape(-1, p.shape[-1]).sum(0)).sum()
    return float(1 - 2 * inter / total)


def value(loss, y, p):
    return float(loss(y, p))


def test_bce():
    assert value(get_loss(TrainConfig(loss="bce"), 1), Y_BIN, P_BIN) == pytest.approx(
        np_bce(Y_BIN, P_BIN), rel=1e-5)


def test_dice_binary_and_mask_without_channel_axis():
    loss = get_loss(TrainConfig(loss="dice"), 1)
    assert value(loss, Y_BIN, P_BIN) == pytest.approx(np_dice(Y_BIN, P_BIN), rel=1e-5)
    assert value(loss, Y_BIN[..., 0], P_BIN) == pytest.approx(np_dice(Y_BIN, P_BIN), rel=1e-5)


def test_bce_dice_uses_weights():
    loss = get_loss(TrainConfig(loss="bce_dice", bce_weight=0.7, dice_weight=1.3), 1)
    expected = 0.7 * np_bce(Y_BIN, P_BIN) + 1.3 * np_dice(Y_BIN, P_BIN)
    assert value(loss, Y_BIN, P_BIN) == pytest.approx(expected, rel=1e-5)
    assert value(loss, Y_BIN[..., 0], P_BIN) == pytest.approx(expected, rel=1e-5)


def test_focal():
    gamma = 2.0
    p_t = Y_BIN * P_BIN + (1 - Y_BIN) * (1 - P_BIN)
    expected = float(np.mean((1 - p_t) ** gamma * -np.log(p_t)))
    loss = get_loss(TrainConfig(loss="focal", focal_gamma=gamma), 1)
    assert value(loss, Y_BIN, P_BIN) == pytest.approx(expected, rel=1e-5)


def test_tversky_alpha_weighs_false_positives():
    alpha, beta = 0.3, 0.7
    tp = np.sum(Y_BIN * P_BIN)
    fp = np.sum((1 - Y_BIN) * P_BIN)
    fn = np.sum(Y_BIN * (1 - P_BIN))
    expected = float(1 - tp / (tp + alpha * fp + beta * fn))
    swapped = float(1 - tp / (tp + beta * fp + alpha * fn))
    assert abs(expected - swapped) > 1e-3  # the data can tell the two apart
    loss = get_loss(TrainConfig(loss="tversky", tversky_alpha=alpha, tversky_beta=beta), 1)
    assert value(loss, Y_BIN, P_BIN) == pytest.approx(expected, rel=1e-5)


def test_generalized_dice_binary_is_two_class():
    y = Y_BIN[..., 0].astype(int)
    p2 = np.concatenate([1 - P_BIN, P_BIN], axis=-1)
    expected = np_generalized_dice(np_one_hot(y, 2), p2)
    loss = get_loss(TrainConfig(loss="generalized_dice"), 1)
    assert value(loss, Y_BIN, P_BIN) == pytest.approx(expected, rel=1e-4)


def test_generalized_dice_multiclass_with_absent_class():
    expected = np_generalized_dice(np_one_hot(Y_MULTI, K), P_MULTI)
    loss = get_loss(TrainConfig(loss="generalized_dice"), K)
    assert value(loss, Y_MULTI, P_MULTI) == pytest.approx(expected, rel=1e-4)
    assert value(loss, Y_MULTI[..., None], P_MULTI) == pytest.approx(expected, rel=1e-4)


def test_sparse_categorical_crossentropy():
    loss = get_loss(TrainConfig(loss="cce"), K)
    assert value(loss, Y_MULTI, P_MULTI) == pytest.approx(np_scce(Y_MULTI, P_MULTI), rel=1e-5)


def test_multiclass_dice_and_cce_dice():
    dice = get_loss(TrainConfig(loss="dice"), K)
    assert value(dice, Y_MULTI, P_MULTI) == pytest.approx(np_multi_dice(Y_MULTI, P_MULTI),
                                                          rel=1e-5)
    combo = get_loss(TrainConfig(loss="cce_dice", bce_weight=0.5, dice_weight=2.0), K)
    expected = 0.5 * np_scce(Y_MULTI, P_MULTI) + 2.0 * np_multi_dice(Y_MULTI, P_MULTI)
    assert value(combo, Y_MULTI, P_MULTI) == pytest.approx(expected, rel=1e-5)


def test_perfect_prediction_gives_near_zero_overlap_loss():
    y = Y_BIN
    for name in ("dice", "tversky", "generalized_dice"):
        assert value(get_loss(TrainConfig(loss=name), 1), y, y) < 1e-4


@pytest.mark.parametrize(("name", "classes"), [("cce", 1), ("cce_dice", 1), ("bce", 3),
                                               ("focal", 3), ("tversky", 4)])
def test_wrong_task_type_is_a_clear_error(name, classes):
    with pytest.raises(UNetDemoError, match="Pick one of"):
        get_loss(TrainConfig(loss=name), classes)


@pytest.mark.parametrize("name", ["bce", "dice", "bce_dice", "focal", "tversky",
                                  "generalized_dice"])
def test_binary_losses_round_trip_through_keras_serialization(name):
    loss = get_loss(TrainConfig(loss=name, bce_weight=0.5), 1)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert value(again, Y_BIN, P_BIN) == pytest.approx(value(loss, Y_BIN, P_BIN), rel=1e-6)


@pytest.mark.parametrize("name", ["cce", "dice", "cce_dice", "generalized_dice"])
def test_multiclass_losses_round_trip_through_keras_serialization(name):
    loss = get_loss(TrainConfig(loss=name), K)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert value(again, Y_MULTI, P_MULTI) == pytest.approx(value(loss, Y_MULTI, P_MULTI),
                                                           rel=1e-6)
