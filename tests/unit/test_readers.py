"""Readers: every format and mode decodes to float32 HxWxC with the right values and meta."""

from __future__ import annotations

import gzip
import io

import cv2
import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from unet_demo.data.readers import (
    CT_WINDOW_PRESETS,
    LoadedImage,
    read_image_bytes,
    read_image_file,
    read_mask_file,
    slice_volume,
    validate_pair,
)
from unet_demo.errors import UNetDemoError


def _pil_bytes(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _ramp16(height: int = 64, width: int = 64) -> np.ndarray:
    return (np.arange(height * width).reshape(height, width) * 13).astype(np.uint16)


# ------------------------------------------------------------------------ PNG / JPEG / TIFF


def test_png_grey_8bit_keeps_values():
    array = np.arange(256, dtype=np.uint8).reshape(16, 16)
    loaded = read_image_bytes(_pil_bytes(Image.fromarray(array)), "grey.png")
    assert loaded.kind == "png" and loaded.pixels.dtype == np.float32
    assert loaded.pixels.shape == (16, 16, 1)
    np.testing.assert_array_equal(loaded.pixels[..., 0], array)
    assert loaded.meta["bit_depth"] == 8 and loaded.meta["original_size"] == (16, 16)


def test_png_rgb_stays_rgb_and_grey_rgb_collapses():
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    loaded = read_image_bytes(_pil_bytes(Image.fromarray(colour)), "rgb.png")
    assert loaded.pixels.shape == (16, 16, 3)
    np.testing.assert_array_equal(loaded.pixels, colour)
    grey = np.repeat(colour[..., :1], 3, axis=-1)
    collapsed = read_image_bytes(_pil_bytes(Image.fromarray(grey)), "grey_as_rgb.png")
    assert collapsed.pixels.shape == (16, 16, 1) and collapsed.meta["rgb_was_grey"]


def test_png_rgba_opaque_drops_alpha_and_transparent_composites_over_black():
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    loaded = read_image_bytes(_pil_bytes(Image.fromarray(rgba)), "rgba.png")
    assert loaded.pixels.shape == (16, 16, 3)
    assert float(loaded.pixels[..., 0].min()) == 200.0
    rgba[:8, :, 3] = 0
    half = read_image_bytes(_pil_bytes(Image.fromarray(rgba)), "rgba.png")
    assert float(half.pixels[:8, :, 0].max()) == 0.0 and float(half.pixels[8:, :, 0].min()) == 200
    assert any("composited" in note for note in half.meta["notes"])


def test_png_palette_expands_to_rgb():
    indices = (np.arange(256).reshape(16, 16) % 3).astype(np.uint8)
    image = Image.fromarray(indices, mode="L").convert("P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    image = Image.frombytes("P", (16, 16), indices.tobytes())
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    loaded = read_image_bytes(_pil_bytes(image), "palette.png")
    assert loaded.meta["palette"] and loaded.pixels.shape == (16, 16, 3)
    np.testing.assert_array_equal(loaded.pixels[indices == 1], [[255, 0, 0]] * (indices == 1).sum())
    np.testing.assert_array_equal(loaded.pixels[indices == 2], [[0, 0, 255]] * (indices == 2).sum())


def test_png_16bit_grey_keeps_more_than_256_levels():
    array = _ramp16()
    loaded = read_image_bytes(_pil_bytes(Image.fromarray(array)), "ct16.png")
    assert loaded.meta["bit_depth"] == 16
    assert len(np.unique(loaded.pixels)) == array.size > 256
    np.testing.assert_array_equal(loaded.pixels[..., 0], array)


def test_png_16bit_rgb_keeps_16_bits():
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 65535, (16, 16, 3), dtype=np.uint16)
    ok, buffer = cv2.imencode(".png", rgb[..., ::-1])
    assert ok
    loaded = read_image_bytes(buffer.tobytes(), "rgb16.png")
    assert loaded.meta["bit_depth"] == 16
    np.testing.assert_array_equal(loaded.pixels, rgb.astype(np.float32))


def test_jpeg_grey_and_rgb():
    grey = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))
    loaded = read_image_bytes(_pil_bytes(Image.fromarray(grey), "JPEG", quality=95), "x.jpg")
    assert loaded.kind == "jpeg" and loaded.pixels.shape == (64, 64, 1)
    assert np.abs(loaded.pixels[..., 0] - grey).mean() < 3
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 1] = 180
    colour = read_image_bytes(_pil_bytes(Image.fromarray(rgb), "JPEG"), "x.jpeg")
    assert colour.pixels.shape == (32, 32, 3)


def test_tiff_16bit_keeps_more_than_256_levels():
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, _ramp16())
    loaded = read_image_bytes(buffer.getvalue(), "x.tif")
    assert loaded.kind == "tiff" and loaded.meta["bit_depth"] == 16
    assert len(np.unique(loaded.pixels)) > 256
    np.testing.assert_array_equal(loaded.pixels[..., 0], _ramp16())


def test_tiff_lzw_falls_back_to_pillow_and_keeps_16_bits():
    data = _pil_bytes(Image.fromarray(_ramp16()), "TIFF", compression="tiff_lzw")
    loaded = read_image_bytes(data, "lzw.tif")
    assert len(np.unique(loaded.pixels)) > 256


def test_tiff_float32_and_multi_frame_reads_first_frame():
    frames = np.stack([np.full((16, 16), i + 0.5, np.float32) for i in range(5)])
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, frames, photometric="minisblack")
    loaded = read_image_bytes(buffer.getvalue(), "stack.tiff")
    assert loaded.meta["num_frames"] == 5 and loaded.pixels.shape == (16, 16, 1)
    assert float(loaded.pixels.max()) == 0.5
    assert any("first" in note for note in loaded.meta["notes"])


def test_multi_frame_png_reads_first_frame():
    frames = [Image.fromarray(np.full((16, 16), v, np.uint8)) for v in (10, 20, 30)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "PNG", save_all=True, append_images=frames[1:])
    loaded = read_image_bytes(buffer.getvalue(), "anim.png")
    assert loaded.meta["num_frames"] == 3 and float(loaded.pixels.max()) == 10


def test_extension_lie_is_noted_not_fatal(tmp_path):
    data = _pil_bytes(Image.fromarray(np.zeros((16, 16), np.uint8)), "JPEG")
    path = tmp_path / "scan.png"
    path.write_bytes(data)
    loaded = read_image_file(path)
    assert loaded.kind == "jpeg" and loaded.meta["extension_mismatch"]


def test_read_image_file_missing_path(tmp_path):
    with pytest.raises(UNetDemoError, match="No such file"):
        read_image_file(tmp_path / "nope.png")


# ------------------------------------------------------------------------------------ DICOM


def _dicom(
    stored: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    slope: float | None = None,
    intercept: float | None = None,
    modality: str = "CT",
    window: tuple[float, float] | None = None,
    preamble: bool = True,
) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("t.dcm", {}, file_meta=meta, preamble=b"\x00" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.PixelSpacing = [0.5, 0.7]
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = stored.astype(np.uint16).tobytes()
    buffer = io.BytesIO()
    if preamble:
        ds.save_as(buffer, enforce_file_format=True)
    else:  # old ACR-NEMA style: no preamble, no "DICM", no file meta, implicit VR
        del ds.file_meta
        ds.preamble = None
        ds.save_as(buffer, implicit_vr=True, little_endian=True)
    return buffer.getvalue()


def test_dicom_rescale_slope_intercept_gives_hounsfield_units():
    stored = np.arange(0, 2048, 8, dtype=np.uint16).reshape(16, 16)
    loaded = read_image_bytes(_dicom(stored, slope=2.0, intercept=-1024.0), "ct.dcm")
    assert loaded.kind == "dicom" and loaded.meta["units"] == "HU"
    np.testing.assert_allclose(loaded.pixels[..., 0], stored * 2.0 - 1024.0)
    assert loaded.meta["spacing"] == (0.5, 0.7)


def test_dicom_window_presets_and_window_option():
    stored = np.arange(256, dtype=np.uint16).reshape(16, 16) * 10
    data = _dicom(stored, slope=1.0, intercept=-1024.0, window=(40.0, 400.0))
    loaded = read_image_bytes(data, "ct.dcm")
    presets = loaded.meta["window_presets"]
    assert presets["header"] == (40.0, 400.0)
    assert presets["lung"] == CT_WINDOW_PRESETS["lung"] and "brain" in presets
    windowed = read_image_bytes(data, "ct.dcm", window=(40.0, 80.0))
    hu = stored.astype(np.float32) - 1024.0
    np.testing.assert_allclose(windowed.pixels[..., 0], np.clip((hu - 0.0) / 80.0, 0, 1))
    with pytest.raises(UNetDemoError, match="width"):
        read_image_bytes(data, "ct.dcm", window=(40.0, 0.0))


def test_dicom_monochrome1_is_inverted():
    stored = np.zeros((16, 16), np.uint16)
    stored[0, 0] = 1000
    plain = read_image_bytes(_dicom(stored, modality="CR"), "cr.dcm")
    inverted = read_image_bytes(_dicom(stored, photometric="MONOCHROME1", modality="CR"), "x.dcm")
    assert inverted.meta["inverted"] and "inverted" not in plain.meta
    assert plain.pixels[0, 0, 0] == plain.pixels.max()
    assert inverted.pixels[0, 0, 0] == inverted.pixels.min()
    np.testing.assert_allclose(inverted.pixels, plain.pixels.max() - plain.pixels)
    assert "lung" not in inverted.meta["window_presets"]


def test_dicom_without_preamble_is_accepted_when_header_is_sane():
    stored = np.arange(256, dtype=np.uint16).reshape(16, 16)
    data = _dicom(stored, preamble=False)
    assert data[128:132] != b"DICM"
    loaded = read_image_bytes(data, "old.dcm")
    np.testing.assert_array_equal(loaded.pixels[..., 0], stored)


# ------------------------------------------------------------------------------------ NIfTI


def _volume() -> np.ndarray:
    x, y, z = np.meshgrid(np.arange(10), np.arange(12), np.arange(14), indexing="ij")
    return (x * 10000 + y * 100 + z).astype(np.float32)


def test_nifti_plane_and_slice_picking():
    volume = _volume()
    data = nib.Nifti1Image(volume, np.eye(4)).to_bytes()
    axial = read_image_bytes(data, "v.nii")
    assert axial.kind == "nifti" and axial.volume.shape == (10, 12, 14)
    assert axial.meta["plane"] == "axial" and axial.meta["slice_index"] == 7
    assert axial.pixels.shape == (12, 10, 1)
    np.testing.assert_array_equal(axial.pixels[..., 0], np.rot90(volume[:, :, 7]))
    coronal = read_image_bytes(data, "v.nii", plane="coronal", slice_index=3)
    np.testing.assert_array_equal(coronal.pixels[..., 0], np.rot90(volume[:, 3, :]))
    sagittal = read_image_bytes(data, "v.nii", plane="sagittal", slice_index=0)
    np.testing.assert_array_equal(sagittal.pixels[..., 0], np.rot90(volume[0, :, :]))
    np.testing.assert_array_equal(sagittal.slice("axial", 2)[..., 0], np.rot90(volume[:, :, 2]))
    assert sagittal.meta["num_slices"] == {"sagittal": 10, "coronal": 12, "axial": 14}
    with pytest.raises(UNetDemoError, match="0 to 13"):
        read_image_bytes(data, "v.nii", slice_index=14)
    with pytest.raises(UNetDemoError, match="Plane"):
        read_image_bytes(data, "v.nii", plane="oblique")


def test_nifti_gz_is_reoriented_to_ras_and_keeps_int16():
    volume = _volume().astype(np.int16)
    flipped = np.diag([-2.0, 1.0, 3.0, 1.0])  # x axis stored right-to-left, 2 mm voxels
    data = gzip.compress(nib.Nifti1Image(volume, flipped).to_bytes())
    loaded = read_image_bytes(data, "v.nii.gz")
    assert loaded.meta["compressed"] and loaded.meta["dtype"] == "int16"
    np.testing.assert_array_equal(loaded.volume, volume[::-1].astype(np.float32))
    assert loaded.meta["zooms"] == (2.0, 1.0, 3.0)
    assert np.allclose(loaded.meta["affine"][:3, :3], np.diag([2.0, 1.0, 3.0]))


def test_nifti_4d_uses_first_volume_and_2d_works():
    series = np.stack([_volume(), _volume() + 1], axis=-1)
    loaded = read_image_bytes(nib.Nifti1Image(series, np.eye(4)).to_bytes(), "s.nii")
    assert loaded.meta["num_volumes"] == 2
    np.testing.assert_array_equal(loaded.volume, _volume())
    flat = np.arange(16 * 20, dtype=np.float32).reshape(16, 20)
    two_d = read_image_bytes(nib.Nifti1Image(flat, np.eye(4)).to_bytes(), "flat.nii")
    np.testing.assert_array_equal(two_d.pixels[..., 0], np.rot90(flat))


def test_slice_volume_default_is_middle():
    volume = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    np.testing.assert_array_equal(slice_volume(volume, "coronal"), np.rot90(volume[:, 1, :]))


# ------------------------------------------------------------------------------------ masks


def test_mask_binary_0_255_becomes_0_1(tmp_path):
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 255
    path = tmp_path / "m.png"
    path.write_bytes(_pil_bytes(Image.fromarray(mask)))
    labels = read_mask_file(path)
    assert labels.dtype == np.uint8 and set(np.unique(labels)) == {0, 1}
    assert labels.sum() == 16


def test_mask_palette_keeps_indices_and_rgb_grey_collapses():
    indices = (np.arange(256).reshape(16, 16) % 4).astype(np.uint8)
    image = Image.frombytes("P", (16, 16), indices.tobytes())
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 12))
    np.testing.assert_array_equal(read_mask_file(_pil_bytes(image), "p.png"), indices)
    grey_rgb = np.repeat(indices[..., None], 3, axis=-1)
    labels = read_mask_file(_pil_bytes(Image.fromarray(grey_rgb)), "g.png")
    np.testing.assert_array_equal(labels, indices)


def test_mask_colour_and_fractional_float_are_refused():
    colour = np.zeros((16, 16, 3), np.uint8)
    colour[..., 0] = 255
    with pytest.raises(UNetDemoError, match="palette"):
        read_mask_file(_pil_bytes(Image.fromarray(colour)), "c.png")
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.full((16, 16), 0.5, np.float32))
    with pytest.raises(UNetDemoError, match="non-integer"):
        read_mask_file(buffer.getvalue(), "prob.tif")
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.eye(16, dtype=np.float32) * 2)
    np.testing.assert_array_equal(read_mask_file(buffer.getvalue(), "ok.tif"), np.eye(16) * 2)


def test_mask_16bit_instances_and_nifti_slice():
    instances = (np.arange(256).reshape(16, 16) + 200).astype(np.uint16)
    labels = read_mask_file(_pil_bytes(Image.fromarray(instances)), "inst.png")
    assert labels.dtype == np.int32 and labels.max() == 455
    volume = (np.arange(8 * 8 * 8).reshape(8, 8, 8) % 3).astype(np.uint8)
    data = nib.Nifti1Image(volume, np.eye(4)).to_bytes()
    mask = read_mask_file(data, "seg.nii", plane="coronal", slice_index=2)
    np.testing.assert_array_equal(mask, np.rot90(volume[:, 2, :]))


def test_validate_pair_accepts_matching_and_names_the_problem():
    image = np.zeros((16, 16, 1), np.float32)
    validate_pair(image, np.zeros((16, 16), np.uint8), "a.png", num_classes=1)
    validate_pair(LoadedImage(image, "png", {}), np.ones((16, 16, 1)), "a.png", num_classes=1)
    with pytest.raises(UNetDemoError, match=r"'a\.png'.*8x16.*16x16.*nearest"):
        validate_pair(image, np.zeros((16, 8), np.uint8), "a.png")
    bad_image = image.copy()
    bad_image[0, 0, 0] = np.nan
    with pytest.raises(UNetDemoError, match="NaN"):
        validate_pair(bad_image, np.zeros((16, 16), np.uint8), "a.png")
    nan_mask = np.zeros((16, 16), np.float32)
    nan_mask[1, 1] = np.inf
    with pytest.raises(UNetDemoError, match="mask contains NaN"):
        validate_pair(image, nan_mask, "a.png")
    with pytest.raises(UNetDemoError, match="unexpected label.*255.*0/1"):
        validate_pair(image, np.full((16, 16), 255, np.uint8), "a.png", num_classes=1)
    with pytest.raises(UNetDemoError, match="unexpected label.*5.*0..2"):
        validate_pair(image, np.full((16, 16), 5, np.uint8), "a.png", num_classes=3)
