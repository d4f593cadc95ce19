"""Segmentation losses: Keras built-ins where they exist, small registered classes where not.

Binary tasks (one sigmoid channel, masks with 0/1 labels):
    bce        keras.losses.BinaryCrossentropy: mean over all pixels of
               -[y log p + (1 - y) log(1 - p)].
    dice       keras.losses.Dice over the whole batch: 1 - 2 sum(y p) / (sum y + sum p).
               The sums run over every pixel of the batch (not per image), so a slice with
               no foreground does not produce a useless loss of 1.
    bce_dice   bce_weight * bce + dice_weight * dice (weights from TrainConfig).
    focal      keras.losses.BinaryFocalCrossentropy(gamma): bce scaled by (1 - p_t) ** gamma,
               so easy, confident pixels count less.
    tversky    1 - TP / (TP + alpha FP + beta FN) with alpha = tversky_alpha (false positives)
               and beta = tversky_beta (false negatives); beta > alpha favours recall.
    generalized_dice  also works for binary (background and foreground become two classes).

Multi-class tasks (softmax over K channels, masks with integer labels 0..K-1):
    cce        keras.losses.SparseCategoricalCrossentropy: mean over pixels of -log p[label].
    dice       mean over the K classes of the batch Dice loss of each class (one-hot labels).
    cce_dice   bce_weight * cce + dice_weight * dice.
    generalized_dice  1 - 2 sum_k w_k sum(y_k p_k) / sum_k w_k sum(y_k + p_k) with
               w_k = 1 / (sum y_k) ** 2 (Sudre et al. 2017): rare classes weigh more. A class
               absent from the batch would get an infinite weight; it gets the largest finite
               weight of the batch instead (as MONAI does).

The custom classes are registered with Keras (package "unet_demo"), so a model saved with its
compile settings loads again once this module is imported.

Example:
    >>> from unet_demo.config import TrainConfig
    >>> loss = get_loss(TrainConfig(loss="bce_dice"), num_classes=1)
    >>> loss.name
    'bce_dice'
"""

from __future__ import annotations

import keras
from keras import ops

# The loss names, their labels and which fit binary / multi-class tasks live in config.py
# (where TrainConfig validates them, without importing Keras); re-exported here.
from unet_demo.config import BINARY_LOSSES, MULTICLASS_LOSSES, TrainConfig
from unet_demo.errors import UNetDemoError

# --------------------------------------------------------------------------- helpers

def sparse_labels(y_true):
    """Integer labels (B, H, W) from masks shaped (B, H, W) or (B, H, W, 1)."""
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) == 4 and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, axis=-1)
    return ops.cast(y_true, "int32")


def one_hot_labels(y_true, num_classes: int):
    """One-hot float32 (B, H, W, K) from integer masks (B, H, W) or (B, H, W, 1)."""
    return ops.one_hot(sparse_labels(y_true), num_classes, dtype="float32")


def _as_two_class(y_true, y_pred):
    """Turn a sigmoid task into a two-class one: ([1-y, y], [1-p, p])."""
    y_pred = ops.convert_to_tensor(y_pred, dtype="float32")
    y_true = ops.cast(ops.reshape(y_true, ops.shape(y_pred)), "float32")
    return (ops.concatenate([1.0 - y_true, y_true], axis=-1),
            ops.concatenate([1.0 - y_pred, y_pred], axis=-1))


def _per_class_dice_loss(one_hot_true, y_pred):
    """Mean over classes of 1 - 2 sum(y p) / (sum y + sum p), sums over batch and pixels."""
    axes = tuple(range(len(one_hot_true.shape) - 1))
    return ops.mean(keras.losses.dice(one_hot_true, y_pred, axis=axes))


# --------------------------------------------------------------------------- registered losses

@keras.saving.register_keras_serializable(package="unet_demo")
class BceDiceLoss(keras.losses.Loss):
    """Weighted sum of binary cross-entropy and batch Dice loss (Keras built-ins).

    Args:
        bce_weight: multiplier of the cross-entropy term.
        dice_weight: multiplier of the Dice term.
        name: loss name shown in logs.

    Example:
        >>> float(BceDiceLoss()([[1.0, 0.0]], [[1.0, 0.0]])) < 1e-3
        True
    """

    def __init__(self, bce_weight=1.0, dice_weight=1.0, name="bce_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.bce_weight = float(bce_weight)
        self.dice_weight = float(dice_weight)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(ops.reshape(y_true, ops.shape(y_pred)), y_pred.dtype)
        bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred))
        dice = keras.losses.dice(y_true, y_pred)
        return self.bce_weight * bce + self.dice_weight * dice

    def get_config(self):
        config = super().get_config()
        config.update({"bce_weight": self.bce_weight, "dice_weight": self.dice_weight})
        return config


@keras.saving.register_keras_serializable(package="unet_demo")
class MultiClassDiceLoss(keras.losses.Loss):
    """Mean per-class Dice loss of softmax outputs against integer labels.

    Args:
        num_classes: number of classes K (softmax channels).
        name: loss name shown in logs.

    Example:
        >>> float(MultiClassDiceLoss(2)([[0, 1]], [[[1.0, 0.0], [0.0, 1.0]]])) < 1e-3
        True
    """

    def __init__(self, num_classes, name="dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)

    def call(self, y_true, y_pred):
        return _per_class_dice_loss(one_hot_labels(y_true, self.num_classes), y_pred)

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes})
        return config


@keras.saving.register_keras_serializable(package="unet_demo")
class CceDiceLoss(keras.losses.Loss):
    """Weighted sum of sparse categorical cross-entropy and mean per-class Dice loss.

    Args:
        num_classes: number of classes K.
        cce_weight: multiplier of the cross-entropy term.
        dice_weight: multiplier of the Dice term.
        name: loss name shown in logs.

    Example:
        >>> float(CceDiceLoss(2)([[0, 1]], [[[1.0, 0.0], [0.0, 1.0]]])) < 1e-3
        True
    """

    def __init__(self, num_classes, cce_weight=1.0, dice_weight=1.0, name="cce_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.cce_weight = float(cce_weight)
        self.dice_weight = float(dice_weight)

    def call(self, y_true, y_pred):
        labels = sparse_labels(y_true)
        y_pred = ops.convert_to_tensor(y_pred)
        cce = ops.mean(keras.losses.sparse_categorical_crossentropy(labels, y_pred))
        dice = _per_class_dice_loss(ops.one_hot(labels, self.num_classes, dtype="float32"),
                                    y_pred)
        return self.cce_weight * cce + self.dice_weight * dice

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "cce_weight": self.cce_weight,
                       "dice_weight": self.dice_weight})
        return config


@keras.saving.register_keras_serializable(package="unet_demo")
class GeneralizedDiceLoss(keras.losses.Loss):
    """Generalized Dice loss (Sudre et al. 2017) with class weights 1 / volume**2.

    Args:
        num_classes: K softmax channels, or 1 for a sigmoid output (treated as two classes).
        name: loss name shown in logs.

    Example:
        >>> float(GeneralizedDiceLoss(2)([[0, 1]], [[[1.0, 0.0], [0.0, 1.0]]])) < 1e-3
        True
    """

    def __init__(self, num_classes, name="generalized_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)

    def call(self, y_true, y_pred):
        if self.num_classes == 1:
            truth, probs = _as_two_class(y_true, y_pred)
        else:
            truth = one_hot_labels(y_true, self.num_classes)
            probs = ops.convert_to_tensor(y_pred, dtype="float32")
        axes = tuple(range(len(truth.shape) - 1))
        volume = ops.sum(truth, axis=axes)
        weights = 1.0 / ops.square(volume)
        finite = ops.isfinite(weights)
        largest = ops.max(ops.where(finite, weights, ops.zeros_like(weights)))
        weights = ops.where(finite, weights, largest)
        intersection = ops.sum(weights * ops.sum(truth * probs, axis=axes))
        total = ops.sum(weights * ops.sum(truth + probs, axis=axes))
        return 1.0 - 2.0 * intersection / (total + keras.backend.epsilon())

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes})
        return config


# --------------------------------------------------------------------------- factory

def get_loss(train_cfg: TrainConfig, num_classes: int) -> keras.losses.Loss:
    """Return the Keras loss object named by ``train_cfg.loss`` for a task with ``num_classes``.

    Args:
        train_cfg: supplies ``loss`` and its weights/parameters (bce_weight, dice_weight,
            focal_gamma, tversky_alpha, tversky_beta).
        num_classes: model output channels: 1 = sigmoid (binary), K > 1 = softmax.

    Example:
        >>> get_loss(TrainConfig(loss="cce"), num_classes=3).name
        'cce'
    """
    name = train_cfg.loss
    if num_classes == 1:
        if name not in BINARY_LOSSES:
            raise UNetDemoError(
                f"Loss {name!r} needs a multi-class (softmax) model, but this task is binary. "
                f"Pick one of {list(BINARY_LOSSES)} (e.g. 'bce' instead of 'cce')."
            )
        if name == "bce":
            return keras.losses.BinaryCrossentropy(name="bce")
        if name == "dice":
            return keras.losses.Dice(name="dice")
        if name == "bce_dice":
            return BceDiceLoss(train_cfg.bce_weight, train_cfg.dice_weight)
        if name == "focal":
            return keras.losses.BinaryFocalCrossentropy(gamma=train_cfg.focal_gamma, name="focal")
        if name == "tversky":
            # keras.losses.tversky multiplies `alpha` by sum((1 - y_pred) * y_true), which counts
            # false negatives, and `beta` by the false positives, so the two are swapped here to
            # keep the usual meaning (alpha -> FP, beta -> FN). tests/unit/test_losses.py checks it.
            return keras.losses.Tversky(alpha=train_cfg.tversky_beta,
                                        beta=train_cfg.tversky_alpha, name="tversky")
        return GeneralizedDiceLoss(1)
    if name not in MULTICLASS_LOSSES:
        raise UNetDemoError(
            f"Loss {name!r} is for binary (sigmoid) models, but this task has {num_classes} "
            f"classes. Pick one of {list(MULTICLASS_LOSSES)} (e.g. 'cce_dice')."
        )
    if name == "cce":
        return keras.losses.SparseCategoricalCrossentropy(name="cce")
    if name == "dice":
        return MultiClassDiceLoss(num_classes)
    if name == "cce_dice":
        return CceDiceLoss(num_classes, train_cfg.bce_weight, train_cfg.dice_weight)
    return GeneralizedDiceLoss(num_classes)
