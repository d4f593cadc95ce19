"""Residual U-Net: every block adds a shortcut around its convolutions (He et al. 2016).

out = activation(shortcut(x) + F(x)), where F is the usual conv block with its last activation
removed and the shortcut is a 1x1 convolution when the channel count changes. Shortcuts give
gradients a direct path, which helps deeper U-Nets train.

Example:
    >>> from unet_demo.config import UNetConfig
    >>> build_residual(UNetConfig(variant="residual", input_height=32, input_width=32)).name
    'unet_residual'
"""

from __future__ import annotations

import keras
from keras import layers

from unet_demo.config import UNetConfig
from unet_demo.models.blocks import conv_layer, conv_norm_act, norm_layer
from unet_demo.models.classic import build_encoder_decoder


def residual_block(
    x,
    filters: int,
    cfg: UNetConfig,
    prefix: str,
    *,
    dims: int = 2,
    separable: bool = False,
    dropout: bool = False,
):
    """Apply a residual conv block named ``{prefix}_*`` (``{prefix}_add`` joins the paths).

    Args:
        x: input tensor.
        filters: output channels.
        cfg: the model config.
        prefix: block name, e.g. "enc0".
        dims: 2 or 3.
        separable: depthwise separable convolutions.
        dropout: add dropout after the block.
    """
    shortcut = x
    if int(x.shape[-1]) != filters:
        with_norm = cfg.normalization != "none"
        shortcut = conv_layer(
            cfg, filters, 1, f"{prefix}_shortcut", dims=dims, use_bias=not with_norm
        )(x)
        if with_norm:
            shortcut = norm_layer(cfg, filters, f"{prefix}_shortcut_norm")(shortcut)
    y = x
    for index in range(1, cfg.convs_per_block + 1):
        y = conv_norm_act(
            y, filters, cfg, prefix, index,
            dims=dims, separable=separable, activate=index < cfg.convs_per_block,
        )
    y = layers.Add(name=f"{prefix}_add")([shortcut, y])
    y = layers.Activation(cfg.activation, name=f"{prefix}_out")(y)
    if dropout:
        y = layers.Dropout(cfg.dropout_rate, name=f"{prefix}_dropout")(y)
    return y


def build_residual(cfg: UNetConfig) -> keras.Model:
    """Build a 2D U-Net made of residual blocks.

    Args:
        cfg: the model config (variant "residual").
    """
    return build_encoder_decoder(cfg, block=residual_block, name="unet_residual")
