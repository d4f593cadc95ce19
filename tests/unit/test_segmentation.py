"""Segmenting arbitrary-size images and volumes with a fixed-size model, and mask export."""

from __future__ import annotations

import gzip
import io

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from unet_demo.data.readers import read_image_bytes, slice_volume
from unet_demo.errors import UNetDemoError
from unet_demo.inference.encoders import mask_png_bytes, nifti_mask_bytes, rgb_png_bytes
from unet_demo.inference.segment import place_slice, segment_array, segment_volume


def bright_box_image(height=60, width=90):
    image = np.full((height, width), 20.0, np.float32)
    image[15:45, 30:70] = 200.0
    return image


def identity_model(batch):
    return batch[..., :1]  # "probability" = normalised intensity


def test_segment_array_maps_back_to_original_grid():
    image = bright_box_image()
    result = segment_array(identity_model, image, input_shape=(32, 32, 1), num_classes=1,
                           spacing=(0.5, 0.25))
    assert result.labels.shape == (60, 90)
    assert result.probabilities.shape == (60, 90, 1)
    assert result.model_input.shape == (32, 32, 1)
    truth = bright_box_image() > 100
    dice = 2 * (truth & (result.labels > 0)).sum() / (truth.sum() + (result.labels > 0).sum())
    assert dice > 0.95
    assert result.area_mm2[1] == pytest.approx(result.area_pixels[1] * 0.125)
    assert result.uncertainty is None


def test_segment_array_tta_rgb_input_and_postprocess():
    image = np.repeat(bright_box_image()[..., None], 3, axis=-1)
    image[0, 0] = 255.0  # a bright speck
    result = segment_array(identity_model, image, input_shape=(32, 32, 1), num_classes=1,
                           tta=True, postprocess_ops=["largest_component"])
    assert result.uncertainty is not None and result.uncertainty.shape == (60, 90)
    assert float(result.uncertainty.max()) < 1e-6  # identity model is flip-equivariant
    assert result.labels[0, 0] == 0
    with pytest.raises(UNetDemoError):
        segment_array(identity_model, np.zeros((2, 3, 4, 5)), input_shape=(8, 8, 1),
                      num_classes=1)


def test_png_exports_decode():
    labels = np.zeros((6, 7), np.uint8)
    labels[1:3, 1:4] = 1
    decoded = np.asarray(Image.open(io.BytesIO(mask_png_bytes(labels, 1))))
    assert decoded.shape == (6, 7) and set(np.unique(decoded)) == {0, 255}
    multi = np.asarray(Image.open(io.BytesIO(mask_png_bytes(labels * 2, 3))))
    assert set(np.unique(multi)) == {0, 2}
    rgb = np.asarray(Image.open(io.BytesIO(rgb_png_bytes(np.ones((4, 5, 3))))))
    assert rgb.shape == (4, 5, 3) and rgb.max() == 255


def test_place_slice_inverts_slice_volume():
    volume = np.random.default_rng(0).integers(0, 3, (5, 6, 7)).astype(np.uint8)
    for plane, axis in (("axial", 2), ("coronal", 1), ("sagittal", 0)):
        rebuilt = np.zeros_like(volume)
        for index in range(volume.shape[axis]):
            place_slice(rebuilt, slice_volume(volume, plane, index), plane, index)
        assert np.array_equal(rebuilt, volume)


def test_nifti_mask_keeps_source_grid_and_affine():
    rng = np.random.default_rng(0)
    stored = rng.normal(100, 5, (20, 16, 12)).astype(np.float32)
    stored[5:12, 4:10, 3:9] = 300.0  # bright block = foreground
    affine = np.diag([-1.5, -1.0, 2.0, 1.0])  # LPS-like: the reader must reorient to RAS+
    affine[:3, 3] = [10, 20, -30]
    source = gzip.compress(nib.Nifti1Image(stored, affine).to_bytes())
    loaded = read_image_bytes(source, "vol.nii.gz")
    labels_ras, volumes = segment_volume(identity_model, loaded.volume, plane="axial",
                                         input_shape=(32, 32, 1), num_classes=1,
                                         zooms=loaded.meta["voxel_size"])
    mask = nib.Nifti1Image.from_bytes(gzip.decompress(nifti_mask_bytes(labels_ras, source,
                                                                        "vol.nii.gz")))
    assert mask.shape == stored.shape
    np.testing.assert_allclose(mask.affine, affine)
    data = np.asarray(mask.dataobj)
    assert data.dtype == np.uint8
    expected = stored > 200
    dice = 2 * (expected & (data > 0)).sum() / (expected.sum() + (data > 0).sum())
    assert dice > 0.9
    assert volumes[1] == pytest.approx((data > 0).sum() * 1.5 * 1.0 * 2.0)
