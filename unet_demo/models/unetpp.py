"""U-Net++ (Zhou et al. 2018): nested, densely connected skip pathways.

Node X(i, j) sits at level i (resolution 1/2**i) and column j. Column 0 is the encoder;
X(i, j) = block(concat[X(i, 0), ..., X(i, j-1), up(X(i+1, j-1))]). The top row X(0, 1..depth)
gives segmentation maps at increasing decoder depth; with deep supervision the model outputs the
average of their probabilities (one loss on the average; a simplification of the paper's
per-head losses that keeps a single output).

Layer names: encoder ``enc{i}_*``/``bottleneck_*``, nested nodes ``nest{i}_{j}_*``, heads
``head{j}``, output ``output``.

Example:
    >>> from unet_demo.config import UNetConfig
    >>> build_unetpp(UNetConfig(variant="unetpp", input_height=32, input_width=32)).name
    'unet_plusplus'
"""

from __future__ import annotations

import keras
from keras import layers

from unet_demo.config import UNetConfig
from unet_demo.models.blocks import (
    conv_block,
    downsample,
    input_shape,
    output_head,
    upsample,
    wants_dropout,
)


def build_unetpp(cfg: UNetConfig) -> keras.Model:
    """Build a 2D U-Net++ with optional deep supervision.

    Args:
        cfg: the model config (variant "unetpp"; ``deep_supervision``).
    """
    filters = cfg.level_filters()
    inputs = keras.Input(shape=input_shape(cfg), name="image")
    nodes = {}
    x = inputs
    for level in range(cfg.depth + 1):
        if level > 0:
            x = downsample(nodes[(level - 1, 0)], f"enc{level - 1}")
        stage = "bottleneck" if level == cfg.depth else "encoder"
        prefix = "bottleneck" if level == cfg.depth else f"enc{level}"
        nodes[(level, 0)] = conv_block(
            x, filters[level], cfg, prefix, dropout=wants_dropout(cfg, stage)
        )
    for column in range(1, cfg.depth + 1):
        for level in range(cfg.depth - column + 1):
            prefix = f"nest{level}_{column}"
            up = upsample(nodes[(level + 1, column - 1)], filters[level], cfg, prefix)
            same_level = [nodes[(level, k)] for k in range(column)]
            joined = layers.Concatenate(name=f"{prefix}_concat")([up, *same_level])
            nodes[(level, column)] = conv_block(
                joined, filters[level], cfg, prefix, dropout=wants_dropout(cfg, "decoder")
            )
    if cfg.deep_supervision and cfg.depth > 1:
        heads = [
            output_head(nodes[(0, column)], cfg, name=f"head{column}")
            for column in range(1, cfg.depth + 1)
        ]
        outputs = layers.Average(dtype="float32", name="output")(heads)
    else:
        outputs = output_head(nodes[(0, cfg.depth)], cfg)
    return keras.Model(inputs, outputs, name="unet_plusplus")
