"""Figures for the Inside page: channel grids, heat overlays, receptive fields, ablation bars.

Pure functions: activations, gradients, maps or score rows in, uint8 RGB arrays or plotly
figures out. No streamlit, no TensorFlow, no engine imports.

Example:
    >>> import numpy as np
    >>> grid = channel_grid(np.random.default_rng(0).random((16, 16, 8)), [0, 1, 2, 3], columns=2,
    ...                     tile=32)
    >>> grid.shape, grid.dtype
    ((67, 67, 3), dtype('uint8'))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from unet_demo.plots.images import image_grid, to_display_rgb

# Anchors of matplotlib's "viridis" (dark blue = low, yellow = high), for activations.
VIRIDIS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
# Anchors of "inferno" (black -> purple -> orange -> pale yellow), for heat overlays.
INFERNO = ((0, 0, 0), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164))
FIELD_COLOUR = (0, 200, 255)
PIXEL_COLOUR = (0, 255, 0)
BAR_COLOUR = "#0072b2"
INTACT_COLOUR = "#009e73"
ALL_COLOUR = "#d55e00"


def colormap(values: np.ndarray, anchors: Sequence[Sequence[int]] = VIRIDIS) -> np.ndarray:
    """Map values in [0, 1] (clipped) to uint8 RGB by linear interpolation between anchors.

    Example:
        >>> colormap(np.array([0.0, 1.0])).tolist()
        [[68, 1, 84], [253, 231, 37]]
    """
    points = np.asarray(anchors, np.float32)
    scaled = np.clip(np.asarray(values, np.float32), 0.0, 1.0) * (len(points) - 1)
    low = np.clip(np.floor(scaled).astype(int), 0, len(points) - 2)
    frac = (scaled - low)[..., None]
    rgb = points[low] * (1.0 - frac) + points[low + 1] * frac
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def scale_up(tile: np.ndarray, side: int) -> np.ndarray:
    """Enlarge an image by whole-pixel repetition so its longer side is at least ``side``.

    Example:
        >>> scale_up(np.zeros((16, 16, 3), np.uint8), 64).shape
        (64, 64, 3)
    """
    factor = max(1, int(math.ceil(side / max(tile.shape[:2]))))
    return np.repeat(np.repeat(tile, factor, axis=0), factor, axis=1) if factor > 1 else tile


def normalise(values: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1]; a constant map becomes all zeros.

    Example:
        >>> normalise(np.array([2.0, 4.0])).tolist(), normalise(np.ones(2)).tolist()
        ([0.0, 1.0], [0.0, 0.0])
    """
    array = np.asarray(values, np.float32)
    low, high = float(array.min()), float(array.max())
    return (array - low) / (high - low) if high > low else np.zeros_like(array)


def channel_grid(activation: np.ndarray, channels: Sequence[int], columns: int | None = None,
                 tile: int = 64) -> np.ndarray:
    """One RGB picture of the chosen channels of an (h, w, channels) activation.

    Each channel is scaled on its own (dark = its lowest value, yellow = its highest), so the
    pattern shows whatever the channel's range; tiles are enlarged to at least ``tile`` pixels.

    Args:
        activation: (h, w, channels) feature map.
        channels: channel indices in display order (e.g. most active first).
        columns: tiles per row (default: up to 8).
        tile: minimum tile side in pixels.
    """
    array = np.asarray(activation, np.float32)
    if array.ndim == 2:
        array = array[..., None]
    chosen = [int(c) for c in channels] or [0]
    tiles = [scale_up(colormap(normalise(array[..., c])), tile) for c in chosen]
    return image_grid(tiles, columns=columns or min(8, len(tiles)), gap=3)


def heat_overlay(image: np.ndarray, heat: np.ndarray, opacity: float = 0.6,
                 scale: bool = True, gamma: float = 1.0) -> np.ndarray:
    """Blend a heat map (inferno colours) over an image, weighted by the heat itself.

    Args:
        image: HxW or HxWxC image.
        heat: HxW values (attention coefficients in [0, 1], or gradients).
        opacity: blend of the hottest pixels (0 = image only).
        scale: divide by the map's maximum first (False: values are already in [0, 1]).
        gamma: < 1 brightens faint values (used for gradients, whose tails are small).

    Example:
        >>> heat_overlay(np.zeros((2, 2)), np.array([[0.0, 1.0], [0.0, 0.0]]), 1.0)[0, 1].tolist()
        [252, 255, 164]
    """
    rgb = to_display_rgb(image).astype(np.float32)
    values = np.abs(np.asarray(heat, np.float32))
    if scale:
        top = float(values.max())
        values = values / top if top > 0 else np.zeros_like(values)
    values = np.clip(values, 0.0, 1.0) ** float(gamma)
    colours = colormap(values, INFERNO).astype(np.float32)
    weight = (float(opacity) * values)[..., None]
    return np.clip(np.rint(rgb * (1.0 - weight) + colours * weight), 0, 255).astype(np.uint8)


def draw_box(rgb: np.ndarray, box: tuple[int, int, int, int],
             colour: tuple[int, int, int] = FIELD_COLOUR) -> np.ndarray:
    """Copy of ``rgb`` with the one-pixel outline of an inclusive (top, left, bottom, right) box.

    Example:
        >>> draw_box(np.zeros((5, 5, 3), np.uint8), (1, 1, 3, 3))[1, 2].tolist()
        [0, 200, 255]
    """
    out = np.array(rgb, copy=True)
    top, left, bottom, right = box
    out[top, left:right + 1] = colour
    out[bottom, left:right + 1] = colour
    out[top:bottom + 1, left] = colour
    out[top:bottom + 1, right] = colour
    return out


def draw_cross(rgb: np.ndarray, pixel: tuple[int, int], size: int = 3,
               colour: tuple[int, int, int] = PIXEL_COLOUR) -> np.ndarray:
    """Copy of ``rgb`` with a small + marking ``pixel`` (row, col)."""
    out = np.array(rgb, copy=True)
    row, col = pixel
    out[max(0, row - size):row + size + 1, col] = colour
    out[row, max(0, col - size):col + size + 1] = colour
    return out


def receptive_field_rgb(image: np.ndarray, gradient: np.ndarray,
                        box: tuple[int, int, int, int], pixel: tuple[int, int],
                        side: int = 256) -> np.ndarray:
    """The effective receptive field (heat) with the theoretical one (cyan box) and the pixel.

    Args:
        image: the prepared input (H, W, C).
        gradient: (H, W) gradient magnitude (`effective_receptive_field`).
        box: theoretical field (top, left, bottom, right) in input pixels.
        pixel: traced input pixel (row, col).
        side: enlarge the picture to at least this many pixels (lines stay one pixel thin
            before enlarging, so they scale with it).

    Example:
        >>> g = np.zeros((8, 8)); g[4, 4] = 1
        >>> receptive_field_rgb(np.zeros((8, 8, 1)), g, (2, 2, 6, 6), (4, 4), side=16).shape
        (16, 16, 3)
    """
    # gamma 0.3: the gradient peaks sharply at the pixel; its tails are what shows the field
    rgb = heat_overlay(image, gradient, opacity=0.9, gamma=0.3)
    rgb = draw_cross(draw_box(rgb, box), pixel, size=max(2, rgb.shape[0] // 40))
    return scale_up(rgb, side)


def map_rgb(values: np.ndarray, side: int = 0, anchors=INFERNO,
            outline: np.ndarray | None = None) -> np.ndarray:
    """A non-negative map shown on its own: 0 black, its maximum pale yellow.

    Args:
        values: (H, W) map.
        side: enlarge to at least this many pixels (0 = as is).
        anchors: colour map anchors.
        outline: optional (H, W) labels whose borders are drawn in cyan (e.g. the truth).

    Example:
        >>> map_rgb(np.array([[0.0, 2.0]]))[0].tolist()
        [[0, 0, 0], [252, 255, 164]]
    """
    values = np.abs(np.asarray(values, np.float32))
    top = float(values.max())
    rgb = colormap(values / top if top > 0 else values, anchors)
    if outline is not None:
        from unet_demo.plots.images import mask_outline

        rgb[mask_outline(np.asarray(outline))] = FIELD_COLOUR
    return scale_up(rgb, side) if side else rgb


def ablation_figure(rows: Sequence[dict[str, Any]], split: str = "test"):
    """Plotly bars: mean Dice with no skip off, each skip off alone, and all skips off.

    Args:
        rows: `unet_demo.evaluation.ablation.skip_ablation_scores` output.
        split: the split's name for the title.

    Example:
        >>> fig = ablation_figure([{"ablated": "none", "dice": 0.9, "images": 4},
        ...                        {"ablated": "level 0", "dice": 0.5, "images": 4}])
        >>> list(fig.data[0].x), fig.layout.yaxis.range
        (['none', 'level 0'], (0, 1.05))
    """
    import plotly.graph_objects as go

    labels = [str(row["ablated"]) for row in rows]
    dice = [float(row["dice"]) for row in rows]
    colours = [INTACT_COLOUR if label == "none" else ALL_COLOUR if label == "all" else BAR_COLOUR
               for label in labels]
    figure = go.Figure(go.Bar(x=labels, y=dice, marker_color=colours,
                              text=[f"{value:.3f}" for value in dice], textposition="outside",
                              hovertemplate="skip off: %{x}<br>Dice %{y:.3f}<extra></extra>"))
    images = rows[0].get("images", "") if rows else ""
    figure.update_layout(
        height=340, margin=dict(l=50, r=10, t=50, b=50),
        title=f"Mean {split} Dice with skip connections switched off ({images} images)",
        xaxis_title="skip connection switched off", yaxis_title="Dice",
        yaxis=dict(range=[0, 1.05]), showlegend=False,
    )
    return figure


def receptive_growth_figure(labels: Sequence[str], theoretical: Sequence[float],
                            effective: Sequence[float], image_side: int):
    """Plotly lines: theoretical and effective receptive field side per tensor, in pixels.

    Example:
        >>> fig = receptive_growth_figure(["enc0", "enc1"], [5, 14], [5, 13], 128)
        >>> [trace.name for trace in fig.data]
        ['theoretical', 'effective (95% of the gradient)', 'image side']
    """
    import plotly.graph_objects as go

    figure = go.Figure()
    figure.add_trace(go.Scatter(x=list(labels), y=list(theoretical), name="theoretical",
                                mode="lines+markers", line_color=BAR_COLOUR))
    figure.add_trace(go.Scatter(x=list(labels), y=list(effective),
                                name="effective (95% of the gradient)", mode="lines+markers",
                                line_color=ALL_COLOUR))
    figure.add_trace(go.Scatter(x=list(labels), y=[image_side] * len(labels), name="image side",
                                mode="lines", line=dict(color="#999999", dash="dot")))
    figure.update_layout(height=320, margin=dict(l=50, r=10, t=40, b=40),
                         title="Receptive field down the U and back up (pixels)",
                         yaxis_title="side in input pixels",
                         legend=dict(orientation="h", y=-0.25))
    return figure
