"""Augmentation: image and mask stay aligned, seeds replay, dtypes/ranges kept, exports agree."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import albumentations as A
import numpy as np
import pytest
import yaml

from unet_demo.augment import (
    GEOMETRIC_TRANSFORMS,
    augment_gallery,
    augment_image_only,
    augment_pair,
    augmentation_code,
    augmentation_dict,
    augmentation_yaml,
    build_augmentation,
    make_augment_fn,
    transform_specs,
)
from unet_demo.config import AugmentConfig
from unet_demo.errors import UNetDemoError

ALL_ON = AugmentConfig(
    hflip_p=0.5, vflip_p=0.5, rotate_p=0.5, affine_p=0.5, crop_p=0.5,
    brightness_contrast_p=0.5, gamma_p=0.5, noise_p=0.5, elastic_p=0.5, grid_p=0.5,
    clahe_p=0.5, blur_p=0.5, seed=11,
)

# One config per geometric transform, always applied (p=1), constant border so nothing is
# mirrored in from outside the image.
GEOMETRIC_ONLY = {
    "hflip": AugmentConfig(hflip_p=1.0, border_mode="constant"),
    "vflip": AugmentConfig(vflip_p=1.0, border_mode="constant"),
    "rotate": AugmentConfig(rotate_p=1.0, rotate_limit=40, border_mode="constant"),
    "affine": AugmentConfig(affine_p=1.0, shift_limit=0.2, scale_limit=0.3, border_mode="constant"),
    "crop": AugmentConfig(crop_p=1.0, crop_scale_min=0.4, border_mode="constant"),
    "elastic": AugmentConfig(elastic_p=1.0, elastic_alpha=60, elastic_sigma=5,
                             border_mode="constant"),
    "grid": AugmentConfig(grid_p=1.0, grid_limit=0.5, border_mode="constant"),
}


def _pair(size: int = 64, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """An image whose intensities equal its (0/1) mask: a square and a disc."""
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), np.uint8)
    mask[8:28, 10:30] = 1
    mask[(yy - 44) ** 2 + (xx - 40) ** 2 < 100] = 1
    image = np.repeat(mask[..., None].astype(np.float32), channels, axis=-1)
    return image, mask


@pytest.mark.parametrize("name", sorted(GEOMETRIC_ONLY))
def test_geometric_transforms_move_image_and_mask_together(name):
    compose = build_augmentation(GEOMETRIC_ONLY[name].replace(seed=5))
    image, mask = _pair()
    out_image, out_mask = augment_pair(compose, image, mask)
    assert out_image.shape == image.shape and out_mask.shape == mask.shape
    assert not np.array_equal(out_mask, mask), "the transform should have moved the mask"
    # The mask is resampled with nearest neighbour, the image bilinearly: they may differ only
    # along the boundary. Away from edges the thresholded image equals the mask.
    disagreement = (out_image[..., 0] > 0.5) != (out_mask > 0)
    assert disagreement.mean() < 0.02, f"{name}: {disagreement.mean():.3f} of pixels misaligned"


def test_image_only_augmentation_misaligns_the_mask():
    compose = build_augmentation(AugmentConfig(hflip_p=1.0))
    image, mask = _pair()
    moved = augment_image_only(compose, image)
    disagreement = (moved[..., 0] > 0.5) != (mask > 0)
    assert disagreement.mean() > 0.05


def test_same_seed_replays_the_same_draws_and_another_seed_differs():
    image, mask = _pair()
    first = build_augmentation(ALL_ON)
    second = build_augmentation(ALL_ON)
    other = build_augmentation(ALL_ON.replace(seed=12))
    runs_first = [augment_pair(first, image, mask) for _ in range(4)]
    runs_second = [augment_pair(second, image, mask) for _ in range(4)]
    runs_other = [augment_pair(other, image, mask) for _ in range(4)]
    for (img_a, mask_a), (img_b, mask_b) in zip(runs_first, runs_second, strict=True):
        np.testing.assert_array_equal(img_a, img_b)
        np.testing.assert_array_equal(mask_a, mask_b)
    assert any(
        not np.array_equal(a[0], b[0]) for a, b in zip(runs_first, runs_other, strict=True)
    )
    # Successive calls draw new parameters.
    assert not np.array_equal(runs_first[0][0], runs_first[1][0])


@pytest.mark.parametrize("channels", [1, 3])
def test_dtypes_shapes_and_ranges_are_kept(channels):
    compose = build_augmentation(ALL_ON)
    rng = np.random.default_rng(0)
    image = rng.random((48, 40, channels), dtype=np.float32)
    mask = rng.integers(0, 4, (48, 40)).astype(np.uint8)
    for _ in range(10):
        out_image, out_mask = augment_pair(compose, image, mask)
        assert out_image.dtype == np.float32 and out_image.shape == image.shape
        assert out_image.min() >= 0.0 and out_image.max() <= 1.0
        assert out_mask.dtype == np.uint8 and out_mask.shape == mask.shape
        assert set(np.unique(out_mask)) <= {0, 1, 2, 3}


def test_two_dimensional_grey_image_keeps_its_shape():
    compose = build_augmentation(AugmentConfig(rotate_p=1.0, clahe_p=1.0))
    image, mask = _pair()
    out_image, _ = augment_pair(compose, image[..., 0], mask)
    assert out_image.shape == mask.shape


def test_clahe_works_on_float_images():
    compose = build_augmentation(AugmentConfig(clahe_p=1.0, clahe_clip=4.0))
    yy = np.linspace(0.4, 0.6, 64, dtype=np.float32)
    image = np.tile(yy[:, None], (1, 64))[..., None]
    out_image, _ = augment_pair(compose, image, np.zeros((64, 64), np.uint8))
    assert out_image.dtype == np.float32
    assert np.ptp(out_image) > np.ptp(image), "CLAHE should stretch a low-contrast ramp"


def test_nothing_enabled_is_identity():
    compose = build_augmentation(AugmentConfig(seed=3))
    assert len(compose.transforms) == 0
    image, mask = _pair()
    out_image, out_mask = augment_pair(compose, image, mask)
    np.testing.assert_array_equal(out_image, image)
    np.testing.assert_array_equal(out_mask, mask)


def test_photometric_transforms_leave_the_mask_alone():
    photometric = AugmentConfig(brightness_contrast_p=1.0, gamma_p=1.0, noise_p=1.0, clahe_p=1.0,
                                blur_p=1.0)
    assert not any(s.name in GEOMETRIC_TRANSFORMS for s in transform_specs(photometric))
    image, mask = _pair()
    out_image, out_mask = augment_pair(build_augmentation(photometric), image * 0.8 + 0.1, mask)
    np.testing.assert_array_equal(out_mask, mask)
    assert not np.allclose(out_image, image * 0.8 + 0.1)


def test_mismatched_sizes_raise_project_error():
    compose = build_augmentation(AugmentConfig(hflip_p=1.0))
    with pytest.raises(UNetDemoError, match="same size"):
        augment_pair(compose, np.zeros((8, 8, 1), np.float32), np.zeros((9, 8), np.uint8))


def test_bad_crop_scale_raises_project_error():
    with pytest.raises(UNetDemoError, match="crop_scale_min"):
        build_augmentation(AugmentConfig(crop_p=0.5, crop_scale_min=0.0))


def _outputs(compose, count: int = 5):
    image, mask = _pair()
    return [augment_pair(compose, image, mask) for _ in range(count)]


def _assert_same_outputs(left, right):
    for (img_a, mask_a), (img_b, mask_b) in zip(left, right, strict=True):
        np.testing.assert_array_equal(img_a, img_b)
        np.testing.assert_array_equal(mask_a, mask_b)


def test_dict_round_trip_rebuilds_the_same_pipeline():
    restored = A.from_dict(augmentation_dict(ALL_ON))
    assert [type(t).__name__ for t in restored.transforms] == [s.name for s in transform_specs(ALL_ON)]
    restored.set_random_seed(ALL_ON.seed)
    _assert_same_outputs(_outputs(restored), _outputs(build_augmentation(ALL_ON)))


def test_yaml_round_trip_rebuilds_the_same_pipeline():
    text = augmentation_yaml(ALL_ON)
    assert f"Seed: {ALL_ON.seed}" in text
    assert yaml.safe_load(text)["transform"]["__class_fullname__"] == "Compose"
    restored = A.load(io.StringIO(text), data_format="yaml")
    restored.set_random_seed(ALL_ON.seed)
    _assert_same_outputs(_outputs(restored), _outputs(build_augmentation(ALL_ON)))


@pytest.mark.parametrize("cfg", [ALL_ON, AugmentConfig(), AugmentConfig(rotate_p=0.3, seed=2)])
def test_exported_code_reproduces_the_pipeline(cfg):
    namespace: dict = {}
    exec(compile(augmentation_code(cfg), "<exported>", "exec"), namespace)  # noqa: S102
    exported = namespace["transform"]
    assert isinstance(exported, A.Compose)
    _assert_same_outputs(_outputs(exported), _outputs(build_augmentation(cfg)))


def test_pipeline_function_is_reproducible_per_seed():
    augment = make_augment_fn(ALL_ON)
    image, mask = _pair()
    first = augment(image, mask, 9)
    second = augment(image, mask, 9)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    # The seed alone decides the draw: another seed in between does not shift it, and a call
    # from another thread (its own pipeline copy) gives the same pair.
    augment(image, mask, 10)
    np.testing.assert_array_equal(augment(image, mask, 9)[0], first[0])
    with ThreadPoolExecutor(1) as pool:
        threaded = pool.submit(augment, image, mask, 9).result()
    np.testing.assert_array_equal(threaded[0], first[0])
    np.testing.assert_array_equal(threaded[1], first[1])
    assert any(not np.array_equal(augment(image, mask, s)[0], first[0]) for s in range(10, 14))


def test_gallery_is_reproducible_and_names_what_fired():
    image, mask = _pair()
    first = augment_gallery(ALL_ON, image, mask, count=6)
    again = augment_gallery(ALL_ON, image, mask, count=6)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        assert a.applied == b.applied
    names = {name for sample in first for name in sample.applied}
    assert names <= {spec.name for spec in transform_specs(ALL_ON)} and names


def test_gallery_image_only_keeps_the_original_mask():
    image, mask = _pair()
    samples = augment_gallery(AugmentConfig(hflip_p=1.0), image, mask, count=2, image_only=True)
    for sample in samples:
        np.testing.assert_array_equal(sample.mask, mask)
        assert not np.array_equal(sample.image[..., 0] > 0.5, mask > 0)
