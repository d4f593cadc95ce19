"""Evaluate a model on images with ground truth: a split, a folder, before/after clean-up.

The model is only touched through a ``predict_fn`` callable (float32 batch in, probabilities
out), so this module never imports TensorFlow. Labels come from `unet_demo.inference.labels`,
clean-up from `unet_demo.inference.postprocess`, per-image numbers from
`unet_demo.evaluation.scores`.

Example:
    >>> import numpy as np
    >>> p = np.zeros((1, 8, 8, 1)); p[0, 2:6, 2:6] = 0.9
    >>> evaluate_predictions(p, (p[..., 0] > 0.5).astype(np.uint8), 1).mean["dice"]
    1.0
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unet_demo.data.preprocess import prepare_batch
from unet_demo.data.readers import IMAGE_SUFFIXES, read_image_file, read_mask_file
from unet_demo.data.sources import load_split_arrays
from unet_demo.errors import UNetDemoError
from unet_demo.evaluation.scores import mean_metrics, metrics_table, per_image_metrics, score_pair
from unet_demo.inference.labels import as_batch, labels_from_probabilities
from unet_demo.inference.postprocess import postprocess
from unet_demo.inference.segment import SegmentOptions, segment_loaded
from unet_demo.inference.tta import flip_tta


@dataclasses.dataclass
class EvaluationResult:
    """Everything the Evaluate page and the CLI show about one model on one split."""

    probabilities: np.ndarray
    predictions: np.ndarray
    rows: list[dict[str, Any]]
    mean: dict[str, float]
    num_classes: int
    threshold: float
    postprocess_ops: tuple[str, ...]

    def table(self, with_mean: bool = True):
        """Per-image DataFrame (see `metrics_table`)."""
        return metrics_table(self.rows, with_mean=with_mean)


def evaluate_predictions(
    probabilities: np.ndarray,
    masks: np.ndarray,
    num_classes: int,
    threshold: float = 0.5,
    postprocess_ops: Sequence[str] | None = None,
    *,
    ids: Sequence[str] | None = None,
    distances: bool = True,
    spacing: Sequence[float] | None = None,
) -> EvaluationResult:
    """Threshold (or argmax), post-process and score already-computed probabilities.

    Args:
        probabilities: model outputs (N, H, W, K).
        masks: integer truth labels (N, H, W).
        num_classes: label count.
        threshold: sigmoid cut.
        postprocess_ops: see `unet_demo.inference.postprocess`.
        ids: image names for the table.
        distances: include HD95/ASD.
        spacing: pixel size in mm.

    Example:
        >>> p = np.zeros((1, 8, 8, 1)); p[0, 2:6, 2:6] = 0.9
        >>> m = (p[..., 0] > 0.5).astype(np.uint8)
        >>> evaluate_predictions(p, m, 1).mean["dice"]
        1.0
    """
    _check_threshold(threshold)
    predictions = labels_from_probabilities(probabilities, num_classes, threshold)
    ops = tuple(postprocess_ops or ())
    if ops:
        predictions = postprocess(predictions, ops)
    rows = per_image_metrics(masks, predictions, num_classes, ids=ids, distances=distances,
                             spacing=spacing)
    return EvaluationResult(
        probabilities=np.asarray(probabilities),
        predictions=predictions,
        rows=rows,
        mean=mean_metrics(rows),
        num_classes=num_classes,
        threshold=float(threshold),
        postprocess_ops=ops,
    )


def evaluate_model_on_arrays(
    predict_fn: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    masks: np.ndarray,
    num_classes: int,
    threshold: float = 0.5,
    postprocess_ops: Sequence[str] | None = None,
    *,
    ids: Sequence[str] | None = None,
    distances: bool = True,
    batch_size: int = 8,
) -> EvaluationResult:
    """Run ``predict_fn`` over images in batches, then threshold, post-process and score.

    Args:
        predict_fn: maps a float32 batch (B, H, W, C) to probabilities (B, H, W, K), e.g.
            ``lambda x: model.predict(x, verbose=0)``.
        images: float32 (N, H, W, C).
        masks: integer labels (N, H, W).
        num_classes: label count (1 or 2 = binary).
        threshold: sigmoid decision threshold.
        postprocess_ops: ordered post-processing operations (see `unet_demo.inference.postprocess`).
        ids: image names.
        distances: include HD95/ASD.
        batch_size: images per ``predict_fn`` call.

    Example:
        >>> imgs = np.zeros((2, 8, 8, 1), np.float32); imgs[:, 2:6, 2:6] = 1
        >>> result = evaluate_model_on_arrays(lambda x: x, imgs, imgs[..., 0].astype(np.uint8), 1)
        >>> result.mean["dice"]
        1.0
    """
    images = np.asarray(images, dtype=np.float32)
    masks = as_batch(np.asarray(masks))
    if len(images) != len(masks):
        raise UNetDemoError(f"Got {len(images)} images but {len(masks)} masks; they must pair up.")
    if len(images) == 0:
        raise UNetDemoError("There are no images to evaluate; pick a split that has images.")
    outputs = []
    for start in range(0, len(images), max(1, int(batch_size))):
        outputs.append(np.asarray(predict_fn(images[start:start + batch_size]), np.float32))
    probabilities = np.concatenate(outputs, axis=0)
    if probabilities.ndim == 3:
        probabilities = probabilities[..., None]
    return evaluate_predictions(probabilities, masks, num_classes, threshold, postprocess_ops,
                                ids=ids, distances=distances)


@dataclasses.dataclass
class SplitPrediction:
    """A model's outputs on (the first images of) a dataset split, at the model's input size.

    Attributes:
        images: float32 (N, h, w, C) model inputs (from `prepare_image`).
        masks: uint8 (N, h, w) truth, scaled and padded like the images.
        ids: image names.
        probabilities: float32 (N, h, w, K) outputs (the flip-TTA mean when TTA is on).
        variance: (N, h, w) flip-TTA variance, or None without TTA.
        total: images in the whole split (more than N when a limit cut it).
    """

    images: np.ndarray
    masks: np.ndarray
    ids: list[str]
    probabilities: np.ndarray
    variance: np.ndarray | None
    total: int


def predict_split(handle: Any, dataset: str, split: str, *, tta: bool = False,
                  limit: int | None = None, batch_size: int = 8) -> SplitPrediction:
    """Prepare a split the way the model was trained (its normalisation and size) and predict.

    Args:
        handle: an opened model (`unet_demo.inference.registry.ModelHandle`).
        dataset: bundled dataset name or "upload:<id>".
        split: "train", "val" or "test".
        tta: average the four flips and keep their variance.
        limit: predict only the first this many images (None = all).
        batch_size: images per model call.

    Example:
        >>> from unet_demo.inference.registry import open_model
        >>> prediction = predict_split(open_model("bundled:nuclei"), "nuclei", "test", limit=3)
        >>> prediction.probabilities.shape, prediction.masks.shape, prediction.total
        ((3, 128, 128, 1), (3, 128, 128), 5)
    """
    images, masks, ids = load_split_arrays(dataset, split)
    total = len(ids)
    if limit is not None:
        images, masks, ids = images[:limit], masks[:limit], ids[:limit]
    if len(images) == 0:
        raise UNetDemoError(f"The {split} split of {dataset!r} has no images; pick another split.")
    height, width, channels = handle.input_shape
    prepared, labels = prepare_batch(images, masks, size=(height, width), channels=channels,
                                     normalization=handle.normalization)
    predict_fn = handle.predict_fn(batch_size=batch_size)
    variance = None
    if tta:
        result = flip_tta(predict_fn, prepared, batch_size=batch_size)
        probabilities, variance = result.mean, result.variance
    else:
        probabilities = predict_fn(prepared)
    return SplitPrediction(images=prepared, masks=labels, ids=list(ids),
                           probabilities=np.asarray(probabilities, np.float32),
                           variance=variance, total=total)


def _check_threshold(threshold: float) -> None:
    if not 0.0 <= float(threshold) <= 1.0:
        raise UNetDemoError(f"threshold must be between 0 and 1. Received: {threshold!r}.")


def pair_image_mask_files(images_dir, masks_dir) -> list[tuple[Any, Any]]:
    """Pair image files with mask files by name (``a.png`` with ``a.png`` or ``a_mask.png``).

    Args:
        images_dir: folder of images.
        masks_dir: folder of masks with matching names.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     for name in ("imgs/a.png", "masks/a_mask.png"):  # empty files: only names count
        ...         (Path(folder) / name).parent.mkdir(); (Path(folder) / name).touch()
        ...     pairs = pair_image_mask_files(Path(folder) / "imgs", Path(folder) / "masks")
        >>> [(image.name, mask.name) for image, mask in pairs]
        [('a.png', 'a_mask.png')]
    """
    from pathlib import Path

    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for folder, what in ((images_dir, "--images"), (masks_dir, "--masks")):
        if not folder.is_dir():
            raise UNetDemoError(f"{what} folder {str(folder)!r} does not exist or is not a folder.")

    def stem(path: Path) -> str:
        name = path.name
        for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
            if name.lower().endswith(suffix):
                return name[: -len(suffix)]
        return path.stem

    masks: dict[str, Path] = {}
    for path in sorted(p for p in masks_dir.iterdir() if p.is_file()):
        key = stem(path)
        for ending in ("_mask", "-mask", "_label", "_seg"):
            key = key.removesuffix(ending)
        masks.setdefault(key, path)
    pairs, unmatched = [], []
    for path in sorted(p for p in images_dir.iterdir() if p.is_file()):
        if path.name.startswith("."):
            continue
        match = masks.get(stem(path))
        if match is None:
            unmatched.append(path.name)
        else:
            pairs.append((path, match))
    if not pairs:
        raise UNetDemoError(
            f"No image in {str(images_dir)!r} has a mask with the same name in "
            f"{str(masks_dir)!r} (tried NAME.ext and NAME_mask.ext). Rename the masks to match."
        )
    if unmatched:
        import warnings

        warnings.warn(f"{len(unmatched)} image(s) without a mask were skipped: "
                      f"{', '.join(unmatched[:5])}", stacklevel=2)
    return pairs


def evaluate_folders(
    handle: Any,
    images_dir,
    masks_dir,
    *,
    threshold: float = 0.5,
    postprocess_ops: Sequence[str] | None = None,
    tta: bool = False,
) -> EvaluationResult:
    """Score a model on a folder of images against a folder of masks, at each mask's own size.

    Each image goes through the same path as ``predict`` (normalise, fit to the model, predict,
    map back), so the numbers describe what a user of ``predict`` would get.

    Args:
        handle: a `unet_demo.inference.registry.ModelHandle` (from `open_model`).
        images_dir: folder of images.
        masks_dir: folder of masks named like the images.
        threshold: sigmoid cut.
        postprocess_ops: clean-up operations.
        tta: flip test-time augmentation.

    Example:
        >>> import tempfile; from PIL import Image
        >>> from unet_demo.data.sources import load_split
        >>> from unet_demo.inference.registry import open_model
        >>> test = load_split("nuclei", "test")
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     for sub in ("imgs", "masks"): (Path(folder) / sub).mkdir()
        ...     for stem, image, mask in zip(test.ids[:2], test.images, test.masks):
        ...         Image.fromarray(np.uint8(image[..., 0] * 255)).save(f"{folder}/imgs/{stem}.png")
        ...         Image.fromarray(mask * 255).save(f"{folder}/masks/{stem}.png")
        ...     result = evaluate_folders(open_model("bundled:nuclei"), f"{folder}/imgs",
        ...                               f"{folder}/masks")
        >>> len(result.rows), result.mean["dice"] > 0.8
        (2, True)
    """
    _check_threshold(threshold)
    options = SegmentOptions(threshold=threshold, tta=tta, postprocess=tuple(postprocess_ops or ()))
    rows = []
    predictions = []
    for image_path, mask_path in pair_image_mask_files(images_dir, masks_dir):
        loaded = read_image_file(image_path)
        mask = np.asarray(read_mask_file(mask_path))
        if mask.ndim == 3:
            mask = mask[..., 0]
        if handle.num_classes <= 2:
            mask = (mask > 0).astype(np.uint8)
        if mask.shape != loaded.pixels.shape[:2]:
            raise UNetDemoError(
                f"Mask '{mask_path.name}' is {mask.shape[1]}x{mask.shape[0]} but image "
                f"'{image_path.name}' is {loaded.pixels.shape[1]}x{loaded.pixels.shape[0]}; "
                "masks must have the image's size."
            )
        result = segment_loaded(loaded, handle, options)
        row: dict[str, Any] = {"index": len(rows), "id": image_path.name}
        row.update(score_pair(mask, result.labels, handle.num_classes,
                              spacing=loaded.meta.get("pixel_spacing")))
        row["truth_pixels"] = int((mask > 0).sum())
        row["pred_pixels"] = int((result.labels > 0).sum())
        rows.append(row)
        predictions.append(result.labels)
    return EvaluationResult(
        probabilities=np.zeros((0,), np.float32),  # sizes differ per image; not kept
        predictions=np.zeros((0,), np.uint8) if len({p.shape for p in predictions}) > 1
        else np.stack(predictions),
        rows=rows,
        mean=mean_metrics(rows),
        num_classes=handle.num_classes,
        threshold=float(threshold),
        postprocess_ops=tuple(postprocess_ops or ()),
    )


def compare_before_after(
    truth: np.ndarray,
    raw_prediction: np.ndarray,
    ops: Sequence[str],
    num_classes: int = 2,
) -> dict[str, dict[str, float]]:
    """Mean Dice/IoU/precision/recall of predictions before and after post-processing.

    Args:
        truth: label masks (N, H, W) or one (H, W) mask.
        raw_prediction: predicted label masks of the same shape.
        ops: post-processing operations to apply to the predictions.
        num_classes: label count (2 for binary); metrics are averaged over foreground classes.

    Example:
        >>> t = np.zeros((1, 8, 8), np.uint8); t[0, 2:6, 2:6] = 1
        >>> p = t.copy(); p[0, 0, 7] = 1
        >>> compare_before_after(t, p, ["largest_component"])["after"]["dice"]
        1.0
    """
    truth = as_batch(truth)
    raw_prediction = as_batch(raw_prediction)
    cleaned = postprocess(raw_prediction, ops)
    keys = ("dice", "iou", "precision", "recall")
    before = mean_metrics(per_image_metrics(truth, raw_prediction, num_classes, distances=False))
    after = mean_metrics(per_image_metrics(truth, cleaned, num_classes, distances=False))
    return {
        "before": {key: before[key] for key in keys},
        "after": {key: after[key] for key in keys},
    }
