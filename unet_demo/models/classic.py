"""Classic U-Net (Ronneberger et al. 2015): encoder, bottleneck, decoder with skip concatenation.

`build_encoder_decoder` is the shared skeleton; the residual, attention, lightweight and 3D
variants reuse it with a different block, a gate on the skips, separable or 3D convolutions.

Example:
    >>> from unet_demo.config import UNetConfig
    >>> build_classic(UNetConfig(input_height=32, input_width=32, depth=2)).output_shape
    (None, 32, 32, 1)
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from unet_demo.config import UNetConfig
from unet_demo.models.blocks import (
    conv_block,
    downsample,
    input_shape,
    output_head,
    up_concat,
    wants_dropout,
)


def build_encoder_decoder(
    cfg: UNetConfig,
    *,
    block: Callable = conv_block,
    dims: int = 2,
    separable: bool = False,
    gate: Callable | None = None,
    name: str = "unet",
) -> keras.Model:
    """Build the U: ``depth`` encoder blocks with pooling, a bottleneck, ``depth`` decoder blocks.

    Args:
        cfg: the model config.
        block: function (x, filters, cfg, prefix, dims=, separable=, dropout=) -> tensor.
        dims: 2 or 3 spatial dimensions.
        separable: depthwise separable convolutions inside blocks.
        gate: optional function (skip, gating, cfg, prefix, dims=) -> gated skip (attention).
        name: model name.

    Example:
        >>> plain = build_encoder_decoder(UNetConfig(input_height=32, input_width=32, depth=2,
        ...                                          skip_connections="none"))
        >>> [layer.name for layer in plain.layers if "concat" in layer.name]
        []
    """
    filters = cfg.level_filters()
    inputs = keras.Input(shape=input_shape(cfg), name="image")
    x = inputs
    skips = []
    for level in range(cfg.depth):
        x = block(
            x, filters[level], cfg, f"enc{level}",
            dims=dims, separable=separable, dropout=wants_dropout(cfg, "encoder"),
        )
        skips.append(x)
        x = downsample(x, f"enc{level}", dims=dims)
    x = block(
        x, filters[cfg.depth], cfg, "bottleneck",
        dims=dims, separable=separable, dropout=wants_dropout(cfg, "bottleneck"),
    )
    kept = set(cfg.skip_levels())  # skip_connections="none": a plain encoder-decoder
    for level in reversed(range(cfg.depth)):
        skip = skips[level] if level in kept else None
        if gate is not None and skip is not None:
            skip = gate(skip, x, cfg, f"attn{level}", dims=dims)
        x = up_concat(x, skip, filters[level], cfg, f"dec{level}", dims=dims)
        x = block(
            x, filters[level], cfg, f"dec{level}",
            dims=dims, separable=separable, dropout=wants_dropout(cfg, "decoder"),
        )
    outputs = output_head(x, cfg, dims=dims)
    return keras.Model(inputs, outputs, name=name)


def build_classic(cfg: UNetConfig) -> keras.Model:
    """Build the classic 2D U-Net with two convolutions per block.

    Args:
        cfg: the model config (variant "classic").
    """
    return build_encoder_decoder(cfg, name="unet_classic")
