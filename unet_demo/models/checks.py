"""Up-front checks of a UNetConfig (no TensorFlow needed), with messages that say the fix.

Every pooling halves the image, so each spatial side must be a multiple of 2**depth; a
keras.applications backbone fixes how many times it downsamples, and wants 3 colour channels.

Example:
    >>> from unet_demo.config import UNetConfig
    >>> nearest_valid_sizes(100, 8)
    (96, 104)
    >>> check_input_size(UNetConfig(input_height=96, input_width=96, depth=3))
"""

from __future__ import annotations

import dataclasses
import os

from unet_demo.config import UNetConfig
from unet_demo.errors import UNetDemoError


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """How a keras.applications network serves as a U-Net encoder.

    Args:
        application: class name in keras.applications, e.g. "MobileNetV2".
        depth: how many times the backbone halves the image up to the bottleneck tap.
        skip_layers: layer names tapped for skips, level 0 (full size) first; None = no skip.
        bottleneck_layer: layer feeding the decoder (1/2**depth of the input).
        scale, offset: per-channel Rescaling from [0, 1] images to the backbone's input range.
        weights_file: file name keras.applications gives the ImageNet "no top" weights.
    """

    application: str
    depth: int
    skip_layers: tuple[str | None, ...]
    bottleneck_layer: str
    scale: tuple[float, ...]
    offset: tuple[float, ...]
    weights_file: str


_CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)

BACKBONES: dict[str, BackboneSpec] = {
    # VGG16 keeps full resolution in block 1, so it gives a skip at every level: depth 4.
    "vgg16": BackboneSpec(
        application="VGG16",
        depth=4,
        skip_layers=("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3"),
        bottleneck_layer="block5_conv3",
        scale=(255.0, 255.0, 255.0),
        offset=tuple(-m for m in _CAFFE_MEAN_RGB),
        weights_file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
    # ResNet50, MobileNetV2 and EfficientNetB0 start with a stride-2 convolution: depth 5,
    # and the full-resolution decoder level has no skip.
    "resnet50": BackboneSpec(
        application="ResNet50",
        depth=5,
        skip_layers=(None, "conv1_relu", "conv2_block3_out", "conv3_block4_out",
                     "conv4_block6_out"),
        bottleneck_layer="conv5_block3_out",
        scale=(255.0, 255.0, 255.0),
        offset=tuple(-m for m in _CAFFE_MEAN_RGB),
        weights_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
    "mobilenetv2": BackboneSpec(
        application="MobileNetV2",
        depth=5,
        skip_layers=(None, "block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu",
                     "block_13_expand_relu"),
        bottleneck_layer="block_16_project",
        scale=(2.0, 2.0, 2.0),
        offset=(-1.0, -1.0, -1.0),
        weights_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5",
    ),
    # EfficientNet rescales (1/255) and normalises inside the network. Its weight file stores
    # the ImageNet standard deviations as the Normalization *variance*, so the layer divides
    # by sqrt(std); keras.applications adds a second 1/sqrt(std) only for weights="imagenet"
    # (tensorflow/tensorflow#49930). A cached file is passed as a path, so this input
    # scaling supplies that missing 1/sqrt(std): the network then sees (x - mean) / std.
    "efficientnetb0": BackboneSpec(
        application="EfficientNetB0",
        depth=5,
        skip_layers=(None, "block2a_expand_activation", "block3a_expand_activation",
                     "block4a_expand_activation", "block6a_expand_activation"),
        bottleneck_layer="top_activation",
        scale=tuple(255.0 / s**0.5 for s in _TORCH_STD),
        offset=tuple(
            255.0 * m * (1.0 - 1.0 / s**0.5) for m, s in zip(_TORCH_MEAN, _TORCH_STD, strict=True)
        ),
        weights_file="efficientnetb0_notop.h5",
    ),
}

_MOBILENET_ROWS = (96, 128, 160, 192, 224)


def nearest_valid_sizes(size: int, multiple: int) -> tuple[int, ...]:
    """Return the multiples of ``multiple`` just below and above ``size`` (below only if > 0).

    Args:
        size: the requested side length.
        multiple: 2**depth.
    """
    lower = (size // multiple) * multiple
    upper = lower + multiple
    return (lower, upper) if lower > 0 else (upper,)


def _check_side(name: str, size: int, depth: int) -> None:
    multiple = 2**depth
    if size % multiple == 0:
        return
    nearest = " or ".join(str(s) for s in nearest_valid_sizes(size, multiple))
    raise UNetDemoError(
        f"{name} must be a multiple of 2**depth = {multiple}, because each of the {depth} "
        f"poolings halves it and the decoder must double it back to the same size. "
        f"Received: {size}; nearest valid: {nearest}. Resize the images or lower the depth."
    )


def check_input_size(cfg: UNetConfig) -> None:
    """Raise UNetDemoError when the input size, depth or channels cannot build this variant.

    Args:
        cfg: the model config.

    Example:
        >>> check_input_size(UNetConfig(input_height=100, input_width=96, depth=3))
        Traceback (most recent call last):
        ...
        unet_demo.errors.UNetDemoError: input_height must be a multiple of 2**depth = 8, ...
    """
    if cfg.variant == "pretrained":
        spec = BACKBONES[cfg.backbone]
        if cfg.depth != spec.depth:
            raise UNetDemoError(
                f"The {cfg.backbone} backbone halves the image {spec.depth} times before its "
                f"bottleneck, so a U-Net on it has depth {spec.depth} (vgg16: 4; resnet50, "
                f"mobilenetv2, efficientnetb0: 5). Received: depth={cfg.depth}. "
                f"Set depth={spec.depth}."
            )
        if cfg.input_channels not in (1, 3):
            raise UNetDemoError(
                f"ImageNet backbones read 3-channel RGB images (a grey image is repeated to 3 "
                f"channels inside the model). Received: input_channels={cfg.input_channels}. "
                f"Use 1 or 3 channels."
            )
    _check_side("input_height", cfg.input_height, cfg.depth)
    _check_side("input_width", cfg.input_width, cfg.depth)
    if cfg.variant == "unet3d":
        _check_side("input_depth", cfg.input_depth, cfg.depth)
    if cfg.variant == "pretrained" and min(cfg.input_height, cfg.input_width) < 32:
        raise UNetDemoError(
            f"keras.applications backbones need images of at least 32x32. Received: "
            f"{cfg.input_height}x{cfg.input_width}. Use 32 or more."
        )


def keras_cache_dir() -> str:
    """Return the folder where Keras caches downloaded weights ($KERAS_HOME/models or ~/.keras).

    Example:
        >>> keras_cache_dir().endswith("models")
        True
    """
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models")


def weights_file_name(cfg: UNetConfig) -> str:
    """Return the file name keras.applications uses for the backbone's ImageNet weights.

    Args:
        cfg: a "pretrained" config.
    """
    spec = BACKBONES[cfg.backbone]
    rows = cfg.input_height
    if cfg.input_height != cfg.input_width or rows not in _MOBILENET_ROWS:
        rows = 224  # keras.applications falls back to the 224-pixel MobileNetV2 weights
    return spec.weights_file.format(rows=rows)


def cached_weights_path(cfg: UNetConfig) -> str | None:
    """Return the local path of the backbone's ImageNet weights, or None if not cached.

    Never downloads: it only looks in the Keras cache folder.

    Args:
        cfg: the model config.
    """
    if cfg.variant != "pretrained" or cfg.encoder_weights != "imagenet":
        return None
    path = os.path.join(keras_cache_dir(), weights_file_name(cfg))
    return path if os.path.isfile(path) else None


def encoder_weights_notice(cfg: UNetConfig) -> str | None:
    """Return a sentence for the UI when ImageNet weights were asked for but are not cached.

    Args:
        cfg: the model config.

    Example:
        >>> encoder_weights_notice(UNetConfig()) is None
        True
    """
    if cfg.variant != "pretrained" or cfg.encoder_weights != "imagenet":
        return None
    if cached_weights_path(cfg) is not None:
        return None
    expected = os.path.join(keras_cache_dir(), weights_file_name(cfg))
    return (
        f"ImageNet weights for {cfg.backbone} are not in the local Keras cache "
        f"(looked for {expected}), so the encoder starts from random weights. This demo never "
        f"downloads weights; copy that file there (or set KERAS_HOME) to use them."
    )
