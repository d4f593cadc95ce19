"""Validate uploaded files before anything decodes them: sniff the bytes, check budgets.

One path shared by the Streamlit pages and the CLI. The format is decided from the file's
first bytes (magic numbers), never from its name or the browser's content type, and every
size is checked from the header before pixel data is decoded. Anything wrong becomes a
`UNetDemoError` whose message says what was found, what was expected and how to fix it.

Formats accepted as images: PNG, JPEG, TIFF (classic and BigTIFF), DICOM and NIfTI-1/2
(``.nii`` or gzip-compressed ``.nii.gz``). ZIP is recognised for dataset uploads only; what is
inside a ZIP is checked by the one ZIP guard, `unet_demo.data.archive`.

DICOM without the 128-byte preamble and "DICM" marker (old ACR-NEMA style files) is accepted
only when its first bytes look like a group 0002 or 0008 element *and* pydicom can read a
header holding Rows and Columns from it; anything else is refused.

Example:
    >>> sniff_format(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(30))
    'png'
    >>> validate_upload(b"GIF89a" + bytes(30), "scan.png")
    Traceback (most recent call last):
    ...
    unet_demo.errors.UNetDemoError: 'scan.png' is a GIF image (detected from its bytes...
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import struct
import warnings
import zlib
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

from unet_demo.data.archive import ZIP_SIGNATURES as _ZIP_SIGNATURES
from unet_demo.errors import UNetDemoError

# ---------------------------------------------------------------- budgets (module constants)

MAX_BYTES = 50 * 1024 * 1024
"""Largest file accepted (bytes)."""
MAX_PIXELS = 40_000_000
"""Largest 2D image (height x width), checked from the header before decoding."""
MAX_SIDE = 20_000
"""Longest side of a 2D image in pixels."""
MIN_SIDE = 8
"""Smallest side: a U-Net cannot do anything useful with a smaller image."""
MAX_FRAMES = 1000
"""Most frames/pages in a multi-frame TIFF, PNG or DICOM (only the first is used)."""
MAX_VOXELS = 50_000_000
"""Largest NIfTI data array (all voxels of all volumes); 50 M float32 voxels = 200 MB."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """Budgets applied to one upload; every field defaults to the module constant.

    Args:
        max_bytes: largest file size in bytes.
        max_pixels: largest height x width of a 2D image.
        max_side: longest side of a 2D image.
        min_side: smallest side of a 2D image.
        max_frames: most frames or pages in one file.
        max_voxels: largest number of voxels in a NIfTI file.

    Example:
        >>> Limits(max_pixels=1_000_000).max_pixels
        1000000
    """

    max_bytes: int = MAX_BYTES
    max_pixels: int = MAX_PIXELS
    max_side: int = MAX_SIDE
    min_side: int = MIN_SIDE
    max_frames: int = MAX_FRAMES
    max_voxels: int = MAX_VOXELS


DEFAULT_LIMITS = Limits()

# ------------------------------------------------------------------------------- sniffing

IMAGE_KINDS = ("png", "jpeg", "tiff", "dicom", "nifti")
"""Kinds `read_image_bytes` decodes."""
ARCHIVE_KINDS = ("zip",)
"""Kinds accepted for a dataset upload."""

KIND_DESCRIPTIONS = {
    "png": "a PNG image",
    "jpeg": "a JPEG image",
    "tiff": "a TIFF image",
    "dicom": "a DICOM file",
    "nifti": "a NIfTI volume",
    "zip": "a ZIP archive (a .keras model file is also a ZIP)",
    "empty": "an empty file (0 bytes)",
    "gif": "a GIF image",
    "bmp": "a BMP image",
    "webp": "a WebP image",
    "jpeg2000": "a JPEG 2000 image",
    "heif": "a HEIF/AVIF/MP4 container",
    "ico": "a Windows icon",
    "pdf": "a PDF document",
    "html": "an HTML page",
    "svg": "an SVG drawing",
    "xml": "an XML document",
    "json": "a JSON document",
    "text": "a plain-text file",
    "exe": "a Windows executable (MZ header)",
    "elf": "a Linux executable (ELF header)",
    "macho": "a macOS executable (Mach-O header)",
    "hdf5": "an HDF5 file (for example a legacy Keras .h5 model)",
    "npy": "a NumPy .npy array",
    "pickle": "a Python pickle (never loaded here: unpickling can run code)",
    "gzip": "a gzip file that does not contain a NIfTI volume",
    "bzip2": "a bzip2 archive",
    "xz": "an xz archive",
    "zstd": "a Zstandard archive",
    "7z": "a 7-Zip archive",
    "rar": "a RAR archive",
    "nifti_pair": "the header half of a NIfTI/ANALYZE .hdr/.img pair",
    "analyze": "an ANALYZE 7.5 header (NIfTI's predecessor)",
    "nrrd": "an NRRD volume",
    "unknown": "an unrecognised binary file",
}

FORMAT_NAMES = {
    "png": "PNG",
    "jpeg": "JPEG",
    "tiff": "TIFF",
    "dicom": "DICOM",
    "nifti": "NIfTI (.nii/.nii.gz)",
    "zip": "ZIP",
}

EXTENSIONS = {
    "png": (".png",),
    "jpeg": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "tiff": (".tif", ".tiff", ".btf", ".tf8"),
    "dicom": (".dcm", ".dicom", ".ima", ""),
    "nifti": (".nii", ".nii.gz", ".gz"),
    "zip": (".zip",),
}

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_OTHER_SIGNATURES = (
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"%PDF", "pdf"),
    (b"\x7fELF", "elf"),
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
    (b"\x93NUMPY", "npy"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jpeg2000"),
    (b"\xff\x4f\xff\x51", "jpeg2000"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!\x1a\x07", "rar"),
    (b"NRRD", "nrrd"),
    (b"\xcf\xfa\xed\xfe", "macho"),
    (b"\xce\xfa\xed\xfe", "macho"),
    (b"\xca\xfe\xba\xbe", "macho"),
    (b"\x00\x00\x01\x00", "ico"),
)
_NIFTI1_MAGICS = (b"n+1\x00", b"ni1\x00")
_NIFTI2_MAGICS = (b"n+2\x00", b"ni2\x00")
NIFTI_HEADER_BYTES = 544
"""Bytes that hold a whole NIfTI-1 (348 + 4 extension flag) or NIfTI-2 (540 + 4) header."""


def describe_kind(kind: str) -> str:
    """Human description of a sniffed kind, e.g. "a GIF image".

    Args:
        kind: a value returned by `sniff_format`.

    Example:
        >>> describe_kind("pdf")
        'a PDF document'
    """
    return KIND_DESCRIPTIONS.get(kind, f"a {kind} file")


def allowed_text(allowed: tuple[str, ...] = IMAGE_KINDS) -> str:
    """Comma-separated names of the allowed formats, for messages.

    Example:
        >>> allowed_text(("png", "tiff"))
        'PNG, TIFF'
    """
    return ", ".join(FORMAT_NAMES.get(kind, kind.upper()) for kind in allowed)


def _nifti_header_kind(head: bytes) -> str | None:
    """Return "nifti"/"nifti_pair"/"analyze" when `head` starts with a NIfTI/ANALYZE header."""
    if len(head) < 348:
        return None
    for endian in "<>":
        (sizeof_hdr,) = struct.unpack(endian + "i", head[:4])
        if sizeof_hdr == 348:
            magic = head[344:348]
            if magic == b"n+1\x00":
                return "nifti"
            if magic == b"ni1\x00":
                return "nifti_pair"
            return "analyze"
        if sizeof_hdr == 540 and len(head) >= 540:
            magic = head[4:8]
            if magic == b"n+2\x00":
                return "nifti"
            if magic == b"ni2\x00":
                return "nifti_pair"
    return None


def gunzip_head(data: bytes, max_length: int = NIFTI_HEADER_BYTES) -> bytes:
    """Decompress at most `max_length` bytes from the start of gzip `data` (cheap, bounded).

    Args:
        data: the gzip file's bytes.
        max_length: how many decompressed bytes to produce at most.

    Example:
        >>> import gzip
        >>> gunzip_head(gzip.compress(b"hello world"), 5)
        b'hello'
    """
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        return decompressor.decompress(data[: 64 * 1024], max_length)
    except zlib.error:
        return b""


def _looks_like_bare_dicom(head: bytes) -> bool:
    """First element is a DICOM group 0002/0008 tag (no preamble), or the "DICM" marker."""
    if head[:4] == b"DICM" and len(head) >= 12 and head[4:6] == b"\x02\x00":
        return True  # the 128-byte preamble was cut off, the marker kept
    big_endian = head[:2] == b"\x00\x08" and head[4:6].isalpha() and head[4:6].isupper()
    if len(head) < 12 or (head[:2] not in (b"\x02\x00", b"\x08\x00") and not big_endian):
        return False
    (element,) = struct.unpack(">H" if big_endian else "<H", head[2:4])
    if element > 0x0100:
        return False
    vr = head[4:6]
    explicit = vr.isalpha() and vr.isupper()
    (implicit_length,) = struct.unpack("<I", head[4:8])
    return explicit or implicit_length < 1024


def _text_kind(head: bytes) -> str | None:
    """Classify `head` as html/svg/xml/json/text when it is mostly printable text."""
    if b"\x00" in head:
        return None
    sample = head[:2048]
    printable = sum(32 <= byte < 127 or byte in (9, 10, 13) or byte >= 128 for byte in sample)
    if printable < 0.95 * len(sample):
        return None
    try:
        text = sample.decode("utf-8", errors="strict" if len(head) < 2048 else "ignore")
    except UnicodeDecodeError:
        return None
    lowered = text.lstrip("\ufeff \t\r\n").lower()
    if lowered.startswith(("<!doctype html", "<html")) or "<script" in lowered[:1024]:
        return "html"
    if "<svg" in lowered[:1024]:
        return "svg"
    if lowered.startswith("<?xml") or lowered.startswith("<"):
        return "html" if "<body" in lowered or "<head" in lowered else "xml"
    if lowered.startswith(("{", "[")):
        return "json"
    return "text"


def sniff_format(data: bytes) -> str:
    """Detect a file's format from its first bytes (magic numbers), ignoring its name.

    Returns one of `IMAGE_KINDS` or `ARCHIVE_KINDS` when the file is acceptable somewhere,
    otherwise a key of `KIND_DESCRIPTIONS` ("gif", "pdf", "html", "empty", "unknown", ...).
    For gzip data only the first few hundred decompressed bytes are inflated, to find the
    NIfTI header inside ``.nii.gz`` files.

    Args:
        data: the whole file, or at least its first 64 KiB.

    Example:
        >>> sniff_format(b"II*\\x00" + bytes(16))
        'tiff'
        >>> sniff_format(b"")
        'empty'
    """
    head = bytes(data[:4096])
    if not head:
        return "empty"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(PNG_SIGNATURE):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in _TIFF_SIGNATURES:
        return "tiff"
    nifti = _nifti_header_kind(head)
    if nifti:
        return nifti
    if head.startswith(b"\x1f\x8b"):
        return _nifti_header_kind(gunzip_head(data)) or "gzip"
    if head[:4] in _ZIP_SIGNATURES:
        return "zip"
    for signature, kind in _OTHER_SIGNATURES:
        if head.startswith(signature):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        return "heif"
    if head[:2] == b"BM" and len(head) >= 26:
        return "bmp"
    if head[:2] == b"MZ":
        return "exe"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    if _looks_like_bare_dicom(head):
        return "dicom"
    return _text_kind(head) or "unknown"


def extension_matches(kind: str, filename: str) -> bool:
    """True when `filename`'s extension is usual for `kind` (used for a note, never to decide).

    Example:
        >>> extension_matches("png", "scan.PNG"), extension_matches("png", "scan.jpg")
        (True, False)
    """
    lowered = filename.lower()
    suffixes = EXTENSIONS.get(kind, ())
    if kind == "dicom" and "." not in PurePosixPath(lowered).name:
        return True
    return any(suffix and lowered.endswith(suffix) for suffix in suffixes)


def check_file_size(size: int, name: str, limits: Limits | None = None) -> None:
    """Refuse empty files and files over the byte budget.

    Args:
        size: file size in bytes.
        name: file name for the message.
        limits: budgets (defaults to the module constants).

    Example:
        >>> check_file_size(10, "a.png")
    """
    limits = limits or DEFAULT_LIMITS
    if size <= 0:
        raise UNetDemoError(
            f"'{name}' is empty (0 bytes). The upload or copy probably failed; "
            "choose the file again."
        )
    if size > limits.max_bytes:
        raise UNetDemoError(
            f"'{name}' is {size / 1e6:.1f} MB; the limit is {limits.max_bytes / 1e6:.0f} MB. "
            "Crop or downsample it, or save a single slice/frame, then upload again."
        )


def validate_upload(
    data: bytes,
    filename: str,
    *,
    allowed: tuple[str, ...] = IMAGE_KINDS,
    limits: Limits | None = None,
) -> str:
    """Check size and sniff the format of an upload; return its kind or raise UNetDemoError.

    Args:
        data: the uploaded bytes.
        filename: the name the user gave (only used in messages).
        allowed: kinds accepted here, e.g. `IMAGE_KINDS` or `ARCHIVE_KINDS`.
        limits: budgets (defaults to the module constants).

    Example:
        >>> validate_upload(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(30), "scan.jpg")
        'png'
    """
    check_file_size(len(data), filename, limits)
    kind = sniff_format(data)
    if kind in allowed:
        return kind
    hints = {
        "nifti_pair": " Convert the .hdr/.img pair to a single .nii file "
        "(e.g. nibabel: nib.save(nib.load('x.hdr'), 'x.nii')).",
        "analyze": " Convert it to NIfTI (.nii) first.",
        "zip": " Unzip it and upload the images one by one, or use the dataset upload.",
        "gzip": " Only gzip-compressed NIfTI (.nii.gz) is read.",
        "pickle": "",
        "hdf5": " Models are loaded on the Segment page as .keras files, not here.",
    }
    raise UNetDemoError(
        f"'{filename}' is {describe_kind(kind)} (detected from its bytes, not its name). "
        f"Allowed here: {allowed_text(allowed)}."
        + hints.get(kind, " Convert the file to one of these formats and upload again.")
    )


# ------------------------------------------------------------------------ header checks


def check_dimensions(
    height: int,
    width: int,
    name: str,
    limits: Limits | None = None,
    *,
    frames: int = 1,
) -> None:
    """Refuse 2D sizes outside the budget (called with header values, before decoding).

    Args:
        height, width: image size from the file header.
        name: file name for the message.
        limits: budgets (defaults to the module constants).
        frames: number of frames/pages the header announces.

    Example:
        >>> check_dimensions(256, 256, "a.png")
    """
    limits = limits or DEFAULT_LIMITS
    if height <= 0 or width <= 0:
        raise UNetDemoError(
            f"'{name}' says it is {width}x{height} pixels, which is not a valid image. "
            "The file is corrupt; export it again."
        )
    if height * width > limits.max_pixels or max(height, width) > limits.max_side:
        raise UNetDemoError(
            f"'{name}' is {width}x{height} = {height * width / 1e6:.1f} megapixels; the limit is "
            f"{limits.max_pixels / 1e6:.0f} megapixels and {limits.max_side} pixels per side. "
            "Downsample or crop it first (a U-Net here works on a few hundred pixels per side)."
        )
    if min(height, width) < limits.min_side:
        raise UNetDemoError(
            f"'{name}' is only {width}x{height} pixels; at least {limits.min_side}x"
            f"{limits.min_side} is needed to segment anything. Upload the full-size image."
        )
    if frames > limits.max_frames:
        raise UNetDemoError(
            f"'{name}' holds {frames} frames/pages; the limit is {limits.max_frames}. "
            "Save the frame you need as a single image."
        )


@contextlib.contextmanager
def friendly_errors(name: str, what: str) -> Iterator[None]:
    """Turn any library exception inside the block into a UNetDemoError naming the file.

    Args:
        name: file name for the message.
        what: the format being read, e.g. "PNG".

    Example:
        >>> with friendly_errors("a.png", "PNG"):
        ...     raise ValueError("broken")
        Traceback (most recent call last):
        ...
        unet_demo.errors.UNetDemoError: 'a.png' could not be read as PNG: ...
    """
    try:
        yield
    except UNetDemoError:
        raise
    except MemoryError as error:
        raise UNetDemoError(
            f"'{name}' needs more memory to decode than is available. "
            "Upload a smaller image or a single slice."
        ) from error
    except Exception as error:  # noqa: BLE001 - this is the edge where library errors end
        text = re.sub(r"\s*<_io\.\w+ object at 0x[0-9a-f]+>", " data", str(error)).strip()
        detail = text.splitlines()[0][:200] if text else ""
        detail = f"{type(error).__name__}: {detail}" if detail else type(error).__name__
        raise UNetDemoError(
            f"'{name}' could not be read as {what}: the file looks truncated or corrupt "
            f"({detail}). Export or download it again."
        ) from error


def open_pillow_checked(data: bytes, name: str, kind: str, limits: Limits | None = None) -> Any:
    """Open `data` lazily with Pillow (header only), check size and frames; return the image.

    Only the Pillow plugin for the sniffed `kind` is allowed to open the file, and Pillow's
    decompression-bomb warning/error become UNetDemoError.

    Args:
        data: the file's bytes.
        name: file name for messages.
        kind: "png", "jpeg" or "tiff".
        limits: budgets (defaults to the module constants).

    Example:
        >>> from PIL import Image
        >>> buffer = io.BytesIO(); Image.new("L", (64, 48)).save(buffer, "PNG")
        >>> open_pillow_checked(buffer.getvalue(), "a.png", "png").size
        (64, 48)
    """
    from PIL import Image

    formats = {"png": ["PNG"], "jpeg": ["JPEG", "MPO"], "tiff": ["TIFF"]}[kind]
    with friendly_errors(name, FORMAT_NAMES[kind]), pillow_bomb_guard(name):
        image = Image.open(io.BytesIO(data), formats=formats)
        width, height = image.size
        check_dimensions(height, width, name, limits)
        frames = int(getattr(image, "n_frames", 1) or 1)
        if frames > 1:
            check_dimensions(height, width, name, limits, frames=frames)
    return image


@contextlib.contextmanager
def pillow_bomb_guard(name: str) -> Iterator[None]:
    """Make Pillow's DecompressionBombWarning an error and report both as UNetDemoError.

    Example:
        >>> with pillow_bomb_guard("a.png"):
        ...     pass
    """
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise UNetDemoError(
                f"'{name}' declares an enormous image ({error}). It could be a decompression "
                "bomb, so it was not decoded. Upload an image under "
                f"{MAX_PIXELS / 1e6:.0f} megapixels."
            ) from error


SUPPORTED_DICOM_BITS = (1, 8, 16, 32)
SUPPORTED_DICOM_PHOTOMETRIC = (
    "MONOCHROME1",
    "MONOCHROME2",
    "RGB",
    "YBR_FULL",
    "YBR_FULL_422",
    "PALETTE COLOR",
    "YBR_RCT",
    "YBR_ICT",
)


def read_dicom_header(data: bytes, name: str, limits: Limits | None = None) -> Any:
    """Read a DICOM header without pixel data and check its image attributes.

    Checks Rows/Columns (pixel budget), NumberOfFrames, BitsAllocated, SamplesPerPixel and
    PhotometricInterpretation before anything touches PixelData.

    Args:
        data: the file's bytes.
        name: file name for messages.
        limits: budgets (defaults to the module constants).

    Example:
        >>> from pathlib import Path
        >>> from pydicom.data import get_testdata_file
        >>> header = read_dicom_header(Path(get_testdata_file("CT_small.dcm")).read_bytes(), "ct.dcm")
        >>> header.Modality, header.Rows, header.Columns
        ('CT', 128, 128)
    """
    import pydicom

    limits = limits or DEFAULT_LIMITS
    data = bytes(128) + data if data[:4] == b"DICM" else data  # preamble cut off
    has_preamble = len(data) >= 132 and data[128:132] == b"DICM"
    with friendly_errors(name, "DICOM"):
        header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=not has_preamble)
        rows = header.get("Rows")
        columns = header.get("Columns")
        if rows is None or columns is None:
            raise UNetDemoError(
                f"'{name}' is a DICOM file without an image (no Rows/Columns; it may be a "
                "report, a structure set or a DICOMDIR). Upload a DICOM image instead."
            )
        frames = int(header.get("NumberOfFrames", 1) or 1)
        check_dimensions(int(rows), int(columns), name, limits, frames=frames)
        bits = int(header.get("BitsAllocated", 0) or 0)
        if bits not in SUPPORTED_DICOM_BITS:
            raise UNetDemoError(
                f"'{name}' has BitsAllocated={bits}; expected one of {SUPPORTED_DICOM_BITS}. "
                "The header is corrupt or non-standard; re-export the series."
            )
        samples = int(header.get("SamplesPerPixel", 1) or 1)
        if samples not in (1, 3):
            raise UNetDemoError(
                f"'{name}' has SamplesPerPixel={samples}; expected 1 (grey) or 3 (colour). "
                "Re-export the image as greyscale or RGB."
            )
        photometric = str(header.get("PhotometricInterpretation", "MONOCHROME2")).strip()
        if photometric not in SUPPORTED_DICOM_PHOTOMETRIC:
            raise UNetDemoError(
                f"'{name}' uses PhotometricInterpretation {photometric!r}; supported: "
                f"{', '.join(SUPPORTED_DICOM_PHOTOMETRIC)}. Convert it with a DICOM tool."
            )
    return header


SUPPORTED_NIFTI_DTYPES = (
    "uint8",
    "int8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float32",
    "float64",
)


@dataclasses.dataclass(frozen=True)
class NiftiCheck:
    """A checked NIfTI header plus the (decompressed, bounded) bytes to read it from.

    Args:
        header: nibabel Nifti1Header or Nifti2Header.
        raw: uncompressed file bytes, no longer than header + data.
        shape: data shape from the header.
        dtype: on-disk data type name.
        compressed: whether the upload was gzip-compressed.
    """

    header: Any
    raw: bytes
    shape: tuple[int, ...]
    dtype: str
    compressed: bool


def check_nifti(data: bytes, name: str, limits: Limits | None = None) -> NiftiCheck:
    """Check a NIfTI header (dims, dtype, voxel budget) and return bounded uncompressed bytes.

    For ``.nii.gz`` only the header is inflated first; the data is inflated afterwards, and
    never beyond what the header announces, so a gzip bomb cannot blow up memory.

    Args:
        data: the ``.nii`` or ``.nii.gz`` bytes.
        name: file name for messages.
        limits: budgets (defaults to the module constants).

    Example:
        >>> from pathlib import Path
        >>> from nibabel.testing import data_path
        >>> checked = check_nifti((Path(data_path) / "example4d.nii.gz").read_bytes(), "4d.nii.gz")
        >>> checked.shape, checked.dtype, checked.compressed
        ((128, 96, 24, 2), 'int16', True)
    """
    import nibabel as nib
    import numpy as np

    limits = limits or DEFAULT_LIMITS
    compressed = data[:2] == b"\x1f\x8b"
    head = gunzip_head(data) if compressed else bytes(data[:NIFTI_HEADER_BYTES])
    if _nifti_header_kind(head) != "nifti":
        raise UNetDemoError(
            f"'{name}' does not start with a single-file NIfTI header (n+1/n+2 magic). "
            "Save it as .nii or .nii.gz and upload again."
        )
    with friendly_errors(name, "NIfTI"):
        (sizeof_hdr,) = struct.unpack("<i", head[:4])
        if sizeof_hdr not in (348, 540):
            (sizeof_hdr,) = struct.unpack(">i", head[:4])
        header_class = nib.Nifti2Header if sizeof_hdr == 540 else nib.Nifti1Header
        header = header_class.from_fileobj(io.BytesIO(head[:sizeof_hdr]), check=True)
        shape = tuple(int(size) for size in header.get_data_shape())
        try:
            dtype = np.dtype(header.get_data_dtype())
        except Exception as error:  # noqa: BLE001
            raise UNetDemoError(
                f"'{name}' declares a data type NIfTI readers do not know. Re-save the volume "
                "as int16, uint8 or float32."
            ) from error
    dtype_name = dtype.name if dtype.fields is None else "RGB/structured"
    if dtype_name not in SUPPORTED_NIFTI_DTYPES:
        raise UNetDemoError(
            f"'{name}' stores voxels as {dtype_name}; supported: "
            f"{', '.join(SUPPORTED_NIFTI_DTYPES)}. Convert it (e.g. to float32 magnitude) first."
        )
    if not 2 <= len(shape) <= 7 or any(size <= 0 for size in shape):
        raise UNetDemoError(
            f"'{name}' has data shape {shape}; expected a 2D or 3D volume. The header is corrupt."
        )
    extra = [size for size in shape[4:] if size != 1]
    if extra:
        raise UNetDemoError(
            f"'{name}' is a {len(shape)}D volume {shape}; only 2D/3D volumes (or a 4D series, "
            "of which the first volume is used) are read. Save one 3D volume."
        )
    voxels = int(np.prod(shape, dtype=np.float64))
    if voxels > limits.max_voxels:
        raise UNetDemoError(
            f"'{name}' has {voxels / 1e6:.0f} million voxels {shape}; the limit is "
            f"{limits.max_voxels / 1e6:.0f} million. Crop or downsample the volume, or save "
            "one 3D volume of a 4D series."
        )
    in_plane = sorted(shape[:3])[-2:] if len(shape) >= 3 else list(shape)
    check_dimensions(in_plane[0], in_plane[-1], name, limits)
    offset = int(header.get_data_offset()) or sizeof_hdr + 4
    needed = offset + voxels * dtype.itemsize
    if compressed:
        with friendly_errors(name, "gzip-compressed NIfTI"):
            decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            raw = decompressor.decompress(data, needed)
    else:
        raw = bytes(data[:needed])
    if len(raw) < needed:
        raise UNetDemoError(
            f"'{name}' is truncated: its header announces {shape} {dtype_name} voxels "
            f"({needed} bytes) but only {len(raw)} bytes are there. Download or export it again."
        )
    return NiftiCheck(header=header, raw=raw, shape=shape, dtype=dtype_name, compressed=compressed)

