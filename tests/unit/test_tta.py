"""Flip test-time augmentation: equivariant functions give zero variance, others do not."""

from __future__ import annotations

import numpy as np
import pytest

from unet_demo.errors import UNetDemoError
from unet_demo.inference.tta import FLIPS, apply_flip, flip_tta


def images():
    return np.random.default_rng(0).random((3, 8, 10, 1), dtype=np.float32)


def test_each_flip_is_its_own_inverse():
    batch = images()
    for flip in FLIPS:
        assert np.array_equal(apply_flip(apply_flip(batch, flip), flip), batch)
    assert np.array_equal(apply_flip(batch, "hflip"), batch[:, :, ::-1])
    assert np.array_equal(apply_flip(batch, "vflip"), batch[:, ::-1])


def test_flip_equivariant_function_has_zero_variance():
    batch = images()

    def squash(x):  # pixel-wise, so flipping in and out changes nothing
        return 1.0 / (1.0 + np.exp(-(x - 0.5) * 8))

    result = flip_tta(squash, batch, batch_size=2)
    assert result.mean.shape == (3, 8, 10, 1)
    assert result.variance.shape == (3, 8, 10)
    assert float(result.variance.max()) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(result.mean, squash(batch), rtol=1e-6)
    assert set(result.per_flip) == set(FLIPS)


def test_position_dependent_function_shows_uncertainty():
    batch = images()

    def left_half(x):  # "foreground" is always the left half of the input: not equivariant
        out = np.zeros_like(x)
        out[:, :, : x.shape[2] // 2] = 1.0
        return out

    result = flip_tta(left_half, batch)
    # after un-flipping, hflip votes for the right half: every pixel is 50/50 -> variance 0.25
    np.testing.assert_allclose(result.variance, 0.25)
    np.testing.assert_allclose(result.mean, 0.5)


def test_multichannel_output_and_bad_input():
    batch = images()
    result = flip_tta(lambda x: np.concatenate([x, 1 - x], axis=-1), batch, ["identity", "vflip"])
    assert result.mean.shape == (3, 8, 10, 2)
    with pytest.raises(UNetDemoError):
        flip_tta(lambda x: x, batch, ["rotate"])
    with pytest.raises(UNetDemoError):
        flip_tta(lambda x: x, np.zeros((4, 4)))
