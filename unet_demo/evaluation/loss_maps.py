"""Per-pixel loss maps: how hard each loss pulls on each pixel of one prediction.

For a prediction p and its truth y, each map is the magnitude of the gradient of a loss with
respect to the network's *logits* z (p = sigmoid(z), or softmax(z) for several classes),
computed with ``tf.GradientTape`` through the project's own Keras losses
(`unet_demo.losses.get_loss`): that gradient is exactly the push training gives each pixel.

- Cross-entropy (BCE / CE) averages over all pixels, so each pixel's pull is |p - y| / N: a
  small lesion gets a small share, because the many background pixels share the total.
- Dice (and Tversky) are ratios of foreground sums; their gradient is scaled by 1 / (sum y +
  sum p), the size of the foreground, not of the image, so the few foreground pixels weigh as
  much as all the background together. That is why Dice is used on imbalanced data (lesions).
- Focal cross-entropy multiplies cross-entropy by (1 - p_t) ** gamma: confident pixels fade.

`foreground_share` sums a map over the true foreground and divides by its total. For a trained
model both kinds of loss pull mostly on its mistakes (the borders), so the contrast is clearest
at the start of training, when every pixel is still uncertain (`start_probabilities`: p = 0.5,
or 1/K per class): there cross-entropy's share on a lesion is the lesion's share of the image
(about 1 %), Dice's about a half.

Example:
    >>> import numpy as np
    >>> truth = np.zeros((32, 32), np.uint8); truth[12:16, 12:16] = 1
    >>> probs = np.full((32, 32, 1), 0.3, np.float32)
    >>> maps = loss_maps(probs, truth, num_classes=1)
    >>> sorted(maps), maps["dice"].shape
    (['bce', 'dice', 'focal', 'tversky'], (32, 32))
    >>> foreground_share(maps["dice"], truth) > foreground_share(maps["bce"], truth)
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from unet_demo.errors import UNetDemoError

BINARY_MAP_LOSSES = ("bce", "focal", "dice", "tversky")
MULTICLASS_MAP_LOSSES = ("cce", "focal", "dice", "generalized_dice")
LOSS_LABELS = {"bce": "binary cross-entropy", "cce": "cross-entropy", "focal": "focal",
               "dice": "Dice", "tversky": "Tversky", "generalized_dice": "generalised Dice"}
EPSILON = 1e-6
WHY_DICE = ("Cross-entropy averages over every pixel, so a small foreground gets a small share "
            "of the pull; Dice divides by the size of the foreground, so those few pixels weigh "
            "as much as the whole background.")


def map_losses(num_classes: int) -> tuple[str, ...]:
    """The losses drawn for a task: binary (one sigmoid channel) or multi-class.

    Example:
        >>> map_losses(1), map_losses(4)[-1]
        (('bce', 'focal', 'dice', 'tversky'), 'generalized_dice')
    """
    return BINARY_MAP_LOSSES if int(num_classes) == 1 else MULTICLASS_MAP_LOSSES


def _loss(name: str, num_classes: int):
    """(loss, wants one-hot truth): the project's Keras loss (softmax focal from keras.losses)."""
    import keras

    from unet_demo.config import TrainConfig
    from unet_demo.losses import get_loss

    cfg = TrainConfig(loss=name)
    if num_classes == 1:
        return get_loss(cfg, 1), False
    if name == "focal":
        return keras.losses.CategoricalFocalCrossentropy(gamma=cfg.focal_gamma), True
    return get_loss(cfg, num_classes), False


def logits_from_probabilities(probabilities: np.ndarray, num_classes: int) -> np.ndarray:
    """Logits that give back ``probabilities``: log(p / (1 - p)), or log p for softmax.

    Example:
        >>> logits_from_probabilities(np.array([[[0.5]]]), 1).tolist()
        [[[0.0]]]
    """
    p = np.clip(np.asarray(probabilities, np.float64), EPSILON, 1.0 - EPSILON)
    if int(num_classes) == 1:
        return np.log(p / (1.0 - p)).astype(np.float32)
    return np.log(p).astype(np.float32)


def loss_maps(probabilities: np.ndarray, truth: np.ndarray, num_classes: int,
              losses: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """|d loss / d logit| per pixel for one image (the L2 norm over classes for softmax).

    Args:
        probabilities: (H, W, K) model output for one image (K = 1: sigmoid).
        truth: (H, W) integer labels on the same grid.
        num_classes: the model's class count (1 = sigmoid).
        losses: names from `map_losses(num_classes)` (default: all of them).

    Returns:
        loss name -> float32 (H, W) map.
    """
    import keras
    import tensorflow as tf

    probs = np.asarray(probabilities, np.float32)
    if probs.ndim == 2:
        probs = probs[..., None]
    labels = np.asarray(truth)
    if probs.shape[:2] != labels.shape:
        raise UNetDemoError(f"The truth mask {labels.shape} must have the prediction's size "
                            f"{probs.shape[:2]}.")
    num_classes = int(num_classes)
    names = tuple(losses) if losses is not None else map_losses(num_classes)
    unknown = [name for name in names if name not in map_losses(num_classes)]
    if unknown:
        raise UNetDemoError(f"Loss maps exist for {list(map_losses(num_classes))}. "
                            f"Received: {unknown}.")
    logits = tf.Variable(logits_from_probabilities(probs, num_classes)[None])
    if num_classes == 1:
        target = (labels > 0).astype(np.float32)[None, ..., None]
    else:
        target = labels.astype(np.int32)[None]
    one_hot = None if num_classes == 1 else keras.ops.one_hot(target, probs.shape[-1])
    maps: dict[str, np.ndarray] = {}
    for name in names:
        loss, wants_one_hot = _loss(name, num_classes)
        with tf.GradientTape() as tape:
            p = tf.sigmoid(logits) if num_classes == 1 else tf.nn.softmax(logits, axis=-1)
            value = loss(one_hot if wants_one_hot else target, p)
        gradient = tape.gradient(value, logits).numpy()[0]
        maps[name] = np.sqrt((gradient.astype(np.float64) ** 2).sum(axis=-1)).astype(np.float32)
    return maps


def start_probabilities(shape: Sequence[int], num_classes: int) -> np.ndarray:
    """An undecided prediction, as at the start of training: 0.5, or 1/K for each of K classes.

    Args:
        shape: (H, W) of the image.
        num_classes: the model's class count (1 = sigmoid).

    Example:
        >>> start_probabilities((2, 2), 4)[0, 0].tolist()
        [0.25, 0.25, 0.25, 0.25]
    """
    channels = 1 if int(num_classes) == 1 else int(num_classes)
    value = 0.5 if channels == 1 else 1.0 / channels
    return np.full((*tuple(shape)[:2], channels), value, np.float32)


def foreground_share(loss_map: np.ndarray, truth: np.ndarray) -> float:
    """Share (0-1) of a loss map's total that falls on the true foreground (labels > 0).

    Example:
        >>> foreground_share(np.array([[1.0, 3.0]]), np.array([[0, 1]]))
        0.75
    """
    values = np.abs(np.asarray(loss_map, np.float64))
    total = values.sum()
    return float(values[np.asarray(truth) > 0].sum() / total) if total > 0 else 0.0
