"""Synthetic ultrasound-like lesion images, generated from a seed at run time (no files).

Each image is a smooth tissue texture that darkens with depth, with one to three small
elliptical lesions that are either darker (hypoechoic) or brighter (hyperechoic) than the
tissue around them, all multiplied by speckle noise (gamma-distributed intensity, the
intensity of fully developed speckle). Lesions cover roughly 1-3 % of the pixels, so the task
shows what heavy class imbalance does to training and to pixel accuracy.

Every image has its own random stream, keyed by (seed, split, index), so a split always has the
same images whatever else was generated before it.

Example:
    >>> images, masks, ids = generate_split("train", seed=0)
    >>> images.shape, masks.shape, ids[0]
    ((140, 128, 128), (140, 128, 128), 'synthetic_train_0000')
"""

from __future__ import annotations

import numpy as np

from unet_demo.errors import UNetDemoError

IMAGE_SIZE = 128
DEFAULT_SEED = 20240
SPLIT_COUNTS = {"train": 140, "val": 30, "test": 30}
_SPLIT_KEYS = {"train": 0, "val": 1, "test": 2}
DISPLAY_WHITE = 1.3  # echo level shown as white (brighter values saturate)
SPECKLE_LOOKS = 3.0  # gamma shape: 1 = fully developed speckle, higher = smoother (averaged looks)

CARD = {
    "name": "synthetic_lesions",
    "title": "Synthetic ultrasound-like lesions",
    "modality": "Synthetic (ultrasound-like B-mode texture with speckle)",
    "task": "Binary segmentation of small lesions (heavy class imbalance)",
    "num_classes": 2,
    "class_names": ["background", "lesion"],
    "label_meaning": {
        "0": "background: simulated tissue",
        "1": "lesion: a small ellipse darker or brighter than the tissue around it",
    },
    "image_size": [IMAGE_SIZE, IMAGE_SIZE],
    "channels": 1,
    "sources": [
        {
            "package": "unet_demo (this project)",
            "version": "generated at run time",
            "file": "unet_demo/data/synthetic.py",
            "sha256": None,
            "licence": "Same licence as this project; no third-party data.",
            "notice": "Generated from a random seed; contains no patient data.",
            "citation": None,
        }
    ],
    "derivation": [
        "Smooth tissue texture: a 17x17 grid of Gaussian noise upsampled to 128x128 with "
        "Gaussian weights, times a depth fade from top to bottom as in a B-mode image.",
        "One to three ellipses per image (semi-axes 3-9 px, random angle, centre at least "
        "12 px from the border); each is hypoechoic (x0.25-0.5, 60 % of lesions) or "
        "hyperechoic (x1.8-2.6) with a soft edge about 1 px wide.",
        f"Multiplicative speckle: brightness times Gamma(shape={SPECKLE_LOOKS:g}, "
        f"scale=1/{SPECKLE_LOOKS:g}) noise (mean 1), then a light [1, 2, 1]/4 smoothing.",
        f"Brightness {DISPLAY_WHITE:g} and above shown as white; quantised to 8 bits like the "
        "other datasets, then scaled to [0, 1] by the loader.",
    ],
    "split_rule": (
        "Every image is drawn from its own random stream keyed by (seed, split, index); the "
        "three splits use different stream keys, so no image is shared between them."
    ),
    "split_proves": (
        "Scores on the test split measure generalisation to new draws from the same "
        "generator: a fair check of over-fitting on this toy problem."
    ),
    "split_does_not_prove": (
        "Nothing about real ultrasound: real speckle, shadows, artefacts, anatomy and lesion "
        "shapes are far more varied. Use it to study class imbalance, losses and thresholds."
    ),
}


_YY, _XX = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)
_DEPTH = _YY / IMAGE_SIZE
_TEXTURE_GRID = 17  # coarse noise grid upsampled to the image: a smooth, cheap tissue texture


def _upsampling_matrix(size: int, grid: int, width: float = 0.8) -> np.ndarray:
    """(size, grid) matrix of normalised Gaussian weights: ``M @ coarse @ M.T`` upsamples."""
    centres = (np.arange(size) + 0.5) * grid / size - 0.5
    weights = np.exp(-0.5 * ((centres[:, None] - np.arange(grid)[None, :]) / width) ** 2)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


_UPSAMPLE = _upsampling_matrix(IMAGE_SIZE, _TEXTURE_GRID)


def _add_ellipse(rng: np.random.Generator, echo: np.ndarray, mask: np.ndarray) -> None:
    """Draw one random lesion into `echo` (scaled brightness) and `mask` (True inside), in place."""
    semi_a, semi_b = rng.uniform(3.0, 9.0, size=2)
    margin = 12
    cy, cx = rng.uniform(margin, IMAGE_SIZE - margin, size=2)
    angle = rng.uniform(0, np.pi)
    contrast = rng.uniform(0.25, 0.5) if rng.random() < 0.6 else rng.uniform(1.8, 2.6)
    # Work in a small window around the lesion: cheaper than the whole image.
    top, left = int(cy) - margin, int(cx) - margin
    window = (slice(top, top + 2 * margin), slice(left, left + 2 * margin))
    dy, dx = _YY[window] - cy, _XX[window] - cx
    cos, sin = np.cos(angle), np.sin(angle)
    radius = np.hypot((dx * cos + dy * sin) / semi_a, (-dx * sin + dy * cos) / semi_b)
    # Soft edge about one pixel wide so the boundary is not a perfect step.
    soft = np.clip((1.0 - radius) * min(semi_a, semi_b) + 0.5, 0.0, 1.0)
    echo[window] *= (1.0 + (contrast - 1.0) * soft).astype(np.float32)
    mask[window] |= radius <= 1.0


def _smooth3(image: np.ndarray) -> np.ndarray:
    """Light [1, 2, 1] / 4 smoothing along both axes (edges repeated)."""
    padded = np.pad(image, 1, mode="edge")
    rows = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
    return 0.25 * rows[:, :-2] + 0.5 * rows[:, 1:-1] + 0.25 * rows[:, 2:]


def generate_image(seed: int, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Generate one image (uint8, HxW) and its lesion mask (uint8 0/1, HxW).

    Args:
        seed: base seed of the dataset.
        split: "train", "val" or "test" (part of the random-stream key).
        index: image number inside the split.

    Example:
        >>> image, mask = generate_image(0, "test", 3)
        >>> image.dtype, int(mask.max())
        (dtype('uint8'), 1)
    """
    rng = np.random.default_rng([seed, _SPLIT_KEYS[split], index])
    coarse = rng.standard_normal((_TEXTURE_GRID, _TEXTURE_GRID)).astype(np.float32)
    texture = _UPSAMPLE @ coarse @ _UPSAMPLE.T
    depth_fade = np.float32(1.0) - np.float32(rng.uniform(0.3, 0.6)) * _DEPTH
    texture *= np.float32(0.12 / (texture.std() + 1e-6))
    echo = np.clip(texture + np.float32(0.55), 0.05, None) * depth_fade

    mask = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    for _ in range(int(rng.integers(1, 4))):
        _add_ellipse(rng, echo, mask)

    speckle = rng.standard_gamma(SPECKLE_LOOKS, size=echo.shape, dtype=np.float32)
    speckle *= 1.0 / SPECKLE_LOOKS
    noisy = _smooth3(echo * speckle)
    scaled = np.clip(noisy * np.float32(255.0 / DISPLAY_WHITE), 0.0, 255.0)
    return np.rint(scaled).astype(np.uint8), mask.astype(np.uint8)


def generate_split(
    split: str, seed: int = DEFAULT_SEED, count: int | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Generate a whole split: images uint8 (N,H,W), masks uint8 (N,H,W) and ids.

    Args:
        split: "train", "val" or "test".
        seed: base seed; the same seed always gives the same images.
        count: number of images; defaults to `SPLIT_COUNTS[split]` (140/30/30).

    Example:
        >>> _, masks, _ = generate_split("val", seed=1, count=4)
        >>> masks.shape
        (4, 128, 128)
    """
    if split not in _SPLIT_KEYS:
        raise UNetDemoError(
            f"Unknown split {split!r}. Expected one of {list(_SPLIT_KEYS)}."
        )
    total = SPLIT_COUNTS[split] if count is None else int(count)
    images = np.empty((total, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    masks = np.empty((total, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for index in range(total):
        images[index], masks[index] = generate_image(seed, split, index)
    ids = [f"synthetic_{split}_{index:04d}" for index in range(total)]
    return images, masks, ids
