"""Post-processing on hand-made masks: each operation does exactly what its name says."""

from __future__ import annotations

import numpy as np
import pytest

from unet_demo.errors import UNetDemoError
from unet_demo.inference.postprocess import (
    apply_op,
    binary_closing,
    binary_opening,
    fill_holes,
    keep_largest_component,
    parse_op,
    postprocess,
    remove_small_objects,
)


def square(size=20, box=(4, 14)):
    mask = np.zeros((size, size), np.uint8)
    mask[box[0]:box[1], box[0]:box[1]] = 1
    return mask


def test_opening_removes_speck_but_keeps_square():
    mask = square()
    mask[0, 19] = 1
    opened = binary_opening(mask.astype(bool), 1)
    assert not opened[0, 19]
    assert opened[5:13, 4:14].all()
    assert opened.sum() == 100 - 4  # a disk of radius 1 is a cross: it rounds the 4 corners


def test_closing_fills_one_pixel_gap_and_keeps_border_object():
    mask = square().astype(bool)
    mask[9, 4:14] = False  # a 1-pixel crack through the square
    closed = binary_closing(mask, 1)
    assert closed[9, 5:13].all()
    edge = np.zeros((10, 10), bool)
    edge[:, :3] = True  # touches the image border
    assert np.array_equal(binary_closing(edge, 2), edge)


def test_largest_component_and_remove_small():
    mask = square().astype(bool)
    mask[0:2, 0:2] = True  # 4-pixel blob
    assert keep_largest_component(mask).sum() == 100
    assert remove_small_objects(mask, 4).sum() == 100
    assert remove_small_objects(mask, 3).sum() == 104
    assert not keep_largest_component(np.zeros((4, 4), bool)).any()


def test_fill_holes():
    mask = square().astype(bool)
    mask[8:10, 8:10] = False
    assert fill_holes(mask)[8:10, 8:10].all()


def test_multiclass_ops_run_per_class():
    labels = np.zeros((12, 12), np.uint8)
    labels[1:5, 1:5] = 1
    labels[7:11, 7:11] = 2
    labels[0, 11] = 2  # a speck of class 2 far from its blob
    labels[3, 3] = 0  # a hole in class 1
    result = postprocess(labels, ["fill_holes", "largest_component"])
    assert result[3, 3] == 1
    assert result[0, 11] == 0
    assert (result == 2).sum() == 16
    assert (result == 1).sum() == 16


def test_postprocess_order_and_batch():
    mask = square()
    mask[0, 0] = 1
    batch = np.stack([mask, mask])
    out = postprocess(batch, ["remove_small:2"])
    assert out.shape == (2, 20, 20)
    assert out[:, 0, 0].sum() == 0
    assert np.array_equal(postprocess(mask, []), mask)


def test_closing_does_not_steal_pixels_of_other_class():
    labels = np.zeros((10, 10), np.uint8)
    labels[:, :5] = 1
    labels[:, 5:] = 2
    assert np.array_equal(apply_op(labels, "closing:2"), labels)


@pytest.mark.parametrize("bad", ["erode", "opening:x", "fill_holes:3", "opening:-1"])
def test_bad_ops_raise_clear_error(bad):
    with pytest.raises(UNetDemoError):
        postprocess(square(), [bad])


def test_parse_op_defaults():
    assert parse_op("opening") == ("opening", 1)
    assert parse_op("remove_small:7") == ("remove_small", 7)


def test_float_mask_is_refused():
    with pytest.raises(UNetDemoError, match="integer label mask"):
        postprocess(np.zeros((4, 4), np.float32), ["fill_holes"])
