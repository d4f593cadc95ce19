"""Validation: sniffing by bytes, refusals with clear messages, header-first budgets."""

from __future__ import annotations

import gzip
import io
import time
import tracemalloc
import zipfile

import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image

from tests.bad_files import _bomb_png, _dicom_bytes, png_header_only
from unet_demo.data import validation
from unet_demo.data.readers import read_image_bytes
from unet_demo.data.validation import (
    Limits,
    check_nifti,
    gunzip_head,
    sniff_format,
    validate_upload,
)
from unet_demo.errors import UNetDemoError


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def _samples() -> dict[str, bytes]:
    grey = np.zeros((16, 16), np.uint8)
    jpeg = io.BytesIO()
    Image.fromarray(grey).save(jpeg, "JPEG")
    tiff = io.BytesIO()
    tifffile.imwrite(tiff, grey)
    bigtiff = io.BytesIO()
    tifffile.imwrite(bigtiff, grey, bigtiff=True)
    nii = nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), np.eye(4)).to_bytes()
    nii2 = nib.Nifti2Image(np.zeros((8, 8, 8), np.float32), np.eye(4)).to_bytes()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("a.txt", "x")
    return {
        "png": _png(grey),
        "jpeg": jpeg.getvalue(),
        "tiff": tiff.getvalue(),
        "bigtiff": bigtiff.getvalue(),
        "dicom": _dicom_bytes(),
        "nifti": nii,
        "nifti2": nii2,
        "nifti_gz": gzip.compress(nii),
        "zip": archive.getvalue(),
    }


@pytest.mark.parametrize(
    ("sample", "kind"),
    [
        ("png", "png"),
        ("jpeg", "jpeg"),
        ("tiff", "tiff"),
        ("bigtiff", "tiff"),
        ("dicom", "dicom"),
        ("nifti", "nifti"),
        ("nifti2", "nifti"),
        ("nifti_gz", "nifti"),
        ("zip", "zip"),
    ],
)
def test_sniff_detects_by_bytes_whatever_the_name(sample, kind):
    data = _samples()[sample]
    assert sniff_format(data) == kind
    if kind != "zip":
        assert validate_upload(data, "misleading_name.gif") == kind


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", "empty"),
        (b"GIF89a" + bytes(20), "gif"),
        (b"BM" + bytes(60), "bmp"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        (b"%PDF-1.7\n", "pdf"),
        (b"<!doctype html><html></html>", "html"),
        (b"MZ\x90\x00" + bytes(60), "exe"),
        (b"\x7fELF" + bytes(60), "elf"),
        (b"\x89HDF\r\n\x1a\n" + bytes(8), "hdf5"),
        (b"\x80\x04\x95" + bytes(8), "pickle"),
        (b"just some words\n", "text"),
        (gzip.compress(b"not a volume" * 50, mtime=0), "gzip"),
        (bytes(range(256)) * 4, "unknown"),
    ],
)
def test_sniff_names_unsupported_types(data, kind):
    assert sniff_format(data) == kind


def test_refusal_names_detected_type_and_allowed_ones():
    with pytest.raises(UNetDemoError) as caught:
        validate_upload(b"GIF89a" + bytes(30), "scan.png")
    message = str(caught.value)
    assert "'scan.png'" in message and "GIF" in message
    for allowed in ("PNG", "JPEG", "TIFF", "DICOM", "NIfTI"):
        assert allowed in message
    assert validate_upload(_samples()["zip"], "data.zip", allowed=("zip",)) == "zip"


def test_byte_budget_is_checked_first():
    data = _png(np.zeros((16, 16), np.uint8))
    with pytest.raises(UNetDemoError, match="limit is"):
        read_image_bytes(data, "a.png", limits=Limits(max_bytes=len(data) - 1))


def test_200_megapixel_png_header_refused_fast_with_bounded_memory():
    data = png_header_only(20000, 10000)
    assert len(data) < 100
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(UNetDemoError, match="megapixels|enormous"):
        read_image_bytes(data, "huge.png")
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 5 * 1024 * 1024


def test_pixel_budget_uses_header_below_pillow_bomb_limit():
    data = png_header_only(8000, 6000)  # 48 MP: under Pillow's limit, over ours
    tracemalloc.start()
    with pytest.raises(UNetDemoError, match="48.0 megapixels"):
        read_image_bytes(data, "big.png")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5 * 1024 * 1024
    with pytest.raises(UNetDemoError, match="megapixels"):
        read_image_bytes(
            _png(np.zeros((64, 64), np.uint8)), "a.png", limits=Limits(max_pixels=1000)
        )


def test_real_decompression_bomb_is_not_decoded():
    data = _bomb_png()
    assert len(data) < 200_000
    tracemalloc.start()
    with pytest.raises(UNetDemoError, match="megapixels"):
        read_image_bytes(data, "bomb.png")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 10 * 1024 * 1024


def test_min_side_and_frame_budget():
    with pytest.raises(UNetDemoError, match="at least 8x8"):
        read_image_bytes(_png(np.zeros((4, 64), np.uint8)), "thin.png")
    read_image_bytes(_png(np.zeros((4, 64), np.uint8)), "thin.png", limits=Limits(min_side=2))
    stack = io.BytesIO()
    tifffile.imwrite(stack, np.zeros((6, 8, 8), np.uint8), photometric="minisblack")
    with pytest.raises(UNetDemoError, match="6 frames"):
        read_image_bytes(stack.getvalue(), "stack.tif", limits=Limits(max_frames=5))


def test_dicom_header_checked_before_pixels():
    data = _dicom_bytes(50000, 50000, with_pixels=False)
    with pytest.raises(UNetDemoError, match="megapixels"):
        validation.read_dicom_header(data, "huge.dcm")
    header = validation.read_dicom_header(_dicom_bytes(), "ok.dcm")
    assert int(header.Rows) == 32 and "PixelData" not in header


def test_nifti_gz_header_checked_before_inflating_data():
    volume = np.zeros((64, 64, 64), np.float32)
    data = gzip.compress(nib.Nifti1Image(volume, np.eye(4)).to_bytes())
    with pytest.raises(UNetDemoError, match="million voxels"):
        check_nifti(data, "v.nii.gz", Limits(max_voxels=100_000))
    checked = check_nifti(data, "v.nii.gz")
    assert checked.shape == (64, 64, 64) and checked.dtype == "float32"
    assert len(checked.raw) == 352 + volume.nbytes


def test_gunzip_head_is_bounded():
    bomb = gzip.compress(bytes(20_000_000), compresslevel=1)
    tracemalloc.start()
    head = gunzip_head(bomb, 544)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert head == bytes(544)
    assert peak < 2 * 1024 * 1024


def test_corrupt_library_errors_become_friendly():
    data = bytearray(_samples()["png"])
    data[40:60] = bytes(20)
    with pytest.raises(UNetDemoError, match="'x.png'.*(corrupt|truncated)"):
        read_image_bytes(bytes(data), "x.png")
