"""Segment a DICOM series (a ZIP of one series' slices) like a NIfTI volume.

`unet_demo.data.dicom.read_series_zip` orders and checks the slices; here they are stacked into
one volume, normalised once as a whole with the model's normalisation (so slices stay
comparable), segmented slice by slice (`unet_demo.inference.segment.segment_volume`) and handed
back as (slices, rows, cols) labels in the series' order, ready for a DICOM SEG.

Example:
    >>> import io, zipfile, copy
    >>> import pydicom
    >>> from pydicom.data import get_testdata_file
    >>> from unet_demo.data.dicom import read_series_zip
    >>> from unet_demo.inference.registry import open_model
    >>> source, buffer = pydicom.dcmread(get_testdata_file("CT_small.dcm")), io.BytesIO()
    >>> with zipfile.ZipFile(buffer, "w") as archive:
    ...     for z in (0.0, 5.0):
    ...         ds = copy.deepcopy(source); ds.ImagePositionPatient = [0, 0, z]
    ...         ds.SOPInstanceUID = pydicom.uid.generate_uid(); out = io.BytesIO(); ds.save_as(out)
    ...         archive.writestr(f"{z}.dcm", out.getvalue())
    >>> series = read_series_zip(buffer.getvalue(), "series.zip")
    >>> outcome = segment_series(series, open_model("bundled:brain_skullstrip"))
    >>> outcome.labels.shape, outcome.ood.flagged  # a CT of the spine on the brain model
    ((2, 128, 128), True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from unet_demo.data.dicom import Series, series_volume
from unet_demo.errors import UNetDemoError
from unet_demo.inference.labels import foreground_classes
from unet_demo.inference.ood import OODScore, score_for
from unet_demo.inference.segment import SegmentOptions, segment_volume


@dataclasses.dataclass
class SeriesOutcome:
    """A segmented series.

    Attributes:
        labels: (slices, rows, cols) uint8 labels in the series' order.
        volumes_mm3: label -> volume in mm³.
        middle: (rows, cols) pixels of the middle slice (for a picture).
        ood: feature-space score of the middle slice (None without statistics).
    """

    labels: np.ndarray
    volumes_mm3: dict[int, float]
    middle: np.ndarray
    ood: OODScore | None


def segment_series(series: Series, handle: Any, options: SegmentOptions | None = None,
                   progress: Callable[[int, int], None] | None = None) -> SeriesOutcome:
    """Segment every slice of an ordered series with an opened model.

    Args:
        series: from `unet_demo.data.dicom.read_series_zip`.
        handle: the opened model (`unet_demo.inference.registry.ModelHandle`).
        options: threshold, TTA, post-processing (plane and window are not used).
        progress: called as progress(done, total) after each slice.
    """
    options = options or SegmentOptions()
    stacked = series_volume(series)  # (rows, cols, slices)
    # `slice_volume` turns a volume's axial slices by 90 degrees; undo that so slice k of the
    # volume the model sees is exactly slice k of the series.
    volume = np.rot90(stacked, k=-1, axes=(0, 1))
    row, col, step = series.spacing
    labels, _ = segment_volume(
        handle.predict_fn(), volume, plane="axial", input_shape=handle.input_shape,
        num_classes=handle.num_classes, threshold=options.threshold, tta=options.tta,
        postprocess_ops=options.postprocess, zooms=(col, row, step), progress=progress,
        normalization=handle.normalization)
    ordered = np.moveaxis(np.rot90(labels, k=1, axes=(0, 1)), -1, 0).astype(np.uint8)
    voxel = float(row * col * step)
    volumes = {c: float((ordered == c).sum()) * voxel for c in foreground_classes(
        handle.num_classes)}
    middle = stacked[..., stacked.shape[-1] // 2]
    try:
        ood = score_for(handle, pixels=middle)
    except UNetDemoError:  # statistics that do not fit the model: no score, the mask stands
        ood = None
    return SeriesOutcome(ordered, volumes, middle, ood)
