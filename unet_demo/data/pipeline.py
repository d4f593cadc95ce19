"""The one tf.data input pipeline: seeded per-epoch shuffle, per-image augmentation, batches.

This module imports TensorFlow; import it lazily (inside functions that train), never from
``unet_demo/data/__init__.py`` or the home page.

Two builders, one set of rules:

* `training_dataset`: the batches of epochs ``start_epoch``..``epochs - 1`` in one stream. Each
  epoch is its own shuffled pass whose order depends only on (seed, epoch) (`epoch_order`);
  batches never straddle two epochs and are always full (one batch shape means one XLA
  compilation; the few images left over land in other batches of later epochs, whose order
  differs). Each image's augmentation draws come from its own seed (seed, epoch, index)
  (`element_seed`), so the batches do not depend on thread scheduling and a run resumed at
  epoch k sees the same batches as an uninterrupted run.
* `validation_dataset`: fixed order, never augmented, cached after the first pass.

Both switch tf.data's autotuning model off (`without_autotune`): the data are tensors in memory,
so there is nothing to tune, and with it on, dropping the iterator at the end of ``model.fit``
often waited for the tuner's background thread: idle time after the last epoch of a classroom
run of 0.5, 9.5 and 12.9 s in three runs out of five (up to 17 s seen) on the 2-core AMD EPYC,
none in five runs with it off.

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
    >>> ds = training_dataset(images, masks, batch_size=4, seed=0, epochs=2)
    >>> [tuple(x.shape) for x in next(iter(ds))]
    [(4, 32, 32, 1), (4, 32, 32, 1)]
    >>> len(list(ds))  # two full batches per epoch, two epochs
    4
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from unet_demo.errors import UNetDemoError

AugmentFn = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]
"""(image float32 HxWxC, mask uint8 HxW, seed) -> (image, mask), same shapes; one seed, one
result. `unet_demo.augment.make_augment_fn` builds one from an `AugmentConfig`."""


def check_arrays(images: np.ndarray, masks: np.ndarray, num_classes: int, *,
                 soft_masks: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Validated float32 (N, H, W, C) images and uint8 (N, H, W) masks for the pipeline.

    Args:
        images: (N, H, W, C) or (N, H, W) (a channel axis is added).
        masks: integer labels (N, H, W) or (N, H, W, 1), 0..num_classes-1 (0/1 if binary).
        num_classes: 1 for binary masks, K > 1 for multi-class.
        soft_masks: binary only: masks are float targets in [0, 1] (kept as float32), e.g. the
            bilinear-resized masks of the Lessons page's mask-resizing experiment.

    Raises:
        UNetDemoError: shapes disagree, no images, or labels outside what num_classes allows.

    Example:
        >>> images, masks = check_arrays(np.zeros((2, 8, 8)), np.ones((2, 8, 8, 1)), 1)
        >>> images.shape, masks.shape, masks.dtype
        ((2, 8, 8, 1), (2, 8, 8), dtype('uint8'))
        >>> check_arrays(np.zeros((1, 2, 2)), np.full((1, 2, 2), 0.25), 1, soft_masks=True)[1].dtype
        dtype('float32')
    """
    images = np.asarray(images)
    masks = np.asarray(masks)
    if images.ndim == 3:
        images = images[..., None]
    if masks.ndim == images.ndim and masks.shape[-1] == 1:
        masks = masks[..., 0]
    if images.ndim not in (4, 5) or masks.ndim != images.ndim - 1:
        raise UNetDemoError(
            "The input pipeline expects images (N, H, W, C) and masks (N, H, W), or volumes "
            f"(N, D, H, W, C) and (N, D, H, W). Received: images {images.shape}, masks "
            f"{masks.shape}."
        )
    if images.shape[:-1] != masks.shape:
        raise UNetDemoError(
            f"Images {images.shape[:3]} and masks {masks.shape} differ in count or size; "
            "every image needs a mask of the same height and width."
        )
    if len(images) == 0:
        raise UNetDemoError("The input pipeline got no images; add at least one image/mask pair.")
    if num_classes < 1:
        raise UNetDemoError(f"num_classes must be >= 1. Received: {num_classes!r}.")
    if soft_masks:
        if num_classes != 1:
            raise UNetDemoError("Soft (fractional) mask targets work for binary tasks only "
                                f"(num_classes=1). Received: num_classes={num_classes}.")
        if masks.min() < 0 or masks.max() > 1:
            raise UNetDemoError(f"Soft mask targets must lie in [0, 1]. Received values "
                                f"{float(masks.min()):g}..{float(masks.max()):g}.")
        return images.astype(np.float32, copy=False), masks.astype(np.float32, copy=False)
    top = int(masks.max())
    allowed = 2 if num_classes == 1 else num_classes
    if masks.min() < 0 or top >= allowed:
        raise UNetDemoError(
            f"Masks hold labels {int(masks.min())}..{top} but num_classes={num_classes} allows "
            f"0..{allowed - 1}. Convert 0/255 masks to 0/1 or set num_classes correctly."
        )
    return images.astype(np.float32, copy=False), masks.astype(np.uint8, copy=False)


def steps_per_epoch(count: int, batch_size: int) -> int:
    """Full training batches per epoch (the remainder is dropped; see the module docstring).

    Args:
        count: training images.
        batch_size: images per batch.

    Raises:
        UNetDemoError: batch_size < 1 or larger than count (an epoch would have no batch).

    Example:
        >>> steps_per_epoch(10, 4)
        2
    """
    if batch_size < 1:
        raise UNetDemoError(f"batch_size must be >= 1. Received: {batch_size!r}.")
    if count < batch_size:
        raise UNetDemoError(
            f"The batch size ({batch_size}) is larger than the {count} training images; lower "
            "the batch size or add images.")
    return count // batch_size


def element_seed(seed: int, epoch: int, index: int) -> int:
    """Augmentation seed of one image in one epoch (independent of batch and thread order).

    Args:
        seed: the run's seed.
        epoch: 0-based epoch.
        index: the image's index in the training arrays.

    Example:
        >>> element_seed(0, 1, 2) == element_seed(0, 1, 2) != element_seed(0, 2, 2)
        True
    """
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


def epoch_order(seed: int, epoch: int, count: int) -> np.ndarray:
    """Shuffled image order of one epoch: depends only on (seed, epoch).

    Args:
        seed: the run's seed.
        epoch: 0-based epoch.
        count: training images.

    Example:
        >>> sorted(epoch_order(0, 3, 5).tolist())
        [0, 1, 2, 3, 4]
    """
    return np.random.default_rng([seed, epoch]).permutation(count).astype(np.int64)


def encode_masks(masks: tf.Tensor, num_classes: int, one_hot: bool = False) -> tf.Tensor:
    """uint8 label masks (..., H, W) in the form the losses expect (see the module docstring).

    Args:
        masks: integer label tensor.
        num_classes: 1 for binary, K > 1 for multi-class.
        one_hot: multi-class only: float32 one-hot (..., H, W, K) instead of int32 indices.

    Example:
        >>> encode_masks(tf.zeros((2, 4, 4), tf.uint8), 1).shape
        TensorShape([2, 4, 4, 1])
    """
    if num_classes == 1:
        return tf.cast(masks, tf.float32)[..., None]
    if one_hot:
        return tf.one_hot(tf.cast(masks, tf.int32), num_classes, dtype=tf.float32)
    return tf.cast(masks, tf.int32)


def _augment_batch(augment: AugmentFn, seed: int, epoch, indices, images, masks):
    """Augment one batch in numpy, each pair from its own `element_seed` (tf.numpy_function)."""

    def run(epoch_np, index_np, image_np, mask_np):
        new_images = np.empty_like(image_np)
        new_masks = np.empty_like(mask_np)
        for k, index in enumerate(index_np):
            image, mask = augment(image_np[k], mask_np[k],
                                  element_seed(seed, int(epoch_np), int(index)))
            image, mask = np.asarray(image), np.asarray(mask)
            if image.shape != image_np.shape[1:] or mask.shape != mask_np.shape[1:]:
                raise UNetDemoError(
                    "The augmentation changed the array shapes: image "
                    f"{image_np.shape[1:]}->{image.shape}, mask {mask_np.shape[1:]}->"
                    f"{mask.shape}. Augmentations must keep the size (crop then resize back).")
            new_images[k], new_masks[k] = image, mask
        return new_images, new_masks

    new_images, new_masks = tf.numpy_function(run, [epoch, indices, images, masks],
                                              [tf.float32, masks.dtype], stateful=False)
    return tf.ensure_shape(new_images, images.shape), tf.ensure_shape(new_masks, masks.shape)


def training_dataset(
    images: np.ndarray,
    masks: np.ndarray,
    *,
    batch_size: int,
    seed: int,
    epochs: int,
    start_epoch: int = 0,
    num_classes: int = 1,
    augment: AugmentFn | None = None,
    one_hot: bool = False,
    soft_masks: bool = False,
) -> tf.data.Dataset:
    """Training batches of epochs ``start_epoch``..``epochs - 1``, one stream for ``model.fit``.

    Order of operations per epoch: `epoch_order` -> full batches of indices -> gather ->
    augment (numpy, e.g. albumentations, through ``tf.numpy_function`` on parallel,
    order-keeping map calls; image and mask together, one `element_seed` per image) ->
    `encode_masks` -> prefetch, so the model does not wait for the next batch.

    Args:
        images: float32 (N, H, W, C) (or (N, H, W), a channel axis is added).
        masks: integer labels (N, H, W) (or (N, H, W, 1)), 0..num_classes-1 (0/1 if binary).
        batch_size: pairs per batch (`steps_per_epoch` batches per epoch).
        seed: the run's seed: shuffle orders and augmentation draws.
        epochs: the epoch to stop before (as ``model.fit(epochs=...)``).
        start_epoch: the first epoch (0-based, as ``model.fit(initial_epoch=...)``).
        num_classes: 1 for binary masks, K > 1 for multi-class.
        augment: optional `AugmentFn` applied to each pair, e.g. `augment.make_augment_fn`.
        one_hot: multi-class only: masks as one-hot float32 (H, W, K) instead of int32 (H, W).
        soft_masks: binary only: ``masks`` are float targets in [0, 1] (see `check_arrays`).

    Example:
        >>> ds = training_dataset(np.zeros((5, 8, 8, 1), np.float32), np.zeros((5, 8, 8)),
        ...                       batch_size=2, seed=0, epochs=3, start_epoch=1, num_classes=3)
        >>> len(list(ds)), next(iter(ds))[1].dtype
        (4, tf.int32)
    """
    images, masks = check_arrays(images, masks, num_classes, soft_masks=soft_masks)
    steps_per_epoch(len(images), batch_size)
    epochs_ahead = list(range(start_epoch, epochs))
    orders = np.asarray([epoch_order(seed, e, len(images)) for e in epochs_ahead],
                        np.int64).reshape(len(epochs_ahead), len(images))
    image_table = tf.constant(images)
    mask_table = tf.constant(masks)

    def epoch_batches(epoch, order):
        indices = tf.data.Dataset.from_tensor_slices(order).batch(batch_size,
                                                                  drop_remainder=True)
        return indices.map(lambda idx: (epoch, idx))

    def load(epoch, idx):
        x = tf.gather(image_table, idx)
        y = tf.gather(mask_table, idx)
        if augment is not None:
            x, y = _augment_batch(augment, seed, epoch, idx, x, y)
        return x, encode_masks(y, num_classes, one_hot)

    dataset = tf.data.Dataset.from_tensor_slices(
        (np.asarray(epochs_ahead, np.int64), orders)).flat_map(epoch_batches)
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return without_autotune(dataset.prefetch(tf.data.AUTOTUNE))


def without_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` with tf.data's autotuning model off (see the module docstring for why).

    ``AUTOTUNE`` in ``map`` then means "one call per core" and in ``prefetch`` a buffer that
    grows while the consumer waits, TensorFlow's fixed fallbacks.

    Args:
        dataset: any tf.data pipeline.

    Example:
        >>> ds = without_autotune(tf.data.Dataset.range(3).prefetch(tf.data.AUTOTUNE))
        >>> ds.options().autotune.enabled, [int(v) for v in ds.as_numpy_iterator()]
        (False, [0, 1, 2])
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def validation_batch_size(count: int, train_batch_size: int) -> int:
    """One batch for small validation sets (one shape, one XLA compilation), else 32 or more.

    Example:
        >>> validation_batch_size(20, 8), validation_batch_size(100, 8)
        (20, 32)
    """
    return count if count <= 32 else max(32, train_batch_size)


def validation_dataset(
    images: np.ndarray,
    masks: np.ndarray,
    *,
    batch_size: int,
    num_classes: int = 1,
    one_hot: bool = False,
    soft_masks: bool = False,
) -> tf.data.Dataset:
    """Fixed-order, cached, unaugmented batches (validation and test splits).

    Args:
        images: float32 (N, H, W, C) (or (N, H, W)).
        masks: integer labels (N, H, W) (or (N, H, W, 1)).
        batch_size: pairs per batch (the last batch may be smaller); training runs use
            `validation_batch_size`.
        num_classes: 1 for binary masks, K > 1 for multi-class.
        one_hot: multi-class only: masks as one-hot float32 (H, W, K) instead of int32 (H, W).
        soft_masks: binary only: ``masks`` are float targets in [0, 1] (see `check_arrays`).

    Example:
        >>> ds = validation_dataset(np.zeros((3, 8, 8, 1), np.float32), np.zeros((3, 8, 8)),
        ...                         batch_size=2)
        >>> [int(x.shape[0]) for x, _ in ds]
        [2, 1]
    """
    if batch_size < 1:
        raise UNetDemoError(f"batch_size must be >= 1. Received: {batch_size!r}.")
    images, masks = check_arrays(images, masks, num_classes, soft_masks=soft_masks)
    dataset = tf.data.Dataset.from_tensor_slices((images, masks)).batch(batch_size)
    dataset = dataset.map(lambda x, y: (x, encode_masks(y, num_classes, one_hot)))
    return without_autotune(dataset.cache().prefetch(tf.data.AUTOTUNE))
