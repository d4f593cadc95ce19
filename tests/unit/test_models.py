"""U-Net builder: every variant builds, has the right output, trains one step; options take effect.

Models are tiny (base filters 4, inputs 16-32 pixels) so the whole file stays well under a
minute and a half on two cores.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from unet_demo.config import UNetConfig  # noqa: E402
from unet_demo.errors import UNetDemoError  # noqa: E402
from unet_demo.models.builder import build_unet, summary_text  # noqa: E402
from unet_demo.models.checks import (  # noqa: E402
    check_input_size,
    encoder_weights_notice,
    nearest_valid_sizes,
    weights_file_name,
)
from unet_demo.models.seeds import SEED_MODELS, SEED_PARAM_COUNTS, seed_config  # noqa: E402


def _tiny(**changes) -> UNetConfig:
    base = dict(input_height=32, input_width=32, base_filters=4, depth=2)
    base.update(changes)
    return UNetConfig(**base)


# (id, config): every variant, several depths and sizes, binary and multi-class.
TRAIN_CASES = [
    ("classic-d1-16px", _tiny(depth=1, input_height=16, input_width=16)),
    ("classic-d3-32x48-3cls", _tiny(depth=3, input_width=48, num_classes=3, normalization="none",
                                    upsampling="upsample_conv")),
    ("attention-d2-group", _tiny(variant="attention", normalization="group")),
    ("attention-d3-3cls", _tiny(variant="attention", depth=3, num_classes=3)),
    ("residual-d2-instance-gelu", _tiny(variant="residual", normalization="instance",
                                        activation="gelu", num_classes=2)),
    ("dense-d2-batch", _tiny(variant="dense")),
    ("dense-d3-3convs-group-3cls", _tiny(variant="dense", depth=3, convs_per_block=3,
                                         normalization="group", num_classes=3)),
    ("unetpp-d2-deep-supervision", _tiny(variant="unetpp", deep_supervision=True)),
    ("unetpp-d3-layer-3cls", _tiny(variant="unetpp", depth=3, normalization="layer",
                                   num_classes=3)),
    ("lightweight-d2-dropout", _tiny(variant="lightweight", dropout_rate=0.3,
                                     dropout_where="all", l2=1e-4)),
    ("lightweight-d4-64px", _tiny(variant="lightweight", depth=4, input_height=64,
                                  input_width=64)),
    ("unet3d-d2", _tiny(variant="unet3d", input_depth=16, input_height=32, input_width=32)),
    ("classic-d3-no-skips", _tiny(depth=3, skip_connections="none")),
    ("attention-d3-skips-0-2", _tiny(variant="attention", depth=3, skip_connections="0,2")),
    ("pretrained-mobilenetv2", _tiny(variant="pretrained", depth=5, encoder_weights="none",
                                     freeze_encoder=True)),
]


def _expected_output_shape(cfg: UNetConfig) -> tuple:
    spatial = (cfg.input_height, cfg.input_width)
    if cfg.variant == "unet3d":
        spatial = (cfg.input_depth, *spatial)
    return (None, *spatial, cfg.num_classes)


@pytest.mark.parametrize("cfg", [c for _, c in TRAIN_CASES], ids=[i for i, _ in TRAIN_CASES])
def test_variant_builds_and_trains_one_step(cfg: UNetConfig) -> None:
    keras.utils.set_random_seed(0)
    model = build_unet(cfg)
    assert model.output_shape == _expected_output_shape(cfg)
    expected = "sigmoid" if cfg.num_classes == 1 else "softmax"
    heads = [layer for layer in model.layers if layer.name.startswith(("output", "head"))]
    activations = {layer.activation.__name__ for layer in heads if hasattr(layer, "activation")}
    assert activations == {expected}

    rng = np.random.default_rng(0)
    images = rng.random((2, *model.input_shape[1:]), dtype=np.float32)
    labels = rng.integers(0, cfg.num_classes if cfg.num_classes > 1 else 2,
                          size=(2, *model.output_shape[1:-1]))
    if cfg.num_classes == 1:
        targets, loss = labels[..., None].astype("float32"), "binary_crossentropy"
    else:
        targets, loss = keras.utils.to_categorical(labels, cfg.num_classes), "categorical_crossentropy"
    probabilities = np.asarray(model(images, training=False))
    assert probabilities.min() >= 0.0 and probabilities.max() <= 1.0
    if cfg.num_classes > 1:
        np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-4)

    # Eager: for models this small, tracing a graph costs far more than the step itself.
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss, run_eagerly=True)
    trainable = [w for w in model.trainable_weights if "kernel" in w.path]
    before = [w.numpy().copy() for w in trainable]
    loss_value = model.train_on_batch(images, targets)
    assert math.isfinite(float(np.ravel(loss_value)[0]))
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, trainable, strict=True))


@pytest.mark.parametrize(
    ("backbone", "depth"), [("vgg16", 4), ("resnet50", 5), ("efficientnetb0", 5)]
)
def test_every_backbone_builds_with_random_weights(backbone: str, depth: int) -> None:
    cfg = _tiny(variant="pretrained", backbone=backbone, depth=depth, input_channels=3,
                num_classes=2, encoder_weights="none")
    model = build_unet(cfg)
    assert model.output_shape == (None, 32, 32, 2)
    assert model.get_layer("output").activation.__name__ == "softmax"


def test_seed_models_have_the_documented_parameter_counts() -> None:
    for name, (cfg, description) in SEED_MODELS.items():
        assert description
        assert build_unet(cfg).count_params() == SEED_PARAM_COUNTS[name], name
    assert SEED_PARAM_COUNTS["chapter8"] == 1_861_697
    assert SEED_PARAM_COUNTS["chapter4"] == 31_030_593


def _conv_params(k: int, c_in: int, c_out: int) -> int:
    return k * k * c_in * c_out + c_out


def test_notebook_seed_count_matches_a_hand_count_of_its_layers() -> None:
    # The notebook's unet(): two 3x3 convs per level on RGB input, UpSampling2D + 2x2 conv.
    filters = [64, 128, 256, 512, 1024]
    total, c_in = 0, 3
    for f in filters:
        total += _conv_params(3, c_in, f) + _conv_params(3, f, f)
        c_in = f
    for f in reversed(filters[:-1]):
        total += _conv_params(2, c_in, f)  # up-conv after UpSampling2D
        total += _conv_params(3, 2 * f, f) + _conv_params(3, f, f)
        c_in = f
    total += _conv_params(1, 64, 1)
    assert total == SEED_PARAM_COUNTS["notebook"]
    cfg = seed_config("notebook")
    assert cfg.upsampling == "upsample_conv" and cfg.input_channels == 3


@pytest.mark.parametrize(
    ("normalization", "layer_type", "fused"),
    [("none", None, True), ("batch", "BatchNormalization", False),
     ("group", "GroupNormalization", False), ("instance", "GroupNormalization", False),
     ("layer", "LayerNormalization", False)],
)
def test_normalization_option(normalization: str, layer_type: str | None, fused: bool) -> None:
    model = build_unet(_tiny(normalization=normalization, depth=1))
    types = {type(layer).__name__ for layer in model.layers}
    for name in ("BatchNormalization", "GroupNormalization", "LayerNormalization"):
        assert (name in types) == (name == layer_type)
    conv = model.get_layer("enc0_conv1")
    assert conv.use_bias == fused
    assert (conv.activation.__name__ == "relu") == fused
    if normalization == "instance":
        assert model.get_layer("enc0_norm1").groups == 4  # one group per channel


@pytest.mark.parametrize(
    ("where", "expected"),
    [("bottleneck", {"bottleneck_dropout"}),
     ("decoder", {"dec0_dropout", "dec1_dropout"}),
     ("all", {"enc0_dropout", "enc1_dropout", "bottleneck_dropout", "dec0_dropout",
              "dec1_dropout"})],
)
def test_dropout_placement(where: str, expected: set[str]) -> None:
    model = build_unet(_tiny(dropout_rate=0.25, dropout_where=where))
    dropouts = {layer.name for layer in model.layers if type(layer).__name__ == "Dropout"}
    assert dropouts == expected
    assert all(model.get_layer(name).rate == 0.25 for name in dropouts)
    assert not any(type(layer).__name__ == "Dropout" for layer in build_unet(_tiny()).layers)


def test_weight_decay_adds_one_penalty_per_kernel() -> None:
    plain = build_unet(_tiny(depth=1))
    assert plain.losses == []
    model = build_unet(_tiny(depth=1, l1=1e-5, l2=1e-4))
    regularizer = model.get_layer("enc0_conv1").kernel_regularizer
    assert regularizer.l1 == pytest.approx(1e-5) and regularizer.l2 == pytest.approx(1e-4)
    convs = [layer for layer in model.layers
             if getattr(layer, "kernel_regularizer", None) is not None]
    assert len(model.losses) == len(convs) > 0


def test_upsampling_options() -> None:
    transpose = build_unet(_tiny(depth=1))
    assert type(transpose.get_layer("dec0_up")).__name__ == "Conv2DTranspose"
    bilinear = build_unet(_tiny(depth=1, upsampling="upsample_conv", interpolation="bilinear"))
    assert bilinear.get_layer("dec0_upsample").interpolation == "bilinear"
    up_conv = bilinear.get_layer("dec0_up")
    assert type(up_conv).__name__ == "Conv2D" and up_conv.kernel_size == (2, 2)
    # same weights either way: a 2x2 conv and a 2x2 transposed conv have k*k*Cin*Cout + Cout
    assert bilinear.count_params() == transpose.count_params()


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "gelu"])
def test_activation_option(activation: str) -> None:
    model = build_unet(_tiny(depth=1, activation=activation))
    assert model.get_layer("enc0_act1").activation.__name__ == activation


@pytest.mark.parametrize(
    ("name", "cls"), [("he_normal", "HeNormal"), ("he_uniform", "HeUniform"),
                      ("glorot_uniform", "GlorotUniform"), ("glorot_normal", "GlorotNormal")]
)
def test_initializer_option(name: str, cls: str) -> None:
    model = build_unet(_tiny(depth=1, kernel_initializer=name))
    assert type(model.get_layer("enc0_conv1").kernel_initializer).__name__ == cls
    assert type(model.get_layer("dec0_up").kernel_initializer).__name__ == cls


def test_layer_names_are_stable_across_builds() -> None:
    cfg = _tiny(variant="attention")
    first = [layer.name for layer in build_unet(cfg).layers]
    second = [layer.name for layer in build_unet(cfg).layers]
    assert first == second
    assert {"enc0_conv1", "bottleneck_conv2", "attn0_gate", "dec0_concat", "output"} <= set(first)


def test_depth_and_growth_set_level_filters() -> None:
    model = build_unet(_tiny(depth=3, base_filters=6, filter_growth=1.5, convs_per_block=1,
                             kernel_size=5))
    assert model.get_layer("bottleneck_conv1").filters == round(6 * 1.5**3)
    assert model.get_layer("enc0_conv1").kernel_size == (5, 5)
    assert "enc0_conv2" not in {layer.name for layer in model.layers}


def test_dense_block_convolutions_read_every_earlier_output() -> None:
    model = build_unet(_tiny(variant="dense", depth=1, convs_per_block=3, normalization="none"))
    # conv3 reads input + conv1 + conv2; the transition compresses input + 3 convs to 4 channels
    assert model.get_layer("enc0_dense3").output.shape[-1] == 1 + 4 + 4
    assert model.get_layer("enc0_stack").output.shape[-1] == 1 + 3 * 4
    assert model.get_layer("enc0_transition").output.shape[-1] == 4
    assert model.get_layer("enc0_dense2").output.shape[-1] == 1 + 4
    assert len(model.get_layer("enc0_dense3").input) == 3


def test_deep_supervision_averages_one_head_per_column() -> None:
    model = build_unet(_tiny(variant="unetpp", depth=3, deep_supervision=True))
    assert {f"head{j}" for j in (1, 2, 3)} <= {layer.name for layer in model.layers}
    assert type(model.get_layer("output")).__name__ == "Average"
    plain = build_unet(_tiny(variant="unetpp", depth=3))
    assert not any(layer.name.startswith("head") for layer in plain.layers)


@pytest.mark.parametrize(
    ("size", "depth", "nearest"), [(100, 3, "96 or 104"), (30, 2, "28 or 32"), (5, 3, "8")]
)
def test_input_sizes_not_divisible_are_refused_with_nearest_valid(size, depth, nearest) -> None:
    with pytest.raises(UNetDemoError, match=f"nearest valid: {nearest}"):
        build_unet(_tiny(input_height=size, input_width=32, depth=depth))
    assert nearest_valid_sizes(size, 2**depth) == tuple(int(s) for s in nearest.split(" or "))


def test_3d_input_depth_and_backbone_depth_are_checked() -> None:
    with pytest.raises(UNetDemoError, match="input_depth"):
        check_input_size(_tiny(variant="unet3d", input_depth=10))
    with pytest.raises(UNetDemoError, match="depth=5"):
        check_input_size(_tiny(variant="pretrained", depth=3))


def test_missing_imagenet_weights_give_a_notice_and_no_download(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(keras.utils, "get_file", no_download)
    import keras.src.utils.file_utils as file_utils

    monkeypatch.setattr(file_utils, "get_file", no_download)
    cfg = _tiny(variant="pretrained", depth=5)
    notice = encoder_weights_notice(cfg)
    assert notice and "random weights" in notice and str(tmp_path) in notice
    assert build_unet(cfg).output_shape == (None, 32, 32, 1)


def test_cached_imagenet_weights_are_loaded(tmp_path, monkeypatch) -> None:
    h5py = pytest.importorskip("h5py")
    from keras.src.legacy.saving import legacy_h5_format

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    cfg = _tiny(variant="pretrained", depth=5)
    keras.utils.set_random_seed(7)
    # A stand-in for the ImageNet file, written in the same legacy HDF5 layout Keras ships.
    backbone = keras.applications.MobileNetV2(include_top=False, weights=None,
                                              input_shape=(32, 32, 3))
    (tmp_path / "models").mkdir()
    with h5py.File(tmp_path / "models" / weights_file_name(cfg), "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, backbone)
    assert encoder_weights_notice(cfg) is None
    model = build_unet(cfg)
    np.testing.assert_array_equal(model.get_layer("block_16_project").kernel.numpy(),
                                  backbone.get_layer("block_16_project").kernel.numpy())
    random_model = build_unet(cfg, load_weights=False)
    assert not np.array_equal(random_model.get_layer("block_16_project").kernel.numpy(),
                              backbone.get_layer("block_16_project").kernel.numpy())


def test_summary_text_lists_layers_and_totals() -> None:
    text = summary_text(build_unet(_tiny(depth=1)))
    assert "enc0_conv1" in text and "Total params" in text
