"""Generate bad input files (made at test time, never committed) for upload-hardening tests.

Every file here must be refused by `read_image_bytes` with a `UNetDemoError` whose message
tells the user what went wrong. The Segment page and the CLI `predict` tests reuse this.

Example:
    >>> from tests.bad_files import generate_bad_files
    >>> files = generate_bad_files(tmp_path)  # doctest: +SKIP
    >>> len(files) >= 30  # doctest: +SKIP
    True
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk with a correct CRC."""
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_header_only(width: int, height: int, *, bit_depth: int = 8, colour_type: int = 0) -> bytes:
    """A tiny PNG whose IHDR claims `width` x `height` (IDAT holds one empty row only).

    Example:
        >>> len(png_header_only(20000, 10000)) < 100
        True
    """
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 2)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def png_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8/uint16 array as PNG with Pillow."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _good_png() -> bytes:
    rng = np.random.default_rng(0)
    return png_bytes(rng.integers(0, 255, (64, 64), dtype=np.uint8))


def _pillow_bytes(fmt: str, **kwargs) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(1)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _bomb_png(width: int = 7000, height: int = 7000) -> bytes:
    """A real decompression bomb: a valid all-zero PNG of ~49 megapixels in a few dozen KB."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    idat = b"".join(parts)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def _bad_crc_png() -> bytes:
    data = bytearray(_good_png())
    data[29] ^= 0xFF  # last byte of the IHDR CRC
    return bytes(data)


def _corrupt_idat_png() -> bytes:
    data = bytearray(_good_png())
    start = data.index(b"IDAT") + 4
    data[start + 2 : start + 40] = bytes(38)
    # keep CRC consistent so only the zlib stream is broken
    length = struct.unpack(">I", data[start - 8 : start - 4])[0]
    payload = bytes(data[start : start + length])
    crc = zlib.crc32(b"IDAT" + payload) & 0xFFFFFFFF
    data[start + length : start + length + 4] = struct.pack(">I", crc)
    return bytes(data)


def _jpeg_with_size(width: int, height: int) -> bytes:
    """A small JPEG whose SOF marker is patched to claim `width` x `height`."""
    data = bytearray(_pillow_bytes("JPEG"))
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at > 0:
            data[at + 5 : at + 9] = struct.pack(">HH", height, width)
            return bytes(data)
    raise RuntimeError("no SOF marker found")


def _tiff_bytes(array: np.ndarray, **kwargs) -> bytes:
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **kwargs)
    return buffer.getvalue()


def _tiff_huge_header() -> bytes:
    """A classic TIFF whose IFD claims 100000 x 100000 pixels."""
    entries = [
        (256, 4, 1, 100_000),  # ImageWidth LONG
        (257, 4, 1, 100_000),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 1),  # Compression none
        (262, 3, 1, 1),  # Photometric min-is-black
        (273, 4, 1, 8),  # StripOffsets
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, 100_000),  # RowsPerStrip
        (279, 4, 1, 10_000_000_000 % 2**32),  # StripByteCounts
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        packed = struct.pack("<H", value) + b"\x00\x00" if typ == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, typ, count) + packed
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd


def _dicom_bytes(
    rows: int = 32,
    columns: int = 32,
    *,
    bits: int = 16,
    pixel_bytes: bytes | None = None,
    with_pixels: bool = True,
    samples: int = 1,
    photometric: str = "MONOCHROME2",
    transfer_syntax: str | None = None,
) -> bytes:
    """A minimal DICOM image built with pydicom; fields can be set to absurd values."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
    ds = FileDataset("bad.dcm", {}, file_meta=meta, preamble=b"\x00" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    if with_pixels:
        if transfer_syntax is not None and pixel_bytes is not None:
            from pydicom.encaps import encapsulate

            pixel_bytes = encapsulate([pixel_bytes])
        if pixel_bytes is None:
            pixel_bytes = bytes(rows * columns * samples * max(bits // 8, 1))
        ds.PixelData = pixel_bytes
        ds["PixelData"].VR = "OW" if bits > 8 else "OB"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _nifti_header(shape: tuple[int, ...], datatype: int, bitpix: int) -> bytearray:
    """A NIfTI-1 single-file header (352 bytes incl. extension flag) written by hand."""
    header = bytearray(352)
    struct.pack_into("<i", header, 0, 348)
    dims = [len(shape), *shape] + [1] * (7 - len(shape))
    struct.pack_into("<8h", header, 40, *dims)
    struct.pack_into("<hh", header, 70, datatype, bitpix)
    struct.pack_into("<8f", header, 76, 1, *([1.0] * 7))
    struct.pack_into("<f", header, 108, 352.0)  # vox_offset
    struct.pack_into("<f", header, 112, 1.0)  # scl_slope
    header[344:348] = b"n+1\x00"
    return header


def _nifti_bytes(array: np.ndarray) -> bytes:
    import nibabel as nib

    return nib.Nifti1Image(array, np.eye(4)).to_bytes()


def _nifti_truncated() -> bytes:
    data = _nifti_bytes(np.ones((32, 32, 32), np.float32))
    return data[: len(data) // 3]


def _keras_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", '{"class_name": "Functional"}')
        archive.writestr("metadata.json", '{"keras_version": "3.15.1"}')
        archive.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + bytes(64))
    return buffer.getvalue()


def _zip_with_png() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("images/a.png", _good_png())
    return buffer.getvalue()


def _multi_page_tiff(pages: int = 1200) -> bytes:
    return _tiff_bytes(np.zeros((pages, 8, 8), np.uint8), photometric="minisblack")


BAD_FILE_BUILDERS: list[tuple[str, str, Callable[[], bytes]]] = [
    ("empty.png", "zero-byte file", lambda: b""),
    ("random.png", "4 KB of random bytes", lambda: np.random.default_rng(2).bytes(4096)),
    ("three_bytes.tif", "three random bytes", lambda: b"\x01\x02\x03"),
    ("truncated.png", "PNG cut in the middle of IDAT", lambda: _good_png()[:120]),
    ("png_signature_only.png", "PNG signature and half an IHDR", lambda: _good_png()[:20]),
    ("bad_crc.png", "PNG whose IHDR CRC is wrong", _bad_crc_png),
    ("corrupt_idat.png", "PNG with a broken zlib stream", _corrupt_idat_png),
    (
        "huge_dims.png",
        "PNG header claiming 20000x10000 (200 MP)",
        lambda: png_header_only(20000, 10000),
    ),
    ("bomb.png", "real 7000x7000 all-zero PNG (decompression bomb)", _bomb_png),
    ("zero_size.png", "PNG header claiming 0x0 pixels", lambda: png_header_only(0, 0)),
    (
        "tiny_1x1.png",
        "1x1 image, too small to segment",
        lambda: png_bytes(np.zeros((1, 1), np.uint8)),
    ),
    (
        "thin_4x400.png",
        "4x400 image, below the minimum side",
        lambda: png_bytes(np.zeros((4, 400), np.uint8)),
    ),
    ("truncated.jpg", "JPEG cut after a third", lambda: _pillow_bytes("JPEG")[:300]),
    ("soi_eoi.jpg", "JPEG with only start/end markers", lambda: b"\xff\xd8\xff\xd9"),
    ("huge_dims.jpg", "JPEG SOF claiming 60000x60000", lambda: _jpeg_with_size(60000, 60000)),
    (
        "truncated.tif",
        "TIFF cut after the header",
        lambda: _tiff_bytes(np.ones((64, 64), np.uint16))[:200],
    ),
    ("huge_dims.tif", "TIFF IFD claiming 100000x100000", _tiff_huge_header),
    ("many_pages.tif", "TIFF with 1200 pages (over the frame budget)", _multi_page_tiff),
    (
        "complex.tif",
        "TIFF with complex64 samples",
        lambda: _tiff_bytes(np.ones((16, 16), np.complex64)),
    ),
    ("bigtiff_truncated.tif", "BigTIFF header only", lambda: b"II+\x00\x08\x00\x00\x00" + bytes(8)),
    ("image.gif", "GIF (unsupported type)", lambda: _pillow_bytes("GIF")),
    ("image.bmp", "BMP (unsupported type)", lambda: _pillow_bytes("BMP")),
    ("image.webp", "WebP (unsupported type)", lambda: b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(24)),
    ("scan.png.pdf", "PDF document", lambda: b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"),
    (
        "page.png",
        "HTML page named .png",
        lambda: b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
    ),
    (
        "drawing.png",
        "SVG named .png",
        lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
    ),
    ("archive.png", "ZIP archive given as an image", _zip_with_png),
    ("model.png", ".keras model (a ZIP) named .png", _keras_zip),
    ("model_h5.png", "HDF5 (.h5 model) named .png", lambda: b"\x89HDF\r\n\x1a\n" + bytes(512)),
    (
        "program.png",
        "Windows EXE header",
        lambda: b"MZ\x90\x00\x03\x00\x00\x00" + bytes(120) + b"PE\x00\x00",
    ),
    ("program.dcm", "Linux ELF header", lambda: b"\x7fELF\x02\x01\x01" + bytes(57)),
    ("notes.png", "plain text named .png", lambda: b"This is not an image, it is a note.\n" * 20),
    ("data.png", "Python pickle named .png", lambda: pickle.dumps({"a": 1}, protocol=4)),
    ("array.png", "NumPy .npy file", lambda: _npy_bytes()),
    (
        "polyglot.png",
        "PNG signature followed by an HTML page",
        lambda: b"\x89PNG\r\n\x1a\n<html><script>x</script></html>",
    ),
    ("no_pixels.dcm", "DICOM header without PixelData", lambda: _dicom_bytes(with_pixels=False)),
    (
        "absurd_dims.dcm",
        "DICOM with Rows=Columns=60000",
        lambda: _dicom_bytes(60000, 60000, with_pixels=False),
    ),
    (
        "bad_bits.dcm",
        "DICOM with BitsAllocated=12",
        lambda: _dicom_bytes(bits=12, pixel_bytes=bytes(2048)),
    ),
    ("four_samples.dcm", "DICOM with SamplesPerPixel=4", lambda: _dicom_bytes(samples=4)),
    (
        "truncated_pixels.dcm",
        "DICOM whose PixelData is too short",
        lambda: _dicom_bytes(pixel_bytes=bytes(64)),
    ),
    (
        "jpeg_syntax.dcm",
        "DICOM claiming JPEG Lossless compression with garbage pixel data",
        lambda: _dicom_bytes(transfer_syntax="1.2.840.10008.1.2.4.70", pixel_bytes=bytes(2048)),
    ),
    ("dicm_only.dcm", "DICOM preamble and DICM marker, nothing else", lambda: bytes(128) + b"DICM"),
    ("bad_header.nii", "NIfTI magic with dim[0]=9", lambda: bytes(_nifti_bad_dims())),
    (
        "absurd_dims.nii",
        "NIfTI header claiming 10000^3 voxels",
        lambda: bytes(_nifti_header((10000, 10000, 10000), 16, 32)),
    ),
    (
        "complex.nii",
        "NIfTI with complex64 voxels",
        lambda: _nifti_bytes(np.ones((8, 8, 8), np.complex64)),
    ),
    ("truncated.nii", "NIfTI whose data stops a third of the way", _nifti_truncated),
    (
        "huge_4d.nii.gz",
        "gzip NIfTI header claiming 256x256x256x100 float32",
        lambda: gzip.compress(bytes(_nifti_header((256, 256, 256, 100), 16, 32))),
    ),
    (
        "five_d.nii",
        "5D NIfTI with non-singleton 5th dimension",
        lambda: _nifti_bytes(np.ones((8, 8, 8, 2, 3), np.float32)),
    ),
    ("not_nifti.nii.gz", "gzip of text, not NIfTI", lambda: gzip.compress(b"hello " * 100)),
    ("broken.nii.gz", "gzip magic followed by garbage", lambda: b"\x1f\x8b\x08\x00" + bytes(200)),
    ("pair.nii", "NIfTI .hdr of a .hdr/.img pair", lambda: bytes(_nifti_pair_header())),
]


def _npy_bytes() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((16, 16), np.float32))
    return buffer.getvalue()


def _nifti_bad_dims() -> bytearray:
    header = _nifti_header((16, 16, 16), 16, 32)
    struct.pack_into("<h", header, 40, 9)
    return header + bytes(16 * 16 * 16 * 4)


def _nifti_pair_header() -> bytearray:
    header = _nifti_header((16, 16, 16), 2, 8)
    header[344:348] = b"ni1\x00"
    return header


def bad_file_names() -> list[str]:
    """Names of all generated bad files (stable order, for test parametrisation)."""
    return [name for name, _, _ in BAD_FILE_BUILDERS]


def build_bad_file(name: str) -> tuple[bytes, str]:
    """Return (bytes, why) of one bad file by name.

    Example:
        >>> build_bad_file("empty.png")
        (b'', 'zero-byte file')
    """
    for file_name, why, builder in BAD_FILE_BUILDERS:
        if file_name == name:
            return builder(), why
    raise KeyError(name)


def generate_bad_files(out_dir: str | Path) -> list[tuple[Path, str]]:
    """Write every bad file into `out_dir`; return [(path, why it is bad)].

    Args:
        out_dir: folder to write into (created if missing).

    Example:
        >>> paths = generate_bad_files("/tmp/bad")  # doctest: +SKIP
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, why, builder in BAD_FILE_BUILDERS:
        path = folder / name
        path.write_bytes(builder())
        written.append((path, why))
    return written
