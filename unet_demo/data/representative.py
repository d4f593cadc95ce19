"""Which image of a set to show first: a representative one, never an empty slice.

Pure numpy, no I/O: the Data, Augment and Home pages open a dataset on the image these pick.

Example:
    >>> import numpy as np
    >>> masks = np.zeros((3, 4, 4), np.uint8); masks[2, :2] = 1; masks[1, 0, 0] = 1
    >>> representative_index(masks), representative_index(masks, "median")
    (2, 1)
"""

from __future__ import annotations

import numpy as np

RULES = ("most", "median")


def foreground_shares(masks: np.ndarray) -> np.ndarray:
    """Share of non-background (label > 0) pixels of every mask.

    Args:
        masks: (N, H, W) or (N, H, W, 1) integer labels.

    Example:
        >>> foreground_shares(np.array([[[0, 1], [1, 1]]])).tolist()
        [0.75]
    """
    flat = np.asarray(masks).reshape(len(masks), -1)
    return (flat > 0).mean(axis=1)


def representative_index(masks: np.ndarray, rule: str = "most") -> int:
    """Index of the image to open a dataset on.

    "most": the mask with the most classes present, then the most foreground (the brain-tissue
    slice that shows all three tissues, the nuclei tile with the most nuclei). "median": among
    masks with any foreground, the one whose foreground share is the median (a typical image,
    not the best-looking one); an all-empty set gives 0.

    Args:
        masks: (N, H, W) integer labels; N >= 1.
        rule: "most" or "median".

    Example:
        >>> m = np.zeros((3, 4, 4), np.uint8); m[2, :2] = 1
        >>> representative_index(m)
        2
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}. Received: rule={rule!r}")
    flat = np.asarray(masks).reshape(len(masks), -1)
    if len(flat) == 0:
        raise ValueError("masks is empty: there is no image to pick. Received: 0 masks")
    share = foreground_shares(masks)
    if rule == "median":
        candidates = np.flatnonzero(share > 0)
        if not len(candidates):
            return 0
        order = candidates[np.argsort(share[candidates], kind="stable")]
        return int(order[(len(order) - 1) // 2])
    classes = np.array([len(np.unique(row)) for row in flat])
    return int(np.lexsort((-share, -classes))[0])
