"""Preprocessing: normalisation modes, channels, resize-with-pad (and undo), CLAHE, denoise."""

from __future__ import annotations

import numpy as np
import pytest

from unet_demo.config import NORMALIZATION_MODES as CONFIG_MODES
from unet_demo.data.preprocess import (
    NORMALIZATION_MODES,
    apply_clahe,
    denoise,
    normalize,
    prepare_batch,
    prepare_image,
    resize,
    resize_with_pad,
    to_channels,
    to_grey,
    unpad_resize,
    window,
)
from unet_demo.errors import UNetDemoError

RNG = np.random.default_rng(0)
IMAGE = (RNG.random((20, 30, 1)) * 4000 - 1000).astype(np.float32)


def test_modes_match_data_config():
    assert tuple(NORMALIZATION_MODES) == tuple(CONFIG_MODES)


def test_minmax_zscore_symmetric_ranges():
    minmax = normalize(IMAGE, "minmax")
    assert minmax.dtype == np.float32
    assert minmax.min() == pytest.approx(0.0) and minmax.max() == pytest.approx(1.0)
    zscore = normalize(IMAGE, "zscore")
    assert zscore.mean() == pytest.approx(0.0, abs=1e-5) and zscore.std() == pytest.approx(1.0)
    symmetric = normalize(IMAGE, "symmetric")
    assert symmetric.min() == pytest.approx(-1.0) and symmetric.max() == pytest.approx(1.0)
    for mode in ("minmax", "zscore", "symmetric"):
        assert not normalize(np.full((4, 4, 1), 7.0), mode).any()


def test_minmax_percentiles_clip_outliers():
    image = np.zeros((10, 10, 1), np.float32)
    image[0, 0] = 1e6
    image[5:, :] = 10
    clipped = normalize(image, "minmax", percentiles=(0, 95))
    assert clipped[9, 9, 0] == pytest.approx(1.0)


def test_ct_window_matches_formula_and_needs_center_width():
    hu = np.array([-1000.0, 0.0, 40.0, 80.0, 3000.0], np.float32)
    np.testing.assert_allclose(normalize(hu, "ct_window", center=40, width=80), [0, 0, 0.5, 1, 1])
    np.testing.assert_allclose(
        window(hu, -600, 1500)[:2], [(-1000 + 1350) / 1500, (0 + 1350) / 1500]
    )
    with pytest.raises(UNetDemoError, match="center"):
        normalize(hu, "ct_window")
    with pytest.raises(UNetDemoError, match="Received: 'max'"):
        normalize(hu, "max")


def test_grey_and_channels():
    rgb = np.zeros((4, 4, 3), np.float32)
    rgb[..., 1] = 1.0
    assert to_grey(rgb)[0, 0, 0] == pytest.approx(0.587)
    assert to_grey(np.zeros((4, 4))).shape == (4, 4, 1)
    assert to_grey(np.zeros((4, 4, 4))).shape == (4, 4, 1)
    grey3 = to_channels(np.arange(16, dtype=np.float32).reshape(4, 4, 1), 3)
    assert grey3.shape == (4, 4, 3) and np.array_equal(grey3[..., 0], grey3[..., 2])
    assert to_channels(rgb, 1).shape == (4, 4, 1)
    with pytest.raises(UNetDemoError):
        to_channels(rgb, 2)


def test_resize_with_pad_keeps_aspect_and_centres():
    image = np.ones((10, 20, 1), np.float32)
    padded, info = resize_with_pad(image, 16, return_info=True)
    assert padded.shape == (16, 16, 1)
    assert info.resized_shape == (8, 16) and info.offset == (4, 0)
    assert padded[:4].max() == 0 and padded[12:].max() == 0 and padded[4:12].min() == 1
    edge = resize_with_pad(np.arange(200, dtype=np.float32).reshape(10, 20), 16, pad_mode="edge")
    np.testing.assert_array_equal(edge[0], edge[4])
    restored = unpad_resize(padded, info)
    assert restored.shape == (10, 20, 1) and np.allclose(restored, 1.0)


def test_resize_with_pad_masks_stay_labels():
    mask = (np.arange(15 * 9).reshape(15, 9) % 4).astype(np.uint8)
    padded, info = resize_with_pad(mask, (32, 32), is_mask=True, pad_mode="edge", return_info=True)
    assert padded.dtype == np.uint8 and padded.shape == (32, 32)
    assert set(np.unique(padded)) <= {0, 1, 2, 3}
    assert padded[:, : info.offset[1]].max() == 0
    big = np.kron(mask, np.ones((2, 2), np.uint8))
    np.testing.assert_array_equal(resize(big, mask.shape, is_mask=True), mask)
    padded_big, info_big = resize_with_pad(big, 60, is_mask=True, return_info=True)
    np.testing.assert_array_equal(unpad_resize(padded_big, info_big, is_mask=True), big)


def test_prepare_image_model_ready():
    prepared = prepare_image(IMAGE, size=32, channels=3, normalization="symmetric")
    ready, info = prepared.model_input, prepared.placement
    assert ready.shape == (32, 32, 3) and ready.dtype == np.float32
    assert ready.min() >= -1.0 and ready.max() <= 1.0
    assert info.original_shape == (20, 30)
    assert prepared.normalized.shape[:2] == (20, 30)


def test_prepare_batch_matches_prepare_image_and_keeps_masks_aligned():
    images = np.random.default_rng(5).random((3, 20, 30)).astype(np.float32) * 900
    masks = np.zeros((3, 20, 30), np.uint8)
    masks[:, 5:15, 10:20] = 1
    batch, labels = prepare_batch(images, masks, size=32, normalization="zscore")
    for index in range(3):
        one = prepare_image(images[index], size=32, normalization="zscore").model_input
        np.testing.assert_array_equal(batch[index], one)
    # The mask is scaled and padded exactly like its image: foreground stays in place.
    assert labels.shape == (3, 32, 32) and labels.dtype == np.uint8
    assert labels[:, :5].sum() == 0  # the padding rows above the image are background
    assert 0 < labels[0].sum() < 32 * 32
    with pytest.raises(UNetDemoError, match="do not match"):
        prepare_batch(images, masks[:, :10], size=32)


def test_clahe_raises_local_contrast():
    noise = np.random.default_rng(3).random((64, 64)).astype(np.float32) * 0.05
    image = noise.copy()
    image[:, 32:] += 0.95  # two flat regions: weak texture inside each
    image = image[..., None]
    result = apply_clahe(image, clip_limit=0.03, kernel_size=16)
    assert result.shape == image.shape and result.min() >= 0 and result.max() <= 1
    before = normalize(image, "minmax")[:, :28].std()
    assert result[:, :28].std() > 2 * before
    colour = apply_clahe(np.repeat(image, 3, axis=-1))
    assert colour.shape == (64, 64, 3)
    with pytest.raises(UNetDemoError):
        apply_clahe(image, clip_limit=0)


@pytest.mark.parametrize("method", ["tv", "median", "gaussian"])
def test_denoise_reduces_noise_keeps_shape(method):
    clean = np.zeros((48, 48, 1), np.float32)
    clean[12:36, 12:36] = 1.0
    noisy = clean + np.random.default_rng(1).normal(0, 0.2, clean.shape).astype(np.float32)
    result = denoise(noisy, method, strength=0.2)
    assert result.shape == noisy.shape and result.dtype == np.float32
    assert np.abs(result - clean).mean() < np.abs(noisy - clean).mean()
    with pytest.raises(UNetDemoError):
        denoise(noisy, "wavelet")
