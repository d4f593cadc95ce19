"""Image + mask augmentation with albumentations, built from an `AugmentConfig`.

Geometric transforms (flips, rotation, affine, crop, elastic, grid distortion) move the image
and the mask together, the mask with nearest-neighbour interpolation so labels stay integers.
Photometric transforms (brightness/contrast, gamma, CLAHE, blur, noise, bias field) change the
image only.
One list of transform specs drives the pipeline, the exported Python code and the YAML, so the
three always agree.

Example:
    >>> import numpy as np
    >>> from unet_demo.config import AugmentConfig
    >>> compose = build_augmentation(AugmentConfig(hflip_p=1.0, seed=3))
    >>> image = np.zeros((32, 32, 1), np.float32)
    >>> image[:, :8] = 1.0
    >>> mask = (image[..., 0] > 0).astype(np.uint8)
    >>> out_image, out_mask = augment_pair(compose, image, mask)
    >>> bool(out_mask[:, -8:].all()), bool(out_image[:, -8:].min() == 1.0)
    (True, True)
"""

from __future__ import annotations

import copy
import io
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import albumentations as A
import cv2
import numpy as np

from unet_demo.config import AugmentConfig
from unet_demo.errors import UNetDemoError

BORDER_MODES = {"reflect": cv2.BORDER_REFLECT_101, "constant": cv2.BORDER_CONSTANT}
_CV2_NAMES = {
    "border_mode": {cv2.BORDER_REFLECT_101: "cv2.BORDER_REFLECT_101",
                    cv2.BORDER_CONSTANT: "cv2.BORDER_CONSTANT"},
    "mask_interpolation": {cv2.INTER_NEAREST_EXACT: "cv2.INTER_NEAREST_EXACT"},
}

GEOMETRIC_TRANSFORMS = (
    "HorizontalFlip", "VerticalFlip", "Rotate", "Affine", "CropAndPad", "ElasticTransform",
    "GridDistortion",
)
"""Transforms that move pixels (applied to image and mask alike)."""
BIAS_FIELD_RANGE = (0.01, 0.3)
"""Allowed largest brightness change of the bias field (0.3: the image runs 70 % to 130 %)."""


class BiasField(A.ImageOnlyTransform):
    """Multiply the image by a smooth random field, as an MRI coil's uneven sensitivity does.

    The field is 1 + s * q(x, y): q is a second-order polynomial in the pixel coordinates
    (scaled to [-1, 1]) with random coefficients, rescaled so its largest magnitude is 1, and s
    is drawn from [0.01, limit]; the image therefore stays within (1 - s) to (1 + s) of itself,
    black background stays black and masks are not touched. albumentations 2.0.8 has no bias
    field: its ``Illumination`` ramp can leave that range at oblique angles and its Gaussian
    mode fails on one-channel images, hence this small transform.

    Args:
        limit: largest strength s (between 0.01 and 0.3).
        p: probability of applying the transform.

    Example:
        >>> import numpy as np
        >>> out = BiasField(limit=0.2, p=1.0)(image=np.full((16, 16, 1), 0.5, np.float32))["image"]
        >>> out.shape, bool(0.4 - 1e-6 <= out.min() <= out.max() <= 0.6 + 1e-6)
        ((16, 16, 1), True)
    """

    def __init__(self, limit: float = 0.2, p: float = 0.5):
        super().__init__(p=p)
        if not BIAS_FIELD_RANGE[0] <= float(limit) <= BIAS_FIELD_RANGE[1]:
            raise UNetDemoError(
                "bias_field_limit is the largest brightness change of the smooth multiplicative "
                f"field; it must be between {BIAS_FIELD_RANGE[0]} and {BIAS_FIELD_RANGE[1]}. "
                f"Received: {limit!r}."
            )
        self.limit = float(limit)

    def get_params(self) -> dict[str, Any]:
        """Draw the polynomial's five coefficients and the strength."""
        return {"coefficients": self.random_generator.uniform(-1.0, 1.0, 5),
                "strength": self.py_random.uniform(BIAS_FIELD_RANGE[0], self.limit)}

    def apply(self, img: np.ndarray, coefficients: np.ndarray = None, strength: float = 0.0,
              **params: Any) -> np.ndarray:
        """Multiply `img` (H, W) or (H, W, C) by the field; channels share one field."""
        height, width = img.shape[:2]
        y, x = np.meshgrid(np.linspace(-1.0, 1.0, height), np.linspace(-1.0, 1.0, width),
                           indexing="ij")
        a, b, c, d, e = coefficients
        q = a * x + b * y + c * x * x + d * y * y + e * x * y
        peak = float(np.abs(q).max())
        field = 1.0 + strength * (q / peak if peak > 0 else q)
        if img.ndim == 3:
            field = field[..., None]
        return (img * field).astype(img.dtype, copy=False)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        """Constructor arguments albumentations serialises."""
        return ("limit",)


CUSTOM_TRANSFORMS = {"BiasField": BiasField}
"""This project's own transforms, by name (the rest come from the `albumentations` namespace)."""


@dataclass(frozen=True)
class TransformSpec:
    """One albumentations transform: its class name and constructor arguments.

    Args:
        name: class name in the `albumentations` namespace, e.g. "Rotate".
        kwargs: constructor keyword arguments (plain values, tuples for ranges).

    Example:
        >>> TransformSpec("HorizontalFlip", {"p": 0.5}).build().p
        0.5
    """

    name: str
    kwargs: dict[str, Any]

    def build(self) -> A.BasicTransform:
        """Instantiate the albumentations transform."""
        kind = CUSTOM_TRANSFORMS.get(self.name) or getattr(A, self.name)
        return kind(**self.kwargs)

    def code(self) -> str:
        """Python source that constructs this transform (with `import albumentations as A`)."""
        prefix = "" if self.name in CUSTOM_TRANSFORMS else "A."
        parts = []
        for key, value in self.kwargs.items():
            if key in _CV2_NAMES:
                parts.append(f"{key}={_CV2_NAMES[key][value]}")
            else:
                parts.append(f"{key}={_literal(value)}")
        return f"{prefix}{self.name}({', '.join(parts)})"


def _literal(value: Any) -> str:
    if isinstance(value, float):
        return repr(round(value, 6))
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal(v) for v in value) + ")"
    return repr(value)


def transform_specs(cfg: AugmentConfig) -> list[TransformSpec]:
    """List the enabled transforms of a config, geometric first, in a fixed order.

    Args:
        cfg: the augmentation settings; transforms with probability 0 are left out.

    Example:
        >>> [s.name for s in transform_specs(AugmentConfig(vflip_p=0.5, gamma_p=0.2))]
        ['VerticalFlip', 'RandomGamma']
        >>> [s.name for s in transform_specs(AugmentConfig(bias_field_p=0.3))]
        ['BiasField']
    """
    border = BORDER_MODES[cfg.border_mode]
    specs: list[TransformSpec] = []

    def add(probability: float, name: str, **kwargs: Any) -> None:
        if probability > 0:
            specs.append(TransformSpec(name, {**kwargs, "p": float(probability)}))

    add(cfg.hflip_p, "HorizontalFlip")
    add(cfg.vflip_p, "VerticalFlip")
    add(cfg.rotate_p, "Rotate", limit=(-float(cfg.rotate_limit), float(cfg.rotate_limit)),
        border_mode=border)
    add(
        cfg.affine_p, "Affine",
        translate_percent=(-float(cfg.shift_limit), float(cfg.shift_limit)),
        scale=(1.0 - float(cfg.scale_limit), 1.0 + float(cfg.scale_limit)),
        rotate=(-float(cfg.affine_rotate_limit), float(cfg.affine_rotate_limit)),
        border_mode=border,
    )
    if cfg.crop_p > 0:
        if not 0.05 <= cfg.crop_scale_min <= 1.0:
            raise UNetDemoError(
                "crop_scale_min is the smallest fraction of the image area a random crop keeps; "
                f"it must be between 0.05 and 1. Received: {cfg.crop_scale_min!r}."
            )
        # Each side is cut by up to `side` of the size, so the kept area is at least scale_min;
        # keep_size resizes the crop back, so shapes never change. cv2's INTER_NEAREST resize
        # is half a pixel off from its bilinear resize; NEAREST_EXACT keeps the mask aligned.
        side = (1.0 - math.sqrt(cfg.crop_scale_min)) / 2.0
        add(cfg.crop_p, "CropAndPad", percent=(-round(side, 6), 0.0), keep_size=True,
            sample_independently=True, mask_interpolation=cv2.INTER_NEAREST_EXACT)
    add(cfg.elastic_p, "ElasticTransform", alpha=float(cfg.elastic_alpha),
        sigma=float(cfg.elastic_sigma), border_mode=border)
    add(cfg.grid_p, "GridDistortion", num_steps=int(cfg.grid_steps),
        distort_limit=(-float(cfg.grid_limit), float(cfg.grid_limit)), border_mode=border)
    add(cfg.brightness_contrast_p, "RandomBrightnessContrast",
        brightness_limit=(-float(cfg.brightness_limit), float(cfg.brightness_limit)),
        contrast_limit=(-float(cfg.contrast_limit), float(cfg.contrast_limit)))
    if cfg.gamma_p > 0 and not 0 < cfg.gamma_min <= cfg.gamma_max:
        raise UNetDemoError(
            "gamma_min and gamma_max are gamma x 100 (100 = unchanged) with 0 < min <= max. "
            f"Received: gamma_min={cfg.gamma_min!r}, gamma_max={cfg.gamma_max!r}."
        )
    add(cfg.gamma_p, "RandomGamma", gamma_limit=(float(cfg.gamma_min), float(cfg.gamma_max)))
    add(cfg.clahe_p, "CLAHE", clip_limit=(1.0, max(1.0, float(cfg.clahe_clip))))
    if cfg.blur_p > 0:
        odd = int(cfg.blur_limit) if int(cfg.blur_limit) % 2 == 1 else int(cfg.blur_limit) + 1
        add(cfg.blur_p, "GaussianBlur", blur_limit=(3, max(3, odd)))
    add(cfg.noise_p, "GaussNoise", std_range=(0.0, float(cfg.noise_std_max)))
    if cfg.bias_field_p > 0 and not BIAS_FIELD_RANGE[0] <= cfg.bias_field_limit <= BIAS_FIELD_RANGE[1]:
        raise UNetDemoError(
            "bias_field_limit is the largest brightness change at the image edge of the smooth "
            f"multiplicative field; it must be between {BIAS_FIELD_RANGE[0]} and "
            f"{BIAS_FIELD_RANGE[1]}. Received: {cfg.bias_field_limit!r}."
        )
    add(cfg.bias_field_p, "BiasField", limit=float(cfg.bias_field_limit))
    return specs


def build_augmentation(cfg: AugmentConfig) -> A.Compose:
    """Build the seeded albumentations pipeline for image + mask pairs.

    Calling the returned Compose repeatedly draws new random parameters; building it again
    with the same `cfg.seed` replays the same sequence. With nothing enabled it is an identity.

    Args:
        cfg: which transforms, their strengths and probabilities, the border mode and the seed.

    Example:
        >>> compose = build_augmentation(AugmentConfig(rotate_p=0.5, seed=7))
        >>> [type(t).__name__ for t in compose.transforms]
        ['Rotate']
    """
    return A.Compose([spec.build() for spec in transform_specs(cfg)], seed=int(cfg.seed))


def _run_pipeline(compose: A.Compose, image: np.ndarray,
                  mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    image = np.asarray(image)
    mask = np.asarray(mask)
    squeeze = image.ndim == 2
    work = image[..., None] if squeeze else image
    if work.ndim != 3 or mask.ndim != 2 or work.shape[:2] != mask.shape:
        raise UNetDemoError(
            "augment_pair expects an image (H, W, C) and a mask (H, W) of the same size. "
            f"Received: image {image.shape}, mask {mask.shape}. Resize the mask to the image."
        )
    work = np.ascontiguousarray(np.clip(work.astype(np.float32, copy=False), 0.0, 1.0))
    # float32 masks are soft targets (DataConfig.mask_resize): moved as they are, not truncated.
    mask_dtype = np.float32 if mask.dtype == np.float32 else np.uint8
    result = compose(image=work, mask=np.ascontiguousarray(mask.astype(mask_dtype, copy=False)))
    out_image = np.clip(np.asarray(result["image"], np.float32), 0.0, 1.0)
    if out_image.ndim == 2:
        out_image = out_image[..., None]
    if squeeze:
        out_image = out_image[..., 0]
    return out_image, np.asarray(result["mask"], mask_dtype), result


def augment_pair(compose: A.Compose, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Augment one image and its mask together.

    Args:
        compose: from `build_augmentation`.
        image: float32 (H, W, C) or (H, W) in [0, 1].
        mask: integer label map (H, W).

    Returns:
        (image float32 with the input's shape, clipped to [0, 1]; mask uint8 (H, W)).

    Example:
        >>> import numpy as np
        >>> identity = build_augmentation(AugmentConfig())
        >>> out, m = augment_pair(identity, np.full((8, 8, 1), 0.5, np.float32), np.ones((8, 8), np.uint8))
        >>> float(out.max()), int(m.sum())
        (0.5, 64)
    """
    out_image, out_mask, _ = _run_pipeline(compose, image, mask)
    return out_image, out_mask


def augment_image_only(compose: A.Compose, image: np.ndarray) -> np.ndarray:
    """Augment the image alone — the classic mistake that leaves the mask behind.

    Shown on the Augment page: the untouched mask no longer lines up with the moved image.

    Args:
        compose: from `build_augmentation`.
        image: float32 (H, W, C) in [0, 1].

    Example:
        >>> import numpy as np
        >>> compose = build_augmentation(AugmentConfig(hflip_p=1.0))
        >>> augment_image_only(compose, np.zeros((4, 4, 1), np.float32)).shape
        (4, 4, 1)
    """
    blank = np.zeros(np.asarray(image).shape[:2], np.uint8)
    return augment_pair(compose, image, blank)[0]


@dataclass(frozen=True)
class AugmentedSample:
    """One draw of the pipeline: the augmented image, the mask to show with it, what ran.

    Args:
        image: float32 (H, W, C) in [0, 1].
        mask: uint8 (H, W); with `image_only` this is the untouched original mask.
        applied: names of the transforms that fired on this draw, in order.
    """

    image: np.ndarray
    mask: np.ndarray
    applied: tuple[str, ...]


def augment_gallery(cfg: AugmentConfig, image: np.ndarray, mask: np.ndarray, count: int = 9,
                    *, image_only: bool = False) -> list[AugmentedSample]:
    """Draw `count` augmented versions of one pair from a freshly seeded pipeline.

    The same config (seed included) always gives the same gallery.

    Args:
        cfg: the augmentation settings.
        image: float32 (H, W, C) in [0, 1].
        mask: uint8 (H, W) labels.
        count: how many draws.
        image_only: reproduce the classic mistake: transform the image, keep the old mask.

    Example:
        >>> import numpy as np
        >>> samples = augment_gallery(AugmentConfig(hflip_p=1.0), np.zeros((8, 8, 1), np.float32),
        ...                           np.zeros((8, 8), np.uint8), count=2)
        >>> [s.applied for s in samples]
        [('HorizontalFlip',), ('HorizontalFlip',)]
    """
    compose = build_augmentation(cfg)
    compose.save_applied_params = True
    samples = []
    for _ in range(count):
        out_image, out_mask, result = _run_pipeline(compose, image, mask)
        applied = tuple(name for name, _ in result.get("applied_transforms", []))
        samples.append(AugmentedSample(out_image, np.asarray(mask, np.uint8) if image_only
                                       else out_mask, applied))
    return samples


def make_augment_fn(cfg: AugmentConfig) -> Callable[[np.ndarray, np.ndarray, int],
                                                     tuple[np.ndarray, np.ndarray]]:
    """Return the `(image, mask, seed) -> (image, mask)` adapter the tf.data pipeline calls.

    See `unet_demo.data.pipeline.training_dataset`. The albumentations pipeline is built once;
    every thread that calls the adapter gets its own copy, reseeded for every pair, so a pair's
    augmented view depends only on the seed the pipeline hands over (reproducible whatever the
    thread scheduling, and no lock).

    Args:
        cfg: the augmentation settings.

    Example:
        >>> import numpy as np
        >>> fn = make_augment_fn(AugmentConfig(rotate_p=1.0))
        >>> img, m = fn(np.zeros((16, 16, 1), np.float32), np.zeros((16, 16), np.uint8), 0)
        >>> img.shape, m.dtype
        ((16, 16, 1), dtype('uint8'))
    """
    template = build_augmentation(cfg)
    local = threading.local()

    def augment(image: np.ndarray, mask: np.ndarray, seed: int):
        compose = getattr(local, "compose", None)
        if compose is None:
            compose = local.compose = copy.deepcopy(template)
        compose.set_random_seed(int(seed))
        if not cfg.transform_mask:  # the image-only bug, on purpose (Lessons page)
            return augment_image_only(compose, image), mask
        return augment_pair(compose, image, mask)

    return augment


def augmentation_code(cfg: AugmentConfig) -> str:
    """Python source that rebuilds this pipeline and applies it to an image/mask pair.

    Args:
        cfg: the augmentation settings.

    Example:
        >>> "A.HorizontalFlip(p=0.5)" in augmentation_code(AugmentConfig(hflip_p=0.5))
        True
    """
    specs = transform_specs(cfg)
    lines = [
        '"""Augmentation pipeline exported from unet-demo (albumentations 2.0.8)."""',
        "",
        "import albumentations as A",
        "import cv2  # noqa: F401  (OpenCV constants)",
    ]
    lines += [f"from unet_demo.augment import {name}  # this project's own transform"
              for name in sorted({s.name for s in specs} & set(CUSTOM_TRANSFORMS))]
    lines += [
        "",
        "# Geometric transforms move image and mask together; photometric ones touch the image only.",
        "transform = A.Compose(",
        "    [",
    ]
    lines += [f"        {spec.code()}," for spec in specs]
    lines += [
        "    ],",
        f"    seed={int(cfg.seed)},",
        ")",
        "",
        "# image: float32 (H, W, C) in [0, 1]; mask: uint8 (H, W) class labels.",
        "# result = transform(image=image, mask=mask)",
        "# augmented_image, augmented_mask = result['image'], result['mask']",
        "",
    ]
    return "\n".join(lines)


def augmentation_dict(cfg: AugmentConfig) -> dict[str, Any]:
    """Albumentations' own serialised form of the pipeline (`A.to_dict`).

    Args:
        cfg: the augmentation settings.

    Example:
        >>> augmentation_dict(AugmentConfig())["transform"]["__class_fullname__"]
        'Compose'
    """
    return A.to_dict(build_augmentation(cfg))


def augmentation_yaml(cfg: AugmentConfig) -> str:
    """The pipeline as albumentations YAML; `A.load(path, data_format="yaml")` reads it back.

    Albumentations does not store the seed, so a comment on the first lines names it: call
    `compose.set_random_seed(seed)` after loading to replay the same draws.

    Args:
        cfg: the augmentation settings.

    Example:
        >>> "HorizontalFlip" in augmentation_yaml(AugmentConfig(hflip_p=0.5))
        True
    """
    buffer = io.StringIO()
    buffer.write(
        f"# unet-demo augmentation pipeline. Seed: {int(cfg.seed)} (not stored by albumentations;\n"
        f"# after A.load(path, data_format='yaml') call compose.set_random_seed({int(cfg.seed)})).\n"
    )
    A.save(build_augmentation(cfg), buffer, data_format="yaml")
    return buffer.getvalue()
