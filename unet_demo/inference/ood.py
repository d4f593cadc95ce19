"""Dataset fingerprints and out-of-distribution (OOD) warnings for uploaded images.

A *fingerprint* (an idea from nnU-Net) summarises the images a model was trained on: their size,
channel count and intensity statistics. A model only knows the kind of images it has seen, so an
upload that looks very different (much brighter, another size, colour instead of grey) gets a
warning: the prediction may be meaningless even if it looks confident.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> train = rng.normal(0.3, 0.05, (20, 32, 32, 1)).clip(0, 1).astype(np.float32)
    >>> fp = fingerprint(train)
    >>> ood_check(train[0], fp)
    []
    >>> len(ood_check(np.clip(train[0] + 0.6, 0, 1), fp)) > 0
    True
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from unet_demo.errors import UNetDemoError

PERCENTILES = (1, 5, 25, 50, 75, 95, 99)
# How far (in training standard deviations of the per-image mean) an upload may drift.
MEAN_Z_LIMIT = 3.0
# Allowed ratio between an upload's side lengths and the training median before warning.
SIZE_RATIO_LIMIT = 2.0
CONTRAST_RATIO_LIMIT = 3.0


def fingerprint(images: np.ndarray | list[np.ndarray]) -> dict[str, Any]:
    """Summarise a set of training images (sizes, channels, intensities) as a JSON-ready dict.

    Args:
        images: float (N, H, W, C) array in the model's input range, or a list of (H, W, C)
            or (H, W) arrays of possibly different sizes.

    Example:
        >>> fp = fingerprint(np.zeros((3, 16, 24, 1), np.float32))
        >>> fp["median_size"], fp["channels"], fp["num_images"]
        ([16, 24], 1, 3)
    """
    items = [_as_hwc(image) for image in images]
    if not items:
        raise UNetDemoError("A fingerprint needs at least one image.")
    channels = sorted({item.shape[-1] for item in items})
    sizes = np.array([item.shape[:2] for item in items], dtype=np.float64)
    image_means = np.array([float(item.mean()) for item in items])
    image_stds = np.array([float(item.std()) for item in items])
    # Pool a bounded sample of pixels for the percentiles (deterministic, cheap for big sets).
    rng = np.random.default_rng(0)
    pooled = np.concatenate([_sample(item.ravel(), 20_000, rng) for item in items])
    return {
        "num_images": len(items),
        "channels": channels[0] if len(channels) == 1 else channels,
        "median_size": [int(v) for v in np.median(sizes, axis=0)],
        "min_size": [int(v) for v in sizes.min(axis=0)],
        "max_size": [int(v) for v in sizes.max(axis=0)],
        "intensity_mean": float(pooled.mean()),
        "intensity_std": float(pooled.std()),
        "intensity_percentiles": {
            str(p): float(v) for p, v in zip(PERCENTILES, np.percentile(pooled, PERCENTILES),
                                             strict=True)
        },
        "image_mean_mean": float(image_means.mean()),
        "image_mean_std": float(image_means.std()),
        "image_std_mean": float(image_stds.mean()),
        "image_std_std": float(image_stds.std()),
    }


def model_fingerprint(images: np.ndarray, normalization: str = "minmax") -> dict[str, Any]:
    """Fingerprint of training images as the model saw them: each normalised first.

    `ood_check` compares an upload *after* normalisation, so the fingerprint must describe
    normalised images too. Use this for a model's fingerprint.json.

    Args:
        images: raw training images (N, H, W, C).
        normalization: the model's `DataConfig.normalization` mode.

    Example:
        >>> fp = model_fingerprint(np.linspace(0, 0.5, 2 * 64).reshape(2, 8, 8, 1))
        >>> fp["normalization"], round(fp["intensity_percentiles"]["50"], 2)
        ('minmax', 0.5)
    """
    from unet_demo.data.preprocess import normalize

    fp = fingerprint([normalize(image, normalization) for image in images])
    fp["normalization"] = normalization
    return fp


def image_stats(image: np.ndarray) -> dict[str, Any]:
    """Size, channels, mean and standard deviation of one image.

    Args:
        image: (H, W) or (H, W, C) array.

    Example:
        >>> image_stats(np.ones((4, 6)))["size"]
        [4, 6]
    """
    item = _as_hwc(image)
    return {
        "size": [int(item.shape[0]), int(item.shape[1])],
        "channels": int(item.shape[-1]),
        "mean": float(item.mean()),
        "std": float(item.std()),
    }


def ood_check(image: np.ndarray, fingerprint_data: dict[str, Any] | None) -> list[str]:
    """Plain-language warnings when an image differs from the training fingerprint.

    Checks: channel count, size (each side more than 2x away from the training median),
    brightness (z-score of the image mean against training image means above 3), contrast
    (image standard deviation 3x above or below the training average), and intensities outside
    the training 1st-99th percentile range for most pixels.

    Args:
        image: the image as it will be fed to the model, before resizing: (H, W) or (H, W, C),
            intensities already normalised the way the training images were.
        fingerprint_data: output of `fingerprint` (e.g. the bundled model's fingerprint.json);
            None returns no warnings.

    Example:
        >>> fp = fingerprint(np.full((2, 8, 8, 1), 0.5, np.float32))
        >>> ood_check(np.full((8, 8, 3), 0.5), fp)[0].startswith("The image has 3 channel")
        True
    """
    if not fingerprint_data:
        return []
    stats = image_stats(image)
    warnings: list[str] = []
    expected_channels = fingerprint_data.get("channels")
    if isinstance(expected_channels, int) and stats["channels"] != expected_channels:
        warnings.append(
            f"The image has {stats['channels']} channel(s) but the model was trained on "
            f"{expected_channels}-channel images; it will be converted, and colour information "
            "the model never saw may confuse it."
        )
    median = fingerprint_data.get("median_size")
    if median:
        ratios = [stats["size"][i] / max(1, median[i]) for i in range(2)]
        if any(r > SIZE_RATIO_LIMIT or r < 1 / SIZE_RATIO_LIMIT for r in ratios):
            warnings.append(
                f"The image is {stats['size'][0]}x{stats['size'][1]} pixels; training images "
                f"were about {median[0]}x{median[1]}. Resizing by this much changes how large "
                "structures look to the model."
            )
    mean_std = float(fingerprint_data.get("image_mean_std", 0.0))
    mean_mean = float(fingerprint_data.get("image_mean_mean", stats["mean"]))
    # A floor on the spread keeps near-identical training sets from flagging tiny changes.
    spread = max(mean_std, 0.02)
    z_score = (stats["mean"] - mean_mean) / spread
    if abs(z_score) > MEAN_Z_LIMIT:
        direction = "brighter" if z_score > 0 else "darker"
        warnings.append(
            f"The image is much {direction} than the training images (mean intensity "
            f"{stats['mean']:.3f} vs {mean_mean:.3f}, z-score {z_score:+.1f}). Check the "
            "modality and the normalisation, or expect an unreliable mask."
        )
    std_mean = float(fingerprint_data.get("image_std_mean", 0.0))
    if std_mean > 0 and stats["std"] > 0:
        ratio = stats["std"] / std_mean
        if ratio > CONTRAST_RATIO_LIMIT or ratio < 1 / CONTRAST_RATIO_LIMIT:
            warnings.append(
                f"The image contrast (intensity std {stats['std']:.3f}) is far from the "
                f"training images ({std_mean:.3f}); the model may not recognise its structures."
            )
    elif std_mean > 0:
        warnings.append("The image is completely flat (one intensity); there is nothing to segment.")
    percentiles = fingerprint_data.get("intensity_percentiles") or {}
    if "1" in percentiles and "99" in percentiles:
        low, high = float(percentiles["1"]), float(percentiles["99"])
        values = _as_hwc(image)
        outside = float(((values < low - 0.05) | (values > high + 0.05)).mean())
        if outside > 0.25:
            warnings.append(
                f"{outside:.0%} of the pixels lie outside the training intensity range "
                f"[{low:.2f}, {high:.2f}]."
            )
    return warnings


def save_fingerprint(fingerprint_data: dict[str, Any], path: str | Path) -> Path:
    """Write a fingerprint as indented JSON and return the path.

    Args:
        fingerprint_data: output of `fingerprint`.
        path: destination file (parents are created).

    Example:
        >>> import tempfile, os
        >>> p = save_fingerprint({"channels": 1}, os.path.join(tempfile.mkdtemp(), "fp.json"))
        >>> load_fingerprint(p)["channels"]
        1
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fingerprint_data, indent=2, sort_keys=True))
    return path


def load_fingerprint(path: str | Path) -> dict[str, Any] | None:
    """Read a fingerprint JSON file; None when the file does not exist.

    Args:
        path: a fingerprint.json file.

    Example:
        >>> load_fingerprint("/nonexistent/fingerprint.json") is None
        True
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UNetDemoError(f"Could not read the fingerprint {path}: {error}. "
                            "Re-create it with scripts/train_bundled_models.py.") from None
    if not isinstance(data, dict):
        raise UNetDemoError(f"The fingerprint {path} is not a JSON object.")
    return data


def _as_hwc(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise UNetDemoError(f"Expected an (H, W) or (H, W, C) image. Received shape {array.shape}.")
    return array


def _sample(values: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    if values.size <= limit:
        return values
    return values[rng.choice(values.size, size=limit, replace=False)]
