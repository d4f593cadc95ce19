"""The bias-field augmentation: a smooth multiplicative field on the image, the mask untouched."""

from __future__ import annotations

import numpy as np
import pytest

from unet_demo.augment import (
    augment_pair,
    augmentation_code,
    augmentation_yaml,
    build_augmentation,
    transform_specs,
)
from unet_demo.config import AugmentConfig
from unet_demo.errors import UNetDemoError


def _pair():
    image = np.zeros((32, 32, 1), np.float32)
    image[4:28, 4:28] = 0.5
    return image, (image[..., 0] > 0).astype(np.uint8)


def test_bias_field_multiplies_smoothly_within_the_limit_and_keeps_the_mask():
    image, mask = _pair()
    compose = build_augmentation(AugmentConfig(bias_field_p=1.0, bias_field_limit=0.2, seed=5))
    changed = 0
    for _ in range(20):
        out, out_mask = augment_pair(compose, image, mask)
        assert np.array_equal(out_mask, mask)  # labels never move
        assert float(out[0, 0, 0]) == 0.0  # black background stays black (multiplicative)
        ratio = out[4:28, 4:28, 0] / 0.5
        assert ratio.min() >= 0.8 - 1e-5 and ratio.max() <= 1.2 + 1e-5
        # smooth field: neighbouring pixels differ by a small fraction only
        assert np.abs(np.diff(ratio, axis=0)).max() < 0.1
        assert np.abs(np.diff(ratio, axis=1)).max() < 0.1
        changed += bool(np.ptp(ratio) > 0.01)
    assert changed >= 10  # the field really varies across the image on most draws


def test_bias_field_is_seeded_exported_and_checked():
    image, mask = _pair()
    cfg = AugmentConfig(bias_field_p=1.0, seed=3)
    first = augment_pair(build_augmentation(cfg), image, mask)[0]
    again = augment_pair(build_augmentation(cfg), image, mask)[0]
    assert np.array_equal(first, again)
    assert [s.name for s in transform_specs(cfg)] == ["BiasField"]
    code = augmentation_code(cfg)
    assert "from unet_demo.augment import BiasField" in code and "BiasField(limit=0.2" in code
    namespace: dict = {}
    exec(compile(code, "exported.py", "exec"), namespace)  # the exported code really runs
    assert namespace["transform"](image=image, mask=mask)["image"].shape == image.shape
    assert "BiasField" in augmentation_yaml(cfg)
    with pytest.raises(UNetDemoError, match="bias_field_limit"):
        transform_specs(AugmentConfig(bias_field_p=0.5, bias_field_limit=0.5))
    with pytest.raises(UNetDemoError, match="between 0.01 and 0.3"):
        build_augmentation(AugmentConfig(bias_field_p=0.5, bias_field_limit=0.0))
    assert transform_specs(AugmentConfig(bias_field_limit=0.5)) == []  # off: not checked
