"""Fingerprints and out-of-distribution warnings."""

from __future__ import annotations

import numpy as np

from unet_demo.inference.ood import (
    fingerprint,
    image_stats,
    load_fingerprint,
    ood_check,
    save_fingerprint,
)


def training_images():
    rng = np.random.default_rng(0)
    base = rng.normal(0.35, 0.12, (24, 32, 32, 1))
    shift = rng.normal(0.0, 0.03, (24, 1, 1, 1))  # image-to-image brightness variation
    return np.clip(base + shift, 0, 1).astype(np.float32)


def test_fingerprint_fields():
    fp = fingerprint(training_images())
    assert fp["num_images"] == 24 and fp["channels"] == 1
    assert fp["median_size"] == [32, 32]
    assert 0.3 < fp["intensity_mean"] < 0.4
    assert fp["intensity_percentiles"]["1"] < fp["intensity_percentiles"]["99"]


def test_no_warning_for_training_images():
    train = training_images()
    fp = fingerprint(train)
    for image in train[:8]:
        assert ood_check(image, fp) == []


def test_warns_on_shifted_intensity():
    train = training_images()
    fp = fingerprint(train)
    warnings = ood_check(np.clip(train[0] + 0.45, 0, 1), fp)
    assert any("brighter" in w for w in warnings)
    darker = ood_check(train[0] * 0.1, fp)
    assert any("darker" in w for w in darker)


def test_warns_on_size_and_channels():
    fp = fingerprint(training_images())
    rgb = np.repeat(training_images()[0], 3, axis=-1)
    assert any("channel" in w for w in ood_check(rgb, fp))
    big = np.resize(training_images()[0], (128, 128, 1))
    assert any("128x128" in w for w in ood_check(big, fp))
    assert image_stats(big)["size"] == [128, 128]


def test_fingerprint_round_trip(tmp_path):
    fp = fingerprint([np.zeros((8, 8)), np.ones((16, 8))])
    assert fp["median_size"] == [12, 8]
    path = save_fingerprint(fp, tmp_path / "m" / "fingerprint.json")
    assert load_fingerprint(path) == fp
    assert ood_check(np.zeros((8, 8)), None) == []
