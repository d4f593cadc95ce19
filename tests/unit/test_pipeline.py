"""tf.data pipeline: shapes, dtypes, seeded shuffling per epoch, seeded augmentation, resume."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from unet_demo.augment import make_augment_fn  # noqa: E402
from unet_demo.config import AugmentConfig  # noqa: E402
from unet_demo.data.pipeline import (  # noqa: E402
    epoch_order,
    steps_per_epoch,
    training_dataset,
    validation_dataset,
)
from unet_demo.errors import UNetDemoError  # noqa: E402

N, H, W = 10, 16, 16


def _arrays(num_classes: int = 1):
    rng = np.random.default_rng(0)
    images = np.stack([np.full((H, W, 1), i, np.float32) for i in range(N)])
    masks = rng.integers(0, max(2, num_classes), (N, H, W)).astype(np.uint8)
    return images, masks


def _epoch_ids(dataset) -> list[int]:
    return [int(v) for images, _ in dataset for v in images[:, 0, 0, 0].numpy()]


def _per_epoch(ids: list[int], per_epoch: int) -> list[list[int]]:
    return [ids[i:i + per_epoch] for i in range(0, len(ids), per_epoch)]


def test_binary_batches_shapes_and_dtypes():
    images, masks = _arrays()
    dataset = validation_dataset(images, masks, batch_size=4)
    batches = list(dataset)
    assert [int(b[0].shape[0]) for b in batches] == [4, 4, 2]
    image, mask = batches[0]
    assert image.dtype == tf.float32 and tuple(image.shape) == (4, H, W, 1)
    assert mask.dtype == tf.float32 and tuple(mask.shape) == (4, H, W, 1)
    np.testing.assert_array_equal(mask.numpy()[..., 0], masks[:4])
    assert _epoch_ids(dataset) == list(range(N))
    # Training batches have the same form, and each mask still belongs to its image.
    for image, mask in training_dataset(images, masks, batch_size=4, seed=0, epochs=1):
        assert image.dtype == tf.float32 and tuple(image.shape) == (4, H, W, 1)
        assert mask.dtype == tf.float32 and tuple(mask.shape) == (4, H, W, 1)
        ids = image.numpy()[:, 0, 0, 0].astype(int)
        np.testing.assert_array_equal(mask.numpy()[..., 0], masks[ids])


def test_drop_remainder_and_multiclass_sparse_and_one_hot():
    images, masks = _arrays(num_classes=3)
    sparse = training_dataset(images, masks, batch_size=4, seed=0, epochs=1, num_classes=3)
    batches = list(sparse)
    assert len(batches) == 2 == steps_per_epoch(N, 4)  # full batches only: one XLA shape
    assert batches[0][1].dtype == tf.int32 and tuple(batches[0][1].shape) == (4, H, W)
    one_hot = validation_dataset(images, masks, batch_size=4, num_classes=3, one_hot=True)
    mask = next(iter(one_hot))[1].numpy()
    assert mask.shape == (4, H, W, 3) and mask.dtype == np.float32
    np.testing.assert_array_equal(mask.argmax(-1), masks[:4])


def test_shuffle_is_seeded_and_reshuffles_each_epoch():
    images, masks = _arrays()
    first = training_dataset(images, masks, batch_size=5, seed=7, epochs=3)
    second = training_dataset(images, masks, batch_size=5, seed=7, epochs=3)
    other = training_dataset(images, masks, batch_size=5, seed=8, epochs=3)
    epochs_first = _per_epoch(_epoch_ids(first), N)
    epochs_second = _per_epoch(_epoch_ids(second), N)
    assert len(epochs_first) == 3
    assert epochs_first == epochs_second
    assert sorted(epochs_first[0]) == list(range(N))
    assert epochs_first[0] != epochs_first[1] or epochs_first[1] != epochs_first[2]
    assert _per_epoch(_epoch_ids(other), N) != epochs_first
    assert epochs_first == [epoch_order(7, e, N).tolist() for e in range(3)]
    # A resumed run (start_epoch=1) sees the same epochs 1 and 2 as an uninterrupted one.
    resumed = training_dataset(images, masks, batch_size=5, seed=7, epochs=3, start_epoch=1)
    assert _per_epoch(_epoch_ids(resumed), N) == epochs_first[1:]


def test_leftover_images_are_dropped_per_epoch_not_carried_over():
    images, masks = _arrays()
    ids = _per_epoch(_epoch_ids(training_dataset(images, masks, batch_size=3, seed=7,
                                                 epochs=2)), 9)
    assert [len(epoch) for epoch in ids] == [9, 9]
    assert ids == [epoch_order(7, e, N)[:9].tolist() for e in range(2)]


def _shift_augment(image, mask, seed):
    """Roll image and mask by the same random offset (keeps them aligned)."""
    shift = int(np.random.default_rng(seed).integers(1, W))
    return np.roll(image, shift, axis=1), np.roll(mask, shift, axis=1)


def _in_index_order(batch, seed, epoch):
    """A batch's images put back in index order (one full-size batch per epoch)."""
    return batch[0].numpy()[np.argsort(epoch_order(seed, epoch, len(batch[0])))]


def test_augmentation_moves_image_and_mask_together_seeded_per_epoch():
    rng = np.random.default_rng(1)
    images = rng.random((4, H, W, 1)).astype(np.float32)
    masks = (images[..., 0] > 0.5).astype(np.uint8)
    dataset = training_dataset(images, masks, batch_size=4, seed=3, epochs=2,
                               augment=_shift_augment)
    epoch1, epoch2 = list(dataset)
    for image, mask in (epoch1, epoch2):
        np.testing.assert_array_equal((image.numpy()[..., 0] > 0.5), mask.numpy()[..., 0] > 0)
    # Same image, another epoch: another augmented view.
    assert not np.array_equal(_in_index_order(epoch1, 3, 0), _in_index_order(epoch2, 3, 1))
    again = training_dataset(images, masks, batch_size=4, seed=3, epochs=2,
                             augment=_shift_augment)
    again1, again2 = list(again)
    np.testing.assert_array_equal(again1[0].numpy(), epoch1[0].numpy())
    np.testing.assert_array_equal(again2[0].numpy(), epoch2[0].numpy())
    resumed = training_dataset(images, masks, batch_size=4, seed=3, epochs=2, start_epoch=1,
                               augment=_shift_augment)
    np.testing.assert_array_equal(next(iter(resumed))[0].numpy(), epoch2[0].numpy())


def test_albumentations_adapter_in_the_pipeline_is_reproducible():
    rng = np.random.default_rng(2)
    images = rng.random((8, H, W, 1)).astype(np.float32)
    masks = (images[..., 0] > 0.5).astype(np.uint8)
    cfg = AugmentConfig(hflip_p=0.5, rotate_p=0.5, brightness_contrast_p=0.5, seed=0)
    runs = [list(training_dataset(images, masks, batch_size=2, seed=5, epochs=2,
                                  augment=make_augment_fn(cfg))) for _ in range(2)]
    for (x_a, y_a), (x_b, y_b) in zip(*runs, strict=True):
        np.testing.assert_array_equal(x_a.numpy(), x_b.numpy())
        np.testing.assert_array_equal(y_a.numpy(), y_b.numpy())


def test_an_augmentation_that_changes_the_size_is_refused():
    images, masks = _arrays()
    dataset = training_dataset(images, masks, batch_size=2, seed=0, epochs=1,
                               augment=lambda image, mask, seed: (image[1:], mask[1:]))
    with pytest.raises(Exception, match="keep the size"):
        list(dataset)


@pytest.mark.parametrize(
    ("images", "masks", "num_classes", "fragment"),
    [
        (np.zeros((3, 8, 8, 1)), np.zeros((2, 8, 8)), 1, "differ"),
        (np.zeros((3, 8, 8, 1)), np.full((3, 8, 8), 255), 1, "0/255"),
        (np.zeros((3, 8, 8, 1)), np.full((3, 8, 8), 3), 3, "num_classes=3"),
        (np.zeros((0, 8, 8, 1)), np.zeros((0, 8, 8)), 1, "no images"),
    ],
)
def test_bad_inputs_raise_clear_errors(images, masks, num_classes, fragment):
    with pytest.raises(UNetDemoError, match=fragment):
        training_dataset(images, masks, batch_size=2, seed=0, epochs=1, num_classes=num_classes)
    with pytest.raises(UNetDemoError, match=fragment):
        validation_dataset(images, masks, batch_size=2, num_classes=num_classes)


def test_batch_larger_than_the_training_set_is_refused():
    images, masks = _arrays()
    with pytest.raises(UNetDemoError, match="batch size"):
        training_dataset(images, masks, batch_size=N + 1, seed=0, epochs=1)


def test_soft_mask_targets_reach_the_loss_as_they_are_even_when_augmented():
    images, _ = _arrays()
    soft = np.linspace(0, 1, N * H * W, dtype=np.float32).reshape(N, H, W)
    augment = make_augment_fn(AugmentConfig(hflip_p=1.0))
    batches = list(training_dataset(images, soft, batch_size=5, seed=0, epochs=1,
                                    augment=augment, soft_masks=True))
    targets = np.concatenate([np.asarray(y) for _, y in batches])[..., 0]
    # Flipped, not truncated to 0/1 labels: the same multiset of fractional values.
    assert targets.dtype == np.float32 and ((targets > 0) & (targets < 1)).mean() > 0.9
    np.testing.assert_allclose(np.sort(targets.ravel()), np.sort(soft.ravel()), atol=1e-6)
    val = np.concatenate([np.asarray(y) for _, y in
                          validation_dataset(images, soft, batch_size=4, soft_masks=True)])
    np.testing.assert_allclose(val[..., 0], soft)


def test_soft_mask_targets_are_refused_outside_zero_one_and_for_several_classes():
    images, _ = _arrays()
    with pytest.raises(UNetDemoError, match=r"\[0, 1\]"):
        validation_dataset(images, np.full((N, H, W), 2.0), batch_size=4, soft_masks=True)
    with pytest.raises(UNetDemoError, match="binary tasks only"):
        validation_dataset(images, np.zeros((N, H, W)), batch_size=4, num_classes=3,
                           soft_masks=True)


def test_the_guides_mask_loader_on_a_bundled_split():
    from unet_demo.config import DataConfig
    from unet_demo.data.sources import mask_targets, prepare_split

    data = DataConfig(dataset="brain_skullstrip", image_size=64, max_train_images=4)
    labels = prepare_split(data, "train", seed=42)[1]
    assert mask_targets(data, "train", seed=42) is None  # nearest: the labels are the targets
    soft = mask_targets(data.replace(mask_resize="bilinear"), "train", seed=42)
    tiny = mask_targets(data.replace(mask_resize="bilinear_div255"), "train", seed=42)
    assert soft.shape == labels.shape
    # 0/255 masks: the interior keeps label 1, the edges get fractions, Dice with the labels
    # stays high; 0/1 masks divided by 255: every target is below 1/255.
    inside = soft[(soft > 0.99)]
    assert inside.size and ((soft > 0.01) & (soft < 0.99)).sum() > 0
    overlap = 2 * np.sum(soft * labels) / (soft.sum() + labels.sum())
    assert overlap > 0.9
    assert tiny.max() <= 1 / 255 + 1e-7 and np.allclose(tiny * 255, soft, atol=1e-5)
    with pytest.raises(UNetDemoError, match="several classes"):
        mask_targets(DataConfig(dataset="brain_tissue", image_size=64,
                                mask_resize="bilinear"), "val")


def test_both_pipelines_run_without_the_autotuning_model():
    # With tf.data's tuner on, dropping the iterator after the last epoch of a classroom run
    # waited up to 17 s for the tuner thread (pipeline module docstring); the in-memory
    # pipelines have nothing to tune, so it must stay off, also under augmentation.
    images, masks = _arrays()
    augment = make_augment_fn(AugmentConfig(hflip_p=0.5, seed=0))
    training = training_dataset(images, masks, batch_size=4, seed=0, epochs=1, augment=augment)
    validation = validation_dataset(images, masks, batch_size=4)
    assert training.options().autotune.enabled is False
    assert validation.options().autotune.enabled is False
    assert len(list(training)) == 2 and len(list(validation)) == 3
