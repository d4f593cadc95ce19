"""UNetConfig.skip_connections: "all", "none" or chosen levels give genuinely different models."""

from __future__ import annotations

import pytest

from unet_demo.config import AugmentConfig, UNetConfig
from unet_demo.errors import UNetDemoError

keras = pytest.importorskip("keras")

from unet_demo.models.builder import build_unet  # noqa: E402
from unet_demo.models.export import export_keras_code  # noqa: E402
from unet_demo.models.stats import architecture_stats  # noqa: E402


def _cfg(**changes) -> UNetConfig:
    base = dict(input_height=32, input_width=32, base_filters=4, depth=3)
    base.update(changes)
    return UNetConfig(**base)


def _concats(model) -> list[str]:
    return sorted(layer.name for layer in model.layers
                  if isinstance(layer, keras.layers.Concatenate))


def _encoder_inputs_of_decoder(model) -> set[str]:
    """Names of encoder layers whose output feeds any decoder layer (the skips)."""
    fed = set()
    for layer in model.layers:
        if not layer.name.startswith("dec"):
            continue
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                source = tensor._keras_history.operation.name
                if source.startswith(("enc", "attn")):
                    fed.add(source)
    return fed


@pytest.mark.parametrize("variant", ["classic", "attention", "residual", "lightweight"])
def test_no_skip_model_has_no_concatenate_and_no_encoder_input_in_the_decoder(variant):
    model = build_unet(_cfg(variant=variant, skip_connections="none"))
    assert _concats(model) == []
    assert _encoder_inputs_of_decoder(model) == set()
    assert not [layer for layer in model.layers if layer.name.startswith("attn")]
    full = build_unet(_cfg(variant=variant))
    assert len(_concats(full)) == 3
    assert model.count_params() < full.count_params()
    assert model.output_shape == full.output_shape


def test_per_level_selection_keeps_only_those_skips():
    model = build_unet(_cfg(skip_connections="0,2"))
    assert _concats(model) == ["dec0_concat", "dec2_concat"]
    assert UNetConfig(depth=3, skip_connections=" 2, 0 ").skip_levels() == (0, 2)
    stats = architecture_stats(_cfg(skip_connections="0,2"))
    assert [level.skip for level in stats.levels] == ["concat", "none", "concat", "bottleneck"]
    code = export_keras_code(_cfg(skip_connections="none"))
    assert "Concatenate" not in code


@pytest.mark.parametrize(("changes", "fragment"), [
    (dict(skip_connections="3"), "between 0 and 2"),
    (dict(skip_connections="a,b"), "comma list"),
    (dict(skip_connections=""), "comma list"),
    (dict(variant="unetpp", skip_connections="none"), "'unetpp'"),
    (dict(variant="pretrained", skip_connections="0"), "'pretrained'"),
])
def test_bad_skip_settings_are_refused_with_the_fix(changes, fragment):
    with pytest.raises(UNetDemoError, match="skip_connections") as error:
        _cfg(**changes)
    assert fragment in str(error.value)


def test_config_round_trip_and_default():
    cfg = _cfg(skip_connections="1")
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg
    assert UNetConfig().skip_connections == "all"
    assert UNetConfig(depth=2).skip_levels() == (0, 1)


def test_image_only_augmentation_switch_leaves_the_mask_behind():
    import numpy as np

    from unet_demo.augment import make_augment_fn

    image = np.zeros((8, 8, 1), np.float32)
    image[:, :2] = 1.0
    mask = np.zeros((8, 8), np.uint8)
    mask[:, :2] = 1
    paired = make_augment_fn(AugmentConfig(hflip_p=1.0))(image, mask, 0)
    buggy = make_augment_fn(AugmentConfig(hflip_p=1.0, transform_mask=False))(image, mask, 0)
    np.testing.assert_array_equal(paired[0], buggy[0])  # the image moves the same way
    assert paired[1][:, -2:].all() and not paired[1][:, :2].any()
    np.testing.assert_array_equal(buggy[1], mask)  # the bug: the mask stays where it was
