"""Building blocks shared by every U-Net variant: conv block, down, up, up-cat, output head.

Layer names are stable so that summaries, the stats walker and exported code line up:
``enc{level}_conv{i}``, ``enc{level}_pool``, ``bottleneck_conv{i}``, ``dec{level}_up``,
``dec{level}_concat``, ``dec{level}_conv{i}`` and ``output``. Level 0 is the full-resolution level.

Example:
    >>> import keras
    >>> from unet_demo.config import UNetConfig
    >>> x = keras.Input((32, 32, 1))
    >>> conv_block(x, 8, UNetConfig(), "enc0").shape
    (None, 32, 32, 8)
"""

from __future__ import annotations

import keras
from keras import layers

from unet_demo.config import UNetConfig
from unet_demo.models import norm

# GroupNorm uses at most this many groups (the largest divisor of the channel count <= this).
GROUP_NORM_MAX_GROUPS = 8


def input_shape(cfg: UNetConfig) -> tuple[int, ...]:
    """Return the model's input shape without the batch axis: (H, W, C), or (D, H, W, C) for 3D.

    Args:
        cfg: the model config.
    """
    if cfg.variant == "unet3d":
        return (cfg.input_depth, cfg.input_height, cfg.input_width, cfg.input_channels)
    return (cfg.input_height, cfg.input_width, cfg.input_channels)


def kernel_regularizer(cfg: UNetConfig) -> keras.regularizers.Regularizer | None:
    """Return an L1/L2 weight penalty, or None when both strengths are 0.

    Args:
        cfg: the model config (uses ``l1`` and ``l2``).
    """
    if cfg.l1 == 0 and cfg.l2 == 0:
        return None
    return keras.regularizers.L1L2(l1=cfg.l1, l2=cfg.l2)


def group_count(channels: int) -> int:
    """Largest divisor of ``channels`` that is at most GROUP_NORM_MAX_GROUPS.

    Args:
        channels: feature channels of the normalised tensor.
    """
    return max(g for g in range(1, GROUP_NORM_MAX_GROUPS + 1) if channels % g == 0)


def norm_layer(cfg: UNetConfig, channels: int, name: str) -> layers.Layer:
    """Return the normalisation layer chosen in ``cfg.normalization`` (not "none").

    "instance" is GroupNormalization with one group per channel; "layer" normalises each
    pixel's channel vector (LayerNormalization over the last axis).

    Args:
        cfg: the model config.
        channels: channels of the tensor being normalised.
        name: layer name.
    """
    if cfg.normalization == "batch":
        return norm.BatchNormalization(name=name)
    if cfg.normalization == "group":
        return norm.GroupNormalization(groups=group_count(channels), name=name)
    if cfg.normalization == "instance":
        return norm.GroupNormalization(groups=channels, name=name)
    if cfg.normalization == "layer":
        return layers.LayerNormalization(name=name)
    raise ValueError(f"no normalisation layer for {cfg.normalization!r}")


def conv_layer(
    cfg: UNetConfig,
    filters: int,
    kernel_size: int,
    name: str,
    *,
    dims: int = 2,
    separable: bool = False,
    strides: int = 1,
    activation: str | None = None,
    use_bias: bool = True,
) -> layers.Layer:
    """Return a Conv2D/Conv3D/SeparableConv2D with the config's initializer and regularizer.

    Args:
        cfg: the model config.
        filters: output channels.
        kernel_size: side of the (square or cubic) kernel.
        name: layer name.
        dims: 2 or 3 spatial dimensions.
        separable: depthwise separable convolution (2D only).
        strides: stride of the convolution.
        activation: fused activation name or None.
        use_bias: add a bias (off before batch norm, which has its own shift).
    """
    common = dict(
        padding="same", strides=strides, activation=activation, use_bias=use_bias, name=name
    )
    if separable:
        return layers.SeparableConv2D(
            filters,
            kernel_size,
            depthwise_initializer=cfg.kernel_initializer,
            pointwise_initializer=cfg.kernel_initializer,
            depthwise_regularizer=kernel_regularizer(cfg),
            pointwise_regularizer=kernel_regularizer(cfg),
            **common,
        )
    conv = layers.Conv3D if dims == 3 else layers.Conv2D
    return conv(
        filters,
        kernel_size,
        kernel_initializer=cfg.kernel_initializer,
        kernel_regularizer=kernel_regularizer(cfg),
        **common,
    )


def conv_norm_act(
    x,
    filters: int,
    cfg: UNetConfig,
    prefix: str,
    index: int,
    *,
    dims: int = 2,
    separable: bool = False,
    activate: bool = True,
):
    """Apply conv -> (norm) -> activation, named ``{prefix}_conv{index}`` etc.

    Without normalisation the activation is fused into the convolution (one layer, as in the
    seed code); with normalisation the convolution has no bias.

    Args:
        x: input tensor.
        filters: output channels.
        cfg: the model config.
        prefix: block name, e.g. "enc0".
        index: 1-based position inside the block.
        dims: 2 or 3.
        separable: depthwise separable convolution.
        activate: False leaves the output linear (used before a residual add).
    """
    activation = cfg.activation if activate else None
    if cfg.normalization == "none":
        return conv_layer(
            cfg, filters, cfg.kernel_size, f"{prefix}_conv{index}",
            dims=dims, separable=separable, activation=activation,
        )(x)
    x = conv_layer(
        cfg, filters, cfg.kernel_size, f"{prefix}_conv{index}",
        dims=dims, separable=separable, use_bias=False,
    )(x)
    x = norm_layer(cfg, filters, f"{prefix}_norm{index}")(x)
    if activate:
        x = layers.Activation(cfg.activation, name=f"{prefix}_act{index}")(x)
    return x


def wants_dropout(cfg: UNetConfig, stage: str) -> bool:
    """True when a block in ``stage`` ("encoder", "bottleneck", "decoder") gets dropout.

    Args:
        cfg: the model config (``dropout_rate``, ``dropout_where``).
        stage: where the block sits.
    """
    if cfg.dropout_rate <= 0:
        return False
    return cfg.dropout_where == "all" or cfg.dropout_where == stage


def conv_block(
    x,
    filters: int,
    cfg: UNetConfig,
    prefix: str,
    *,
    dims: int = 2,
    separable: bool = False,
    dropout: bool = False,
):
    """Apply ``cfg.convs_per_block`` conv-norm-activation steps, then optional dropout.

    Args:
        x: input tensor.
        filters: output channels.
        cfg: the model config.
        prefix: block name, e.g. "enc1", "bottleneck", "dec0".
        dims: 2 or 3.
        separable: depthwise separable convolutions (lightweight variant).
        dropout: add ``Dropout(cfg.dropout_rate)`` after the block.
    """
    for index in range(1, cfg.convs_per_block + 1):
        x = conv_norm_act(x, filters, cfg, prefix, index, dims=dims, separable=separable)
    if dropout:
        x = layers.Dropout(cfg.dropout_rate, name=f"{prefix}_dropout")(x)
    return x


def downsample(x, prefix: str, *, dims: int = 2):
    """Halve every spatial side with 2x2 (or 2x2x2) max pooling named ``{prefix}_pool``.

    Args:
        x: input tensor.
        prefix: encoder block name, e.g. "enc0".
        dims: 2 or 3.
    """
    pool = layers.MaxPooling3D if dims == 3 else layers.MaxPooling2D
    return pool(pool_size=2, name=f"{prefix}_pool")(x)


def upsample(x, filters: int, cfg: UNetConfig, prefix: str, *, dims: int = 2):
    """Double every spatial side: 2x2 transposed conv, or UpSampling + 2x2 conv + activation.

    The second form follows the notebook seed. UpSampling3D only repeats voxels, so 3D models
    use nearest-neighbour upsampling whatever ``cfg.interpolation`` says.

    Args:
        x: input tensor.
        filters: output channels.
        cfg: the model config (``upsampling``, ``interpolation``).
        prefix: decoder block name, e.g. "dec1"; the learned layer is ``{prefix}_up``.
        dims: 2 or 3.
    """
    if cfg.upsampling == "transpose":
        transpose = layers.Conv3DTranspose if dims == 3 else layers.Conv2DTranspose
        return transpose(
            filters,
            2,
            strides=2,
            padding="same",
            kernel_initializer=cfg.kernel_initializer,
            kernel_regularizer=kernel_regularizer(cfg),
            name=f"{prefix}_up",
        )(x)
    if dims == 3:
        x = layers.UpSampling3D(size=2, name=f"{prefix}_upsample")(x)
    else:
        x = layers.UpSampling2D(
            size=2, interpolation=cfg.interpolation, name=f"{prefix}_upsample"
        )(x)
    return conv_layer(cfg, filters, 2, f"{prefix}_up", dims=dims, activation=cfg.activation)(x)


def up_concat(x, skip, filters: int, cfg: UNetConfig, prefix: str, *, dims: int = 2):
    """Upsample ``x`` and concatenate the encoder's ``skip`` along channels.

    Args:
        x: coarser decoder tensor.
        skip: encoder tensor at the target resolution (None: no skip, just upsample).
        filters: channels after upsampling.
        cfg: the model config.
        prefix: decoder block name.
        dims: 2 or 3.
    """
    x = upsample(x, filters, cfg, prefix, dims=dims)
    if skip is None:
        return x
    return layers.Concatenate(name=f"{prefix}_concat")([x, skip])


def output_activation(cfg: UNetConfig) -> str:
    """"sigmoid" for one class (binary), "softmax" for several.

    Args:
        cfg: the model config.
    """
    return "sigmoid" if cfg.num_classes == 1 else "softmax"


def output_head(x, cfg: UNetConfig, *, dims: int = 2, name: str = "output"):
    """1x1 convolution to ``num_classes`` probabilities, computed in float32.

    float32 keeps the probabilities exact under a mixed-precision policy.

    Args:
        x: last decoder tensor.
        cfg: the model config.
        dims: 2 or 3.
        name: layer name ("output" for the model output).
    """
    conv = layers.Conv3D if dims == 3 else layers.Conv2D
    return conv(
        cfg.num_classes,
        1,
        activation=output_activation(cfg),
        kernel_initializer="glorot_uniform",
        dtype="float32",
        name=name,
    )(x)
