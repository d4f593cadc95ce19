"""DICOM as clinics send it: compressed transfer syntaxes, no preamble, several frames, a series.

`unet_demo.data.readers` reads one DICOM image through here:

* `with_preamble` gives a file that starts at its "DICM" marker (the 128-byte preamble cut
  off) the preamble back, so pydicom reads it like any other file; files with no marker at all
  (old ACR-NEMA style, group 0008 first) are read with ``force``.
* `decode_frame` decodes one frame through pydicom's pixel-data plugins
  (``pydicom.pixels.pixel_array(ds, index=...)``): JPEG baseline/extended/lossless and JPEG-LS
  through pylibjpeg-libjpeg, JPEG 2000 through pylibjpeg-openjpeg, RLE through pylibjpeg-rle,
  deflate natively. YBR_FULL/YBR_FULL_422 come back as RGB (pydicom converts them), YBR_RCT and
  YBR_ICT as RGB too (the JPEG 2000 decoder reverses the colour transform). When no plugin can
  decode a file, the message names the transfer syntax and the package that would.
* `read_series_zip` turns a ZIP of one series' slices into a volume ordered by
  ImagePositionPatient along the slice normal, after checking that every slice has the same
  size and orientation and that the slices are evenly spaced.

Example:
    >>> from pathlib import Path
    >>> from pydicom.data import get_testdata_file
    >>> ds = read_dataset(Path(get_testdata_file("MR_small_jp2klossless.dcm")).read_bytes(), "mr")
    >>> decode_frame(ds, "mr").shape, transfer_syntax_name(ds)
    ((64, 64), 'JPEG 2000 Image Compression (Lossless Only)')
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from typing import Any

import numpy as np

from unet_demo.data.validation import friendly_errors
from unet_demo.errors import UNetDemoError

SPACING_TOLERANCE = 0.05
"""Relative spread of the slice gaps allowed in a series (5%)."""
ORIENTATION_TOLERANCE = 1e-3
PLUGIN_PACKAGES = {
    "JPEG 2000": "pylibjpeg-openjpeg",
    "HTJ2K": "pylibjpeg-openjpeg",
    "JPEG-LS": "pylibjpeg-libjpeg (or pyjpegls)",
    "JPEG": "pylibjpeg-libjpeg",
    "RLE": "pylibjpeg-rle",
}


def with_preamble(data: bytes) -> bytes:
    """A file that starts with "DICM" (preamble cut off) gets its 128 zero bytes back.

    Example:
        >>> with_preamble(b"DICM" + bytes(4))[128:132], with_preamble(b"\\x08\\x00")[:2]
        (b'DICM', b'\\x08\\x00')
    """
    data = bytes(data)
    if data[:4] == b"DICM":
        return bytes(128) + data
    return data


def read_dataset(data: bytes, name: str) -> Any:
    """The whole dataset; a file without file meta gets a transfer syntax from its encoding.

    Args:
        data: the file's bytes (with or without preamble).
        name: file name for messages.
    """
    import pydicom
    from pydicom import uid

    data = with_preamble(data)
    has_preamble = len(data) >= 132 and data[128:132] == b"DICM"
    with friendly_errors(name, "DICOM"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data), force=not has_preamble)
        file_meta = getattr(ds, "file_meta", None)
        if file_meta is None or "TransferSyntaxUID" not in file_meta:
            implicit, little = ds.original_encoding
            if file_meta is None:
                ds.file_meta = pydicom.dataset.FileMetaDataset()
            if implicit:
                ds.file_meta.TransferSyntaxUID = uid.ImplicitVRLittleEndian
            else:
                ds.file_meta.TransferSyntaxUID = (
                    uid.ExplicitVRLittleEndian if little else uid.ExplicitVRBigEndian
                )
    return ds


def transfer_syntax_name(ds: Any) -> str:
    """The dataset's transfer syntax in words ("unknown" when it has none)."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    return str(syntax.name) if syntax is not None else "unknown"


def decode_frame(ds: Any, name: str, index: int = 0) -> np.ndarray:
    """Decode one frame: (rows, cols) grey or (rows, cols, 3) RGB, stored values (no LUTs).

    Args:
        ds: a dataset from `read_dataset`.
        name: file name for messages.
        index: frame number (0-based) of a multi-frame file.

    Example:
        >>> from pathlib import Path
        >>> from pydicom.data import get_testdata_file
        >>> ds = read_dataset(Path(get_testdata_file("SC_rgb_rle_2frame.dcm")).read_bytes(), "x")
        >>> decode_frame(ds, "x", index=1).shape
        (100, 100, 3)
    """
    from pydicom.pixels import pixel_array

    frames = frame_count(ds)
    if not 0 <= int(index) < frames:
        raise UNetDemoError(f"'{name}' has {frames} frame(s); frame {index} does not exist. "
                            f"Choose 0 to {frames - 1}.")
    syntax = ds.file_meta.TransferSyntaxUID
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = pixel_array(ds, index=int(index) if frames > 1 else None)
    except Exception as error:  # noqa: BLE001 - every decoder failure becomes one sentence
        raise UNetDemoError(_decode_failure(name, syntax, error)) from None
    array = np.asarray(array)
    if frames > 1 and array.ndim == (4 if array.shape[-1] == 3 else 3) and len(array) == frames:
        array = array[int(index)]
    return array


def frame_count(ds: Any) -> int:
    """NumberOfFrames (1 when absent or unreadable)."""
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _decode_failure(name: str, syntax: Any, error: Exception) -> str:
    from pydicom.pixels import get_decoder

    label = getattr(syntax, "name", str(syntax))
    if getattr(syntax, "is_compressed", False):
        try:
            decoder = get_decoder(syntax)
            available = decoder.available_plugins
        except (NotImplementedError, ValueError):
            available = ()
        if not available:
            package = next((p for key, p in PLUGIN_PACKAGES.items() if key in label), "a plugin")
            return (f"'{name}' uses the compressed transfer syntax {label}, and no decoder for it "
                    f"is installed ({package}). Install it, or decompress the file first "
                    "(`gdcmconv --raw in.dcm out.dcm`).")
        reason = str(error).splitlines()
        detail = next((line.strip() for line in reason[1:] if line.strip()), reason[0] if
                      reason else type(error).__name__)
        return (f"'{name}' uses the compressed transfer syntax {label}, but its image data could "
                f"not be decoded ({detail[:160]}). The file is probably damaged or written by a "
                "non-conforming encoder; export it again or decompress it with "
                "`gdcmconv --raw in.dcm out.dcm`.")
    return (f"'{name}' ({label}) has pixel data that could not be decoded "
            f"({type(error).__name__}: {str(error)[:160]}). Export the image again.")


# --------------------------------------------------------------------------- a series

@dataclasses.dataclass
class Series:
    """Slices of one series ordered along the slice normal.

    Attributes:
        datasets: the slices' datasets (pixel data included), in order.
        names: their file names inside the ZIP, in the same order.
        spacing: (row, column, slice) spacing in mm.
        normal: unit slice normal (patient coordinates).
    """

    datasets: list[Any]
    names: list[str]
    spacing: tuple[float, float, float]
    normal: np.ndarray


def order_series(datasets: list[Any], names: list[str], subject: str = "The series") -> Series:
    """Order slices by ImagePositionPatient along the normal; check size, orientation, spacing.

    Args:
        datasets: one dataset per slice.
        names: file names for messages.
        subject: what to call the set in messages.

    Example:
        >>> from pydicom.dataset import Dataset
        >>> def s(z):
        ...     d = Dataset(); d.Rows = d.Columns = 4; d.PixelSpacing = [1, 1]
        ...     d.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]; d.ImagePositionPatient = [0, 0, z]
        ...     return d
        >>> series = order_series([s(4.0), s(0.0), s(2.0)], ["c", "a", "b"])
        >>> series.names, series.spacing
        (['a', 'b', 'c'], (1.0, 1.0, 2.0))
    """
    if len(datasets) < 2:
        raise UNetDemoError(f"{subject} holds {len(datasets)} DICOM image(s); a volume needs at "
                            "least two slices of one series.")
    first = datasets[0]
    for ds, name in zip(datasets, names, strict=True):
        for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "Rows", "Columns"):
            if keyword not in ds:
                raise UNetDemoError(f"'{name}' in {subject.lower()} has no {keyword}, so its "
                                    "place in the volume is unknown. Upload one series exported "
                                    "with its geometry.")
        if (int(ds.Rows), int(ds.Columns)) != (int(first.Rows), int(first.Columns)):
            raise UNetDemoError(f"'{name}' is {ds.Columns}x{ds.Rows} pixels but '{names[0]}' is "
                                f"{first.Columns}x{first.Rows}: {subject.lower()} mixes "
                                "series. Upload the slices of one series only.")
        orientation = np.asarray(ds.ImageOrientationPatient, float)
        if not np.allclose(orientation, np.asarray(first.ImageOrientationPatient, float),
                           atol=ORIENTATION_TOLERANCE):
            raise UNetDemoError(f"'{name}' is oriented differently from '{names[0]}' "
                                "(ImageOrientationPatient): the slices do not form one volume. "
                                "Upload one series only.")
    orientation = np.asarray(first.ImageOrientationPatient, float)
    normal = np.cross(orientation[:3], orientation[3:])
    positions = np.array([float(np.dot(normal, np.asarray(ds.ImagePositionPatient, float)))
                          for ds in datasets])
    order = np.argsort(positions, kind="stable")
    gaps = np.diff(positions[order])
    if np.any(gaps < 1e-4):
        duplicate = names[int(order[int(np.argmin(gaps)) + 1])]
        raise UNetDemoError(f"'{duplicate}' lies at the same position as another slice: "
                            f"{subject.lower()} holds duplicates or two series. Upload one "
                            "series only.")
    step = float(np.median(gaps))
    if np.max(np.abs(gaps - step)) > SPACING_TOLERANCE * step:
        raise UNetDemoError(f"The slice gaps of {subject.lower()} range from {gaps.min():.2f} to "
                            f"{gaps.max():.2f} mm: slices are missing or unevenly spaced, so it "
                            "is not one regular volume. Upload the complete series.")
    spacing = [float(v) for v in first.get("PixelSpacing", [1.0, 1.0])]
    return Series([datasets[i] for i in order], [names[i] for i in order],
                  (spacing[0], spacing[1], step), normal)


def read_series_zip(data: bytes, name: str, limits: Any | None = None) -> Series:
    """A ZIP of one series' DICOM slices -> ordered, checked `Series`.

    The ZIP goes through the one archive guard (`unet_demo.data.archive`); members that are not
    DICOM images (a DICOMDIR, a text file) are skipped.

    Args:
        data: the ZIP file's bytes.
        name: its file name, for messages.
        limits: `unet_demo.data.archive.ZipLimits` (default limits when None).
    """
    from unet_demo.data import archive

    limits = limits or archive.ZipLimits()
    subject = f"The archive '{name}'"
    datasets, names = [], []
    with archive.open_zip(data, limits, subject) as zipped:
        for info in (member for member in zipped.infolist() if not member.is_dir()):
            with zipped.open(info) as handle:
                content = with_preamble(handle.read(limits.max_member_bytes + 1))
            if content[128:132] != b"DICM":
                continue
            ds = read_dataset(content, info.filename)
            if "PixelData" not in ds or "Rows" not in ds:
                continue
            datasets.append(ds)
            names.append(info.filename)
    return order_series(datasets, names, subject)


def series_volume(series: Series) -> np.ndarray:
    """The series as float32 (rows, cols, slices) with the modality LUT (e.g. Hounsfield units)."""
    from pydicom.pixels import apply_modality_lut

    slices = []
    for ds, name in zip(series.datasets, series.names, strict=True):
        frame = decode_frame(ds, name)
        if frame.ndim == 3:
            frame = frame.mean(axis=-1)
        slices.append(np.asarray(apply_modality_lut(frame, ds), np.float32))
    return np.stack(slices, axis=-1)
