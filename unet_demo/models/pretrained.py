"""U-Net with a keras.applications encoder (transfer learning, guide chapter 6).

The backbone (VGG16, ResNet50, MobileNetV2 or EfficientNetB0, without its classifier) is the
encoder; feature maps at each resolution are tapped as skips and a fresh decoder upsamples
back. A grey image is repeated to three channels inside the model and rescaled to the range the
backbone was trained on. ImageNet weights are used only when the weight file is already in the
local Keras cache; otherwise the encoder starts random (`imagenet_weights_found` answers which,
`encoder_weights_status` says it on the Build and Train pages).

Example:
    >>> from unet_demo.config import UNetConfig
    >>> cfg = UNetConfig(variant="pretrained", backbone="vgg16", depth=4, input_height=32,
    ...                  input_width=32, encoder_weights="none")
    >>> build_pretrained(cfg).output_shape
    (None, 32, 32, 1)
"""

from __future__ import annotations

import logging
import os

import keras
from keras import layers

from unet_demo.config import UNetConfig
from unet_demo.models.blocks import conv_block, output_head, up_concat, wants_dropout
from unet_demo.models.checks import (
    BACKBONES,
    cached_weights_path,
    encoder_weights_notice,
    keras_cache_dir,
    weights_file_name,
)

logger = logging.getLogger(__name__)


# Layers this module adds around the backbone; every other layer belongs to keras.applications.
_OWN_LAYER_NAMES = ("image", "grey_to_rgb", "backbone_preprocess", "output")
_OWN_LAYER_PREFIXES = ("dec",)


def is_backbone_layer(name: str) -> bool:
    """True when a layer of a "pretrained" model comes from the keras.applications backbone.

    Args:
        name: layer name in a model built by `build_pretrained`.

    Example:
        >>> is_backbone_layer("block_1_expand_relu"), is_backbone_layer("dec0_conv1")
        (True, False)
    """
    return name not in _OWN_LAYER_NAMES and not name.startswith(_OWN_LAYER_PREFIXES)


def imagenet_weights_path(cfg: UNetConfig, cache_dir: str | None = None) -> str:
    """Return where the backbone's ImageNet weight file must be for `build_pretrained` to use it.

    Args:
        cfg: a "pretrained" config.
        cache_dir: the Keras cache folder; None means the one Keras uses ($KERAS_HOME/models,
            else ~/.keras/models), where `build_pretrained` looks.

    Example:
        >>> from unet_demo.config import UNetConfig
        >>> cfg = UNetConfig(variant="pretrained", backbone="vgg16", depth=4)
        >>> imagenet_weights_path(cfg, "/cache")
        '/cache/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5'
    """
    return os.path.join(cache_dir or keras_cache_dir(), weights_file_name(cfg))


def imagenet_weights_found(cfg: UNetConfig, cache_dir: str | None = None) -> bool:
    """True when the backbone's ImageNet weights are in the local Keras cache (no download).

    Args:
        cfg: a "pretrained" config.
        cache_dir: the Keras cache folder; None means the one `build_pretrained` looks in.

    Example:
        >>> import tempfile
        >>> from unet_demo.config import UNetConfig
        >>> cfg = UNetConfig(variant="pretrained", backbone="vgg16", depth=4)
        >>> cache = tempfile.mkdtemp()  # an empty cache
        >>> imagenet_weights_found(cfg, cache)
        False
        >>> open(imagenet_weights_path(cfg, cache), "wb").close()
        >>> imagenet_weights_found(cfg, cache)
        True
    """
    return os.path.isfile(imagenet_weights_path(cfg, cache_dir))


def encoder_weights_status(cfg: UNetConfig, cache_dir: str | None = None) -> str | None:
    """Return the sentence the Build and Train pages show about a pretrained encoder's weights.

    None for the other variants. The text says whether local ImageNet weights were found and
    that without them the encoder starts from random weights (this app never downloads).

    Args:
        cfg: the model config.
        cache_dir: the Keras cache folder; None means the one `build_pretrained` looks in.

    Example:
        >>> import tempfile
        >>> from unet_demo.config import UNetConfig
        >>> cfg = UNetConfig(variant="pretrained", backbone="vgg16", depth=4)
        >>> encoder_weights_status(cfg, tempfile.mkdtemp()).startswith("No local ImageNet")
        True
        >>> encoder_weights_status(UNetConfig()) is None
        True
    """
    if cfg.variant != "pretrained":
        return None
    if cfg.encoder_weights != "imagenet":
        return (f"Encoder weights: none, so the {cfg.backbone} encoder starts from random "
                "weights (no transfer learning).")
    path = imagenet_weights_path(cfg, cache_dir)
    if os.path.isfile(path):
        return (f"ImageNet weights for {cfg.backbone} found in the local Keras cache "
                f"({path}): the encoder starts from them.")
    return (f"No local ImageNet weights for {cfg.backbone} (looked for {path}), so the encoder "
            "starts from random weights: no transfer learning. This app never downloads "
            "weights; copy that file there (or set KERAS_HOME) to use them.")


def build_pretrained(cfg: UNetConfig, *, load_weights: bool = True) -> keras.Model:
    """Build a U-Net on a keras.applications encoder.

    Args:
        cfg: the model config (variant "pretrained"; ``backbone``, ``encoder_weights``,
            ``freeze_encoder``; ``depth`` must match the backbone).
        load_weights: False skips loading cached ImageNet weights (same architecture).
    """
    spec = BACKBONES[cfg.backbone]
    inputs = keras.Input(shape=(cfg.input_height, cfg.input_width, cfg.input_channels),
                         name="image")
    x = inputs
    if cfg.input_channels == 1:
        x = layers.Concatenate(name="grey_to_rgb")([x, x, x])
    x = layers.Rescaling(scale=list(spec.scale), offset=list(spec.offset),
                         name="backbone_preprocess")(x)
    # Never weights="imagenet": that would try a download. A cached file is passed as a path.
    weights = cached_weights_path(cfg) if load_weights else None
    notice = encoder_weights_notice(cfg) if load_weights else None
    if notice:
        logger.warning(notice)
    application = getattr(keras.applications, spec.application)
    backbone = application(
        include_top=False,
        weights=weights,
        input_tensor=x,
        input_shape=(cfg.input_height, cfg.input_width, 3),
    )
    if cfg.freeze_encoder:
        for layer in backbone.layers:
            layer.trainable = False
    skips = [None if n is None else backbone.get_layer(n).output for n in spec.skip_layers]
    x = backbone.get_layer(spec.bottleneck_layer).output
    filters = cfg.level_filters()
    for level in reversed(range(cfg.depth)):
        x = up_concat(x, skips[level], filters[level], cfg, f"dec{level}")
        x = conv_block(x, filters[level], cfg, f"dec{level}",
                       dropout=wants_dropout(cfg, "decoder"))
    outputs = output_head(x, cfg)
    return keras.Model(inputs, outputs, name=f"unet_{cfg.backbone}")
