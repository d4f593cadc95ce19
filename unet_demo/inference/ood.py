"""Dataset fingerprints and out-of-distribution (OOD) warnings for uploaded images.

A *fingerprint* (an idea from nnU-Net) summarises the images a model was trained on: their size,
channel count and intensity statistics. A model only knows the kind of images it has seen, so an
upload that looks very different (much brighter, another size, colour instead of grey) gets a
warning: the prediction may be meaningless even if it looks confident.

Those checks see brightness, not content. `FeatureDetector` (below) looks at the model's own
encoder features: a Mahalanobis distance to the training images' pooled features, with a
threshold set on the validation images, stored as ood_features.npz beside each model.keras
(bundled models: `scripts/fit_ood.py`; runs: fitted when training ends). docs/ood.md has the
cross-domain figures.

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

import dataclasses
import functools
import json
import os
import threading
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


# ------------------------------------------------------------------ feature-space detector
#
# The image statistics above catch a wrong size or brightness, not a wrong *kind* of image: a CT
# slice normalised to [0, 1] has a plausible mean and contrast for a brain-MRI model. The detector
# below looks at what the model itself sees. Every encoder level and the bottleneck of the U-Net
# are pooled per channel (spatial mean and standard deviation), giving one feature vector per
# image; their distribution over the training images is summarised by a mean and a shrunk
# covariance, and an image's Mahalanobis distance to it is its OOD distance. The warning
# threshold is the 99th percentile of the validation images' distances, raised to the largest
# training distance when that is higher (nothing the model learnt from is "unlike" it).

FEATURE_FILE = "ood_features.npz"
"""The fitted feature statistics, stored next to a model's model.keras (bundled or a run)."""
SHRINKAGE = 0.1
"""Covariance shrinkage towards a scaled identity (few images, hundreds of feature dimensions)."""
THRESHOLD_PERCENTILE = 99.0
MAX_FIT_IMAGES = 300
"""Training images kept in the statistics (an evenly spaced subset beyond it): file size, time."""
VERDICT_OK = "This image looks like the images the model was trained on."
VERDICT_OOD = ("This looks unlike anything the model was trained on: expect nonsense. "
               "Whatever the mask shows, do not trust it.")

_PROBES: dict[int, tuple[Any, Any, Any]] = {}
_PROBES_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True)
class FeatureDetector:
    """A model's training-feature statistics and warning threshold.

    Attributes:
        layers: layer names whose outputs are pooled (encoder levels and bottleneck).
        train_features: (N, D) pooled features of the training images (stored as float16).
        threshold: Mahalanobis distance above which an image is flagged.
        info: how it was fitted (image counts, validation percentile, training maximum).
    """

    layers: tuple[str, ...]
    train_features: np.ndarray
    threshold: float
    info: dict[str, Any]

    @functools.cached_property
    def _moments(self) -> tuple[np.ndarray, np.ndarray]:
        return _mean_and_precision(self.train_features, float(self.info.get("shrinkage",
                                                                           SHRINKAGE)))

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distances of (N, D) pooled features to the training distribution."""
        mean, precision = self._moments
        centred = np.asarray(features, np.float64) - mean
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", centred, precision, centred), 0.0))


@dataclasses.dataclass(frozen=True)
class OODScore:
    """The feature-space verdict on one image.

    Attributes:
        score: distance divided by the threshold: below 1 in distribution, above 1 flagged.
        distance: Mahalanobis distance of the image's features.
        threshold: the model's warning threshold.
        flagged: score > 1.
        verdict: one plain sentence for the page and the CLI.
    """

    score: float
    distance: float
    threshold: float
    flagged: bool
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (`predict --json` carries it)."""
        return {"score": round(self.score, 4), "distance": round(self.distance, 4),
                "threshold": round(self.threshold, 4), "flagged": self.flagged,
                "verdict": self.verdict}


def feature_layers(model: Any) -> tuple[str, ...]:
    """Layers whose outputs describe an image to the detector: encoder levels and bottleneck.

    U-Nets of this app are read by their layer names (`unet_demo.inference.activations`);
    other wiring (U-Net++, pretrained encoders) falls back to the features the output head reads.

    Example:
        >>> from unet_demo.inference.registry import open_model
        >>> feature_layers(open_model("bundled:nuclei").shared.keras_model)
        ('enc0_act2', 'enc1_act2', 'enc2_act2', 'bottleneck_act2')
    """
    from unet_demo.inference.activations import unet_anatomy

    try:
        anatomy = unet_anatomy(model)
        return tuple(t.name for t in anatomy.taps if t.role in ("encoder", "bottleneck"))
    except UNetDemoError:
        pass
    for layer in model.layers:
        if layer.name == "output":
            producer = getattr(layer.input, "_keras_history", None)
            if producer is not None:
                return (producer[0].name,)
    return (model.layers[-2].name,)


def pooled_features(model: Any, images: np.ndarray, layers: tuple[str, ...] | None = None,
                    batch_size: int = 16) -> np.ndarray:
    """(N, D) features: per-channel spatial mean and standard deviation of each layer's output.

    Args:
        model: the Keras model.
        images: model-ready float32 (N, H, W, C) (the output of `prepare_image`).
        layers: layer names (default `feature_layers(model)`).
        batch_size: images per forward pass.

    Example:
        >>> from unet_demo.inference.registry import open_model
        >>> model = open_model("bundled:nuclei").shared.keras_model
        >>> pooled_features(model, np.zeros((2, 128, 128, 1), np.float32)).shape
        (2, 480)
    """
    batch = np.asarray(images, np.float32)
    if batch.ndim == 3:
        batch = batch[None]
    want = tuple(model.input_shape)[1:]
    if batch.ndim != 4 or tuple(batch.shape[1:]) != tuple(want):
        raise UNetDemoError(f"The detector needs model-ready images of shape {want}. "
                            f"Received: shape {np.shape(images)}.")
    run, lock = _probe(model, tuple(layers or feature_layers(model)))
    parts = []
    for start in range(0, len(batch), batch_size):
        with lock:
            outputs = run(batch[start:start + batch_size])
        pooled = []
        for output in outputs:
            array = np.asarray(output, np.float32)
            axes = tuple(range(1, array.ndim - 1))
            pooled += [array.mean(axis=axes), array.std(axis=axes)]
        parts.append(np.concatenate(pooled, axis=1))
    return np.concatenate(parts, axis=0) if parts else np.zeros((0, 0), np.float32)


def fit_feature_detector(model: Any, train_images: np.ndarray, val_images: np.ndarray | None,
                         percentile: float = THRESHOLD_PERCENTILE) -> FeatureDetector:
    """Fit the detector on model-ready training images; set the threshold from validation.

    Args:
        model: the trained Keras model.
        train_images: model-ready (N, H, W, C) training images (what the model learnt from).
        val_images: model-ready validation images (None or empty: the training maximum only).
        percentile: validation percentile that sets the threshold (95-99 is sensible).

    Example:
        >>> from unet_demo.config import DataConfig
        >>> from unet_demo.data.sources import prepare_split
        >>> from unet_demo.inference.registry import open_model
        >>> model = open_model("bundled:nuclei").shared.keras_model
        >>> cfg = DataConfig(dataset="nuclei", image_size=128)
        >>> train, val = (prepare_split(cfg, s)[0] for s in ("train", "val"))
        >>> detector = fit_feature_detector(model, train[:40], val)
        >>> detector.train_features.shape, detector.threshold > 0
        ((40, 480), True)
    """
    if train_images is None or len(train_images) < 2:
        raise UNetDemoError("The OOD detector needs at least two training images.")
    layers = feature_layers(model)
    if len(train_images) > MAX_FIT_IMAGES:
        keep = np.linspace(0, len(train_images) - 1, MAX_FIT_IMAGES).round().astype(int)
        train_images = np.asarray(train_images)[keep]
    # Stored as float16; fit on the rounded values so the threshold matches what is loaded.
    train = pooled_features(model, train_images, layers).astype(np.float16)
    provisional = FeatureDetector(layers, train, 1.0, {"shrinkage": SHRINKAGE})
    train_distances = provisional.distances(train.astype(np.float32))
    info: dict[str, Any] = {
        "method": "Mahalanobis distance of per-channel mean/std pooled encoder features",
        "shrinkage": SHRINKAGE, "num_train": int(len(train)), "num_val": 0,
        "percentile": float(percentile), "train_max": float(train_distances.max()),
    }
    threshold = float(train_distances.max())
    if val_images is not None and len(val_images):
        val_distances = provisional.distances(pooled_features(model, val_images, layers))
        info["num_val"] = int(len(val_distances))
        info["val_percentile_distance"] = float(np.percentile(val_distances, percentile))
        threshold = max(threshold, info["val_percentile_distance"])
    return FeatureDetector(layers, train, threshold, info)


def score_features(detector: FeatureDetector, features: np.ndarray) -> list[OODScore]:
    """Scores for (N, D) pooled features (see `OODScore`)."""
    scores = []
    for distance in detector.distances(features):
        score = float(distance) / max(detector.threshold, 1e-12)
        scores.append(OODScore(score, float(distance), detector.threshold, score > 1.0,
                               VERDICT_OOD if score > 1.0 else VERDICT_OK))
    return scores


def feature_score(model: Any, model_input: np.ndarray,
                  detector: FeatureDetector | None) -> OODScore | None:
    """The feature-space score of one model-ready image; None without a fitted detector.

    Args:
        model: the Keras model (``handle.shared.keras_model``).
        model_input: (H, W, C) image as the model sees it (`SegmentResult.model_input`).
        detector: the model's detector (`load_feature_detector`), or None.

    Example:
        >>> from pydicom.data import get_testdata_file
        >>> from unet_demo.data.readers import read_image_file
        >>> from unet_demo.inference.registry import open_model
        >>> from unet_demo.inference.segment import SegmentOptions, segment_loaded
        >>> handle = open_model("bundled:brain_skullstrip")
        >>> ct = read_image_file(get_testdata_file("CT_small.dcm"))  # a CT slice of the spine
        >>> result = segment_loaded(ct, handle, SegmentOptions())
        >>> score = feature_score(handle.shared.keras_model, result.model_input,
        ...                       load_feature_detector(handle.source))
        >>> score.flagged, score.verdict == VERDICT_OOD
        (True, True)
    """
    if detector is None:
        return None
    try:
        features = pooled_features(model, np.asarray(model_input, np.float32)[None],
                                   detector.layers)
        return score_features(detector, features)[0]
    except (ValueError, KeyError) as error:  # statistics of another model (missing layer, size)
        raise UNetDemoError(
            f"The stored OOD statistics do not fit this model ({str(error)[:120]}); no OOD "
            f"score. Re-fit them (`python scripts/fit_ood.py`, or train the run again).") from None


_DETECTORS: dict[tuple[str, float], FeatureDetector | None] = {}


def detector_for(handle: Any) -> FeatureDetector | None:
    """The detector stored beside an opened model (`ModelHandle`), cached per file and mtime.

    Example:
        >>> from unet_demo.inference.registry import open_model
        >>> detector_for(open_model("bundled:nuclei")).layers[-1]
        'bottleneck_act2'
    """
    path = Path(handle.source) / FEATURE_FILE
    key = (str(path), path.stat().st_mtime if path.is_file() else 0.0)
    with _PROBES_LOCK:
        if key in _DETECTORS:
            return _DETECTORS[key]
    detector = load_feature_detector(handle.source)
    with _PROBES_LOCK:
        if len(_DETECTORS) >= 32:
            _DETECTORS.pop(next(iter(_DETECTORS)))
        _DETECTORS[key] = detector
    return detector


def score_for(handle: Any, model_input: np.ndarray | None = None, *,
              pixels: np.ndarray | None = None) -> OODScore | None:
    """The feature score of one image for an opened model; None when it has no detector.

    Args:
        handle: the opened model.
        model_input: (H, W, C) as the model sees it (`SegmentResult.model_input`), or
        pixels: a raw image to prepare with the model's own input step first.
    """
    detector = detector_for(handle)
    if detector is None:
        return None
    if model_input is None:
        from unet_demo.data.preprocess import prepare_image

        model_input = prepare_image(pixels, size=handle.input_shape[:2],
                                    channels=handle.input_shape[2],
                                    normalization=handle.normalization).model_input
    return feature_score(handle.shared.keras_model, model_input, detector)


def save_feature_detector(detector: FeatureDetector, folder: str | Path) -> Path:
    """Write `FEATURE_FILE` into a model folder (float16 features, compressed) and return it.

    Example:
        >>> import tempfile
        >>> d = FeatureDetector(("a",), np.eye(3, dtype=np.float16), 2.0, {"num_train": 3})
        >>> loaded = load_feature_detector(save_feature_detector(d, tempfile.mkdtemp()).parent)
        >>> loaded.layers, loaded.threshold, loaded.train_features.shape
        (('a',), 2.0, (3, 3))
    """
    path = Path(folder) / FEATURE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".tmp-" + FEATURE_FILE)
    with open(tmp, "wb") as handle:
        np.savez_compressed(
            handle, train_features=np.asarray(detector.train_features, np.float16),
            threshold=np.float64(detector.threshold), layers=np.array(detector.layers),
            info=np.array(json.dumps(detector.info, sort_keys=True)))
    os.replace(tmp, path)
    return path


def load_feature_detector(folder: str | Path) -> FeatureDetector | None:
    """The detector stored in a model folder; None when it has none (older runs).

    A damaged file raises `UNetDemoError` saying how to re-create it.
    """
    path = Path(folder) / FEATURE_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return FeatureDetector(
                layers=tuple(str(v) for v in data["layers"].tolist()),
                train_features=np.asarray(data["train_features"]),
                threshold=float(data["threshold"]),
                info=json.loads(str(data["info"])),
            )
    except (OSError, ValueError, KeyError) as error:
        raise UNetDemoError(f"Could not read the OOD statistics {path}: {error}. Re-create them "
                            "with `python scripts/fit_ood.py` (bundled models).") from None


def fit_run_detector(model: Any, train_images: np.ndarray, val_images: np.ndarray,
                     folder: str | Path) -> Path | None:
    """Fit and store the detector of a finished run; None (and nothing written) when it fails.

    Called by the training runner after model.keras is saved, so the Segment page checks
    uploads against runs trained in the app too. A failure never fails the run.
    """
    try:
        return save_feature_detector(fit_feature_detector(model, train_images, val_images),
                                     folder)
    except (UNetDemoError, ValueError, np.linalg.LinAlgError, OSError):
        return None


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """Area under the ROC curve for "out scores higher than in scores" (ties count half).

    Example:
        >>> auroc([0.1, 0.2, 0.3], [0.25, 0.9]), auroc([1, 2], [0, 1])
        (0.8333333333333334, 0.125)
    """
    inside = np.asarray(in_scores, np.float64).ravel()
    outside = np.asarray(out_scores, np.float64).ravel()
    if not inside.size or not outside.size:
        raise UNetDemoError("AUROC needs at least one in-distribution and one OOD score.")
    greater = (outside[:, None] > inside[None, :]).mean()
    ties = (outside[:, None] == inside[None, :]).mean()
    return float(greater + 0.5 * ties)


def _mean_and_precision(features: np.ndarray, shrinkage: float) -> tuple[np.ndarray, np.ndarray]:
    data = np.asarray(features, np.float64)
    mean = data.mean(axis=0)
    centred = data - mean
    covariance = centred.T @ centred / max(1, len(data))
    scale = float(np.trace(covariance)) / max(1, covariance.shape[0]) or 1.0
    covariance = (1.0 - shrinkage) * covariance + shrinkage * scale * np.eye(len(covariance))
    return mean, np.linalg.pinv(covariance, hermitian=True)


def _probe(model: Any, layers: tuple[str, ...]) -> tuple[Any, Any]:
    """(batch -> list of layer outputs, lock), one probe model per model and layer set."""
    key = hash((id(model), layers))
    with _PROBES_LOCK:
        cached = _PROBES.get(key)
        if cached is None or cached[0] is not model:
            import keras

            probe = keras.Model(model.inputs[0], [model.get_layer(n).output for n in layers],
                                name=f"{model.name}_ood_probe")

            def run(batch: np.ndarray) -> list[Any]:
                result = probe(batch, training=False)
                return list(result) if isinstance(result, list | tuple) else [result]

            if len(_PROBES) >= 16:
                _PROBES.pop(next(iter(_PROBES)))
            cached = (model, run, threading.Lock())
            _PROBES[key] = cached
        return cached[1], cached[2]
