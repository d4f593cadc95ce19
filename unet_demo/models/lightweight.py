"""Lightweight U-Net: depthwise separable convolutions in every block (as in MobileNet).

A 3x3 separable conv costs k*k*C_in + C_in*C_out weights instead of k*k*C_in*C_out, so blocks
use roughly 8-9 times fewer parameters and FLOPs; upsampling and the 1x1 head stay ordinary.

Example:
    >>> from unet_demo.config import UNetConfig
    >>> build_lightweight(UNetConfig(variant="lightweight", input_height=32, input_width=32)).name
    'unet_lightweight'
"""

from __future__ import annotations

import keras

from unet_demo.config import UNetConfig
from unet_demo.models.classic import build_encoder_decoder


def build_lightweight(cfg: UNetConfig) -> keras.Model:
    """Build a 2D U-Net whose blocks use SeparableConv2D.

    Args:
        cfg: the model config (variant "lightweight").
    """
    return build_encoder_decoder(cfg, separable=True, name="unet_lightweight")
