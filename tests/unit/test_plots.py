"""Plots: overlays tint the right pixels, outlines trace boundaries, figures carry the data."""

from __future__ import annotations

import numpy as np
import pytest

from unet_demo.config import VARIANTS, UNetConfig
from unet_demo.plots.data import (
    class_balance_figure,
    intensity_histogram_figure,
    split_sizes_figure,
)
from unet_demo.plots.images import (
    class_colours,
    draw_outline,
    hex_to_rgb,
    image_grid,
    mask_outline,
    overlay_rgb,
    to_display_rgb,
)
from unet_demo.plots.models import (
    MISMATCH_COLOUR,
    TEXT_COLOUR,
    first_mismatch,
    level_shapes,
    unet_diagram,
)
from unet_demo.plots.training import training_curves_figure


def _square_mask(size: int = 16) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[4:12, 4:12] = 1
    return mask


def test_overlay_tints_only_labelled_pixels_with_their_class_colour():
    image = np.full((16, 16, 1), 0.5, np.float32)
    mask = np.zeros((16, 16), np.uint8)
    mask[:4] = 1
    mask[-4:] = 2
    rgb = overlay_rgb(image, mask, num_classes=3, opacity=1.0)
    assert rgb.dtype == np.uint8 and rgb.shape == (16, 16, 3)
    palette = class_colours(3)
    assert tuple(rgb[0, 0]) == hex_to_rgb(palette[1])
    assert tuple(rgb[-1, 0]) == hex_to_rgb(palette[2])
    assert tuple(rgb[8, 8]) == (128, 128, 128)


def test_overlay_opacity_zero_shows_the_image_and_custom_colours_apply():
    image = np.random.default_rng(0).random((8, 8), dtype=np.float32)
    mask = np.ones((8, 8), np.uint8)
    np.testing.assert_array_equal(overlay_rgb(image, mask, 2, opacity=0.0), to_display_rgb(image))
    custom = overlay_rgb(image, mask, 2, opacity=1.0, colours=["#000000", "#ff0000"])
    assert tuple(custom[0, 0]) == (255, 0, 0)


def test_overlay_refuses_mismatched_sizes():
    with pytest.raises(ValueError, match="differ"):
        overlay_rgb(np.zeros((8, 8)), np.zeros((4, 4), np.uint8), 2)


def test_display_rgb_scales_out_of_range_images():
    rgb = to_display_rgb(np.array([[-1.0, 3.0]], np.float32))
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 1].tolist() == [255, 255, 255]


def test_outline_is_the_boundary_ring_of_a_square():
    outline = mask_outline(_square_mask())
    ring = np.zeros((16, 16), bool)
    ring[4:12, 4:12] = True
    ring[5:11, 5:11] = False
    np.testing.assert_array_equal(outline, ring)
    assert mask_outline(_square_mask(), thickness=2).sum() > outline.sum()
    assert not mask_outline(np.zeros((8, 8), np.uint8)).any()


def test_draw_outline_paints_only_the_outline():
    rgb = np.zeros((16, 16, 3), np.uint8)
    drawn = draw_outline(rgb, _square_mask(), colour="#00ff00")
    painted = (drawn == [0, 255, 0]).all(axis=-1)
    np.testing.assert_array_equal(painted, mask_outline(_square_mask()))
    assert not rgb.any(), "the input must not be modified"


def test_image_grid_places_tiles_in_rows():
    tiles = [np.full((4, 4, 3), value, np.uint8) for value in (10, 20, 30, 40, 50)]
    grid = image_grid(tiles, columns=3, gap=2)
    assert grid.shape == (4 * 2 + 2, 4 * 3 + 2 * 2, 3)
    assert grid[0, 6, 0] == 20 and grid[6, 0, 0] == 40 and grid[6, 12, 0] == 255


def test_class_balance_figure_reports_percentages():
    figure = class_balance_figure({"train": [0.9, 0.1], "test": [0.8, 0.2]}, ["bg", "lesion"])
    lesion = next(t for t in figure.data if t.name == "lesion")
    assert list(lesion.x) == pytest.approx([10.0, 20.0])


def test_intensity_histogram_separates_classes():
    images = np.zeros((1, 16, 16, 1), np.float32)
    mask = _square_mask()[None]
    images[0, mask[0] == 1] = 0.95
    figure = intensity_histogram_figure(images, mask, ["background", "object"], bins=10)
    assert [t.name.split(" ")[0] for t in figure.data] == ["background", "object"]
    background, foreground = figure.data
    assert np.argmax(background.y) == 0 and np.argmax(foreground.y) == 9
    assert sum(foreground.y) == pytest.approx(1.0)


def test_split_sizes_figure():
    assert list(split_sizes_figure({"train": 7, "val": 2}).data[0].y) == [7, 2]


@pytest.mark.parametrize("depth", [1, 3, 5])
def test_level_shapes_halve_the_size_and_grow_the_filters(depth):
    cfg = UNetConfig(input_height=128, input_width=96, depth=depth, base_filters=8)
    shapes = level_shapes(cfg)
    assert len(shapes) == depth + 1
    assert [s["height"] for s in shapes] == [128 // 2**i for i in range(depth + 1)]
    assert [s["width"] for s in shapes] == [96 // 2**i for i in range(depth + 1)]
    assert [s["channels"] for s in shapes] == list(cfg.level_filters())


@pytest.mark.parametrize("variant", VARIANTS)
def test_unet_diagram_labels_every_level_and_marks_the_variant(variant):
    depth = 5 if variant == "pretrained" else 3
    cfg = UNetConfig(variant=variant, depth=depth, input_height=64, input_width=64,
                     input_depth=32)
    figure = unet_diagram(cfg)
    texts = " ".join(a.text or "" for a in figure.layout.annotations)
    for level in level_shapes(cfg):
        assert f"{level['height']}×{level['width']}" in texts
    assert figure.layout.title.text
    if variant == "attention":
        assert texts.count("AG") == depth
    if variant == "residual":
        assert texts.count("<b>+</b>") == 2 * depth + 1
    if variant == "unetpp":
        nested = [s for s in figure.layout.shapes if s.fillcolor == "#f0e442"]
        assert len(nested) == depth * (depth - 1) // 2
    if variant == "unet3d":
        assert "32×64×64" in texts


def test_unet_diagram_uses_given_levels():
    levels = [{"height": 32, "width": 32, "channels": 7}, {"height": 16, "width": 16, "channels": 9}]
    texts = " ".join(a.text or "" for a in unet_diagram(UNetConfig(depth=1), levels).layout.annotations)
    assert "32×32×7" in texts and "16×16×9" in texts


def test_training_curves_have_one_point_per_epoch():
    rows = [{"epoch": e, "loss": 1 / e, "val_loss": 1.2 / e, "dice": 0.1 * e,
             "val_dice": 0.09 * e, "lr": 1e-3} for e in (1, 2, 3, 4)]
    figure = training_curves_figure(rows)
    assert all(len(trace.x) == 4 for trace in figure.data)


def test_level_shapes_floor_down_and_double_up_for_an_uneven_size():
    levels = level_shapes(UNetConfig(input_height=100, input_width=96, depth=3))
    assert [lvl["height"] for lvl in levels] == [100, 50, 25, 12]
    assert [lvl["up_height"] for lvl in levels[:-1]] == [96, 48, 24]
    assert first_mismatch(levels) == 2
    assert first_mismatch(level_shapes(UNetConfig(input_height=96, depth=3))) is None


def test_invalid_size_diagram_shows_24_against_25_in_red():
    figure = unet_diagram(UNetConfig(input_height=100, input_width=96, depth=3))
    texts = " ".join(a.text or "" for a in figure.layout.annotations)
    assert "up-sampled 24×24<br>≠ skip 25×24" in texts and "concatenation<br>fails" in texts
    decoder_labels = [a.text for a in figure.layout.annotations if a.name in ("mismatch", "not built")]
    assert len(decoder_labels) == 3  # level 2 fails, levels 1 and 0 are never built
    red = [s for s in figure.layout.shapes if s.name == "mismatch"]
    assert len(red) == 1 and red[0].line.color == MISMATCH_COLOUR
    assert [a.font.color for a in figure.layout.annotations if a.name == "mismatch"] == [
        MISMATCH_COLOUR]
    # the mirrored (wrong) decoder label 25×24×64 is not drawn on the decoder side
    assert texts.count("25×24×64") == 1


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_unetpp_nested_nodes_get_an_up_connection_each(depth):
    figure = unet_diagram(UNetConfig(variant="unetpp", depth=depth, input_height=64,
                                     input_width=64))
    names = [a.name for a in figure.layout.annotations]
    assert names.count("nested up-sample") == depth * (depth - 1) // 2
    assert names.count("up-sample") == depth


@pytest.mark.parametrize("variant", VARIANTS)
def test_diagram_text_is_large_and_dark_for_projectors(variant):
    depth = 5 if variant == "pretrained" else 3
    figure = unet_diagram(UNetConfig(variant=variant, depth=depth, input_height=64,
                                     input_width=64, input_depth=32))
    assert figure.layout.font.size >= 14 and figure.layout.font.color == TEXT_COLOUR
    assert figure.layout.legend.font.size >= 14 and figure.layout.title.font.size >= 14
    for note in figure.layout.annotations:
        if note.text:
            assert note.font.size >= 14, note.text
            assert note.font.color in (TEXT_COLOUR, MISMATCH_COLOUR, "#fff"), note.text
