"""Architecture calculator: parameters, FLOPs against independent counts, memory, receptive field."""

from __future__ import annotations

import pytest

keras = pytest.importorskip("keras")

from unet_demo.config import UNetConfig  # noqa: E402
from unet_demo.errors import UNetDemoError  # noqa: E402
from unet_demo.models.builder import build_unet  # noqa: E402
from unet_demo.models.seeds import SEED_PARAM_COUNTS, seed_config  # noqa: E402
from unet_demo.models.stats import _per_image, architecture_stats, format_bytes  # noqa: E402


def hand_conv_flops(size: int, channels: int, filters: list[int], classes: int = 1) -> int:
    """2 x multiply-adds of a classic U-Net's convolutions, written out from the diagram.

    3x3 'same' convs: H*W*9*Cin*Cout MACs; 2x2 stride-2 transposed conv: Hin*Win*4*Cin*Cout
    MACs; the 1x1 head: H*W*C*classes MACs.
    """
    macs, side, c_in = 0, size, channels
    for level, f in enumerate(filters):
        if level > 0:
            side //= 2
        macs += side * side * 9 * (c_in * f + f * f)
        c_in = f
    for f in reversed(filters[:-1]):
        macs += side * side * 4 * c_in * f  # transposed conv from the coarser level
        side *= 2
        macs += side * side * 9 * (2 * f * f + f * f)
        c_in = f
    macs += side * side * c_in * classes
    return 2 * macs


@pytest.mark.parametrize(
    ("cfg", "size", "channels", "filters"),
    [
        (seed_config("chapter8"), 128, 1, [64, 128, 256]),
        (UNetConfig(input_height=64, input_width=64, depth=3, base_filters=16), 64, 1,
         [16, 32, 64, 128]),
    ],
    ids=["chapter8", "bn-base16-depth3"],
)
def test_flops_match_a_hand_count_of_conv_macs(cfg, size, channels, filters) -> None:
    expected = hand_conv_flops(size, channels, filters)
    flops = architecture_stats(cfg).flops
    # bias, batch norm and ReLU add a little on top of the convolutions, never 5%
    assert expected <= flops <= 1.05 * expected


def test_chapter4_flops_hand_count() -> None:
    expected = hand_conv_flops(256, 1, [64, 128, 256, 512, 1024])
    assert expected <= architecture_stats(seed_config("chapter4")).flops <= 1.05 * expected


def _profiler_flops(cfg: UNetConfig) -> int:
    """FLOPs that TensorFlow's own profiler counts in the traced inference graph."""
    import tensorflow as tf

    model = build_unet(cfg)
    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    info = tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(),
                                         cmd="op", options=options)
    return int(info.total_float_ops)


@pytest.mark.parametrize(
    "cfg",
    [
        seed_config("chapter8"),
        UNetConfig(variant="unet3d", input_depth=16, input_height=32, input_width=32, depth=2,
                   base_filters=8),
    ],
    ids=["chapter8", "unet3d"],
)
def test_flops_match_tensorflow_profiler_within_5_percent(cfg) -> None:
    profiled = _profiler_flops(cfg)
    assert profiled > 0
    assert architecture_stats(cfg).flops == pytest.approx(profiled, rel=0.05)


@pytest.mark.parametrize("name", ["chapter8", "notebook"])
def test_seed_parameter_counts(name: str) -> None:
    stats = architecture_stats(seed_config(name))
    assert stats.params == SEED_PARAM_COUNTS[name]
    assert stats.trainable_params == stats.params and stats.non_trainable_params == 0


def test_batch_norm_moving_statistics_are_non_trainable() -> None:
    cfg = UNetConfig(input_height=32, input_width=32, depth=2, base_filters=4)
    stats = architecture_stats(cfg)
    model = build_unet(cfg)
    bn_channels = sum(layer.gamma.shape[0] for layer in model.layers
                      if type(layer).__name__ == "BatchNormalization")
    assert stats.non_trainable_params == 2 * bn_channels  # moving mean and variance
    assert stats.params == model.count_params()
    assert stats.weights_bytes == 4 * stats.params


def test_memory_scales_with_batch_and_inference_needs_less() -> None:
    cfg = seed_config("chapter8")
    one, eight = architecture_stats(cfg, batch_size=1), architecture_stats(cfg, batch_size=8)
    assert eight.training_activation_bytes == 8 * one.training_activation_bytes
    assert eight.inference_activation_bytes == 8 * one.inference_activation_bytes
    assert one.inference_activation_bytes < one.training_activation_bytes
    # inference peak: at least the full-resolution concat (128 channels) plus the kept skip
    assert one.inference_activation_bytes >= 128 * 128 * (128 + 64) * 4
    # training keeps every layer output: at least the 7 full-resolution 64-channel tensors
    assert one.training_activation_bytes >= 7 * 128 * 128 * 64 * 4
    assert eight.training_total_bytes == 4 * eight.weights_bytes + eight.training_activation_bytes


def test_receptive_field_follows_the_hand_derivation() -> None:
    # depth 1: two 3x3 convs (5), pool (6, stride 2), two convs (+4 +4 = 14),
    # transposed conv (no growth), two 3x3 convs at stride 1 (+2 +2 = 18)
    cfg = UNetConfig(input_height=32, input_width=32, depth=1, base_filters=4)
    assert architecture_stats(cfg).receptive_field == 18
    assert architecture_stats(seed_config("chapter8")).receptive_field == 44
    deeper = architecture_stats(cfg.replace(depth=3))
    assert deeper.receptive_field > 44


def test_levels_describe_the_u() -> None:
    stats = architecture_stats(UNetConfig(input_height=64, input_width=96, depth=2,
                                          base_filters=8, variant="attention"))
    assert [level.level for level in stats.levels] == [0, 1, 2]
    assert stats.levels[0].encoder_shape == (64, 96, 8)
    assert stats.levels[1].decoder_shape == (32, 48, 16)
    assert stats.levels[2].encoder_shape == (16, 24, 32)
    assert stats.levels[2].decoder_shape is None and stats.levels[2].skip == "bottleneck"
    assert stats.levels[0].skip == "attention gate"


def test_pretrained_levels_name_backbone_taps() -> None:
    cfg = UNetConfig(variant="pretrained", depth=5, input_height=32, input_width=32,
                     base_filters=4, encoder_weights="none")
    stats = architecture_stats(cfg)
    assert stats.levels[0].encoder_shape is None and stats.levels[0].skip == "none"
    assert stats.levels[1].skip == "backbone tap block_1_expand_relu"
    assert stats.levels[1].encoder_shape == (16, 16, 96)
    assert stats.uncounted_layers == ()
    assert stats.non_trainable_params > 0


def test_stats_are_cached_per_config() -> None:
    cfg = UNetConfig(input_height=32, input_width=32, depth=2, base_filters=5)
    architecture_stats(cfg)
    hits = _per_image.cache_info().hits
    again = architecture_stats(cfg, batch_size=3)
    assert _per_image.cache_info().hits == hits + 1
    assert again.batch_size == 3


def test_bad_input_size_and_batch_are_refused() -> None:
    with pytest.raises(UNetDemoError, match="nearest valid: 96 or 104"):
        architecture_stats(UNetConfig(input_height=100, input_width=96, depth=3))
    with pytest.raises(UNetDemoError, match="batch_size"):
        architecture_stats(UNetConfig(input_height=32, input_width=32), batch_size=0)


def test_to_dict_is_json_ready() -> None:
    import json

    data = architecture_stats(UNetConfig(input_height=32, input_width=32, depth=1)).to_dict()
    assert json.loads(json.dumps(data))["levels"][0]["level"] == 0
    assert format_bytes(512) == "512 B" and format_bytes(2048) == "2.0 KiB"


def test_layer_flops_formulas_for_each_layer_kind() -> None:
    from unet_demo.models.stats import layer_flops

    layers = keras.layers
    image = keras.Input((8, 8, 4))
    conv = layers.Conv2D(6, 3, padding="same", use_bias=False)
    transpose = layers.Conv2DTranspose(2, 2, strides=2, use_bias=False)
    depthwise = layers.DepthwiseConv2D(3, padding="same", use_bias=False)
    separable = layers.SeparableConv2D(5, 3, padding="same", use_bias=False)
    dense = layers.Dense(3, use_bias=False)
    norm = layers.BatchNormalization()
    pool = layers.MaxPooling2D(2)
    for layer in (conv, transpose, depthwise, separable, dense, norm, pool):
        layer(image)
    assert layer_flops(conv) == 2 * 64 * 6 * 9 * 4
    assert layer_flops(transpose) == 2 * 64 * 4 * 4 * 2  # every input pixel feeds a 2x2 patch
    assert layer_flops(depthwise) == 2 * 64 * 4 * 9
    assert layer_flops(separable) == 2 * (64 * 4 * 9 + 64 * 4 * 5)
    assert layer_flops(dense) == 2 * 64 * 4 * 3
    assert layer_flops(norm) == 2 * 64 * 4
    assert layer_flops(pool) == 16 * 4 * 4
