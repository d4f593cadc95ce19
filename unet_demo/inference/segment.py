"""Segment one image (or a NIfTI volume) of any size with a fixed-size model, and export masks.

Shared by the Segment page and ``python -m unet_demo predict``. A model has a fixed input size,
an upload has any size, so the image is scaled to fit (aspect ratio kept, the rest padded),
predicted, and the probabilities are cropped and scaled back to the original pixel grid.
Areas are reported in pixels and, when the file says how big a pixel is, in mm².

Example:
    >>> import numpy as np
    >>> image = np.zeros((50, 80, 1), np.float32); image[10:40, 20:60] = 1
    >>> result = segment_array(lambda x: x, image, input_shape=(32, 32, 1), num_classes=1)
    >>> result.labels.shape, result.area_pixels[1] > 1000
    ((50, 80), True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from unet_demo.data.preprocess import normalize, prepare_image, unpad_resize
from unet_demo.data.readers import read_image_bytes, slice_volume
from unet_demo.errors import UNetDemoError
from unet_demo.inference.labels import (
    foreground_classes,
    foreground_probability,
    labels_from_probabilities,
)
from unet_demo.inference.ood import ood_check
from unet_demo.inference.postprocess import postprocess
from unet_demo.inference.tta import flip_tta

PredictFn = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- segmentation

@dataclasses.dataclass
class SegmentResult:
    """The outcome of segmenting one 2-D image.

    Attributes:
        probabilities: (H, W, K) at the original size (K = 1 for a sigmoid model).
        labels: (H, W) uint8 label mask at the original size.
        uncertainty: (H, W) flip-TTA variance, or None without TTA.
        model_input: (h, w, C) image as the model saw it (normalised, resized and padded).
        area_pixels: label -> pixel count for each foreground label.
        area_mm2: label -> area in mm² when the pixel spacing is known, else None.
        warnings: out-of-distribution warnings (see `unet_demo.inference.ood`).
    """

    probabilities: np.ndarray
    labels: np.ndarray
    uncertainty: np.ndarray | None
    model_input: np.ndarray
    area_pixels: dict[int, int]
    area_mm2: dict[int, float] | None
    warnings: list[str]

    def foreground_probability(self) -> np.ndarray:
        """(H, W) probability of "any foreground" (1 - background for softmax models)."""
        return foreground_probability(self.probabilities)


def segment_array(
    predict_fn: PredictFn,
    pixels: np.ndarray,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    threshold: float = 0.5,
    tta: bool = False,
    postprocess_ops: Sequence[str] | None = None,
    fingerprint: dict[str, Any] | None = None,
    spacing: Sequence[float] | None = None,
    normalise: bool = True,
    normalization: str = "minmax",
) -> SegmentResult:
    """Segment one (H, W) or (H, W, C) image of any size with a fixed-size model.

    Args:
        predict_fn: (B, h, w, C) float32 -> (B, h, w, K) probabilities.
        pixels: the image; intensities in any range when ``normalise`` is True.
        input_shape: (h, w, C) the model expects.
        num_classes: label count (1 or 2 = binary).
        threshold: foreground cut for sigmoid models.
        tta: average the four flips and return their variance as `uncertainty`.
        postprocess_ops: cleanup operations (see `unet_demo.inference.postprocess`).
        fingerprint: training fingerprint for OOD warnings (None = no check).
        spacing: (row, col) pixel size in mm, for areas in mm².
        normalise: normalise intensities first (False when the caller already did).
        normalization: the model's training normalisation (`DataConfig.normalization`); the
            image goes through `unet_demo.data.preprocess.prepare_image` with it.

    Example:
        >>> r = segment_array(lambda x: x, np.eye(16, dtype=np.float32), input_shape=(8, 8, 1),
        ...                   num_classes=1, spacing=(0.5, 0.5))
        >>> r.area_mm2[1] == r.area_pixels[1] * 0.25
        True
    """
    if not 0.0 <= float(threshold) <= 1.0:
        raise UNetDemoError(f"threshold must be between 0 and 1. Received: {threshold!r}.")
    height, width, channels = (int(v) for v in input_shape)
    image = np.asarray(pixels, dtype=np.float32)
    if image.ndim not in (2, 3):
        raise UNetDemoError(
            f"Expected a 2-D image (H, W) or (H, W, C); received shape {image.shape}. "
            "For a volume, pick one slice."
        )
    prepared = prepare_image(image, size=(height, width), channels=channels,
                             normalization=normalization, already_normalized=not normalise)
    warnings = ood_check(prepared.normalized, fingerprint) if fingerprint else []
    fitted, placement = prepared.model_input, prepared.placement
    uncertainty = None
    if tta:
        tta_result = flip_tta(predict_fn, fitted[None])
        output = tta_result.mean[0]
        uncertainty = np.clip(unpad_resize(tta_result.variance[0], placement), 0, None)
    else:
        output = np.asarray(predict_fn(fitted[None]), dtype=np.float32)[0]
        if output.ndim == 2:
            output = output[..., None]
    probabilities = np.clip(unpad_resize(output, placement), 0.0, 1.0)
    labels = labels_from_probabilities(probabilities[None], num_classes, threshold)[0]
    if postprocess_ops:
        labels = postprocess(labels, postprocess_ops)
    area_pixels = {int(c): int((labels == c).sum()) for c in foreground_classes(num_classes)}
    area_mm2 = None
    if spacing is not None and len(spacing) >= 2 and all(float(s) > 0 for s in spacing[:2]):
        pixel_area = float(spacing[0]) * float(spacing[1])
        area_mm2 = {c: n * pixel_area for c, n in area_pixels.items()}
    return SegmentResult(
        probabilities=probabilities,
        labels=labels,
        uncertainty=uncertainty,
        model_input=fitted,
        area_pixels=area_pixels,
        area_mm2=area_mm2,
        warnings=warnings,
    )


# --------------------------------------------------------------------------- volumes

PLANE_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}
"""Axis of a RAS+ volume that each plane walks along (as in `unet_demo.data.readers`)."""


def place_slice(volume_labels: np.ndarray, labels_2d: np.ndarray, plane: str, index: int) -> None:
    """Write a 2-D label slice back into a RAS+ label volume, in place.

    The inverse of `unet_demo.data.readers.slice_volume` (which rotates slices by 90 degrees so
    that superior/anterior point up).

    Args:
        volume_labels: (X, Y, Z) label volume to fill.
        labels_2d: (rows, cols) labels in `slice_volume` orientation.
        plane: "axial", "coronal" or "sagittal".
        index: slice number along that plane's axis.

    Example:
        >>> vol = np.zeros((4, 5, 6), np.uint8); sl = np.ones((5, 4), np.uint8)
        >>> place_slice(vol, sl, "axial", 2); int(vol[:, :, 2].sum())
        20
    """
    if plane not in PLANE_AXIS:
        raise UNetDemoError(f"plane must be one of {list(PLANE_AXIS)}. Received: {plane!r}.")
    index_tuple: list[Any] = [slice(None)] * volume_labels.ndim
    index_tuple[PLANE_AXIS[plane]] = int(index)
    volume_labels[tuple(index_tuple)] = np.rot90(labels_2d, k=-1)


def segment_volume(
    predict_fn: PredictFn,
    volume: np.ndarray,
    *,
    plane: str,
    input_shape: Sequence[int],
    num_classes: int,
    threshold: float = 0.5,
    tta: bool = False,
    postprocess_ops: Sequence[str] | None = None,
    zooms: Sequence[float] | None = None,
    progress: Callable[[int, int], None] | None = None,
    normalization: str = "minmax",
) -> tuple[np.ndarray, dict[int, float] | None]:
    """Segment every slice of a volume along a plane; return the label volume and volumes in mm³.

    Intensities are normalised once over the whole volume with the model's normalisation (after
    a 0.5-99.5 percentile clip) so the slices stay comparable; each slice then goes through
    `prepare_image` without a second normalisation.

    Args:
        predict_fn: model callable.
        volume: (X, Y, Z) voxels in RAS+ order (`LoadedImage.volume`).
        plane: slicing plane.
        input_shape: (h, w, C) of the model.
        num_classes: label count.
        threshold: sigmoid cut.
        tta: flip TTA on every slice (4x slower).
        postprocess_ops: cleanup per slice.
        zooms: voxel size in mm along the volume's axes (`meta["voxel_size"]`); None = unknown.
        progress: called as progress(done, total) after each slice.
        normalization: the model's training normalisation (`DataConfig.normalization`).

    Example:
        >>> vol = np.zeros((8, 8, 3)); vol[2:6, 2:6] = 100.0
        >>> labels, mm3 = segment_volume(lambda x: x, vol, plane="axial",
        ...                              input_shape=(8, 8, 1), num_classes=1, zooms=(1, 1, 2))
        >>> labels.shape, mm3[1]
        ((8, 8, 3), 96.0)
    """
    data = np.asarray(volume, dtype=np.float32)
    if data.ndim != 3:
        raise UNetDemoError(f"Expected a 3-D volume; received shape {data.shape}.")
    if plane not in PLANE_AXIS:
        raise UNetDemoError(f"plane must be one of {list(PLANE_AXIS)}. Received: {plane!r}.")
    data = normalize(data, normalization, percentiles=(0.5, 99.5))
    labels = np.zeros(data.shape, dtype=np.uint8)
    total = data.shape[PLANE_AXIS[plane]]
    for index in range(total):
        result = segment_array(
            predict_fn, slice_volume(data, plane, index), input_shape=input_shape,
            num_classes=num_classes, threshold=threshold, tta=tta,
            postprocess_ops=postprocess_ops, normalise=False, normalization=normalization,
        )
        place_slice(labels, result.labels, plane, index)
        if progress is not None:
            progress(index + 1, total)
    volumes = None
    if zooms is not None and len(zooms) >= 3:
        voxel = float(np.prod([float(z) for z in zooms[:3]]))
        volumes = {c: float((labels == c).sum()) * voxel for c in foreground_classes(num_classes)}
    return labels, volumes


# --------------------------------------------------------------------------- export




# --------------------------------------------------------------------------- files

@dataclasses.dataclass(frozen=True)
class SegmentOptions:
    """What changes a segmentation result of an image file (and therefore its cache key).

    Attributes:
        threshold: foreground cut for sigmoid models.
        tta: flip test-time augmentation (adds an uncertainty map).
        postprocess: clean-up operations (see `unet_demo.inference.postprocess`).
        plane: NIfTI slicing plane.
        slice_index: NIfTI slice (None = middle).
        window: DICOM (center, width) window; None = the model's own normalisation.

    Example:
        >>> SegmentOptions(threshold=0.3).key_dict()["threshold"]
        0.3
    """

    threshold: float = 0.5
    tta: bool = False
    postprocess: tuple[str, ...] = ()
    plane: str = "axial"
    slice_index: int | None = None
    window: tuple[float, float] | None = None

    def key_dict(self) -> dict[str, Any]:
        """The options as a JSON-ready dict (for `unet_demo.inference.shared.inference_cache_key`)."""
        return dataclasses.asdict(self)


def segment_loaded(loaded: Any, handle: Any, options: SegmentOptions) -> SegmentResult:
    """Segment a decoded image (`unet_demo.data.readers.LoadedImage`) with an opened model.

    The one path of the Segment page, ``python -m unet_demo predict`` and the folder
    evaluation: `segment_array` prepares the pixels with the model's recorded normalisation and
    input size (skipped when a DICOM window already mapped them to [0, 1]) and predicts.

    Args:
        loaded: the decoded image (its ``pixels`` and ``meta["pixel_spacing"]`` are used).
        handle: an opened model (`unet_demo.inference.registry.ModelHandle`).
        options: threshold, TTA, post-processing, DICOM window.

    Example:
        >>> from unet_demo.data.readers import LoadedImage
        >>> from unet_demo.data.sources import load_split
        >>> from unet_demo.evaluation.metrics import dice
        >>> from unet_demo.inference.registry import open_model
        >>> test = load_split("nuclei", "test")
        >>> result = segment_loaded(LoadedImage(test.images[0], "png", {}),
        ...                         open_model("bundled:nuclei"), SegmentOptions(tta=True))
        >>> result.labels.shape, result.uncertainty.shape, dice(test.masks[0], result.labels) > 0.9
        ((128, 128), (128, 128), True)
    """
    return segment_array(
        handle.predict_fn(), loaded.pixels, input_shape=handle.input_shape,
        num_classes=handle.num_classes, threshold=options.threshold, tta=options.tta,
        postprocess_ops=options.postprocess, fingerprint=handle.fingerprint,
        spacing=loaded.meta.get("pixel_spacing"), normalise=options.window is None,
        normalization=handle.normalization,
    )


def segment_image_bytes(data: bytes, name: str, handle: Any,
                        options: SegmentOptions) -> tuple[Any, SegmentResult]:
    """Validate, decode and segment one image file (a NIfTI file: one slice of it).

    Args:
        data: raw file bytes.
        name: file name (for messages and the format check).
        handle: an opened model (`unet_demo.inference.registry.ModelHandle`).
        options: threshold, TTA, post-processing, NIfTI plane/slice, DICOM window.

    Returns:
        (the decoded `LoadedImage`, the `SegmentResult`).

    Raises:
        UNetDemoError: the file is not a usable image; the message says why and what to do.

    Example:
        >>> import io; from PIL import Image
        >>> from unet_demo.data.sources import load_split
        >>> from unet_demo.inference.registry import open_model
        >>> image = load_split("nuclei", "test").images[0, ..., 0]  # float in [0, 1]
        >>> png = io.BytesIO(); Image.fromarray((image * 255).astype(np.uint8)).save(png, "PNG")
        >>> loaded, result = segment_image_bytes(png.getvalue(), "cells.png",
        ...                                      open_model("bundled:nuclei"), SegmentOptions())
        >>> loaded.kind, result.labels.shape, result.labels.dtype, list(result.area_pixels)
        ('png', (128, 128), dtype('uint8'), [1])
    """
    loaded = read_image_bytes(data, name, plane=options.plane, slice_index=options.slice_index,
                              window=options.window)
    return loaded, segment_loaded(loaded, handle, options)


def segment_loaded_volume(
    loaded: Any, handle: Any, options: SegmentOptions,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, dict[int, float] | None]:
    """Segment every slice of a decoded NIfTI volume; return RAS+ labels and volumes in mm³.

    Args:
        loaded: a decoded NIfTI `LoadedImage` (its ``volume`` and ``meta["voxel_size"]``).
        handle: an opened model.
        options: threshold, TTA, post-processing and the slicing plane.
        progress: called as progress(done, total) after each slice.

    Example:
        >>> from pathlib import Path
        >>> from nibabel.testing import data_path
        >>> from unet_demo.data.readers import read_image_file
        >>> from unet_demo.inference.registry import open_model
        >>> loaded = read_image_file(Path(data_path) / "anatomical.nii")  # 33x41x25, 2 mm voxels
        >>> labels, mm3 = segment_loaded_volume(loaded, open_model("bundled:brain_skullstrip"),
        ...                                     SegmentOptions(plane="axial"))
        >>> labels.shape, labels.dtype, list(mm3)
        ((33, 41, 25), dtype('uint8'), [1])
    """
    if loaded.volume is None:
        raise UNetDemoError(
            f"'{loaded.name}' holds a 2-D image, not a volume; segment it as an image instead.")
    return segment_volume(
        handle.predict_fn(), loaded.volume, plane=options.plane,
        input_shape=handle.input_shape, num_classes=handle.num_classes,
        threshold=options.threshold, tta=options.tta, postprocess_ops=options.postprocess,
        zooms=loaded.meta.get("voxel_size"), progress=progress,
        normalization=handle.normalization,
    )
