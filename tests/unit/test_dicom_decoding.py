"""DICOM as it comes: every compressed test file of pydicom, YBR colour, no preamble, frames, series."""

from __future__ import annotations

import copy
import io
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file, get_testdata_files

from unet_demo.data import dicom
from unet_demo.data.readers import read_image_bytes, read_image_file
from unet_demo.errors import UNetDemoError

# The two compressed files no installed plugin decodes (pydicom decodes them only with GDCM):
# a JPEG stream with a misplaced marker, and a cut JPEG 2000 stream.
UNDECODABLE = {"JPEG-lossy.dcm", "JPEG2000-embedded-sequence-delimiter.dcm"}


def _compressed_images() -> list[str]:
    paths = []
    for path in sorted(get_testdata_files("*")):
        if os.path.isdir(path):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception:  # noqa: BLE001 - not DICOM at all
            continue
        syntax = getattr(getattr(header, "file_meta", None), "TransferSyntaxUID", None)
        if syntax is not None and syntax.is_compressed and int(header.get("Rows", 0) or 0) >= 8:
            paths.append(path)
    return paths


COMPRESSED = _compressed_images()


def test_the_test_files_cover_every_compressed_family():
    names = {str(pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID.name)
             for p in COMPRESSED}
    for family in ("JPEG Baseline", "JPEG Extended", "JPEG Lossless", "JPEG-LS Lossless",
                   "JPEG-LS Lossy", "JPEG 2000 Image Compression (Lossless Only)",
                   "RLE Lossless"):
        assert any(family in name for name in names), family
    assert len(COMPRESSED) >= 30
    deflated = read_image_file(get_testdata_file("image_dfl.dcm"))  # deflated dataset
    assert deflated.meta["transfer_syntax"] == "Deflated Explicit VR Little Endian"


@pytest.mark.parametrize("path", COMPRESSED, ids=[Path(p).name for p in COMPRESSED])
def test_every_compressed_file_decodes_or_says_why(path):
    name = Path(path).name
    if name in UNDECODABLE:
        with pytest.raises(UNetDemoError, match="compressed transfer syntax .* could not be "
                                                "decoded .*gdcmconv"):
            read_image_file(path)
        return
    loaded = read_image_file(path)
    assert loaded.kind == "dicom" and loaded.pixels.shape[-1] in (1, 3)
    assert np.isfinite(loaded.pixels).all() and loaded.pixels.max() > loaded.pixels.min()


@pytest.mark.parametrize("name", ["SC_rgb_dcmtk_+eb+cy+n1.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm",
                                  "SC_rgb_jpeg_dcmtk.dcm", "SC_ybr_full_422_uncompressed.dcm",
                                  "SC_rgb_gdcm_KY.dcm", "SC_rgb_jls_lossy_line.dcm"])
def test_ybr_and_compressed_colour_come_back_as_the_same_rgb(name):
    reference = read_image_file(get_testdata_file("SC_rgb_rle.dcm")).pixels  # lossless RGB
    pixels = read_image_file(get_testdata_file(name)).pixels
    assert pixels.shape == reference.shape == (100, 100, 3)
    assert np.abs(pixels - reference).mean() < 4.0


@pytest.mark.parametrize("name", ["GDCMJ2K_TextGBR.dcm", "examples_jpeg2k.dcm"])
def test_ybr_rct_jpeg2000_decodes_to_rgb(name):
    loaded = read_image_file(get_testdata_file(name))
    assert loaded.meta["photometric"] == "YBR_RCT" and loaded.pixels.shape[-1] == 3


def test_files_without_preamble_read_like_the_original():
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    original = read_image_bytes(data, "ct.dcm").pixels
    assert np.array_equal(read_image_bytes(data[128:], "cut.dcm").pixels, original)  # "DICM"...
    from pydicom.filewriter import write_dataset

    buffer = io.BytesIO()
    writer = pydicom.filebase.DicomFileLike(buffer)
    writer.is_little_endian, writer.is_implicit_VR = True, False
    write_dataset(writer, pydicom.dcmread(get_testdata_file("CT_small.dcm")))
    bare = buffer.getvalue()  # no preamble, no marker, no file meta (ACR-NEMA style)
    assert bare[:2] == b"\x08\x00"
    assert np.array_equal(read_image_bytes(bare, "bare").pixels, original)


def test_multi_frame_files_pick_a_frame_and_refuse_a_missing_one():
    data = Path(get_testdata_file("examples_ybr_color.dcm")).read_bytes()  # 30 JPEG frames
    first = read_image_bytes(data, "us.dcm")
    other = read_image_bytes(data, "us.dcm", slice_index=12)
    assert first.meta["num_frames"] == 30 and other.meta["frame_index"] == 12
    assert not np.array_equal(first.pixels, other.pixels)
    with pytest.raises(UNetDemoError, match="30 frame.*frame 30 does not exist"):
        read_image_bytes(data, "us.dcm", slice_index=30)


def _series_zip(positions, orientation=(1, 0, 0, 0, 1, 0), rows=None) -> bytes:
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index, z in enumerate(positions):
            ds = copy.deepcopy(source)
            ds.ImagePositionPatient = [0.0, 0.0, float(z)]
            ds.ImageOrientationPatient = list(orientation) if index else [1, 0, 0, 0, 1, 0]
            ds.InstanceNumber = index + 1
            ds.SOPInstanceUID = pydicom.uid.generate_uid()
            out = io.BytesIO()
            ds.save_as(out)
            archive.writestr(f"slice{index}.dcm", out.getvalue())
        archive.writestr("README.txt", "not a slice")
    return buffer.getvalue()


def test_a_series_zip_becomes_an_ordered_volume():
    series = dicom.read_series_zip(_series_zip([10.0, 0.0, 5.0, 15.0]), "series.zip")
    assert series.names == ["slice1.dcm", "slice2.dcm", "slice0.dcm", "slice3.dcm"]
    assert series.spacing[2] == pytest.approx(5.0)
    volume = dicom.series_volume(series)
    assert volume.shape == (128, 128, 4) and volume.dtype == np.float32


@pytest.mark.parametrize(("positions", "orientation", "message"), [
    ([0.0, 5.0, 20.0], (1, 0, 0, 0, 1, 0), "unevenly spaced"),
    ([0.0, 5.0, 10.0], (0, 1, 0, 0, 0, 1), "oriented differently"),
    ([0.0, 0.0, 5.0], (1, 0, 0, 0, 1, 0), "same position"),
])
def test_a_broken_series_is_refused_in_one_sentence(positions, orientation, message):
    with pytest.raises(UNetDemoError, match=message):
        dicom.read_series_zip(_series_zip(positions, orientation), "series.zip")
