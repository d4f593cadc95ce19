"""`build_unet(cfg)`: one entry point for every U-Net variant, plus `summary_text`.

Example:
    >>> from unet_demo.config import UNetConfig
    >>> model = build_unet(UNetConfig(input_height=32, input_width=32, depth=2, base_filters=4))
    >>> model.output_shape
    (None, 32, 32, 1)
"""

from __future__ import annotations

import keras

from unet_demo.config import UNetConfig
from unet_demo.models.checks import check_input_size


def build_unet(cfg: UNetConfig, *, load_weights: bool = True) -> keras.Model:
    """Build the Keras model described by ``cfg`` (pure: no I/O except cached backbone weights).

    One class gives a sigmoid output, several a softmax; the output layer computes in float32.

    Args:
        cfg: the model config; its input size is checked first (UNetDemoError if invalid).
        load_weights: "pretrained" only: False skips loading cached ImageNet weights.

    Example:
        >>> build_unet(UNetConfig(variant="residual", input_height=32, input_width=32)).name
        'unet_residual'
    """
    check_input_size(cfg)
    if cfg.variant == "classic":
        from unet_demo.models.classic import build_classic

        return build_classic(cfg)
    if cfg.variant == "attention":
        from unet_demo.models.attention import build_attention

        return build_attention(cfg)
    if cfg.variant == "residual":
        from unet_demo.models.residual import build_residual

        return build_residual(cfg)
    if cfg.variant == "dense":
        from unet_demo.models.dense import build_dense

        return build_dense(cfg)
    if cfg.variant == "unetpp":
        from unet_demo.models.unetpp import build_unetpp

        return build_unetpp(cfg)
    if cfg.variant == "lightweight":
        from unet_demo.models.lightweight import build_lightweight

        return build_lightweight(cfg)
    if cfg.variant == "unet3d":
        from unet_demo.models.unet3d import build_unet3d

        return build_unet3d(cfg)
    from unet_demo.models.pretrained import build_pretrained

    return build_pretrained(cfg, load_weights=load_weights)


def summary_text(model: keras.Model) -> str:
    """Return Keras' layer-by-layer summary as plain text.

    Args:
        model: a built Keras model.

    Example:
        >>> "Total params" in summary_text(build_unet(UNetConfig(input_height=32, input_width=32)))
        True
    """
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line), line_length=110)
    return "\n".join(lines)
