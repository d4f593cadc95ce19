"""Figures of the Lessons page: overlaid replayable curves and side-by-side prediction strips.

Arrays and history rows in, figures out (no engine imports).

Example:
    >>> rows = [{"epoch": 1, "dice": 0.5, "val_dice": 0.4}, {"epoch": 2, "dice": 0.7, "val_dice": 0.6}]
    >>> figure = lesson_curves_figure([("A", rows), ("B", rows)])
    >>> len(figure.frames), [t.name for t in figure.data][:2]
    (2, ['A val', 'A train'])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from unet_demo.plots.images import image_grid, snapshot_overlay

LESSON_COLOURS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00")
"""One colour-blind-safe colour per run (up to five runs)."""


def _column(rows: Sequence[dict[str, Any]], key: str) -> list[float | None]:
    values = []
    for row in rows:
        value = row.get(key)
        values.append(None if value is None or value != value else float(value))
    return values


def lesson_curves_figure(runs: Sequence[tuple[str, Sequence[dict[str, Any]]]], *,
                         animate: bool = True, duration_s: float = 3.0):
    """Validation (solid) and training (dotted) Dice of every run on one axis, replayable.

    With ``animate`` the figure carries one frame per epoch and a Play button that draws the
    curves epoch by epoch in about ``duration_s`` seconds (in the browser, no server work);
    the figure shows the finished curves until Play is pressed.

    Args:
        runs: (label, history rows) per run, rows with epoch, dice, val_dice.
        animate: add the frames and the Play / End buttons.
        duration_s: the whole replay's length.
    """
    import plotly.graph_objects as go

    figure = go.Figure()
    last = max((int(rows[-1]["epoch"]) for _, rows in runs if rows), default=1)
    for index, (label, rows) in enumerate(runs):
        colour = LESSON_COLOURS[index % len(LESSON_COLOURS)]
        epochs = [int(row["epoch"]) for row in rows]
        for key, dash, what in (("val_dice", "solid", "val"), ("dice", "dot", "train")):
            figure.add_trace(go.Scatter(x=epochs, y=_column(rows, key), mode="lines+markers",
                                        name=f"{label} {what}", legendgroup=label,
                                        line=dict(color=colour, width=2.5 if what == "val" else 1.5,
                                                  dash=dash)))
    figure.update_layout(height=360, margin=dict(l=50, r=10, t=30, b=40),
                         xaxis=dict(title="epoch", range=[0.5, last + 0.5], dtick=1),
                         yaxis=dict(title="Dice (solid: validation, dotted: training)",
                                    range=[0, 1.02]),
                         legend=dict(orientation="h", y=-0.2))
    if animate:
        frames = []
        for epoch in range(1, last + 1):
            data = []
            for _, rows in runs:
                shown = [row for row in rows if int(row["epoch"]) <= epoch]
                xs = [int(row["epoch"]) for row in shown]
                data += [go.Scatter(x=xs, y=_column(shown, "val_dice")),
                         go.Scatter(x=xs, y=_column(shown, "dice"))]
            frames.append(go.Frame(data=data, name=str(epoch)))
        figure.frames = frames
        step_ms = int(1000 * duration_s / max(1, last))
        figure.update_layout(updatemenus=[dict(
            type="buttons", direction="left", x=0.0, y=1.12, xanchor="left", showactive=False,
            buttons=[dict(label="▶ Replay", method="animate",
                          args=[None, dict(frame=dict(duration=step_ms, redraw=False),
                                           transition=dict(duration=0), fromcurrent=False,
                                           mode="immediate")]),
                     dict(label="⏭ End", method="animate",
                          args=[[str(last)], dict(frame=dict(duration=0, redraw=False),
                                                  mode="immediate")])])])
    return figure


def _upscale(rgb: np.ndarray, side: int) -> np.ndarray:
    factor = max(1, side // rgb.shape[0])
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


def grey_tile(probability: np.ndarray) -> np.ndarray:
    """A uint8 probability map (0-255) as an RGB tile (white = foreground).

    Example:
        >>> grey_tile(np.full((2, 2), 255, np.uint8))[0, 0].tolist()
        [255, 255, 255]
    """
    grey = np.asarray(probability, np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def prediction_strip(images: np.ndarray, masks: np.ndarray, labels: np.ndarray,
                     probability: np.ndarray | None = None, *, side: int = 128) -> np.ndarray:
    """One run's row: each validation image with its prediction (orange) and truth (blue line).

    Args:
        images, masks: (N, H, W) uint8.
        labels: (N, H, W) predicted labels at one epoch.
        probability: optional (N, H, W) uint8: show the probability map instead of the overlay
            (where checkerboard artefacts and blur show).
        side: tiles are enlarged (nearest neighbour) to at least this side.

    Example:
        >>> z = np.zeros((2, 8, 8), np.uint8)
        >>> prediction_strip(z, z, z, side=16).shape
        (16, 36, 3)
    """
    tiles = []
    for index in range(len(images)):
        if probability is not None:
            tile = grey_tile(probability[index])
        else:
            tile = snapshot_overlay(images[index], masks[index], labels[index])
        tiles.append(_upscale(tile, side))
    return image_grid(tiles, columns=len(tiles))
