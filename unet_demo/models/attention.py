"""Attention U-Net (Oktay et al. 2018): additive attention gates filter each skip connection.

Each gate compares the skip tensor x (fine) with the decoder tensor g one level below (coarse):
theta_x = strided 2x2 conv of x, phi_g = 1x1 conv of g, alpha = sigmoid(psi(relu(theta_x + phi_g))),
then alpha is upsampled back to x's size and multiplies x, so background features fade out
before concatenation.

Example:
    >>> from unet_demo.config import UNetConfig
    >>> m = build_attention(UNetConfig(variant="attention", input_height=32, input_width=32))
    >>> m.get_layer("attn0_gate").output.shape
    (None, 32, 32, 16)
"""

from __future__ import annotations

import keras
from keras import layers

from unet_demo.config import UNetConfig
from unet_demo.models.blocks import conv_layer
from unet_demo.models.classic import build_encoder_decoder


def attention_gate(skip, gating, cfg: UNetConfig, prefix: str, *, dims: int = 2):
    """Return ``skip`` weighted by attention coefficients computed from ``gating``.

    Args:
        skip: encoder tensor at level L (x in the paper).
        gating: decoder tensor at level L+1 (g in the paper), half the spatial size.
        cfg: the model config.
        prefix: gate name, e.g. "attn1"; the weighted skip is layer ``{prefix}_gate``.
        dims: 2 or 3.
    """
    inter = max(1, int(skip.shape[-1]) // 2)
    theta_x = conv_layer(cfg, inter, 2, f"{prefix}_theta_x", dims=dims, strides=2, use_bias=False)(
        skip
    )
    phi_g = conv_layer(cfg, inter, 1, f"{prefix}_phi_g", dims=dims)(gating)
    joined = layers.Add(name=f"{prefix}_add")([theta_x, phi_g])
    joined = layers.Activation("relu", name=f"{prefix}_relu")(joined)
    alpha = conv_layer(cfg, 1, 1, f"{prefix}_psi", dims=dims, activation="sigmoid")(joined)
    if dims == 3:
        alpha = layers.UpSampling3D(size=2, name=f"{prefix}_resample")(alpha)
    else:
        alpha = layers.UpSampling2D(size=2, interpolation="bilinear", name=f"{prefix}_resample")(
            alpha
        )
    return layers.Multiply(name=f"{prefix}_gate")([skip, alpha])


def build_attention(cfg: UNetConfig) -> keras.Model:
    """Build a 2D U-Net whose skip connections pass through attention gates.

    Args:
        cfg: the model config (variant "attention").
    """
    return build_encoder_decoder(cfg, gate=attention_gate, name="unet_attention")
