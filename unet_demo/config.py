"""Frozen, flat configuration dataclasses shared by the engine, the CLI and the app.

Every config holds plain types and string options only, so it serialises to JSON,
doubles as a cache key and can be written into a run directory.

Example:
    >>> cfg = UNetConfig(depth=2, base_filters=64)
    >>> UNetConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, TypeVar

from unet_demo.errors import UNetDemoError

T = TypeVar("T", bound="_FlatConfig")


class _FlatConfig:
    """Mixin: JSON round trip and `replace` for frozen flat dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict (JSON-serialisable)."""
        return dataclasses.asdict(self)  # type: ignore[arg-type]

    def to_json(self) -> str:
        """Return the config as sorted, indented JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """Build a config from a dict, refusing unknown keys with a clear message.

        Args:
            data: field names to values, e.g. from `to_dict()` or a config.json.
        """
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise UNetDemoError(
                f"{cls.__name__} got unknown option(s) {unknown}. "
                f"Expected some of: {sorted(known)}. Remove or rename them."
            )
        return cls(**data)

    def replace(self: T, **changes: Any) -> T:
        """Return a copy with some fields changed (the config itself stays frozen)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UNetDemoError(f"{name} must be one of {list(choices)}. Received: {value!r}.")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not (low <= value <= high):
        raise UNetDemoError(f"{name} must be between {low} and {high}. Received: {value!r}.")


VARIANTS = ("classic", "attention", "residual", "dense", "unetpp", "lightweight", "unet3d", "pretrained")
NORMALIZATIONS = ("none", "batch", "group", "instance", "layer")
DROPOUT_PLACES = ("bottleneck", "decoder", "all")
UPSAMPLINGS = ("transpose", "upsample_conv")
INTERPOLATIONS = ("nearest", "bilinear")
ACTIVATIONS = ("relu", "leaky_relu", "elu", "gelu")
INITIALIZERS = ("he_normal", "he_uniform", "glorot_uniform", "glorot_normal")
BACKBONES = ("mobilenetv2", "resnet50", "vgg16", "efficientnetb0")
ENCODER_WEIGHTS = ("imagenet", "none")


@dataclasses.dataclass(frozen=True)
class UNetConfig(_FlatConfig):
    """Everything `build_unet` needs; one flat record per model.

    Args:
        variant: one of VARIANTS ("classic", "attention", "residual", "dense", "unetpp",
            "lightweight", "unet3d", "pretrained").
        input_height, input_width: spatial input size; each must be a multiple of 2**depth.
        input_depth: number of slices for "unet3d" (multiple of 2**depth); ignored otherwise.
        input_channels: 1 for grey images, 3 for RGB.
        num_classes: 1 gives a sigmoid output (binary); >1 gives softmax over classes.
        depth: number of poolings (1-5); the U has depth+1 levels.
        base_filters: filters at the top level; level i has base_filters * growth**i.
        filter_growth: multiplier per level (2.0 in the classic U-Net).
        kernel_size: convolution kernel size (3 in every seed model).
        convs_per_block: convolutions per block (2 in every seed model).
        normalization: "none", "batch", "group", "instance" or "layer".
        dropout_rate: 0 disables dropout.
        dropout_where: "bottleneck", "decoder" or "all" (where dropout layers go).
        l1, l2: weight decay strengths for kernel regularizers (0 disables).
        upsampling: "transpose" (2x2 transposed conv, stride 2) or "upsample_conv"
            (UpSampling2D then a 2x2 conv, as in the notebook seed).
        interpolation: "nearest" or "bilinear" for "upsample_conv".
        activation: "relu", "leaky_relu", "elu" or "gelu".
        kernel_initializer: Keras initializer name.
        deep_supervision: U-Net++ only: average the outputs of all nested decoders.
        backbone: "pretrained" only: keras.applications encoder.
        encoder_weights: "imagenet" (from the local Keras cache if present) or "none".
        freeze_encoder: "pretrained" only: freeze the backbone's weights.
        skip_connections: which encoder levels reach the decoder: "all" (the U-Net), "none"
            (a plain encoder-decoder: each decoder level only upsamples the coarser tensor) or
            a comma list of kept levels such as "0,2" (level 0 = full resolution). Classic,
            attention, residual, dense, lightweight and 3D variants; U-Net++ and the pretrained
            encoder keep all their skips.

    Example:
        >>> UNetConfig(depth=3, skip_connections="0,2").skip_levels()
        (0, 2)
        >>> UNetConfig(skip_connections="none").skip_levels()
        ()
        >>> chapter8 = UNetConfig(depth=2, base_filters=64, normalization="none")
        >>> chapter8.level_filters()
        (64, 128, 256)
    """

    variant: str = "classic"
    input_height: int = 128
    input_width: int = 128
    input_depth: int = 16
    input_channels: int = 1
    num_classes: int = 1
    depth: int = 3
    base_filters: int = 16
    filter_growth: float = 2.0
    kernel_size: int = 3
    convs_per_block: int = 2
    normalization: str = "batch"
    dropout_rate: float = 0.0
    dropout_where: str = "bottleneck"
    l1: float = 0.0
    l2: float = 0.0
    upsampling: str = "transpose"
    interpolation: str = "bilinear"
    activation: str = "relu"
    kernel_initializer: str = "he_normal"
    deep_supervision: bool = False
    backbone: str = "mobilenetv2"
    encoder_weights: str = "imagenet"
    freeze_encoder: bool = False
    skip_connections: str = "all"

    def __post_init__(self) -> None:
        _check_choice("variant", self.variant, VARIANTS)
        _check_choice("normalization", self.normalization, NORMALIZATIONS)
        _check_choice("dropout_where", self.dropout_where, DROPOUT_PLACES)
        _check_choice("upsampling", self.upsampling, UPSAMPLINGS)
        _check_choice("interpolation", self.interpolation, INTERPOLATIONS)
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_choice("kernel_initializer", self.kernel_initializer, INITIALIZERS)
        _check_choice("backbone", self.backbone, BACKBONES)
        _check_choice("encoder_weights", self.encoder_weights, ENCODER_WEIGHTS)
        _check_range("depth", self.depth, 1, 5)
        _check_range("base_filters", self.base_filters, 1, 1024)
        _check_range("filter_growth", self.filter_growth, 1.0, 4.0)
        _check_range("kernel_size", self.kernel_size, 1, 7)
        _check_range("convs_per_block", self.convs_per_block, 1, 4)
        _check_range("input_channels", self.input_channels, 1, 4)
        _check_range("num_classes", self.num_classes, 1, 32)
        _check_range("dropout_rate", self.dropout_rate, 0.0, 0.9)
        _check_range("l1", self.l1, 0.0, 1.0)
        _check_range("l2", self.l2, 0.0, 1.0)
        for name in ("input_height", "input_width", "input_depth"):
            _check_range(name, getattr(self, name), 1, 4096)
        self.skip_levels()  # raises on a bad skip_connections value

    def skip_levels(self) -> tuple[int, ...]:
        """The encoder levels whose skip connection reaches the decoder (0 = full resolution)."""
        value = str(self.skip_connections).strip().lower()
        if value == "all":
            return tuple(range(self.depth))
        if value == "none":
            levels: tuple[int, ...] = ()
        else:
            try:
                levels = tuple(sorted({int(part) for part in value.split(",") if part.strip()}))
            except ValueError:
                levels = (-1,)
            if not levels or min(levels) < 0 or max(levels) >= self.depth:
                raise UNetDemoError(
                    "skip_connections must be 'all', 'none' or a comma list of levels between 0 "
                    f"and {self.depth - 1} (depth {self.depth}), e.g. '0,{self.depth - 1}'. "
                    f"Received: {self.skip_connections!r}.")
        if self.variant in ("unetpp", "pretrained"):
            raise UNetDemoError(
                f"skip_connections can only be 'all' for the {self.variant!r} variant (its "
                "skips are its design). Received: "
                f"{self.skip_connections!r}. Use 'classic', 'attention', 'residual' or "
                "'lightweight' to switch skips off.")
        return levels

    def level_filters(self) -> tuple[int, ...]:
        """Filters per level from the top (level 0) to the bottleneck (level `depth`)."""
        return tuple(
            max(1, int(round(self.base_filters * self.filter_growth**level)))
            for level in range(self.depth + 1)
        )


AUGMENT_BORDER_MODES = ("reflect", "constant")


@dataclasses.dataclass(frozen=True)
class AugmentConfig(_FlatConfig):
    """Albumentations pipeline settings; each transform has a probability (0 = off).

    Geometric transforms move image and mask together; photometric ones touch the image only.
    ``transform_mask=False`` reproduces a classic bug for the Lessons page: the image is
    transformed and the original mask is kept, so flips and shifts teach the wrong labels.
    ``bias_field_p`` multiplies the image by a smooth random field that brightens or darkens
    it by up to ``bias_field_limit`` (an MRI coil's uneven sensitivity).

    Example:
        >>> AugmentConfig(hflip_p=0.5).enabled()
        True
    """

    hflip_p: float = 0.0
    vflip_p: float = 0.0
    rotate_p: float = 0.0
    rotate_limit: float = 15.0
    affine_p: float = 0.0
    shift_limit: float = 0.0625
    scale_limit: float = 0.1
    affine_rotate_limit: float = 10.0
    crop_p: float = 0.0
    crop_scale_min: float = 0.7
    brightness_contrast_p: float = 0.0
    brightness_limit: float = 0.2
    contrast_limit: float = 0.2
    gamma_p: float = 0.0
    gamma_min: float = 80.0
    gamma_max: float = 120.0
    noise_p: float = 0.0
    noise_std_max: float = 0.05
    elastic_p: float = 0.0
    elastic_alpha: float = 30.0
    elastic_sigma: float = 6.0
    grid_p: float = 0.0
    grid_steps: int = 5
    grid_limit: float = 0.3
    clahe_p: float = 0.0
    clahe_clip: float = 2.0
    blur_p: float = 0.0
    blur_limit: int = 5
    bias_field_p: float = 0.0
    bias_field_limit: float = 0.2
    border_mode: str = "reflect"
    seed: int = 0
    transform_mask: bool = True

    def __post_init__(self) -> None:
        _check_choice("border_mode", self.border_mode, AUGMENT_BORDER_MODES)
        for field in dataclasses.fields(self):
            if field.name.endswith("_p"):
                _check_range(field.name, getattr(self, field.name), 0.0, 1.0)

    def enabled(self) -> bool:
        """True when at least one transform has a non-zero probability."""
        return any(
            getattr(self, f.name) > 0 for f in dataclasses.fields(self) if f.name.endswith("_p")
        )


NORMALIZATION_MODES = ("minmax", "zscore", "symmetric", "ct_window", "clahe")
MASK_RESIZE_MODES = {
    "nearest": "nearest neighbour: every pixel keeps a 0/1 label (correct)",
    "bilinear": "bilinear, as the guide's loader does to a mask stored as 0/255 and then "
                "divided by 255: fractional labels along every edge",
    "bilinear_div255": "bilinear and divided by 255, as the guide's loader does to a mask "
                       "stored as 0/1: every label shrinks below 1/255",
}
"""How training and validation masks are resized to the input size (binary datasets only)."""


@dataclasses.dataclass(frozen=True)
class DataConfig(_FlatConfig):
    """Which data to train on and how to prepare it.

    Args:
        dataset: a bundled dataset name (see `python -m unet_demo datasets`) or
            "upload:<id>" for a user dataset.
        image_size: square side the images are resized/padded to.
        normalization: "minmax" ([0,1]), "zscore", "symmetric" ([-1,1]), "ct_window" or
            "clahe" (local histogram equalisation, then [0, 1]; the Data page's preview).
        max_train_images: 0 = all; a smaller number makes classroom runs faster.
        mask_resize: how training and validation masks reach ``image_size``: "nearest"
            (the right way), or one of the guide's loader bugs, "bilinear" and
            "bilinear_div255" (`MASK_RESIZE_MODES`; binary datasets, for the Lessons page).
            Test scores always use nearest-neighbour labels.
        folds: 0 = the dataset's own train/val splits; K >= 2 = K-fold cross-validation:
            train and val are pooled and cut into K leak-free folds (`unet_demo.data.folds`),
            the test split is unchanged.
        fold: which fold (0-based) validates when ``folds`` >= 2.

    Example:
        >>> DataConfig(dataset="nuclei").image_size
        128
        >>> DataConfig(folds=5, fold=2).fold
        2
    """

    dataset: str = "brain_skullstrip"
    image_size: int = 128
    normalization: str = "minmax"
    max_train_images: int = 0
    mask_resize: str = "nearest"
    folds: int = 0
    fold: int = 0

    def __post_init__(self) -> None:
        _check_choice("normalization", self.normalization, NORMALIZATION_MODES)
        _check_choice("mask_resize", self.mask_resize, tuple(MASK_RESIZE_MODES))
        _check_range("image_size", self.image_size, 16, 1024)
        _check_range("max_train_images", self.max_train_images, 0, 100000)
        if self.folds != 0:
            _check_range("folds", self.folds, 2, 20)
        _check_range("fold", self.fold, 0, max(0, self.folds - 1))


LOSS_LABELS = {
    "bce": "Binary cross-entropy",
    "dice": "Dice",
    "bce_dice": "BCE + Dice",
    "focal": "Focal",
    "tversky": "Tversky",
    "generalized_dice": "Generalised Dice",
    "cce": "Categorical cross-entropy",
    "cce_dice": "CCE + Dice",
}
"""Every loss name `TrainConfig` accepts, with the label a page shows (`unet_demo.losses`)."""
LOSSES = tuple(LOSS_LABELS)
BINARY_LOSSES = ("bce_dice", "bce", "dice", "focal", "tversky", "generalized_dice")
"""Losses for one sigmoid channel (binary masks), the usual first; `get_loss` refuses others."""
MULTICLASS_LOSSES = ("cce_dice", "cce", "generalized_dice", "dice")
"""Losses for a softmax over K > 1 classes, the usual first; `get_loss` refuses others."""
OPTIMIZER_LABELS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD + momentum"}
OPTIMIZERS = tuple(OPTIMIZER_LABELS)
SCHEDULE_LABELS = {
    "constant": "constant",
    "plateau": "reduce on plateau",
    "cosine": "cosine decay",
    "exponential": "exponential decay",
    "poly": "polynomial decay",
}
SCHEDULES = tuple(SCHEDULE_LABELS)


def losses_for(binary: bool) -> tuple[str, ...]:
    """The loss names that fit a binary (one sigmoid channel) or a multi-class task.

    Args:
        binary: True for one foreground class, False for several.

    Example:
        >>> losses_for(True)[0], "cce" in losses_for(True), losses_for(False)[0]
        ('bce_dice', False, 'cce_dice')
    """
    return BINARY_LOSSES if binary else MULTICLASS_LOSSES


_ENCODER_NAME = re.compile(r"[A-Za-z0-9_-]{0,64}")


@dataclasses.dataclass(frozen=True)
class TrainConfig(_FlatConfig):
    """How to train: loss, optimiser, schedule, epochs, stopping and seed.

    ``workers`` (1-8) trains one run on that many data-parallel processes
    (`unet_demo.training.distributed`, MultiWorkerMirroredStrategy). The rule: ``batch_size``
    stays the global batch (each worker gets batch_size / workers images, so it must divide)
    and ``learning_rate`` is unchanged, so N workers take the same steps as one worker (up to
    float round-off; batch-Dice loss terms are averaged over the workers' slices).

    Transfer learning (`unet_demo.models.transfer`): ``init_encoder`` names a shipped encoder
    (``models/encoders/<name>``) whose weights start the encoder ("" = random start). With
    ``frozen_epochs`` > 0 the guide's schedule runs: the first ``frozen_epochs`` epochs train
    the decoder with the encoder frozen, then the deepest encoder level is unfrozen and the
    rest of the run trains at ``learning_rate * unfreeze_lr_factor``.

    Example:
        >>> TrainConfig(loss="bce_dice", epochs=5).loss
        'bce_dice'
        >>> TrainConfig(batch_size=8, workers=2).workers
        2
        >>> TrainConfig(init_encoder="brain_tissue_classic16", frozen_epochs=4).frozen_epochs
        4
    """

    loss: str = "bce_dice"
    bce_weight: float = 1.0
    dice_weight: float = 1.0
    focal_gamma: float = 2.0
    tversky_alpha: float = 0.3
    tversky_beta: float = 0.7
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "constant"
    epochs: int = 10
    batch_size: int = 8
    early_stopping_patience: int = 0
    augment: bool = False
    seed: int = 42
    deterministic: bool = True
    workers: int = 1
    init_encoder: str = ""
    frozen_epochs: int = 0
    unfreeze_lr_factor: float = 0.1

    def __post_init__(self) -> None:
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_range("learning_rate", self.learning_rate, 1e-7, 1.0)
        _check_range("epochs", self.epochs, 1, 1000)
        _check_range("batch_size", self.batch_size, 1, 512)
        _check_range("early_stopping_patience", self.early_stopping_patience, 0, 1000)
        _check_range("workers", self.workers, 1, 8)
        _check_range("frozen_epochs", self.frozen_epochs, 0, 1000)
        _check_range("unfreeze_lr_factor", self.unfreeze_lr_factor, 1e-4, 1.0)
        if not _ENCODER_NAME.fullmatch(self.init_encoder):
            raise UNetDemoError(
                "init_encoder must be empty (random start) or the name of a shipped encoder "
                f"(letters, digits, '_' and '-'). Received: {self.init_encoder!r}.")
        if self.batch_size % self.workers:
            raise UNetDemoError(
                f"batch_size ({self.batch_size}) must be divisible by workers ({self.workers}): "
                "the global batch is split evenly, each worker trains on batch_size / workers "
                "images. Change the batch size or the worker count.")
