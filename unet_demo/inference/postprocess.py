"""Clean up predicted masks with morphology: opening, closing, largest component, holes, specks.

Every operation works on integer label masks (H, W): binary masks are labels {0, 1}, multi-class
masks are labels 0..C-1 with 0 as background. Operations run per foreground class, so "keep the
largest component" keeps the largest blob of *each* class. Operations are named by short strings
so an ordered list of them is JSON-friendly and can be part of a cache key:

    "opening:2"           erosion then dilation with a disk of radius 2 (removes thin specks)
    "closing:2"           dilation then erosion with a disk of radius 2 (closes small gaps)
    "largest_component"   keep only the largest connected blob of each class
    "fill_holes"          fill background enclosed by a class
    "remove_small:50"     drop blobs of 50 pixels or fewer

Example:
    >>> import numpy as np
    >>> mask = np.zeros((8, 8), np.uint8); mask[1:5, 1:5] = 1; mask[7, 7] = 1
    >>> int(postprocess(mask, ["largest_component"]).sum())
    16
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage
from skimage import morphology

from unet_demo.errors import UNetDemoError

# name -> (default parameter or None when the op takes none, one-line description)
OPERATIONS: dict[str, tuple[int | None, str]] = {
    "opening": (1, "erosion then dilation with a disk: removes specks thinner than the disk"),
    "closing": (1, "dilation then erosion with a disk: closes gaps and notches narrower than it"),
    "largest_component": (None, "keep only the largest connected blob of each class"),
    "fill_holes": (None, "fill background regions completely enclosed by a class"),
    "remove_small": (20, "remove blobs with this many pixels or fewer"),
}


def parse_op(op: str) -> tuple[str, int | None]:
    """Split an operation string such as ``"opening:2"`` into its name and integer parameter.

    Args:
        op: operation name, optionally followed by ``:N`` (see `OPERATIONS`).

    Example:
        >>> parse_op("opening:3")
        ('opening', 3)
        >>> parse_op("fill_holes")
        ('fill_holes', None)
    """
    name, _, raw = str(op).strip().partition(":")
    if name not in OPERATIONS:
        raise UNetDemoError(
            f"Unknown post-processing operation {name!r}. Expected one of "
            f"{sorted(OPERATIONS)} (optionally with ':N', e.g. 'opening:2'). Received: {op!r}."
        )
    default, _ = OPERATIONS[name]
    if default is None:
        if raw:
            raise UNetDemoError(f"Operation {name!r} takes no parameter. Received: {op!r}.")
        return name, None
    if not raw:
        return name, default
    try:
        value = int(raw)
    except ValueError:
        raise UNetDemoError(
            f"Operation {name!r} needs a whole-number parameter, e.g. '{name}:{default}'. "
            f"Received: {op!r}."
        ) from None
    if value < 0 or value > 10_000:
        raise UNetDemoError(f"Parameter of {name!r} must be 0..10000. Received: {op!r}.")
    return name, value


def binary_opening(mask: np.ndarray, radius: int = 1) -> np.ndarray:
    """Morphological opening of a boolean mask with a disk of ``radius`` pixels.

    Args:
        mask: boolean (H, W) array.
        radius: disk radius in pixels; 0 returns the mask unchanged.

    Example:
        >>> m = np.zeros((7, 7), bool); m[3, 3] = True
        >>> bool(binary_opening(m, 1).any())
        False
    """
    mask = np.asarray(mask, dtype=bool)
    if radius <= 0:
        return mask.copy()
    opened = morphology.opening(mask.astype(np.uint8), morphology.disk(radius), mode="ignore")
    return opened.astype(bool)


def binary_closing(mask: np.ndarray, radius: int = 1) -> np.ndarray:
    """Morphological closing of a boolean mask with a disk of ``radius`` pixels.

    Pixels beyond the border are ignored, so objects touching the edge are not eaten away.

    Args:
        mask: boolean (H, W) array.
        radius: disk radius in pixels; 0 returns the mask unchanged.

    Example:
        >>> m = np.ones((5, 5), bool); m[2, 2] = False
        >>> bool(binary_closing(m, 1).all())
        True
    """
    mask = np.asarray(mask, dtype=bool)
    if radius <= 0:
        return mask.copy()
    closed = morphology.closing(mask.astype(np.uint8), morphology.disk(radius), mode="ignore")
    return closed.astype(bool)


def keep_largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep only the largest 8-connected blob of a boolean mask (empty stays empty).

    Args:
        mask: boolean (H, W) array.

    Example:
        >>> m = np.zeros((6, 6), bool); m[0:3, 0:3] = True; m[5, 5] = True
        >>> int(keep_largest_component(m).sum())
        9
    """
    mask = np.asarray(mask, dtype=bool)
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count <= 1:
        return mask.copy()
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions that are fully enclosed by the mask.

    Args:
        mask: boolean (H, W) array.

    Example:
        >>> m = np.ones((5, 5), bool); m[2, 2] = False
        >>> bool(fill_holes(m)[2, 2])
        True
    """
    return ndimage.binary_fill_holes(np.asarray(mask, dtype=bool))


def remove_small_objects(mask: np.ndarray, max_pixels: int = 20) -> np.ndarray:
    """Remove 8-connected blobs with ``max_pixels`` pixels or fewer.

    Args:
        mask: boolean (H, W) array.
        max_pixels: blobs of this size or smaller are removed.

    Example:
        >>> m = np.zeros((6, 6), bool); m[0:3, 0:3] = True; m[5, 5] = True
        >>> int(remove_small_objects(m, 1).sum())
        9
    """
    mask = np.asarray(mask, dtype=bool)
    if max_pixels <= 0:
        return mask.copy()
    return morphology.remove_small_objects(mask, max_size=int(max_pixels), connectivity=2)


_BINARY_OPS: dict[str, Callable[..., np.ndarray]] = {
    "opening": binary_opening,
    "closing": binary_closing,
    "largest_component": keep_largest_component,
    "fill_holes": fill_holes,
    "remove_small": remove_small_objects,
}


def apply_op(mask: np.ndarray, op: str) -> np.ndarray:
    """Apply one operation to a label mask, class by class (0 is background).

    Where two classes claim the same pixel after the operation (closing can grow a class),
    the pixel keeps its original label if that is one of them, otherwise the lower class wins.

    Args:
        mask: integer (H, W) label mask (or boolean).
        op: operation string, e.g. ``"closing:2"``.

    Example:
        >>> m = np.zeros((5, 5), np.uint8); m[1:4, 1:4] = 2; m[2, 2] = 0
        >>> int(apply_op(m, "fill_holes")[2, 2])
        2
    """
    name, param = parse_op(op)
    labels = _as_labels(mask)
    function = _BINARY_OPS[name]
    classes = [int(c) for c in np.unique(labels) if c != 0]
    result = np.zeros_like(labels)
    claimed = np.zeros(labels.shape, dtype=bool)
    processed = {}
    for cls in classes:
        binary = labels == cls
        processed[cls] = function(binary) if param is None else function(binary, param)
    # First give each class the pixels it already had, then the new ones in class order.
    for cls in classes:
        keep = processed[cls] & (labels == cls)
        result[keep] = cls
        claimed |= keep
    for cls in classes:
        grow = processed[cls] & ~claimed
        result[grow] = cls
        claimed |= grow
    return result


def postprocess(mask: np.ndarray, ops: Sequence[str] | None) -> np.ndarray:
    """Apply an ordered list of operations to a label mask (or a batch of masks).

    Args:
        mask: integer label mask (H, W) or a batch (N, H, W); booleans are treated as {0, 1}.
        ops: operation strings applied left to right (see `OPERATIONS`); empty = unchanged copy.

    Example:
        >>> m = np.zeros((9, 9), np.uint8); m[2:7, 2:7] = 1; m[4, 4] = 0; m[0, 8] = 1
        >>> cleaned = postprocess(m, ["fill_holes", "largest_component"])
        >>> int(cleaned.sum()), int(cleaned[4, 4]), int(cleaned[0, 8])
        (25, 1, 0)
    """
    ops = list(ops or [])
    for op in ops:
        parse_op(op)  # validate all before doing any work
    labels = _as_labels(mask)
    if labels.ndim == 3:
        return np.stack([postprocess(single, ops) for single in labels]) if len(labels) else labels
    if labels.ndim != 2:
        raise UNetDemoError(
            f"Post-processing expects a (H, W) mask or an (N, H, W) batch. "
            f"Received shape {tuple(labels.shape)}."
        )
    for op in ops:
        labels = apply_op(labels, op)
    return labels


def _as_labels(mask: np.ndarray) -> np.ndarray:
    array = np.asarray(mask)
    if array.dtype == bool:
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise UNetDemoError(
            "Post-processing expects an integer label mask (apply a threshold to probabilities "
            f"first). Received dtype {array.dtype}."
        )
    return array
