"""From model outputs to label masks: which labels are foreground, threshold or argmax.

One rule for every caller (Segment, Evaluate, the CLI, training snapshots): a single sigmoid
channel is cut at a threshold, several softmax channels are arg-maxed.

Example:
    >>> import numpy as np
    >>> labels_from_probabilities(np.array([[[[0.3], [0.8]]]]), 1).tolist()
    [[[0, 1]]]
"""

from __future__ import annotations

import numpy as np


def foreground_classes(num_classes: int) -> list[int]:
    """Labels that are scored: [1] for a binary task, 1..C-1 for C classes.

    Args:
        num_classes: 1 or 2 for binary (sigmoid or 2-way softmax), otherwise the class count.

    Example:
        >>> foreground_classes(1), foreground_classes(3)
        ([1], [1, 2])
    """
    return [1] if num_classes <= 2 else list(range(1, num_classes))


def labels_from_probabilities(
    probabilities: np.ndarray, num_classes: int, threshold: float = 0.5
) -> np.ndarray:
    """Turn model outputs into integer labels: threshold one sigmoid channel, argmax otherwise.

    Args:
        probabilities: (..., 1) sigmoid probabilities or (..., C) softmax probabilities;
            a 3-D (N, H, W) array is read as sigmoid probabilities.
        num_classes: label count of the task.
        threshold: foreground cut for the sigmoid case (>= threshold is foreground).

    Example:
        >>> labels_from_probabilities(np.array([[[[0.2], [0.7]]]]), 1).tolist()
        [[[0, 1]]]
    """
    probs = np.asarray(probabilities)
    if probs.ndim == 3 or probs.shape[-1] == 1:
        single = probs if probs.ndim == 3 else probs[..., 0]
        return (single >= threshold).astype(np.uint8)
    del num_classes  # the channel count decides
    return np.argmax(probs, axis=-1).astype(np.uint8)


def as_batch(array: np.ndarray) -> np.ndarray:
    """One (H, W) mask or image becomes a batch of one (1, H, W); a batch stays as it is.

    Args:
        array: (H, W) or (N, H, W[, C]).

    Example:
        >>> as_batch(np.zeros((4, 5))).shape, as_batch(np.zeros((2, 4, 5))).shape
        ((1, 4, 5), (2, 4, 5))
    """
    array = np.asarray(array)
    return array[None] if array.ndim == 2 else array


def foreground_probability(probabilities: np.ndarray) -> np.ndarray:
    """Probability of "any foreground": the sigmoid channel, or 1 - background for softmax.

    Args:
        probabilities: (..., 1) sigmoid or (..., K) softmax outputs.

    Example:
        >>> foreground_probability(np.array([[0.7, 0.2, 0.1]])).round(2).tolist()
        [0.3]
    """
    probs = np.asarray(probabilities)
    return probs[..., 0] if probs.shape[-1] == 1 else 1.0 - probs[..., 0]
