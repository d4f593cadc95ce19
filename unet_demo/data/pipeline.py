"""tf.data input pipeline: cache, seeded shuffle, image+mask augmentation, batch, prefetch.

This module imports TensorFlow; import it lazily (inside functions that train), never from
``unet_demo/data/__init__.py`` or the home page.

What comes out (and what the losses in `unet_demo.losses` expect):

* images: float32 (B, H, W, C), as given.
* binary (``num_classes=1``): masks float32 (B, H, W, 1) with values 0/1, matching a sigmoid
  output of shape (B, H, W, 1): ``keras.losses.BinaryCrossentropy``, ``Dice``, ``Tversky``.
* multi-class, default: masks int32 (B, H, W) class indices (sparse), for
  ``keras.losses.SparseCategoricalCrossentropy`` on a softmax output (B, H, W, K).
* multi-class with ``one_hot=True``: masks float32 (B, H, W, K), for
  ``keras.losses.CategoricalCrossentropy`` / ``Dice`` on a softmax output.

Example:
    >>> import numpy as np
    >>> images = np.zeros((10, 32, 32, 1), np.float32)
    >>> masks = np.zeros((10, 32, 32), np.uint8)
    >>> ds = make_dataset(images, masks, batch_size=4, shuffle=True, seed=0)
    >>> [tuple(x.shape) for x in next(iter(ds))]
    [(4, 32, 32, 1), (4, 32, 32, 1)]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from unet_demo.errors import UNetDemoError

AugmentFn = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]
"""(image float32 HxWxC, mask uint8 HxW, rng) -> (image, mask), same shapes and dtypes."""


def _check_arrays(images: np.ndarray, masks: np.ndarray, num_classes: int) -> tuple:
    images = np.asarray(images)
    masks = np.asarray(masks)
    if images.ndim == 3:
        images = images[..., None]
    if masks.ndim == 4 and masks.shape[-1] == 1:
        masks = masks[..., 0]
    if images.ndim != 4 or masks.ndim != 3:
        raise UNetDemoError(
            "make_dataset expects images (N, H, W, C) and masks (N, H, W). Received: images "
            f"{images.shape}, masks {masks.shape}."
        )
    if images.shape[:3] != masks.shape:
        raise UNetDemoError(
            f"Images {images.shape[:3]} and masks {masks.shape} differ in count or size; "
            "every image needs a mask of the same height and width."
        )
    if len(images) == 0:
        raise UNetDemoError("make_dataset got no images; add at least one image/mask pair.")
    if num_classes < 1:
        raise UNetDemoError(f"num_classes must be >= 1. Received: {num_classes!r}.")
    top = int(masks.max())
    allowed = 2 if num_classes == 1 else num_classes
    if masks.min() < 0 or top >= allowed:
        raise UNetDemoError(
            f"Masks hold labels {int(masks.min())}..{top} but num_classes={num_classes} allows "
            f"0..{allowed - 1}. Convert 0/255 masks to 0/1 or set num_classes correctly."
        )
    return images.astype(np.float32, copy=False), masks.astype(np.uint8, copy=False)


def _augment_op(augment: AugmentFn, image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor):
    """Run a numpy augmentation on one pair, seeded per element and epoch."""

    def run(image_np, mask_np, seed_np):
        rng = np.random.default_rng(int(seed_np) & 0xFFFFFFFFFFFFFFFF)
        new_image, new_mask = augment(image_np, mask_np, rng)
        new_image = np.asarray(new_image, dtype=np.float32)
        new_mask = np.asarray(new_mask)
        if new_image.shape != image_np.shape or new_mask.shape != mask_np.shape:
            raise UNetDemoError(
                "The augmentation changed the array shapes: image "
                f"{image_np.shape}->{new_image.shape}, mask {mask_np.shape}->{new_mask.shape}. "
                "Augmentations must keep the size (crop then resize back)."
            )
        return new_image, new_mask.astype(np.uint8)

    new_image, new_mask = tf.numpy_function(
        run, [image, mask, seed], [tf.float32, tf.uint8], stateful=False
    )
    new_image.set_shape(image.shape)
    new_mask.set_shape(mask.shape)
    return new_image, new_mask


def make_dataset(
    images: np.ndarray,
    masks: np.ndarray,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    augment: AugmentFn | None = None,
    cache: bool = True,
    num_classes: int = 1,
    drop_remainder: bool = False,
    one_hot: bool = False,
) -> tf.data.Dataset:
    """Build a batched tf.data pipeline of (image, mask) pairs.

    Order of operations: from_tensor_slices -> cache -> shuffle (seeded, reshuffled every
    epoch, identical epoch sequence for the same seed) -> augment (numpy, image and mask
    together; a fresh deterministic seed per element and epoch, so augmented views change
    every epoch but the run is reproducible) -> mask encoding -> batch -> prefetch.

    Args:
        images: float32 (N, H, W, C) (or (N, H, W), a channel axis is added).
        masks: integer labels (N, H, W) (or (N, H, W, 1)), 0..num_classes-1 (0/1 if binary).
        batch_size: pairs per batch.
        shuffle: shuffle every epoch (training) or keep the order (validation/test).
        seed: seed for the shuffle order and the augmentation draws.
        augment: optional `(image, mask, rng) -> (image, mask)` applied to both together.
        cache: cache the decoded pairs in memory (before shuffling and augmentation).
        num_classes: 1 for binary masks, K > 1 for multi-class.
        drop_remainder: drop a last incomplete batch.
        one_hot: multi-class only: masks as one-hot float32 (H, W, K) instead of int32 (H, W).

    Example:
        >>> ds = make_dataset(np.zeros((3, 16, 16, 1), np.float32), np.zeros((3, 16, 16)),
        ...                   batch_size=2, shuffle=False, seed=0, num_classes=3)
        >>> next(iter(ds))[1].dtype
        tf.int32
    """
    if batch_size < 1:
        raise UNetDemoError(f"batch_size must be >= 1. Received: {batch_size!r}.")
    images, masks = _check_arrays(images, masks, num_classes)
    dataset = tf.data.Dataset.from_tensor_slices((images, masks))
    if cache:
        dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if augment is not None:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip((dataset, seeds)).map(
            lambda pair, element_seed: _augment_op(augment, pair[0], pair[1], element_seed),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    def encode(image: tf.Tensor, mask: tf.Tensor):
        if num_classes == 1:
            return image, tf.cast(mask, tf.float32)[..., None]
        if one_hot:
            return image, tf.one_hot(tf.cast(mask, tf.int32), num_classes, dtype=tf.float32)
        return image, tf.cast(mask, tf.int32)

    dataset = dataset.map(encode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)
