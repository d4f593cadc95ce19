"""K-fold cross-validation folds that keep related images together (no leaks between folds).

Cross-validation pools the train and validation splits (the test split stays untouched) and
cuts the pool into K folds; each fold validates once while the others train. A fold must not
validate on images that are near copies of training images, so images are first put into
*groups* that follow the same rules as the dataset's own split:

- MRI slices (``axial_z087``): a group is a run of neighbouring slices of one plane; a new
  group starts where the slice numbers jump by more than the usual step (the bundled splits
  leave such gaps between their blocks).
- Patches of one large image (``nuclei_r064_c128``): a group is the tile (one patch size
  square) that holds the patch's top-left corner.
- Uploads named ``<patient><separator><slice>``: a group is the part before the separator
  (the option the upload was split with).
- Anything else: every image is its own group (independent draws, separate files).

Whole groups go to folds in their natural order (neighbouring groups share a fold), sized as
evenly as the groups allow. Where images of different groups still overlap or lie closer
than the split rule allows (overlapping patches, slices less than `MIN_SLICE_GAP` apart),
the training image is left out of that fold's training set (`Fold.dropped`), so validation
never sees pixels the model trained on.

Example:
    >>> ids = [f"axial_z{i:03d}" for i in (10, 12, 14, 30, 32, 34, 50, 52, 70, 72)]
    >>> folds = make_folds(ids, 3)
    >>> [[ids[i] for i in fold.val] for fold in folds][0]
    ['axial_z010', 'axial_z012', 'axial_z014']
    >>> sorted(i for fold in folds for i in fold.val) == list(range(len(ids)))
    True
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np

from unet_demo.errors import UNetDemoError

SLICE_ID = re.compile(r"^(axial|coronal|sagittal)_([xyz])(\d+)$")
PATCH_ID = re.compile(r"^(.*)_r(\d+)_c(\d+)$")
MIN_SLICE_GAP = 4
"""Slices of different folds must be at least this many voxels apart (the bundled split rule:
blocks of another split start 3 dropped slices later, so 4 or more voxels)."""
MAX_FOLDS = 20


@dataclasses.dataclass(frozen=True)
class Fold:
    """One fold: indices into the pooled image list.

    Attributes:
        index: 0-based fold number.
        train: images the fold trains on.
        val: images the fold validates on (its own groups).
        dropped: images of other folds left out of training because they overlap or sit too
            close to a validation image.
    """

    index: int
    train: np.ndarray
    val: np.ndarray
    dropped: np.ndarray


def image_groups(ids: Sequence[str], *, group_separator: str | None = None,
                 patch_size: tuple[int, int] = (128, 128)) -> list[str]:
    """The leak-free group of every image, from its id (see the module docstring).

    Args:
        ids: image ids of the pool.
        group_separator: uploads split by patient: the part of an id before it is the group.
        patch_size: (height, width) of patches cut from one large image (their tile size).

    Example:
        >>> image_groups(["axial_z010", "axial_z012", "axial_z030", "coronal_y040"])
        ['axial:0010', 'axial:0010', 'axial:0030', 'coronal:0040']
        >>> image_groups(["nuclei_r000_c032", "nuclei_r128_c000"])
        ['nuclei:r0000:c0000', 'nuclei:r0001:c0000']
        >>> image_groups(["p01_s1", "p01_s2", "p02_s1"], group_separator="_")
        ['p01', 'p01', 'p02']
    """
    ids = [str(i) for i in ids]
    if group_separator:
        return [i.split(group_separator, 1)[0] for i in ids]
    if ids and all(SLICE_ID.match(i) for i in ids):
        return _slice_groups(ids)
    if ids and all(PATCH_ID.match(i) for i in ids):
        height, width = patch_size
        groups = []
        for i in ids:
            source, row, col = PATCH_ID.match(i).groups()
            groups.append(f"{source}:r{int(row) // height:04d}:c{int(col) // width:04d}")
        return groups
    return list(ids)


def _slice_groups(ids: list[str]) -> list[str]:
    """Runs of neighbouring slices per plane; a jump larger than the usual step starts a run."""
    planes: dict[str, list[tuple[int, int]]] = {}
    for position, i in enumerate(ids):
        plane, _, number = SLICE_ID.match(i).groups()
        planes.setdefault(plane, []).append((int(number), position))
    groups = [""] * len(ids)
    for plane, entries in planes.items():
        entries.sort()
        numbers = [number for number, _ in entries]
        steps = np.diff(numbers)
        step = int(np.min(steps[steps > 0])) if np.any(steps > 0) else 1
        start = numbers[0]
        for k, (number, position) in enumerate(entries):
            if k and number - numbers[k - 1] > step:
                start = number
            groups[position] = f"{plane}:{start:04d}"
    return groups


def too_close(id_a: str, id_b: str, *, patch_size: tuple[int, int] = (128, 128)) -> bool:
    """True when two images would leak into each other across folds.

    Slices of one plane closer than `MIN_SLICE_GAP`; patches of one source image that share
    pixels. Images of other kinds never do.

    Args:
        id_a, id_b: image ids.
        patch_size: (height, width) of the patches.

    Example:
        >>> too_close("axial_z010", "axial_z012"), too_close("axial_z010", "axial_z014")
        (True, False)
        >>> too_close("nuclei_r000_c000", "nuclei_r096_c096"), too_close("a", "b")
        (True, False)
    """
    slice_a, slice_b = SLICE_ID.match(id_a), SLICE_ID.match(id_b)
    if slice_a and slice_b:
        return (slice_a.group(1) == slice_b.group(1)
                and abs(int(slice_a.group(3)) - int(slice_b.group(3))) < MIN_SLICE_GAP)
    patch_a, patch_b = PATCH_ID.match(id_a), PATCH_ID.match(id_b)
    if patch_a and patch_b and patch_a.group(1) == patch_b.group(1):
        return (abs(int(patch_a.group(2)) - int(patch_b.group(2))) < patch_size[0]
                and abs(int(patch_a.group(3)) - int(patch_b.group(3))) < patch_size[1])
    return False


def check_fold_count(folds: int, fold: int = 0) -> None:
    """Raise a UNetDemoError unless ``2 <= folds <= MAX_FOLDS`` and ``0 <= fold < folds``.

    Args:
        folds: number of folds K.
        fold: 0-based fold number.

    Example:
        >>> check_fold_count(5, 4)
        >>> check_fold_count(1)
        Traceback (most recent call last):
        ...
        unet_demo.errors.UNetDemoError: Cross-validation needs 2 to 20 folds. Received: folds=1. Use --folds 5 (the usual choice) or 3 for a quick check.
    """
    if not 2 <= int(folds) <= MAX_FOLDS:
        raise UNetDemoError(f"Cross-validation needs 2 to {MAX_FOLDS} folds. Received: "
                            f"folds={folds}. Use --folds 5 (the usual choice) or 3 for a quick "
                            "check.")
    if not 0 <= int(fold) < int(folds):
        raise UNetDemoError(f"fold must be between 0 and {int(folds) - 1} for {folds} folds. "
                            f"Received: fold={fold}.")


def make_folds(ids: Sequence[str], k: int, *, group_separator: str | None = None,
               patch_size: tuple[int, int] = (128, 128)) -> list[Fold]:
    """Cut a pool of images into ``k`` folds of whole groups, in the groups' natural order.

    Args:
        ids: image ids of the pool (train + val splits).
        k: number of folds.
        group_separator: see `image_groups`.
        patch_size: see `image_groups`.

    Raises:
        UNetDemoError: fewer groups than folds, or a bad ``k``.

    Example:
        >>> folds = make_folds(["p1_a", "p1_b", "p2_a", "p3_a"], 3, group_separator="_")
        >>> [fold.val.tolist() for fold in folds], folds[0].train.tolist()
        ([[0, 1], [2], [3]], [2, 3])
    """
    check_fold_count(k)
    ids = [str(i) for i in ids]
    groups = image_groups(ids, group_separator=group_separator, patch_size=patch_size)
    members: dict[str, list[int]] = {}
    for position, group in enumerate(groups):
        members.setdefault(group, []).append(position)
    ordered = sorted(members)
    if len(ordered) < k:
        raise UNetDemoError(
            f"{k} folds need at least {k} separate groups of images, but the pool has "
            f"{len(ordered)} (groups keep neighbouring slices, overlapping patches or one "
            f"patient's images together). Use --folds {max(2, len(ordered))} or fewer.")
    # Cut the ordered groups near j * N / k (balanced, contiguous): a fold stops before a
    # group that would overshoot its target by more than stopping short misses it, and every
    # later fold keeps at least one group.
    total, assigned, running, fold, in_fold = len(ids), {}, 0, 0, 0
    for position, group in enumerate(ordered):
        size, target = len(members[group]), (fold + 1) * total / k
        must = len(ordered) - position <= k - 1 - fold
        if fold < k - 1 and in_fold and (must or running + size - target > target - running):
            fold, in_fold = fold + 1, 0
        assigned[group] = fold
        running += size
        in_fold += 1
    folds = []
    for index in range(k):
        val = np.array(sorted(p for g in ordered if assigned[g] == index for p in members[g]),
                       dtype=int)
        val_ids = [ids[p] for p in val]
        train, dropped = [], []
        for p in range(len(ids)):
            if assigned[groups[p]] == index:
                continue
            if any(too_close(ids[p], v, patch_size=patch_size) for v in val_ids):
                dropped.append(p)
            else:
                train.append(p)
        folds.append(Fold(index, np.array(train, dtype=int), val, np.array(dropped, dtype=int)))
    return folds
