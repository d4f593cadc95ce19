"""Training presets per bundled dataset: a fast *classroom* run and a slower *quality* run.

The numbers were chosen by measurement on the 2-core CPU machine (see docs/presets.md for the
figures and how they were taken). Classroom presets aim for a useful model within about two
minutes; quality presets train longer with augmentation and early stopping, and are what the
bundled models were made with.

Example:
    >>> spec = get_preset("brain_skullstrip", "classroom")
    >>> spec.data.dataset, spec.train.loss
    ('brain_skullstrip', 'bce_dice')
"""

from __future__ import annotations

from unet_demo.config import AugmentConfig, DataConfig, TrainConfig, UNetConfig
from unet_demo.errors import UNetDemoError
from unet_demo.training.spec import RunSpec

PRESET_NAMES = ("classroom", "quality")

# Mild, label-preserving augmentation for the quality runs (flips are safe for these images:
# brain slices are nearly left-right symmetric and nuclei have no orientation).
_QUALITY_AUGMENT = AugmentConfig(hflip_p=0.5, affine_p=0.5, shift_limit=0.05, scale_limit=0.1,
                                 affine_rotate_limit=10.0, brightness_contrast_p=0.3,
                                 brightness_limit=0.1, contrast_limit=0.1, seed=0)
_NUCLEI_AUGMENT = _QUALITY_AUGMENT.replace(vflip_p=0.5, rotate_p=0.3, rotate_limit=90.0)

_MODEL = UNetConfig(variant="classic", depth=3, base_filters=16, normalization="group")

_PRESETS: dict[tuple[str, str], RunSpec] = {
    ("brain_skullstrip", "classroom"): RunSpec(
        data=DataConfig(dataset="brain_skullstrip"),
        model=_MODEL.replace(base_filters=8),
        train=TrainConfig(loss="bce_dice", optimizer="adam", learning_rate=3e-3,
                          schedule="cosine", epochs=8, batch_size=8, seed=42),
    ),
    ("brain_skullstrip", "quality"): RunSpec(
        data=DataConfig(dataset="brain_skullstrip"),
        augment=_QUALITY_AUGMENT,
        model=_MODEL,
        train=TrainConfig(loss="bce_dice", optimizer="adam", learning_rate=2e-3,
                          schedule="cosine", epochs=30, batch_size=8,
                          early_stopping_patience=8, augment=True, seed=42),
    ),
    ("brain_tissue", "classroom"): RunSpec(
        data=DataConfig(dataset="brain_tissue"),
        model=_MODEL,
        train=TrainConfig(loss="cce_dice", optimizer="adam", learning_rate=3e-3,
                          schedule="cosine", epochs=10, batch_size=8, seed=42),
    ),
    ("brain_tissue", "quality"): RunSpec(
        data=DataConfig(dataset="brain_tissue"),
        augment=_QUALITY_AUGMENT,
        model=_MODEL,
        train=TrainConfig(loss="cce_dice", optimizer="adam", learning_rate=2e-3,
                          schedule="cosine", epochs=30, batch_size=8,
                          early_stopping_patience=8, augment=True, seed=42),
    ),
    ("nuclei", "classroom"): RunSpec(
        data=DataConfig(dataset="nuclei"),
        model=_MODEL,
        train=TrainConfig(loss="bce_dice", optimizer="adam", learning_rate=3e-3,
                          schedule="cosine", epochs=15, batch_size=8, seed=42),
    ),
    ("nuclei", "quality"): RunSpec(
        data=DataConfig(dataset="nuclei"),
        augment=_NUCLEI_AUGMENT,
        model=_MODEL,
        train=TrainConfig(loss="bce_dice", optimizer="adam", learning_rate=2e-3,
                          schedule="cosine", epochs=40, batch_size=8,
                          early_stopping_patience=10, augment=True, seed=42),
    ),
    ("synthetic_lesions", "classroom"): RunSpec(
        data=DataConfig(dataset="synthetic_lesions"),
        model=_MODEL.replace(base_filters=8),
        train=TrainConfig(loss="bce_dice", optimizer="adam", learning_rate=3e-3,
                          schedule="cosine", epochs=8, batch_size=8, seed=42),
    ),
    ("synthetic_lesions", "quality"): RunSpec(
        data=DataConfig(dataset="synthetic_lesions"),
        augment=_QUALITY_AUGMENT,
        model=_MODEL,
        train=TrainConfig(loss="bce_dice", optimizer="adam", learning_rate=2e-3,
                          schedule="cosine", epochs=25, batch_size=8,
                          early_stopping_patience=6, augment=True, seed=42),
    ),
    # 3D: cubes of 32 voxels (64 mm) from the 2 mm head volume; a small 3D U-Net because
    # every convolution costs 3x a 2D one per voxel and a cube holds 32x more voxels.
    ("brain_volume", "classroom"): RunSpec(
        data=DataConfig(dataset="brain_volume", image_size=32),
        model=UNetConfig(variant="unet3d", depth=2, base_filters=8, normalization="group"),
        train=TrainConfig(loss="bce_dice", optimizer="adam", learning_rate=3e-3,
                          schedule="cosine", epochs=6, batch_size=4, seed=42),
    ),
    ("brain_volume", "quality"): RunSpec(
        data=DataConfig(dataset="brain_volume", image_size=32),
        model=UNetConfig(variant="unet3d", depth=3, base_filters=8, normalization="group"),
        train=TrainConfig(loss="bce_dice", optimizer="adam", learning_rate=2e-3,
                          schedule="cosine", epochs=20, batch_size=4,
                          early_stopping_patience=6, seed=42),
    ),
}


def get_preset(dataset: str, preset: str) -> RunSpec:
    """The RunSpec of a preset for a dataset (uploaded datasets use the synthetic presets).

    Args:
        dataset: a bundled dataset name or "upload:<id>".
        preset: "classroom" or "quality".

    Example:
        >>> get_preset("nuclei", "quality").train.augment
        True
    """
    if preset not in PRESET_NAMES:
        raise UNetDemoError(f"preset must be one of {list(PRESET_NAMES)}. Received: {preset!r}.")
    if dataset.startswith("upload:"):
        base = _PRESETS[("synthetic_lesions", preset)]
        return base.replace(data=base.data.replace(dataset=dataset))
    key = (dataset, preset)
    if key not in _PRESETS:
        names = sorted({name for name, _ in _PRESETS})
        raise UNetDemoError(
            f"No presets for dataset {dataset!r}. Expected one of {names} or 'upload:<id>'."
        )
    return _PRESETS[key]
