"""Read images and masks from bytes or files: PNG, JPEG, TIFF, DICOM, NIfTI.

Every upload, CLI command and training run reads files through here. The format comes from
the bytes (`validation.sniff_format`), sizes are checked from headers before decoding, and
every problem becomes a `UNetDemoError` with a message that says how to fix it.

Images come back as `LoadedImage` with float32 HxWxC pixels (C = 1 or 3) in the image's
natural value range: 0-255 for 8-bit files, 0-65535 for 16-bit, Hounsfield units for CT
DICOM (after RescaleSlope/Intercept), raw (scaled) voxel values for NIfTI. Normalise them
afterwards with `unet_demo.data.preprocess.normalize`.

Masks come back as integer label maps (HxW, uint8 when the labels fit, else int32).

Example:
    >>> from PIL import Image
    >>> buffer = io.BytesIO(); Image.fromarray(np.zeros((48, 64), np.uint8)).save(buffer, "PNG")
    >>> loaded = read_image_bytes(buffer.getvalue(), "cells.png")
    >>> loaded.pixels.shape, loaded.pixels.dtype, loaded.kind
    ((48, 64, 1), dtype('float32'), 'png')
"""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from unet_demo.data import dicom, validation
from unet_demo.data.preprocess import window as apply_window
from unet_demo.data.validation import Limits, friendly_errors
from unet_demo.errors import UNetDemoError

PLANES = ("axial", "coronal", "sagittal")
"""Slice planes for NIfTI volumes (after reorientation to RAS+)."""

IMAGE_SUFFIXES = (
    ".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".tif", ".tiff", ".dcm", ".dicom", ".ima",
    ".nii", ".nii.gz",
)
"""File name endings read as images or masks (plus extension-less files, as DICOM often is).

The one list: ZIP uploads, folder pairing in ``evaluate --images`` and mask file names use it.
"""

CT_WINDOW_PRESETS = {
    "brain": (40.0, 80.0),
    "mediastinum (L50 W350)": (50.0, 350.0),
    "soft tissue / abdomen (L40 W400)": (40.0, 400.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
}
"""Common CT display windows as (center, width) in Hounsfield units."""


@dataclasses.dataclass
class LoadedImage:
    """One decoded image ready for preprocessing.

    Args:
        pixels: float32 array HxWxC, C = 1 (grey) or 3 (RGB), natural value range.
        kind: "png", "jpeg", "tiff", "dicom" or "nifti".
        meta: facts about the file (original dtype, bit depth, original size, frames,
            DICOM window presets, NIfTI plane/slice/spacing, notes on conversions).
        volume: NIfTI only: the whole 3D float32 volume (RAS+ orientation) for slice picking.
        name: the file name it came from.

    Example:
        >>> LoadedImage(np.zeros((8, 8, 1), np.float32), "png", {}).shape
        (8, 8, 1)
    """

    pixels: np.ndarray
    kind: str
    meta: dict[str, Any]
    volume: np.ndarray | None = None
    name: str = ""

    @property
    def shape(self) -> tuple[int, ...]:
        """(H, W, C) of `pixels`."""
        return tuple(self.pixels.shape)

    def slice(self, plane: str = "axial", index: int | None = None) -> np.ndarray:
        """Return one HxWx1 slice of a NIfTI volume (see `slice_volume`)."""
        if self.volume is None:
            raise UNetDemoError(f"'{self.name}' is a single 2D image; it has no other slices.")
        return slice_volume(self.volume, plane, index)[..., None]


# ---------------------------------------------------------------------------------- helpers


def _bit_depth(dtype: np.dtype) -> int:
    return 1 if dtype == np.bool_ else np.dtype(dtype).itemsize * 8


def _finish(pixels: np.ndarray, meta: dict[str, Any], collapse_grey: bool = True) -> np.ndarray:
    """float32 HxWxC with C in (1, 3); non-finite values replaced by 0 (counted in meta)."""
    array = np.asarray(pixels)
    if array.ndim == 2:
        array = array[:, :, None]
    array = array.astype(np.float32, copy=False)
    if not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        meta["non_finite_replaced"] = bad
        meta.setdefault("notes", []).append(f"{bad} NaN/inf values were replaced by 0.")
        array = np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
    if (
        array.shape[-1] == 3
        and collapse_grey
        and np.array_equal(array[..., 0], array[..., 1])
        and np.array_equal(array[..., 0], array[..., 2])
    ):
        array = array[..., :1]
        meta["rgb_was_grey"] = True
        meta.setdefault("notes", []).append("RGB file with equal channels: read as grey.")
    if array.shape[-1] not in (1, 3):
        raise UNetDemoError(f"Internal: unexpected channel count {array.shape[-1]}.")
    meta["value_range"] = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    return np.ascontiguousarray(array)


def _composite_alpha(colour: np.ndarray, alpha: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """Drop an opaque alpha channel, or composite over black when some pixels are transparent."""
    maximum = float(np.iinfo(alpha.dtype).max) if alpha.dtype.kind in "ui" else 1.0
    if np.all(alpha >= maximum):
        meta.setdefault("notes", []).append("Opaque alpha channel dropped.")
        return colour
    meta.setdefault("notes", []).append("Transparent pixels composited over black.")
    weight = alpha.astype(np.float32) / maximum
    if colour.ndim == 3:
        weight = weight[..., None]
    return colour.astype(np.float32) * weight


def _pillow_array(image: Any, meta: dict[str, Any]) -> np.ndarray:
    """Decoded Pillow frame -> numpy array keeping bit depth (no convert("L") on 16-bit)."""
    mode = image.mode
    meta["mode"] = mode
    if mode == "1":
        return np.asarray(image, dtype=bool).astype(np.uint8)
    if mode in ("L", "I", "F") or mode.startswith("I;16"):
        array = np.asarray(image)
        return (
            array.astype(array.dtype.newbyteorder("=")) if array.dtype.byteorder == ">" else array
        )
    if mode == "P" or mode == "PA":
        meta["palette"] = True
        has_alpha = mode == "PA" or "transparency" in image.info
        meta.setdefault("notes", []).append("Palette image expanded to RGB.")
        if has_alpha:
            rgba = np.asarray(image.convert("RGBA"))
            return _composite_alpha(rgba[..., :3], rgba[..., 3], meta)
        return np.asarray(image.convert("RGB"))
    if mode in ("LA", "La"):
        array = np.asarray(image.convert("LA"))
        return _composite_alpha(array[..., 0], array[..., 1], meta)
    if mode in ("RGBA", "RGBa"):
        array = np.asarray(image.convert("RGBA"))
        return _composite_alpha(array[..., :3], array[..., 3], meta)
    if mode == "RGB":
        return np.asarray(image)
    if mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        meta.setdefault("notes", []).append(f"{mode} converted to RGB.")
        return np.asarray(image.convert("RGB"))
    raise UNetDemoError(
        f"Pixel mode {mode!r} is not supported. Save the image as 8/16-bit grey or RGB."
    )


def _png_ihdr(data: bytes) -> tuple[int, int]:
    """(bit depth, colour type) from a PNG's IHDR chunk."""
    return data[24], data[25]


def _read_png_16bit_colour(data: bytes, meta: dict[str, Any]) -> np.ndarray:
    """16-bit RGB(A)/grey+alpha PNG via OpenCV (Pillow would cut it to 8 bits)."""
    import cv2

    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise UNetDemoError("OpenCV could not decode the 16-bit PNG (corrupt data).")
    meta["mode"] = "RGB;16"
    if decoded.ndim == 2:
        return decoded
    channels = decoded.shape[-1]
    if channels == 2:
        return _composite_alpha(decoded[..., 0], decoded[..., 1], meta)
    rgb = decoded[..., 2::-1] if channels >= 3 else decoded
    if channels == 4:
        return _composite_alpha(rgb, decoded[..., 3], meta)
    return rgb


def _read_pillow_image(data: bytes, name: str, kind: str, limits: Limits) -> LoadedImage:
    meta: dict[str, Any] = {}
    image = validation.open_pillow_checked(data, name, kind, limits)
    frames = int(getattr(image, "n_frames", 1) or 1)
    meta["num_frames"] = frames
    if frames > 1:
        meta.setdefault("notes", []).append(f"File has {frames} frames; the first one is used.")
    with friendly_errors(name, validation.FORMAT_NAMES[kind]), validation.pillow_bomb_guard(name):
        if kind == "png" and _png_ihdr(data)[0] == 16 and _png_ihdr(data)[1] in (2, 4, 6):
            image.load()  # verifies chunk CRCs and data before OpenCV decodes
            array = _read_png_16bit_colour(data, meta)
            meta["bit_depth"] = 16
        else:
            image.seek(0)
            image.load()
            array = _pillow_array(image, meta)
            meta["bit_depth"] = _png_ihdr(data)[0] if kind == "png" else _bit_depth(array.dtype)
    meta["dtype"] = str(array.dtype)
    meta["original_size"] = (int(image.size[1]), int(image.size[0]))
    pixels = _finish(array, meta)
    return LoadedImage(pixels=pixels, kind=kind, meta=meta, name=name)


def _tiff_first_page(data: bytes, name: str, limits: Limits, meta: dict[str, Any]) -> np.ndarray:
    """First TIFF page as an array with samples last, via tifffile (keeps 16-bit/float)."""
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        pages = tif.pages
        frames = len(pages)
        page = pages.first
        validation.check_dimensions(
            int(page.imagelength), int(page.imagewidth), name, limits, frames=frames
        )
        meta["num_frames"] = frames
        if frames > 1:
            meta.setdefault("notes", []).append(f"File has {frames} pages; the first one is used.")
        dtype = np.dtype(page.dtype) if page.dtype is not None else None
        if dtype is None or dtype.kind not in "uifb":
            raise UNetDemoError(
                f"'{name}' stores pixels as {dtype}; supported are integer and float samples. "
                "Save it as 8/16-bit or float32 TIFF."
            )
        samples = int(page.samplesperpixel)
        if samples not in (1, 2, 3, 4) or int(page.imagedepth) > 1:
            raise UNetDemoError(
                f"'{name}' has {samples} samples per pixel and depth {page.imagedepth}; expected "
                "grey, grey+alpha, RGB or RGBA 2D pages. Save one 2D image."
            )
        array = page.asarray()
        axes = page.axes
    for axis in reversed(range(len(axes))):
        if axes[axis] not in "YXS":
            array = np.take(array, 0, axis=axis)
    axes = "".join(axis for axis in axes if axis in "YXS")
    if "S" in axes and axes.index("S") != len(axes) - 1:
        array = np.moveaxis(array, axes.index("S"), -1)
    return array


def _read_tiff(data: bytes, name: str, limits: Limits) -> LoadedImage:
    meta: dict[str, Any] = {}
    try:
        with friendly_errors(name, "TIFF"):
            array = _tiff_first_page(data, name, limits, meta)
    except UNetDemoError as error:
        if "imagecodecs" not in str(error):
            raise
        # Compression tifffile cannot decode on its own (LZW, JPEG...): let Pillow try.
        loaded = _read_pillow_image(data, name, "tiff", limits)
        loaded.meta.setdefault("notes", []).append("Decoded with Pillow (compressed TIFF).")
        return loaded
    if array.ndim == 3 and array.shape[-1] in (2, 4):
        array = _composite_alpha(array[..., :-1], array[..., -1], meta)
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
    meta["dtype"] = meta.get("dtype", str(array.dtype))
    meta["bit_depth"] = _bit_depth(array.dtype)
    meta["original_size"] = (int(array.shape[0]), int(array.shape[1]))
    pixels = _finish(array, meta)
    return LoadedImage(pixels=pixels, kind="tiff", meta=meta, name=name)


# ------------------------------------------------------------------------------------ DICOM


def _dicom_window_presets(ds: Any) -> dict[str, tuple[float, float]]:
    """Window presets from the header (WindowCenter/Width) plus standard CT presets."""
    presets: dict[str, tuple[float, float]] = {}
    centers = ds.get("WindowCenter")
    widths = ds.get("WindowWidth")
    if centers is not None and widths is not None:
        centers = list(centers) if not isinstance(centers, int | float) else [centers]
        widths = list(widths) if not isinstance(widths, int | float) else [widths]
        explanations = ds.get("WindowCenterWidthExplanation")
        if explanations is not None and isinstance(explanations, str):
            explanations = [explanations]
        for index, (center, width) in enumerate(zip(centers, widths, strict=False)):
            label = f"header {index + 1}" if len(centers) > 1 else "header"
            if explanations is not None and index < len(explanations):
                label = f"header: {explanations[index]}"
            if float(width) > 0:
                presets[label] = (float(center), float(width))
    if str(ds.get("Modality", "")).upper() == "CT":
        presets.update(CT_WINDOW_PRESETS)
    return presets


def _dcmread_full(data: bytes, name: str) -> Any:
    """Read a whole DICOM (see `unet_demo.data.dicom.read_dataset`)."""
    return dicom.read_dataset(data, name)


def _read_dicom(
    data: bytes,
    name: str,
    limits: Limits,
    window: tuple[float, float] | None,
    frame: int | None = None,
) -> LoadedImage:
    from pydicom.pixels import apply_modality_lut
    from pydicom.pixels.utils import get_expected_length

    header = validation.read_dicom_header(data, name, limits)
    ds = _dcmread_full(data, name)
    if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise UNetDemoError(
            f"'{name}' is a DICOM header without pixel data. Upload the DICOM image file itself."
        )
    rows, columns = int(header.Rows), int(header.Columns)
    frames = int(header.get("NumberOfFrames", 1) or 1)
    samples = int(header.get("SamplesPerPixel", 1) or 1)
    bits = int(header.BitsAllocated)
    try:  # knows YBR_FULL_422 subsampling and packed 1-bit data
        expected = get_expected_length(ds) if bits != 1 else 0
    except (AttributeError, TypeError, ValueError):
        expected = rows * columns * frames * samples * max(bits, 8) // 8 if bits != 1 else 0
    file_meta = getattr(ds, "file_meta", None)
    syntax = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    compressed = bool(syntax is not None and syntax.is_compressed)
    if "PixelData" in ds and not compressed and len(ds.PixelData) < expected:
        raise UNetDemoError(
            f"'{name}' is truncated: Rows x Columns x frames needs {expected} bytes of pixel "
            f"data but the file holds {len(ds.PixelData)}. Export it again."
        )
    frame_index = 0 if frame is None else int(frame)
    array = dicom.decode_frame(ds, name, frame_index)
    photometric = str(header.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    meta: dict[str, Any] = {
        "dtype": str(array.dtype),
        "bit_depth": int(header.get("BitsStored", bits) or bits),
        "bits_allocated": bits,
        "original_size": (rows, columns),
        "num_frames": frames,
        "modality": str(header.get("Modality", "")),
        "photometric": photometric,
        "transfer_syntax": syntax.name if syntax is not None else "unknown",
    }
    if frames > 1:
        meta["frame_index"] = frame_index
        meta.setdefault("notes", []).append(
            f"File has {frames} frames; frame {frame_index + 1} is shown.")
    if compressed:
        meta["compressed"] = True
    if "PixelSpacing" in header:
        meta["pixel_spacing"] = tuple(float(v) for v in header.PixelSpacing)
        meta["spacing"] = meta["pixel_spacing"]
    if samples == 1:
        with friendly_errors(name, "DICOM"):
            values = np.asarray(apply_modality_lut(array, ds), dtype=np.float32)
        meta["rescale_slope"] = float(header.get("RescaleSlope", 1) or 1)
        meta["rescale_intercept"] = float(header.get("RescaleIntercept", 0) or 0)
        if meta["modality"].upper() == "CT" and "RescaleIntercept" in header:
            meta["units"] = "HU"
    else:
        values = np.asarray(array, dtype=np.float32)
    meta["window_presets"] = _dicom_window_presets(header)
    inverted = photometric == "MONOCHROME1"
    if window is not None:
        center, width = (float(v) for v in window)
        values = apply_window(values, center, width)
        meta["window"] = (center, width)
        meta.setdefault("notes", []).append(
            f"Window centre {center:g}, width {width:g} applied: values are in [0, 1]."
        )
        if inverted:
            values = 1.0 - values
    elif inverted and values.size:
        values = float(values.min()) + float(values.max()) - values
    if inverted:
        meta["inverted"] = True
        meta.setdefault("notes", []).append("MONOCHROME1: inverted so that bright means dense.")
    pixels = _finish(values, meta, collapse_grey=False)
    return LoadedImage(pixels=pixels, kind="dicom", meta=meta, name=name)


# ------------------------------------------------------------------------------------ NIfTI


def slice_volume(volume: np.ndarray, plane: str = "axial", index: int | None = None) -> np.ndarray:
    """Return one 2D slice of a RAS+ volume, rotated so superior/anterior point up.

    Axial slices are taken along the 3rd axis (inferior->superior), coronal along the 2nd
    (posterior->anterior), sagittal along the 1st (left->right).

    Args:
        volume: 3D array in RAS+ orientation (as in `LoadedImage.volume`).
        plane: "axial", "coronal" or "sagittal".
        index: slice number; default the middle slice.

    Example:
        >>> slice_volume(np.zeros((4, 5, 6)), "axial").shape
        (5, 4)
    """
    if plane not in PLANES:
        raise UNetDemoError(f"Plane must be one of {list(PLANES)}. Received: {plane!r}.")
    axis = {"sagittal": 0, "coronal": 1, "axial": 2}[plane]
    count = volume.shape[axis]
    if index is None:
        index = count // 2
    if not -count <= int(index) < count:
        raise UNetDemoError(
            f"Slice {index} does not exist in the {plane} plane; choose 0 to {count - 1}."
        )
    return np.rot90(np.take(volume, int(index), axis=axis))


def _nifti_volume(data: bytes, name: str, limits: Limits, meta: dict[str, Any]) -> np.ndarray:
    """Checked NIfTI bytes -> float32 3D volume reoriented to RAS+ (first volume of 4D)."""
    import nibabel as nib
    from nibabel import orientations

    checked = validation.check_nifti(data, name, limits)
    with friendly_errors(name, "NIfTI"):
        image_class = nib.Nifti2Image if checked.header.sizeof_hdr == 540 else nib.Nifti1Image
        image = image_class.from_bytes(checked.raw)
        shape = checked.shape
        index = (slice(None),) * min(3, len(shape)) + (0,) * max(0, len(shape) - 3)
        volume = np.asarray(image.dataobj[index], dtype=np.float32)
        if volume.ndim == 2:
            volume = volume[:, :, None]
        zooms = np.array((list(image.header.get_zooms()) + [1.0, 1.0, 1.0])[:3], dtype=float)
        affine = np.asarray(image.affine, dtype=float)
        ornt = orientations.io_orientation(affine)
        if np.isnan(ornt).any():
            meta.setdefault("notes", []).append("Orientation unknown: axes kept as stored.")
        else:
            affine = affine @ orientations.inv_ornt_aff(ornt, volume.shape)
            volume = orientations.apply_orientation(volume, ornt)
            zooms = zooms[ornt[:, 0].astype(int)]
        meta["affine"] = affine
        meta["header"] = image.header
    meta.update(
        {
            "dtype": checked.dtype,
            "bit_depth": np.dtype(checked.dtype).itemsize * 8,
            "volume_shape": tuple(int(v) for v in volume.shape),
            "stored_shape": shape,
            "voxel_size": tuple(float(v) for v in zooms),
            "zooms": tuple(float(v) for v in zooms),
            "compressed": checked.compressed,
            "orientation": "RAS+",
        }
    )
    if len(shape) > 3 and shape[3] > 1:
        meta["num_volumes"] = int(shape[3])
        meta.setdefault("notes", []).append(f"4D series of {shape[3]} volumes: the first is used.")
    if not np.all(np.isfinite(volume)):
        bad = int(np.count_nonzero(~np.isfinite(volume)))
        meta["non_finite_replaced"] = bad
        meta.setdefault("notes", []).append(f"{bad} NaN/inf voxels were replaced by 0.")
        volume = np.nan_to_num(volume, nan=0.0, posinf=0.0, neginf=0.0)
    return np.ascontiguousarray(volume, dtype=np.float32)


def _read_nifti(
    data: bytes, name: str, limits: Limits, plane: str, slice_index: int | None
) -> LoadedImage:
    meta: dict[str, Any] = {}
    volume = _nifti_volume(data, name, limits, meta)
    axis = {"sagittal": 0, "coronal": 1, "axial": 2}.get(plane)
    if axis is None:
        raise UNetDemoError(f"Plane must be one of {list(PLANES)}. Received: {plane!r}.")
    index = volume.shape[axis] // 2 if slice_index is None else int(slice_index)
    slice_2d = slice_volume(volume, plane, index)
    in_plane = [0, 1, 2]
    in_plane.remove(axis)
    spacing = meta["voxel_size"]
    meta.update(
        {
            "plane": plane,
            "slice_index": index % volume.shape[axis],
            "num_slices": {
                name_: int(volume.shape[a])
                for name_, a in (("sagittal", 0), ("coronal", 1), ("axial", 2))
            },
            "pixel_spacing": (spacing[in_plane[1]], spacing[in_plane[0]]),
            "spacing": (spacing[in_plane[1]], spacing[in_plane[0]]),
            "original_size": tuple(int(v) for v in slice_2d.shape),
            "volume": volume,
        }
    )
    pixels = _finish(slice_2d, meta)
    return LoadedImage(pixels=pixels, kind="nifti", meta=meta, volume=volume, name=name)


# -------------------------------------------------------------------------------- public API


def read_image_bytes(
    data: bytes,
    filename: str,
    *,
    plane: str = "axial",
    slice_index: int | None = None,
    window: tuple[float, float] | None = None,
    limits: Limits | None = None,
) -> LoadedImage:
    """Decode an uploaded image (PNG, JPEG, TIFF, DICOM or NIfTI) after validating it.

    The format is sniffed from the bytes; `filename` is only used in messages (and a note
    in `meta` when its extension disagrees with the content).

    Args:
        data: the file's bytes.
        filename: the name the user gave the file.
        plane: NIfTI only: "axial", "coronal" or "sagittal".
        slice_index: NIfTI: slice within `plane` (default: the middle one); DICOM: frame of a
            multi-frame file (default: the first).
        window: DICOM only: (center, width) display window; pixels are then in [0, 1].
        limits: budgets (bytes, pixels, frames, voxels); defaults to the module constants.

    Example:
        >>> from pydicom.data import get_testdata_file
        >>> data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
        >>> loaded = read_image_bytes(data, "ct.dcm", window=(40, 80))
        >>> loaded.meta["window_presets"]["lung"], float(loaded.pixels.max())
        ((-600.0, 1500.0), 1.0)
    """
    limits = limits or validation.DEFAULT_LIMITS
    data = bytes(data)
    kind = validation.validate_upload(data, filename, allowed=validation.IMAGE_KINDS, limits=limits)
    # Readers convert the errors they expect; this outer guard catches everything else so
    # no library exception ever reaches the UI or CLI as a traceback.
    with friendly_errors(filename, validation.FORMAT_NAMES[kind]):
        if kind in ("png", "jpeg"):
            loaded = _read_pillow_image(data, filename, kind, limits)
        elif kind == "tiff":
            loaded = _read_tiff(data, filename, limits)
        elif kind == "dicom":
            data = dicom.with_preamble(data)
            loaded = _read_dicom(data, filename, limits, window, slice_index)
        else:
            loaded = _read_nifti(data, filename, limits, plane, slice_index)
    loaded.meta["format"] = validation.FORMAT_NAMES[kind]
    loaded.meta["file_bytes"] = len(data)
    if not validation.extension_matches(kind, filename):
        loaded.meta["extension_mismatch"] = True
        loaded.meta.setdefault("notes", []).append(
            f"The name '{filename}' suggests another format, but the content is "
            f"{validation.FORMAT_NAMES[kind]}; it was read as {validation.FORMAT_NAMES[kind]}."
        )
    return loaded


def _read_path_bytes(path: str | os.PathLike[str], limits: Limits) -> tuple[bytes, str]:
    file_path = Path(path)
    if not file_path.is_file():
        raise UNetDemoError(f"No such file: '{file_path}'. Check the path and try again.")
    validation.check_file_size(file_path.stat().st_size, file_path.name, limits)
    try:
        return file_path.read_bytes(), file_path.name
    except OSError as error:
        raise UNetDemoError(f"Could not read '{file_path}': {error.strerror}.") from error


def read_image_file(path: str | os.PathLike[str], **options: Any) -> LoadedImage:
    """Read an image file from disk (size checked before reading); see `read_image_bytes`.

    Args:
        path: file path.
        **options: `plane`, `slice_index`, `window`, `limits` as in `read_image_bytes`.

    Example:
        >>> from nibabel.testing import data_path
        >>> loaded = read_image_file(Path(data_path) / "anatomical.nii", plane="coronal")
        >>> loaded.meta["plane"], loaded.pixels.shape
        ('coronal', (25, 33, 1))
    """
    limits = options.get("limits") or validation.DEFAULT_LIMITS
    data, name = _read_path_bytes(path, limits)
    return read_image_bytes(data, name, **options)


# ------------------------------------------------------------------------------------ masks


def _raw_mask_array(data: bytes, name: str, kind: str, limits: Limits, options: dict) -> np.ndarray:
    """Decode mask pixels WITHOUT value conversions (palette indices stay indices)."""
    if kind in ("png", "jpeg"):
        image = validation.open_pillow_checked(data, name, kind, limits)
        with friendly_errors(name, validation.FORMAT_NAMES[kind]):
            if kind == "png" and _png_ihdr(data)[0] == 16 and _png_ihdr(data)[1] in (2, 4, 6):
                image.load()
                import cv2

                array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
                if array is None:
                    raise UNetDemoError("corrupt 16-bit PNG")
                return array[..., :3] if array.ndim == 3 and array.shape[-1] >= 3 else array
            image.seek(0)
            image.load()
            mode = image.mode
            if mode == "1":
                return np.asarray(image, dtype=bool).astype(np.uint8)
            if mode in ("P", "L", "I", "F") or mode.startswith("I;16"):
                array = np.asarray(image)
                return array.astype(array.dtype.newbyteorder("="), copy=False)
            if mode in ("PA", "LA", "La"):
                return np.asarray(image)[..., 0]
            return np.asarray(image.convert("RGB"))
    if kind == "tiff":
        with friendly_errors(name, "TIFF"):
            try:
                return _tiff_first_page(data, name, limits, {})
            except UNetDemoError:
                raise
            except Exception as error:  # noqa: BLE001 - codec missing: Pillow fallback
                if "imagecodecs" not in str(error):
                    raise
                image = validation.open_pillow_checked(data, name, "tiff", limits)
                image.load()
                return np.asarray(image)
    if kind == "dicom":
        header = validation.read_dicom_header(data, name, limits)
        ds = _dcmread_full(data, name)
        with friendly_errors(name, "DICOM"):
            array = ds.pixel_array
        return array[0] if int(header.get("NumberOfFrames", 1) or 1) > 1 else array
    volume = _nifti_volume(data, name, limits, {})
    return slice_volume(volume, options.get("plane", "axial"), options.get("slice_index"))


def _to_label_map(array: np.ndarray, name: str, kind: str) -> np.ndarray:
    """Raw mask pixels -> HxW integer labels (binary 0/255 -> 0/1), or a clear refusal."""
    array = np.asarray(array)
    if array.ndim == 3:
        if array.shape[-1] == 1:
            array = array[..., 0]
        elif array.shape[-1] in (2, 3, 4):
            colour = array[..., :3] if array.shape[-1] >= 3 else array[..., :1]
            if all(np.array_equal(colour[..., 0], colour[..., c]) for c in range(colour.shape[-1])):
                array = colour[..., 0]
            else:
                raise UNetDemoError(
                    f"Mask '{name}' is a colour image with different R, G and B values. Masks "
                    "must be label maps: save it as a greyscale or indexed (palette) PNG where "
                    "each pixel value is the class number (0 = background)."
                )
    if array.ndim != 2:
        raise UNetDemoError(f"Mask '{name}' has shape {array.shape}; expected a 2D label map.")
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)):
            raise UNetDemoError(
                f"Mask '{name}' contains NaN or infinite values. Masks must hold class numbers; "
                "re-export it as an integer (uint8) label image."
            )
        if not np.array_equal(array, np.round(array)):
            sample = array[array != np.round(array)].flat[0]
            raise UNetDemoError(
                f"Mask '{name}' holds non-integer values (e.g. {float(sample):g}): it looks like "
                "a probability map or a mask resized with smooth interpolation. Threshold it "
                "(e.g. > 0.5) or resize with nearest neighbour, and save integer labels."
            )
    if kind == "jpeg":
        values = array.astype(np.int64)
        near = np.minimum(np.abs(values), np.abs(values - 255)) <= 40
        if near.mean() < 0.98:
            raise UNetDemoError(
                f"Mask '{name}' is a JPEG with many grey levels. JPEG is lossy and blurs labels; "
                "save masks as PNG (class numbers, or 0/255 for binary)."
            )
        return (values >= 128).astype(np.uint8)
    if array.size and array.min() < 0:
        raise UNetDemoError(
            f"Mask '{name}' has negative values (min {array.min()}). Labels must be 0 "
            "(background) or positive class numbers."
        )
    labels = np.unique(array)
    for full in (255, 65535):
        if labels.size and set(labels.tolist()) <= {0, full} and full in labels:
            return (array == full).astype(np.uint8)
    top = int(labels.max()) if labels.size else 0
    return array.astype(np.uint8 if top <= 255 else np.int32)


def read_mask_file(
    source: str | os.PathLike[str] | bytes,
    filename: str | None = None,
    *,
    plane: str = "axial",
    slice_index: int | None = None,
    limits: Limits | None = None,
) -> np.ndarray:
    """Read a segmentation mask as an HxW integer label map.

    Binary masks saved as 0/255 (or 0/65535) become 0/1; palette (indexed) PNGs keep their
    indices as labels; RGB masks whose channels are equal become grey; JPEG masks are
    thresholded at 128 when nearly binary (JPEG is lossy). Colour-coded masks and float
    masks with fractional values are refused with a message saying how to fix them.

    Args:
        source: a path, or the file's bytes.
        filename: name for messages when `source` is bytes.
        plane, slice_index: NIfTI masks: the same slice as the image.
        limits: budgets; defaults to the module constants.

    Example:
        >>> from PIL import Image
        >>> buffer = io.BytesIO(); Image.fromarray(np.uint8([[0, 255] * 4] * 8)).save(buffer, "PNG")
        >>> mask = read_mask_file(buffer.getvalue(), "mask.png")  # saved as 0/255
        >>> mask.shape, mask.dtype, np.unique(mask)
        ((8, 8), dtype('uint8'), array([0, 1], dtype=uint8))
    """
    limits = limits or validation.DEFAULT_LIMITS
    if isinstance(source, bytes | bytearray | memoryview):
        data, name = bytes(source), filename or "mask"
    else:
        data, name = _read_path_bytes(source, limits)
    kind = validation.validate_upload(data, name, allowed=validation.IMAGE_KINDS, limits=limits)
    options = {"plane": plane, "slice_index": slice_index}
    with friendly_errors(name, validation.FORMAT_NAMES[kind]):
        raw = _raw_mask_array(data, name, kind, limits, options)
        return np.ascontiguousarray(_to_label_map(raw, name, kind))


def validate_pair(
    image: np.ndarray | LoadedImage,
    mask: np.ndarray,
    name: str,
    *,
    num_classes: int | None = None,
) -> None:
    """Check that an image and its mask belong together; raise UNetDemoError if not.

    Checks: same height and width, finite image values, mask finite and integer-valued,
    labels within 0..num_classes-1 (0/1 for binary when num_classes is 1).

    Args:
        image: HxW or HxWxC array, or a `LoadedImage`.
        mask: HxW (or HxWx1) label array.
        name: the image/mask file name, used in the message.
        num_classes: 1 for binary (labels 0/1) or the number of classes; None skips the check.

    Example:
        >>> validate_pair(np.zeros((8, 8, 1)), np.zeros((8, 8), np.uint8), "a.png", num_classes=1)
    """
    pixels = image.pixels if isinstance(image, LoadedImage) else np.asarray(image)
    labels = np.asarray(mask)
    if labels.ndim == 3 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if pixels.ndim not in (2, 3) or labels.ndim != 2:
        raise UNetDemoError(
            f"'{name}': expected image HxW or HxWxC and mask HxW. Received: image "
            f"{pixels.shape}, mask {labels.shape}."
        )
    if pixels.shape[:2] != labels.shape:
        raise UNetDemoError(
            f"'{name}': mask is {labels.shape[1]}x{labels.shape[0]} but the image is "
            f"{pixels.shape[1]}x{pixels.shape[0]} (width x height). Use the mask made for this "
            "image, or resize the mask with nearest-neighbour interpolation to the image size."
        )
    if pixels.dtype.kind == "f" and not np.all(np.isfinite(pixels)):
        raise UNetDemoError(
            f"'{name}': the image contains NaN or infinite values. Replace them (e.g. with 0) "
            "before training."
        )
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)):
            raise UNetDemoError(
                f"'{name}': the mask contains NaN or infinite values. Masks must hold class "
                "numbers; re-export it as an integer label image."
            )
        if not np.array_equal(labels, np.round(labels)):
            raise UNetDemoError(
                f"'{name}': the mask holds non-integer values. Threshold it or save integer "
                "class numbers."
            )
    if num_classes is not None:
        allowed = 2 if num_classes == 1 else num_classes
        found = np.unique(labels)
        unexpected = found[(found < 0) | (found >= allowed)]
        if unexpected.size:
            shown = ", ".join(str(int(v)) for v in unexpected[:5])
            hint = (
                " Binary masks must be 0/1 (0/255 files are converted when read with "
                "read_mask_file)."
                if num_classes == 1
                else f" Labels must be 0..{allowed - 1}; set num_classes to cover them."
            )
            raise UNetDemoError(
                f"'{name}': the mask has unexpected label(s) {shown}; expected 0.."
                f"{allowed - 1}.{hint}"
            )
