"""Run a segmentation model on arrays: prediction, flip test-time augmentation (TTA).

Only numpy at import time; the model is any callable that maps a float32 batch
(B, H, W, C) to probabilities (B, H, W, K), for example ``lambda x: model.predict(x, verbose=0)``.

Example:
    >>> import numpy as np
    >>> images = np.random.default_rng(0).random((2, 8, 8, 1), dtype=np.float32)
    >>> result = flip_tta(lambda x: x, images)   # the identity "model" is flip-equivariant
    >>> float(result.variance.max())
    0.0
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from unet_demo.errors import UNetDemoError

# --------------------------------------------------------------------------- flip TTA

# Each flip is its own inverse: name -> spatial axes of an (N, H, W, C) batch that it reverses.
FLIPS: dict[str, tuple[int, ...]] = {
    "identity": (),
    "hflip": (2,),   # mirror left-right (columns)
    "vflip": (1,),   # mirror top-bottom (rows)
    "hvflip": (1, 2),
}


def apply_flip(batch: np.ndarray, flip: str) -> np.ndarray:
    """Flip an (N, H, W, C) batch; applying the same flip twice restores it.

    Args:
        batch: array with rows on axis 1 and columns on axis 2.
        flip: one of "identity", "hflip", "vflip", "hvflip".

    Example:
        >>> apply_flip(np.arange(4).reshape(1, 1, 4, 1), "hflip")[0, 0, :, 0].tolist()
        [3, 2, 1, 0]
    """
    if flip not in FLIPS:
        raise UNetDemoError(f"flip must be one of {list(FLIPS)}. Received: {flip!r}.")
    axes = FLIPS[flip]
    return np.flip(batch, axis=axes).copy() if axes else batch


@dataclasses.dataclass
class TTAResult:
    """Flip-TTA output: mean probability, per-pixel variance across flips, each flip's output.

    Attributes:
        mean: (N, H, W, K) mean probability over the flips.
        variance: (N, H, W) variance across flips (averaged over the K channels): high where the
            model changes its mind when the image is mirrored, a cheap uncertainty map.
        per_flip: flip name -> (N, H, W, K) probabilities mapped back to the original orientation.
    """

    mean: np.ndarray
    variance: np.ndarray
    per_flip: dict[str, np.ndarray]


def flip_tta(
    predict_fn: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    flips: Sequence[str] = tuple(FLIPS),
    batch_size: int = 8,
) -> TTAResult:
    """Predict each flipped copy of the images, flip the outputs back, and combine them.

    Args:
        predict_fn: maps a float32 batch (B, H, W, C) to probabilities (B, H, W, K) or (B, H, W).
        images: float32 (N, H, W, C) or one (H, W, C) image.
        flips: which flips to use (default: identity, hflip, vflip, hvflip).
        batch_size: images per ``predict_fn`` call.

    Example:
        >>> img = np.zeros((1, 4, 4, 1), np.float32); img[0, 0, 0] = 1
        >>> corner = lambda x: np.broadcast_to(x[:, :1, :1], x.shape)  # not flip-equivariant
        >>> bool(flip_tta(corner, img).variance.max() > 0)
        True
    """
    batch = np.asarray(images, dtype=np.float32)
    if batch.ndim == 3:
        batch = batch[None]
    if batch.ndim != 4:
        raise UNetDemoError(
            f"Test-time augmentation expects (N, H, W, C) images. Received shape {batch.shape}."
        )
    if not flips:
        raise UNetDemoError("Pick at least one flip for test-time augmentation.")
    per_flip: dict[str, np.ndarray] = {}
    for flip in flips:
        flipped = apply_flip(batch, flip)
        outputs = []
        for start in range(0, len(flipped), max(1, int(batch_size))):
            out = np.asarray(predict_fn(flipped[start:start + batch_size]), dtype=np.float32)
            outputs.append(out[..., None] if out.ndim == 3 else out)
        per_flip[flip] = apply_flip(np.concatenate(outputs, axis=0), flip)
    stack = np.stack(list(per_flip.values()), axis=0)  # (F, N, H, W, K)
    return TTAResult(
        mean=stack.mean(axis=0),
        variance=stack.var(axis=0).mean(axis=-1),
        per_flip=per_flip,
    )
