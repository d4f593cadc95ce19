"""Inside engine: U-Net anatomy, feature maps, skip ablation, attention, receptive fields, loss maps.

Real models only: the bundled skull-strip model (GroupNorm, depth 3) and small untrained models
built by `build_unet` (no normalisation, so the gradient is exactly zero outside the
theoretical receptive field).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from unet_demo.config import UNetConfig
from unet_demo.errors import UNetDemoError

SKULL = "bundled:brain_skullstrip"


@functools.cache
def _skull():
    from unet_demo.inference.registry import open_model

    return open_model(SKULL)


@functools.cache
def _tiny(variant: str = "classic", side: int = 64, depth: int = 3):
    import keras

    from unet_demo.models.builder import build_unet

    keras.utils.set_random_seed(0)
    return build_unet(UNetConfig(variant=variant, input_height=side, input_width=side,
                                 depth=depth, base_filters=4, normalization="none"))


@functools.cache
def _skull_image() -> np.ndarray:
    from unet_demo.data.preprocess import prepare_batch
    from unet_demo.data.sources import load_split_arrays

    images, masks, _ = load_split_arrays("brain_skullstrip", "test")
    prepared, _ = prepare_batch(images[3:4], masks[3:4], size=(128, 128), channels=1,
                                normalization=_skull().normalization)
    return prepared[0]


def test_anatomy_lists_every_level_down_and_up():
    from unet_demo.inference.activations import unet_anatomy

    anatomy = unet_anatomy(_skull().shared.keras_model)
    assert anatomy.depth == 3 and not anatomy.has_attention
    roles = [(t.role, t.level) for t in anatomy.taps]
    assert roles == [("encoder", 0), ("encoder", 1), ("encoder", 2), ("bottleneck", 3),
                     ("upsampled", 2), ("skip", 2), ("decoder", 2),
                     ("upsampled", 1), ("skip", 1), ("decoder", 1),
                     ("upsampled", 0), ("skip", 0), ("decoder", 0), ("output", 0)]
    for tap in anatomy.taps:
        side = 128 // 2 ** tap.level
        assert tap.shape[:2] == (side, side), tap
    # the skip joins the up-sampled tensor at the same size; it is the encoder's output
    for level in range(3):
        assert anatomy.tap("skip", level).name == anatomy.tap("encoder", level).name
        assert anatomy.tap("skip", level).shape[:2] == anatomy.tap("upsampled", level).shape[:2]


def test_unsupported_wiring_is_refused_with_a_message():
    from unet_demo.inference.activations import unet_anatomy

    with pytest.raises(UNetDemoError, match="U-Net\\+\\+"):
        unet_anatomy(_tiny("unetpp", 32, 2))


def test_feature_maps_are_the_real_layer_outputs():
    import keras

    from unet_demo.inference.activations import feature_maps, unet_anatomy

    model = _skull().shared.keras_model
    image = _skull_image()
    maps = feature_maps(model, image)
    assert set(maps) == set(unet_anatomy(model).names)
    probe = keras.Model(model.inputs[0], model.get_layer("dec1_act2").output)
    np.testing.assert_allclose(maps["dec1_act2"], probe(image[None], training=False)[0],
                               atol=1e-5)
    np.testing.assert_allclose(maps["output"], _skull().predict(image[None])[0], atol=1e-5)
    assert maps["bottleneck_act2"].shape == (16, 16, 128)
    other = feature_maps(model, np.flip(image, axis=1))
    assert not np.allclose(other["enc0_act2"], maps["enc0_act2"])


def test_rank_channels_puts_the_most_active_first():
    from unet_demo.inference.activations import rank_channels

    activation = np.zeros((4, 4, 3), np.float32)
    activation[..., 1] = 2.0
    activation[:2, :2, 2] = -3.0
    assert rank_channels(activation).tolist() == [1, 2, 0]


def test_ablating_a_skip_changes_the_output_and_shares_the_weights():
    from unet_demo.inference.activations import ablated_model, predict_ablated

    model = _skull().shared.keras_model
    batch = _skull_image()[None]
    intact = predict_ablated(model, batch, [])
    np.testing.assert_allclose(intact, _skull().predict(batch), atol=1e-5)
    for mode in ("zeros", "mean"):
        for level in range(3):
            changed = predict_ablated(model, batch, [level], mode)
            assert np.abs(changed - intact).max() > 1e-3, (mode, level)
    clone = ablated_model(model, [0, 1, 2])
    assert clone.get_layer("dec0_conv1") is model.get_layer("dec0_conv1")
    assert {layer.name for layer in clone.layers if "skip_off" in layer.name} == {
        "dec0_skip_off", "dec1_skip_off", "dec2_skip_off"}
    with pytest.raises(UNetDemoError, match="levels 0..2"):
        ablated_model(model, [3])
    with pytest.raises(UNetDemoError, match="mode"):
        ablated_model(model, [0], "noise")


def test_switching_off_all_skips_lowers_the_test_dice():
    from unet_demo.evaluation.ablation import skip_ablation_scores

    rows = skip_ablation_scores(_skull(), "brain_skullstrip", "test", limit=8)
    by = {row["ablated"]: row["dice"] for row in rows}
    assert list(by) == ["none", "level 0", "level 1", "level 2", "all"]
    assert by["none"] > 0.9
    assert by["all"] < by["none"] - 0.1
    assert all(row["drop"] == pytest.approx(by["none"] - row["dice"]) for row in rows)


def test_attention_coefficients_lie_in_0_1_at_the_skip_size():
    from unet_demo.inference.activations import feature_maps, unet_anatomy

    model = _tiny("attention", 32, 2)
    anatomy = unet_anatomy(model)
    assert anatomy.has_attention
    maps = feature_maps(model, np.random.default_rng(0).random((32, 32, 1), np.float32))
    for level in range(2):
        gate = anatomy.tap("attention", level)
        alpha = maps[gate.name]
        assert alpha.shape == (*anatomy.tap("skip", level).shape[:2], 1)
        assert alpha.min() >= 0.0 and alpha.max() <= 1.0
        assert anatomy.tap("skip", level).name == f"attn{level}_gate"


def test_theoretical_field_matches_the_architecture_calculator():
    from unet_demo.inference.activations import theoretical_receptive_fields
    from unet_demo.models.stats import architecture_stats

    cfg = UNetConfig(input_height=64, input_width=64, depth=3, base_filters=4,
                     normalization="none")
    fields = theoretical_receptive_fields(_tiny())
    assert math.ceil(fields["output"][0]) == architecture_stats(cfg).receptive_field
    assert [fields[f"enc{level}_conv2"][0] for level in range(3)] == [5.0, 14.0, 32.0]


def _erf(model, name, pixel, frozen=True):
    from unet_demo.inference.activations import (
        effective_receptive_field,
        field_box,
        tap_pixel,
        theoretical_receptive_fields,
    )

    image = np.random.default_rng(1).random(tuple(model.input_shape[1:]), np.float32)
    gradient = effective_receptive_field(model, image, name, pixel, frozen_statistics=frozen)
    field, jump = theoretical_receptive_fields(model)[name]
    position = tap_pixel(pixel, image.shape, tuple(model.get_layer(name).output.shape[1:]))
    return gradient, field_box(position, field, jump, image.shape)


@pytest.mark.parametrize("pixel", [(32, 32), (5, 50)])
def test_erf_is_non_zero_only_inside_the_theoretical_field(pixel):
    model = _tiny()
    for name in ("enc0_conv2", "enc1_conv2", "enc2_conv2", "bottleneck_conv2"):
        gradient, (top, left, bottom, right) = _erf(model, name, pixel)
        assert gradient[pixel] > 0, name
        inside = np.zeros_like(gradient, bool)
        inside[top:bottom + 1, left:right + 1] = True
        assert gradient[~inside].max(initial=0.0) == 0.0, name
        rows, cols = np.nonzero(gradient)
        # the field is tight: the gradient reaches (nearly) every edge of the box
        assert rows.min() - top <= 1 and bottom - rows.max() <= 1, name
        assert cols.min() - left <= 1 and right - cols.max() <= 1, name


def test_erf_grows_with_depth_and_groupnorm_statistics_are_held():
    from unet_demo.inference.activations import effective_size

    sizes = [effective_size(_erf(_tiny(), f"enc{level}_conv2", (32, 32))[0], (32, 32))
             for level in range(3)]
    sizes.append(effective_size(_erf(_tiny(), "bottleneck_conv2", (32, 32))[0], (32, 32)))
    assert sizes == sorted(sizes) and len(set(sizes)) == 4, sizes
    # GroupNorm (bundled model): held statistics keep the gradient inside the field ...
    model = _skull().shared.keras_model
    gradient, (top, left, bottom, right) = _erf(model, "enc1_act2", (64, 64))
    inside = np.zeros_like(gradient, bool)
    inside[top:bottom + 1, left:right + 1] = True
    assert gradient[~inside].max() == 0.0
    # ... while followed statistics spread a little of it over the whole image
    spread, _ = _erf(model, "enc1_act2", (64, 64), frozen=False)
    assert (spread[~inside] > 0).mean() > 0.9


def test_loss_map_shapes_and_dice_weighs_a_small_foreground_more():
    from unet_demo.evaluation.loss_maps import foreground_share, loss_maps, start_probabilities

    truth = np.zeros((64, 64), np.uint8)
    truth[30:36, 30:36] = 1  # 0.9 % of the image, like a lesion
    start = loss_maps(start_probabilities(truth.shape, 1), truth, 1)
    assert list(start) == ["bce", "focal", "dice", "tversky"]
    assert all(m.shape == (64, 64) and m.dtype == np.float32 for m in start.values())
    # cross-entropy at p = 0.5 pulls every pixel equally: the lesion gets its area's share
    assert np.allclose(start["bce"], start["bce"][0, 0])
    assert foreground_share(start["bce"], truth) == pytest.approx(truth.mean(), abs=1e-4)
    assert foreground_share(start["dice"], truth) > 0.4
    assert foreground_share(start["dice"], truth) > 20 * foreground_share(start["bce"], truth)
    # a half-right prediction: still more of Dice's pull lands on the lesion than BCE's
    probabilities = np.full((64, 64, 1), 0.2, np.float32)
    probabilities[30:33, 30:36] = 0.8
    maps = loss_maps(probabilities, truth, 1)
    assert foreground_share(maps["dice"], truth) > foreground_share(maps["bce"], truth)


def test_multiclass_loss_maps_use_the_softmax_losses():
    from unet_demo.evaluation.loss_maps import loss_maps, start_probabilities

    truth = np.zeros((16, 16), np.uint8)
    truth[4:8, 4:8], truth[10:12, 10:12] = 1, 3
    maps = loss_maps(start_probabilities(truth.shape, 4), truth, 4)
    assert list(maps) == ["cce", "focal", "dice", "generalized_dice"]
    assert all(m.shape == (16, 16) and np.isfinite(m).all() and m.max() > 0
               for m in maps.values())
    with pytest.raises(UNetDemoError, match="Loss maps exist"):
        loss_maps(start_probabilities(truth.shape, 4), truth, 4, ["bce"])


def test_erf_of_a_softmax_output_traces_the_predicted_class():
    from unet_demo.inference.activations import effective_receptive_field
    from unet_demo.inference.registry import open_model

    model = open_model("bundled:brain_tissue").shared.keras_model
    gradient = effective_receptive_field(model, _skull_image(), "output")
    assert gradient.shape == (128, 128) and gradient[64, 64] > 0
