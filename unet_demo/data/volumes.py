"""Bundled volumetric datasets: one 3D head volume, a brain mask and leak-free split regions.

A volume dataset is a folder ``sample_data/<name>/`` holding ``volume.npz`` (``image`` and
``mask`` uint8 arrays in RAS+ voxel order (x, y, z), ``spacing`` in mm, ``affine``) and a
``card.json`` whose ``regions`` give each split a box of voxels. The boxes do not overlap and
are separated by gaps, so no voxel of one split lies in a patch of another. Training and
validation use cubic patches cut inside their box (`region_patches`); the test split is scored
on its whole box in 3D (`unet_demo.evaluation.volume`).

Volume datasets are a separate kind from the 2-D datasets of `unet_demo.data.bundled`: their
names are in `VOLUME_DATASET_NAMES`, and only the 3D U-Net trains on them.

Example:
    >>> volume = load_volume("brain_volume")
    >>> volume.image.dtype, volume.image.ndim, volume.spacing
    (dtype('float32'), 3, (2.0, 2.0, 2.0))
    >>> images, masks, ids = region_patches("brain_volume", "val", 32)
    >>> images.shape[1:], masks.shape[1:], ids[0]
    ((32, 32, 32, 1), (32, 32, 32), 'val_x048_y056_z000')
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
from typing import Any

import numpy as np

from unet_demo.data.bundled import CARD_FILE, SPLITS, sample_data_dir
from unet_demo.errors import UNetDemoError

VOLUME_DATASET_NAMES = ("brain_volume",)
VOLUME_FILE = "volume.npz"
MIN_CONTENT = 0.05
"""Training patches whose voxels are less than 5 % head (intensity above air) are left out."""
AIR_LEVEL = 0.05
"""Normalised intensity below which a voxel counts as air."""


def is_volume_dataset(name: str) -> bool:
    """True when ``name`` is a bundled volumetric dataset.

    Args:
        name: a dataset name, e.g. "brain_volume" or "nuclei".

    Example:
        >>> is_volume_dataset("brain_volume"), is_volume_dataset("nuclei")
        (True, False)
    """
    return name in VOLUME_DATASET_NAMES


def _check_name(name: str) -> str:
    if not is_volume_dataset(name):
        raise UNetDemoError(
            f"Unknown volume dataset {name!r}. Expected one of {list(VOLUME_DATASET_NAMES)}; "
            "the 3D U-Net trains on volume datasets only.")
    return name


@functools.cache
def _stored_card(name: str) -> dict[str, Any]:
    path = sample_data_dir() / _check_name(name) / CARD_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UNetDemoError(
            f"Volume dataset card {path} is missing. Rebuild it with `.venv/bin/python "
            "scripts/build_volume_data.py`.") from None


def load_volume_card(name: str) -> dict[str, Any]:
    """Return a fresh copy of a volume dataset's card (regions, spacing, sources, ...).

    Args:
        name: one of `VOLUME_DATASET_NAMES`.

    Example:
        >>> sorted(load_volume_card("brain_volume")["regions"])
        ['test', 'train', 'val']
    """
    return copy.deepcopy(_stored_card(name))


@dataclasses.dataclass(frozen=True)
class Volume:
    """A whole volume of a volume dataset.

    Attributes:
        name: dataset name.
        image: float32 (X, Y, Z) intensities in [0, 1], read-only.
        mask: uint8 (X, Y, Z) labels, read-only.
        spacing: voxel size in mm along x, y, z.
        affine: 4x4 voxel-to-world matrix (RAS+, mm), for writing NIfTI files.
        regions: split -> ((x0, x1), (y0, y1), (z0, z1)) half-open voxel boxes.
    """

    name: str
    image: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    regions: dict[str, tuple[tuple[int, int], ...]]

    def region(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(image, mask) of one split's box.

        Args:
            split: "train", "val" or "test".
        """
        box = tuple(slice(a, b) for a, b in self.regions[_check_split(split)])
        return self.image[box], self.mask[box]


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise UNetDemoError(f"Unknown split {split!r}. Expected one of {list(SPLITS)}.")
    return split


@functools.cache
def load_volume(name: str) -> Volume:
    """Load a volume dataset (cached, read-only arrays).

    Args:
        name: one of `VOLUME_DATASET_NAMES`.

    Example:
        >>> volume = load_volume("brain_volume")
        >>> volume.region("test")[1].max()
        np.uint8(1)
    """
    card = _stored_card(name)
    path = sample_data_dir() / name / VOLUME_FILE
    try:
        with np.load(path) as stored:
            image_u8, mask = stored["image"], stored["mask"]
            spacing, affine = stored["spacing"], stored["affine"]
    except FileNotFoundError:
        raise UNetDemoError(f"{path} is missing. Rebuild it with `.venv/bin/python "
                            "scripts/build_volume_data.py`.") from None
    image = image_u8.astype(np.float32) / np.float32(255.0)
    for array in (image, mask, affine):
        array.flags.writeable = False
    regions = {split: tuple((int(a), int(b)) for a, b in card["regions"][split])
               for split in SPLITS}
    return Volume(name, image, mask.astype(np.uint8, copy=False),
                  tuple(float(s) for s in spacing), affine, regions)


def grid_starts(length: int, size: int, stride: int) -> list[int]:
    """Start positions of windows of ``size`` every ``stride`` voxels, the last one flush.

    Args:
        length: extent of the region.
        size: window side (at most ``length``).
        stride: step between windows.

    Example:
        >>> grid_starts(42, 32, 16), grid_starts(32, 32, 16), grid_starts(70, 32, 32)
        ([0, 10], [0], [0, 32, 38])
    """
    if size > length:
        raise UNetDemoError(f"A {size}-voxel patch does not fit a {length}-voxel region. Use a "
                            "smaller patch (the image size of the run).")
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def region_patches(name: str, split: str, size: int, *, stride: int | None = None,
                   flip: bool = False) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Cubic patches cut on a grid inside one split's box.

    Patches that are almost all air (less than `MIN_CONTENT` head voxels) are left out. With
    ``flip`` each kept patch is followed by its left-right mirror (axis x), a fixed
    augmentation for the training split.

    Args:
        name: volume dataset name.
        split: "train", "val" or "test".
        size: patch side in voxels.
        stride: step between patches (default: half the side for "train", the side otherwise).
        flip: add left-right mirrored copies.

    Returns:
        images float32 (N, size, size, size, 1), masks uint8 (N, size, size, size), ids
        "<split>_x<start>_y<start>_z<start>" (with "_flip" for mirrors).

    Example:
        >>> images, _, ids = region_patches("brain_volume", "train", 32, flip=True)
        >>> len(ids) % 2, ids[1].endswith("_flip")
        (0, True)
    """
    volume = load_volume(name)
    image, mask = volume.region(split)
    step = stride or (max(1, size // 2) if split == "train" else size)
    images, masks, ids = [], [], []
    offsets = [a for a, _ in volume.regions[split]]
    for x in grid_starts(image.shape[0], size, step):
        for y in grid_starts(image.shape[1], size, step):
            for z in grid_starts(image.shape[2], size, step):
                box = (slice(x, x + size), slice(y, y + size), slice(z, z + size))
                patch = image[box]
                if float((patch > AIR_LEVEL).mean()) < MIN_CONTENT:
                    continue
                tag = f"{split}_x{x + offsets[0]:03d}_y{y + offsets[1]:03d}_z{z + offsets[2]:03d}"
                images.append(patch)
                masks.append(mask[box])
                ids.append(tag)
                if flip:
                    images.append(patch[::-1])
                    masks.append(mask[box][::-1])
                    ids.append(f"{tag}_flip")
    if not images:
        raise UNetDemoError(f"No {size}-voxel patch of {name!r} ({split}) holds enough head. "
                            "Use a smaller patch size.")
    return (np.stack(images).astype(np.float32)[..., None], np.stack(masks).astype(np.uint8),
            ids)


def prepare_volume_split(name: str, split: str, size: int, *, max_images: int = 0,
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Model-ready (patches, masks, ids) of one split, as a 3D run trains and validates on.

    Training patches overlap by half a side and come with their left-right mirrors; validation
    and test patches tile their box. ``max_images`` keeps that many training patches, drawn with
    ``seed`` and kept in order.

    Args:
        name: volume dataset name.
        split: "train", "val" or "test".
        size: patch side (the run's image size).
        max_images: 0 = all training patches.
        seed: draws the training subset.

    Example:
        >>> images, masks, ids = prepare_volume_split("brain_volume", "train", 16, max_images=5)
        >>> images.shape, len(ids)
        ((5, 16, 16, 16, 1), 5)
    """
    images, masks, ids = region_patches(name, split, size, flip=split == "train")
    if split == "train" and max_images and len(images) > max_images:
        keep = np.sort(np.random.default_rng(seed).permutation(len(images))[:max_images])
        images, masks, ids = images[keep], masks[keep], [ids[i] for i in keep]
    return images, masks, ids


def volume_label_count(name: str) -> int:
    """Labels including background declared by a volume dataset's card.

    Args:
        name: volume dataset name.

    Example:
        >>> volume_label_count("brain_volume")
        2
    """
    return int(_stored_card(name)["num_classes"])


def volume_choices() -> dict[str, str]:
    """Volume dataset key -> label for the Train page's picker.

    Example:
        >>> volume_choices()["brain_volume"].endswith("(brain_volume, 3D)")
        True
    """
    return {name: f"{_stored_card(name)['title']} ({name}, 3D)" for name in VOLUME_DATASET_NAMES}
