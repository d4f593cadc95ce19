"""The three U-Nets written out in the seed documents, reproduced as UNetConfig records.

Each entry maps a short name to (config, description). The parameter counts are facts of
the seed code under Keras 3 and are asserted by tests:

* ``chapter4`` - guide chapter 4 ``build_unet``: 31,030,593 parameters.
* ``chapter8`` - guide chapter 8 "full project" model: 1,861,697 parameters.
* ``notebook`` - notebook ``unet()`` on RGB input: 31,031,745 parameters (3 input channels add
  2 x 3 x 3 x 64 = 1,152 weights to chapter 4's count; a 2x2 convolution after UpSampling2D
  has exactly as many weights as a 2x2 transposed convolution).

This module imports no TensorFlow.

Example:
    >>> config, description = SEED_MODELS["chapter8"]
    >>> config.level_filters()
    (64, 128, 256)
"""

from __future__ import annotations

from unet_demo.config import UNetConfig
from unet_demo.errors import UNetDemoError

# All three seeds: two 3x3 ReLU convolutions per block, no batch norm, no dropout, sigmoid.
_SEED_COMMON = dict(
    variant="classic",
    num_classes=1,
    base_filters=64,
    filter_growth=2.0,
    kernel_size=3,
    convs_per_block=2,
    normalization="none",
    dropout_rate=0.0,
    activation="relu",
)

SEED_MODELS: dict[str, tuple[UNetConfig, str]] = {
    "chapter4": (
        UNetConfig(
            input_height=256, input_width=256, input_channels=1, depth=4,
            upsampling="transpose", kernel_initializer="glorot_uniform", **_SEED_COMMON,
        ),
        "Textbook chapter 4: 256x256 grey input, filters 64 to 1024 over four poolings, "
        "2x2 transposed convolutions for up-sampling.",
    ),
    "chapter8": (
        UNetConfig(
            input_height=128, input_width=128, input_channels=1, depth=2,
            upsampling="transpose", kernel_initializer="glorot_uniform", **_SEED_COMMON,
        ),
        "Textbook chapter 8 full project: 128x128 grey input, filters 64-128-256 over two "
        "poolings, transposed convolutions, no batch norm.",
    ),
    "notebook": (
        UNetConfig(
            input_height=256, input_width=256, input_channels=3, depth=4,
            upsampling="upsample_conv", interpolation="nearest",
            kernel_initializer="he_normal", **_SEED_COMMON,
        ),
        "Companion notebook's unet(): 256x256 RGB input, filters 64 to 1024, UpSampling2D (nearest, the "
        "Keras default) followed by a 2x2 ReLU convolution, He-normal initialisation.",
    ),
}

# Parameter counts of the seed code, used by tests and shown next to the seed models.
SEED_PARAM_COUNTS = {"chapter4": 31_030_593, "chapter8": 1_861_697, "notebook": 31_031_745}


def seed_config(name: str) -> UNetConfig:
    """Return the UNetConfig of a seed model.

    Args:
        name: "chapter4", "chapter8" or "notebook".

    Example:
        >>> seed_config("chapter4").depth
        4
    """
    if name not in SEED_MODELS:
        raise UNetDemoError(
            f"Unknown seed model {name!r}. Expected one of {sorted(SEED_MODELS)}."
        )
    return SEED_MODELS[name][0]
