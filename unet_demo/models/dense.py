"""Dense U-Net: densely connected blocks (DenseNet, Huang et al. 2017) in the U skeleton.

Inside a dense block, convolution i reads the concatenation of the block's input and the
outputs of every convolution before it, so features found early are reused later and each
convolution has a short gradient path to the block's input. Every convolution adds ``filters``
channels (the growth rate); a 1x1 "transition" convolution then compresses the concatenation
of the input and all of them back to ``filters`` channels, so the levels of the U keep the
sizes the other variants have.

Layer names: ``{block}_conv{i}`` (with ``_norm{i}``/``_act{i}``), ``{block}_dense{i}`` (the
concatenation convolution i reads, from i = 2), ``{block}_stack`` (input + all convolutions)
and ``{block}_transition`` (with ``_transition_norm``/``_transition_act``).

Example:
    >>> from unet_demo.config import UNetConfig
    >>> model = build_dense(UNetConfig(variant="dense", input_height=32, input_width=32,
    ...                                depth=2, base_filters=4))
    >>> model.name, model.get_layer("enc0_stack").output.shape
    ('unet_dense', (None, 32, 32, 9))
"""

from __future__ import annotations

import keras
from keras import layers

from unet_demo.config import UNetConfig
from unet_demo.models.blocks import conv_layer, conv_norm_act, norm_layer
from unet_demo.models.classic import build_encoder_decoder


def dense_block(
    x,
    filters: int,
    cfg: UNetConfig,
    prefix: str,
    *,
    dims: int = 2,
    separable: bool = False,
    dropout: bool = False,
):
    """Apply a dense block named ``{prefix}_*``: growing concatenations, then a 1x1 transition.

    Args:
        x: input tensor.
        filters: growth rate of each convolution and channels of the block's output.
        cfg: the model config (``convs_per_block`` convolutions, normalisation, activation).
        prefix: block name, e.g. "enc0".
        dims: 2 or 3.
        separable: depthwise separable convolutions.
        dropout: add dropout after the block.

    Example:
        >>> from unet_demo.config import UNetConfig
        >>> cfg = UNetConfig(variant="dense", convs_per_block=3)
        >>> dense_block(keras.Input((16, 16, 2)), 4, cfg, "enc0").shape
        (None, 16, 16, 4)
    """
    features = [x]
    for index in range(1, cfg.convs_per_block + 1):
        joined = features[0] if index == 1 else layers.Concatenate(
            name=f"{prefix}_dense{index}")(features)
        features.append(conv_norm_act(joined, filters, cfg, prefix, index,
                                      dims=dims, separable=separable))
    stack = layers.Concatenate(name=f"{prefix}_stack")(features)
    if cfg.normalization == "none":
        y = conv_layer(cfg, filters, 1, f"{prefix}_transition", dims=dims,
                       activation=cfg.activation)(stack)
    else:
        y = conv_layer(cfg, filters, 1, f"{prefix}_transition", dims=dims, use_bias=False)(stack)
        y = norm_layer(cfg, filters, f"{prefix}_transition_norm")(y)
        y = layers.Activation(cfg.activation, name=f"{prefix}_transition_act")(y)
    if dropout:
        y = layers.Dropout(cfg.dropout_rate, name=f"{prefix}_dropout")(y)
    return y


def build_dense(cfg: UNetConfig) -> keras.Model:
    """Build a 2D U-Net whose encoder, bottleneck and decoder blocks are dense blocks.

    Args:
        cfg: the model config (variant "dense").
    """
    return build_encoder_decoder(cfg, block=dense_block, name="unet_dense")
