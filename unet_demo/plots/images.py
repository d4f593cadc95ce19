"""Figures and overlays for the pages: pure functions, arrays in, figures or RGB arrays out.

Nothing here imports streamlit or TensorFlow. Colours are the Okabe-Ito palette (readable with
colour-vision deficiencies); class 0 (background) is never tinted.

Example:
    >>> import numpy as np
    >>> image = np.zeros((4, 4, 1), np.float32)
    >>> mask = np.eye(4, dtype=np.uint8)
    >>> overlay_rgb(image, mask, num_classes=2, opacity=1.0)[0, 0].tolist()
    [230, 159, 0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from unet_demo.errors import UNetDemoError

CLASS_COLOURS = (
    "#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7", "#999999",
)
"""Foreground colours in class order (class 1 gets the first); background stays untinted."""

OUTLINE_COLOUR = "#ff2a2a"
BACKGROUND_BAR_COLOUR = "#4d4d4d"


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    """Convert "#rrggbb" to an (r, g, b) tuple of 0-255 ints.

    Args:
        colour: a hex colour string.

    Example:
        >>> hex_to_rgb("#ff8000")
        (255, 128, 0)
    """
    text = colour.lstrip("#")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


def class_colours(num_classes: int) -> list[str]:
    """One hex colour per label value; label 0 (background) is dark grey.

    Args:
        num_classes: label count including background (2 for a binary task).

    Example:
        >>> class_colours(3)
        ['#4d4d4d', '#e69f00', '#56b4e9']
    """
    return [BACKGROUND_BAR_COLOUR] + [
        CLASS_COLOURS[i % len(CLASS_COLOURS)] for i in range(max(1, num_classes) - 1)
    ]


def to_display_rgb(image: np.ndarray) -> np.ndarray:
    """Turn an image (HxW, HxWx1, HxWx3 or HxWx4; any range) into uint8 RGB for display.

    Values in [0, 1] are shown as they are; anything else is min-max scaled.

    Args:
        image: the image to show.

    Example:
        >>> to_display_rgb(np.full((2, 2, 1), 0.5, np.float32))[0, 0].tolist()
        [128, 128, 128]
    """
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[-1] >= 3:
        array = array[..., :3]
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 1.0)
    if low < 0.0 or high > 1.0:
        array = (array - low) / (high - low) if high > low else np.zeros_like(array)
    rgb = np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=-1)
    return rgb


def overlay_rgb(
    image: np.ndarray,
    mask: np.ndarray,
    num_classes: int,
    opacity: float = 0.45,
    colours: Sequence[str] | None = None,
) -> np.ndarray:
    """Blend class colours over an image: every labelled pixel is tinted by its class colour.

    Args:
        image: HxW or HxWxC image (see `to_display_rgb`).
        mask: HxW integer labels 0..num_classes-1 (0 = background, never tinted).
        num_classes: label count including background.
        opacity: 0 shows the image only, 1 paints the classes solid.
        colours: hex colour per label value (index 0 unused); default `class_colours`.

    Example:
        >>> img = np.zeros((2, 2), np.float32)
        >>> overlay_rgb(img, np.array([[0, 1], [0, 0]]), 2, opacity=0.5)[0, 1].tolist()
        [115, 80, 0]
    """
    rgb = to_display_rgb(image).astype(np.float32)
    labels = np.asarray(mask)
    if labels.shape != rgb.shape[:2]:
        raise ValueError(f"mask {labels.shape} and image {rgb.shape[:2]} differ in size")
    palette = list(colours) if colours is not None else class_colours(num_classes)
    alpha = float(np.clip(opacity, 0.0, 1.0))
    for value in range(1, max(2, num_classes)):
        where = labels == value
        if not where.any():
            continue
        colour = np.array(hex_to_rgb(palette[value % len(palette)]), np.float32)
        rgb[where] = (1.0 - alpha) * rgb[where] + alpha * colour
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def mask_outline(mask: np.ndarray, thickness: int = 1) -> np.ndarray:
    """Boolean map of the pixels where the label changes (the outline of every class region).

    Args:
        mask: HxW integer labels.
        thickness: outline width in pixels (1 or more).

    Example:
        >>> m = np.zeros((5, 5), np.uint8); m[1:4, 1:4] = 1
        >>> int(mask_outline(m).sum())
        8
    """
    labels = np.asarray(mask)
    edge = np.zeros(labels.shape, bool)
    # A foreground pixel is on the outline when a 4-neighbour holds another label.
    padded = np.pad(labels, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    for dy, dx in ((0, 1), (1, 0), (1, 2), (2, 1)):
        edge |= centre != padded[dy:dy + labels.shape[0], dx:dx + labels.shape[1]]
    edge &= labels > 0
    for _ in range(max(1, int(thickness)) - 1):
        grown = edge.copy()
        grown[1:] |= edge[:-1]
        grown[:-1] |= edge[1:]
        grown[:, 1:] |= edge[:, :-1]
        grown[:, :-1] |= edge[:, 1:]
        edge = grown
    return edge


def draw_outline(rgb: np.ndarray, mask: np.ndarray, colour: str = OUTLINE_COLOUR,
                 thickness: int = 1) -> np.ndarray:
    """Return a copy of an RGB image with the mask's outline painted in `colour`.

    Args:
        rgb: HxWx3 uint8 image (e.g. from `to_display_rgb`).
        mask: HxW integer labels of the same size.
        colour: hex outline colour.
        thickness: outline width in pixels.

    Example:
        >>> m = np.zeros((5, 5), np.uint8); m[1:4, 1:4] = 1
        >>> draw_outline(np.zeros((5, 5, 3), np.uint8), m)[1, 1].tolist()
        [255, 42, 42]
    """
    out = np.array(rgb, dtype=np.uint8, copy=True)
    out[mask_outline(mask, thickness)] = hex_to_rgb(colour)
    return out


def image_grid(tiles: Sequence[np.ndarray], columns: int, gap: int = 4,
               gap_value: int = 255) -> np.ndarray:
    """Arrange equally sized RGB tiles in a grid with white gaps (one image, fast to show).

    Args:
        tiles: HxWx3 uint8 images, all the same size.
        columns: tiles per row.
        gap: pixels between tiles.
        gap_value: grey level of the gaps.

    Example:
        >>> image_grid([np.zeros((2, 2, 3), np.uint8)] * 4, columns=2, gap=1).shape
        (5, 5, 3)
    """
    if not tiles:
        raise ValueError("image_grid needs at least one tile")
    height, width = tiles[0].shape[:2]
    rows = math.ceil(len(tiles) / columns)
    grid = np.full((rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap, 3),
                   gap_value, np.uint8)
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        top, left = row * (height + gap), column * (width + gap)
        grid[top:top + height, left:left + width] = tile
    return grid


def legend_rgb(entries: Sequence[tuple[str, str]], font_size: int = 15) -> np.ndarray:
    """A one-line legend picture: a coloured square and a name per entry, on white.

    Drawn with Pillow, so pages need no HTML to show colour swatches.

    Args:
        entries: (name, "#rrggbb") pairs in display order.
        font_size: text height in pixels.

    Example:
        >>> legend_rgb([("tumour", "#ff0000")]).shape[2]
        3
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=font_size)
    gap, square = font_size, font_size
    widths = [int(font.getlength(name)) for name, _ in entries]
    width = max(1, sum(square + 6 + w + gap for w in widths))
    height = font_size + 8
    picture = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(picture)
    x = 0
    for (name, colour), text_width in zip(entries, widths, strict=True):
        top = (height - square) // 2
        draw.rectangle([x, top, x + square, top + square], fill=colour, outline="#333333")
        draw.text((x + square + 6, height // 2), name, fill="#222222", font=font, anchor="lm")
        x += square + 6 + text_width + gap
    return np.asarray(picture)


def class_legend_entries(class_names: Sequence[str],
                         colours: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(name, colour) of every foreground class, for `legend_rgb`.

    Args:
        class_names: one name per label value, background first.
        colours: hex colour per label value; default `class_colours`.

    Example:
        >>> class_legend_entries(["background", "tumour"], ["#000000", "#ff0000"])
        [('tumour', '#ff0000')]
    """
    palette = list(colours) if colours is not None else class_colours(len(class_names))
    return [(name, palette[v]) for v, name in enumerate(class_names) if v > 0]


# --------------------------------------------------------------------------- error maps

ERROR_COLOURS: dict[str, tuple[int, int, int]] = {
    "true positive": (0, 158, 115),    # bluish green: predicted and true
    "false positive": (230, 159, 0),   # orange: predicted but not true (over-segmentation)
    "false negative": (86, 180, 233),  # sky blue: true but missed (under-segmentation)
}


def error_map(truth: np.ndarray, prediction: np.ndarray, foreground: int | None = None) -> np.ndarray:
    """RGB image of true positives, false positives and false negatives (black = true negative).

    Colours come from `ERROR_COLOURS`; use `error_legend()` for the key.

    Args:
        truth: integer (H, W) labels.
        prediction: integer (H, W) labels.
        foreground: score only this class; None = any non-zero label counts as foreground.
            For multi-class masks with ``foreground=None``, a pixel with the wrong class counts
            as a false negative (for the true class) drawn in the FN colour.

    Example:
        >>> t = np.array([[1, 1, 0, 0]]); p = np.array([[1, 0, 1, 0]])
        >>> error_map(t, p)[0].tolist()
        [[0, 158, 115], [86, 180, 233], [230, 159, 0], [0, 0, 0]]
    """
    truth = np.asarray(truth)
    prediction = np.asarray(prediction)
    if truth.shape != prediction.shape:
        raise UNetDemoError(f"Mask shape {truth.shape} differs from prediction {prediction.shape}.")
    if foreground is None:
        true_fg = truth > 0
        pred_fg = prediction > 0
        true_positive = true_fg & pred_fg & (truth == prediction)
        wrong_class = true_fg & pred_fg & (truth != prediction)
        false_negative = (true_fg & ~pred_fg) | wrong_class
    else:
        true_fg = truth == foreground
        pred_fg = prediction == foreground
        true_positive = true_fg & pred_fg
        false_negative = true_fg & ~pred_fg
    false_positive = pred_fg & ~true_fg
    image = np.zeros(truth.shape + (3,), dtype=np.uint8)
    image[true_positive] = ERROR_COLOURS["true positive"]
    image[false_positive] = ERROR_COLOURS["false positive"]
    image[false_negative] = ERROR_COLOURS["false negative"]
    return image


def error_legend() -> list[tuple[str, str]]:
    """(label, "#rrggbb") pairs describing the error-map colours, for a legend.

    Example:
        >>> error_legend()[0]
        ('true positive', '#009e73')
    """
    return [(name, "#{:02x}{:02x}{:02x}".format(*rgb)) for name, rgb in ERROR_COLOURS.items()]


def snapshot_overlay(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """An RGB uint8 picture: the image, prediction tinted orange, ground-truth outline in blue.

    Args:
        image: HxW or HxWxC image.
        truth: HxW integer labels (0 = background).
        prediction: HxW integer labels (turn probabilities into labels first with
            `unet_demo.inference.labels.labels_from_probabilities`).

    Example:
        >>> rgb = snapshot_overlay(np.zeros((4, 4)), np.ones((4, 4), np.uint8), np.zeros((4, 4)))
        >>> rgb.shape, rgb.dtype
        ((4, 4, 3), dtype('uint8'))
    """
    rgb = to_display_rgb(image).astype(np.float32) / 255.0
    predicted = np.asarray(prediction) > 0
    truth_fg = np.asarray(truth) > 0
    tint = np.array([0.9, 0.45, 0.0], np.float32)
    rgb = np.where(predicted[..., None], 0.55 * rgb + 0.45 * tint, rgb)
    rgb[mask_outline(truth_fg)] = (0.2, 0.6, 1.0)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
