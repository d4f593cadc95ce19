"""3D U-Net (Cicek et al. 2016): Conv3D, MaxPooling3D and Conv3DTranspose on volumes.

Input is (depth, height, width, channels); every side must be a multiple of 2**depth.
Volumes cost far more memory than slices, so keep sizes small on a CPU.

Example:
    >>> from unet_demo.config import UNetConfig
    >>> cfg = UNetConfig(variant="unet3d", input_depth=8, input_height=16, input_width=16,
    ...                  depth=2, base_filters=4)
    >>> build_unet3d(cfg).output_shape
    (None, 8, 16, 16, 1)
"""

from __future__ import annotations

import keras

from unet_demo.config import UNetConfig
from unet_demo.models.classic import build_encoder_decoder


def build_unet3d(cfg: UNetConfig) -> keras.Model:
    """Build a volumetric U-Net.

    Args:
        cfg: the model config (variant "unet3d").
    """
    return build_encoder_decoder(cfg, dims=3, name="unet_3d")
