"""tf.data pipeline: shapes, dtypes, seeded shuffling and seeded augmentation."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from unet_demo.data.pipeline import make_dataset  # noqa: E402
from unet_demo.errors import UNetDemoError  # noqa: E402

N, H, W = 10, 16, 16


def _arrays(num_classes: int = 1):
    rng = np.random.default_rng(0)
    images = np.stack([np.full((H, W, 1), i, np.float32) for i in range(N)])
    masks = rng.integers(0, max(2, num_classes), (N, H, W)).astype(np.uint8)
    return images, masks


def _epoch_ids(dataset) -> list[int]:
    return [int(v) for images, _ in dataset for v in images[:, 0, 0, 0].numpy()]


def test_binary_batches_shapes_and_dtypes():
    images, masks = _arrays()
    dataset = make_dataset(images, masks, batch_size=4, shuffle=False, seed=0)
    batches = list(dataset)
    assert [int(b[0].shape[0]) for b in batches] == [4, 4, 2]
    image, mask = batches[0]
    assert image.dtype == tf.float32 and tuple(image.shape) == (4, H, W, 1)
    assert mask.dtype == tf.float32 and tuple(mask.shape) == (4, H, W, 1)
    np.testing.assert_array_equal(mask.numpy()[..., 0], masks[:4])
    assert _epoch_ids(dataset) == list(range(N))


def test_drop_remainder_and_multiclass_sparse_and_one_hot():
    images, masks = _arrays(num_classes=3)
    sparse = make_dataset(
        images, masks, batch_size=4, shuffle=False, seed=0, num_classes=3, drop_remainder=True
    )
    batches = list(sparse)
    assert len(batches) == 2
    assert batches[0][1].dtype == tf.int32 and tuple(batches[0][1].shape) == (4, H, W)
    one_hot = make_dataset(
        images, masks, batch_size=4, shuffle=False, seed=0, num_classes=3, one_hot=True
    )
    mask = next(iter(one_hot))[1].numpy()
    assert mask.shape == (4, H, W, 3) and mask.dtype == np.float32
    np.testing.assert_array_equal(mask.argmax(-1), masks[:4])


def test_shuffle_is_seeded_and_reshuffles_each_epoch():
    images, masks = _arrays()
    first = make_dataset(images, masks, batch_size=3, shuffle=True, seed=7)
    second = make_dataset(images, masks, batch_size=3, shuffle=True, seed=7)
    other = make_dataset(images, masks, batch_size=3, shuffle=True, seed=8)
    epochs_first = [_epoch_ids(first) for _ in range(3)]
    epochs_second = [_epoch_ids(second) for _ in range(3)]
    assert epochs_first == epochs_second
    assert sorted(epochs_first[0]) == list(range(N))
    assert epochs_first[0] != epochs_first[1] or epochs_first[1] != epochs_first[2]
    assert [_epoch_ids(other) for _ in range(3)] != epochs_first


def _shift_augment(image, mask, rng):
    """Roll image and mask by the same random offset (keeps them aligned)."""
    shift = int(rng.integers(1, W))
    return np.roll(image, shift, axis=1), np.roll(mask, shift, axis=1)


def test_augmentation_moves_image_and_mask_together_seeded_per_epoch():
    rng = np.random.default_rng(1)
    images = rng.random((4, H, W, 1)).astype(np.float32)
    masks = (images[..., 0] > 0.5).astype(np.uint8)
    dataset = make_dataset(
        images, masks, batch_size=4, shuffle=False, seed=3, augment=_shift_augment
    )
    epoch1 = next(iter(dataset))
    epoch2 = next(iter(dataset))
    for image, mask in (epoch1, epoch2):
        np.testing.assert_array_equal((image.numpy()[..., 0] > 0.5), mask.numpy()[..., 0] > 0)
    assert not np.array_equal(epoch1[0].numpy(), epoch2[0].numpy())
    again = make_dataset(images, masks, batch_size=4, shuffle=False, seed=3, augment=_shift_augment)
    np.testing.assert_array_equal(next(iter(again))[0].numpy(), epoch1[0].numpy())
    np.testing.assert_array_equal(next(iter(again))[0].numpy(), epoch2[0].numpy())


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
        make_dataset(images, masks, batch_size=2, shuffle=False, seed=0, num_classes=num_classes)
