"""Figures about a dataset: class balance, intensity histograms, split sizes (plotly).

Example:
    >>> split_sizes_figure({"train": 10, "val": 2, "test": 3}).data[0].type
    'bar'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from unet_demo.plots.images import class_colours


def class_balance_figure(balance: Mapping[str, Sequence[float]], class_names: Sequence[str],
                         colours: Sequence[str] | None = None):
    """Stacked horizontal bars: the fraction of pixels of each class, one bar per split.

    Tiny foreground fractions are the class imbalance that makes plain cross-entropy
    favour background; hover shows exact percentages.

    Args:
        balance: split name -> pixel fraction per class (sums to 1).
        class_names: one name per label value.
        colours: hex colour per label value; default `class_colours`.

    Example:
        >>> fig = class_balance_figure({"train": [0.9, 0.1]}, ["background", "lesion"])
        >>> [trace.name for trace in fig.data]
        ['background', 'lesion']
    """
    import plotly.graph_objects as go

    palette = list(colours) if colours is not None else class_colours(len(class_names))
    splits = list(balance)
    figure = go.Figure()
    for value, name in enumerate(class_names):
        fractions = [float(balance[s][value]) * 100.0 for s in splits]
        figure.add_trace(go.Bar(
            y=splits, x=fractions, name=name, orientation="h",
            marker_color=palette[value % len(palette)],
            text=[f"{f:.1f}%" if f >= 4 else "" for f in fractions], textposition="inside",
            hovertemplate=f"{name}: %{{x:.2f}}% of pixels<extra>%{{y}}</extra>",
        ))
    figure.update_layout(
        barmode="stack", height=130 + 45 * len(splits), margin=dict(l=10, r=10, t=10, b=70),
        xaxis=dict(title="% of pixels", range=[0, 100]),
        yaxis=dict(autorange="reversed"),
        # below the plot: a legend on top sits under the chart toolbars
        legend=dict(orientation="h", x=0, y=-0.45, yanchor="top"),
    )
    return figure


def intensity_histogram_figure(images: np.ndarray, masks: np.ndarray,
                               class_names: Sequence[str], bins: int = 64,
                               colours: Sequence[str] | None = None):
    """Overlaid histograms of pixel intensity inside each class.

    Where the class curves overlap, intensity alone cannot separate the classes and the
    network has to use shape and context.

    Args:
        images: (N, H, W[, C]) images in [0, 1] (channels are averaged).
        masks: (N, H, W) integer labels.
        class_names: one name per label value.
        bins: histogram bins over [0, 1].
        colours: hex colour per label value; default `class_colours` (background grey).

    Example:
        >>> imgs = np.random.default_rng(0).random((2, 8, 8, 1), dtype=np.float32)
        >>> fig = intensity_histogram_figure(imgs, np.zeros((2, 8, 8), np.uint8), ["bg", "fg"])
        >>> len(fig.data)
        1
    """
    import plotly.graph_objects as go

    values = np.asarray(images, np.float32)
    if values.ndim == 4:
        values = values.mean(axis=-1)
    labels = np.asarray(masks)
    palette = list(colours) if colours is not None else class_colours(len(class_names))
    edges = np.linspace(0.0, 1.0, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2.0
    figure = go.Figure()
    for value, name in enumerate(class_names):
        inside = values[labels == value]
        if inside.size == 0:
            continue
        counts, _ = np.histogram(np.clip(inside, 0.0, 1.0), bins=edges)
        density = counts / counts.sum()
        figure.add_trace(go.Scatter(
            x=centres, y=density, mode="lines", name=f"{name} ({inside.size:,} px)",
            line=dict(color=palette[value % len(palette)], width=2, shape="hv"),
            fill="tozeroy", opacity=0.6,
            hovertemplate=f"{name}<br>intensity %{{x:.2f}}<br>share %{{y:.3f}}<extra></extra>",
        ))
    figure.update_layout(
        height=340, margin=dict(l=10, r=10, t=10, b=90),
        xaxis=dict(title="intensity (0 = black, 1 = white)", range=[0, 1]),
        yaxis=dict(title="share of the class's pixels"),
        legend=dict(orientation="h", x=0, y=-0.25, yanchor="top"),
    )
    return figure


def split_sizes_figure(split_counts: Mapping[str, int]):
    """Bar chart of images per split.

    Args:
        split_counts: split name -> image count.

    Example:
        >>> list(split_sizes_figure({"train": 70, "val": 15, "test": 15}).data[0].y)
        [70, 15, 15]
    """
    import plotly.graph_objects as go

    names = list(split_counts)
    counts = [int(split_counts[n]) for n in names]
    figure = go.Figure(go.Bar(x=names, y=counts, text=counts, textposition="outside",
                              marker_color=["#0072b2", "#e69f00", "#009e73"][: len(names)]))
    figure.update_layout(height=260, margin=dict(l=10, r=10, t=30, b=30),
                         yaxis=dict(title="images", range=[0, max(counts, default=1) * 1.2]))
    return figure
