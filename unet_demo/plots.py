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
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from unet_demo.config import UNetConfig

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


# --------------------------------------------------------------------------- statistics figures

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
        barmode="stack", height=90 + 45 * len(splits), margin=dict(l=10, r=10, t=30, b=30),
        xaxis=dict(title="% of pixels", range=[0, 100]),
        yaxis=dict(autorange="reversed"), legend=dict(orientation="h", y=1.15),
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
        height=300, margin=dict(l=10, r=10, t=30, b=40),
        xaxis=dict(title="intensity (0 = black, 1 = white)", range=[0, 1]),
        yaxis=dict(title="share of the class's pixels"), legend=dict(orientation="h", y=1.15),
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


# --------------------------------------------------------------------------- the U diagram

def level_shapes(cfg: UNetConfig) -> list[dict[str, int]]:
    """Spatial size and channels of the feature maps at each level, from the config alone.

    Level 0 is full resolution; the last entry is the bottleneck. (For the "pretrained"
    variant the true channel counts come from the backbone; pass them to `unet_diagram`.)

    Args:
        cfg: the model config.

    Example:
        >>> [lvl["height"] for lvl in level_shapes(UNetConfig(input_height=64, depth=2))]
        [64, 32, 16]
    """
    return [
        {
            "level": level,
            "height": max(1, cfg.input_height // 2**level),
            "width": max(1, cfg.input_width // 2**level),
            "depth": max(1, cfg.input_depth // 2**level) if cfg.variant == "unet3d" else 0,
            "channels": filters,
        }
        for level, filters in enumerate(cfg.level_filters())
    ]


def levels_from_stats(stats_levels: Sequence[Any]) -> list[dict[str, Any]]:
    """Turn `models.stats.ArchitectureStats.levels` into the level dicts `unet_diagram` draws.

    Args:
        stats_levels: objects with encoder_shape, decoder_shape (shapes without batch, channels
            last; None where absent), filters and skip.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> levels_from_stats([NS(level=0, encoder_shape=None, decoder_shape=(8, 8, 4),
        ...                       filters=4, skip="none")])[0]["channels"] is None
        True
    """
    levels = []
    for item in stats_levels:
        shape = item.encoder_shape or item.decoder_shape
        spatial = tuple(int(d) for d in shape[:-1])
        levels.append({
            "level": int(item.level),
            "height": spatial[-2],
            "width": spatial[-1],
            "depth": spatial[0] if len(spatial) == 3 else 0,
            "channels": int(item.encoder_shape[-1]) if item.encoder_shape else None,
            "decoder_channels": int(item.decoder_shape[-1]) if item.decoder_shape else None,
            "skip": str(item.skip),
        })
    return levels


_VARIANT_NOTES = {
    "classic": "Classic U-Net: two convolutions per block, skips concatenate encoder features.",
    "attention": "Attention gates (AG) weight each skip by what the coarser decoder level found.",
    "residual": "Residual blocks: each block adds a shortcut (+) around its convolutions.",
    "unetpp": "U-Net++: nested decoder nodes (small squares) densely re-use every skip.",
    "lightweight": "Lightweight: depthwise-separable convolutions in every block (far fewer weights).",
    "unet3d": "3D U-Net: volumes (D x H x W), Conv3D and 3D pooling.",
    "pretrained": "Pretrained encoder: a keras.applications backbone replaces the left arm.",
}


def _shape_label(level: Mapping[str, Any], channels: Any = None) -> str:
    size = f"{level['height']}×{level['width']}"
    if level.get("depth"):
        size = f"{level['depth']}×{size}"
    channels = level["channels"] if channels is None else channels
    return f"{size}×{channels}" if channels is not None else f"{size} (no tap)"


def _channels(level: Mapping[str, Any]) -> int:
    values = [v for v in (level.get("channels"), level.get("decoder_channels")) if v]
    return int(max(values)) if values else 1


def unet_diagram(cfg: UNetConfig, levels: Sequence[Mapping[str, Any]] | None = None):
    """Plotly drawing of the U: encoder blocks down the left, decoder up the right, skips across.

    Block width grows with the channel count, block height with the spatial size; each block is
    labelled with its tensor shape. Arrows: max-pool (down), up-sampling (up), skip connections
    (dashed, across). The variant's special parts are marked (attention gates, residual "+",
    U-Net++ nested nodes, backbone encoder, separable convs, deep supervision).

    Args:
        cfg: the model config.
        levels: per-level dicts with height, width, channels (and depth for 3D), level 0 first,
            bottleneck last; default `level_shapes(cfg)`.

    Example:
        >>> fig = unet_diagram(UNetConfig(depth=2))
        >>> any("128×128×16" in (a.text or "") for a in fig.layout.annotations)
        True
    """
    import plotly.graph_objects as go

    levels = list(levels) if levels is not None else level_shapes(cfg)
    depth = len(levels) - 1
    max_channels = max(_channels(lvl) for lvl in levels)
    max_size = max(int(lvl["height"]) for lvl in levels)
    figure = go.Figure()
    encoder_colour = "#0072b2" if cfg.variant != "pretrained" else "#7b3294"
    decoder_colour = "#009e73"
    bottleneck_colour = "#d55e00"
    step_x, step_y = 1.25, 1.0

    def block_size(level: Mapping[str, Any]) -> tuple[float, float]:
        width = 0.22 + 0.5 * math.sqrt(_channels(level) / max_channels)
        height = 0.3 + 0.45 * math.log2(1 + int(level["height"])) / math.log2(1 + max_size)
        return width, height

    def add_block(x: float, y: float, level: Mapping[str, Any], colour: str, label: str,
                  hover: str) -> None:
        width, height = block_size(level)
        figure.add_shape(type="rect", x0=x - width / 2, x1=x + width / 2, y0=y - height / 2,
                         y1=y + height / 2, fillcolor=colour, opacity=0.85,
                         line=dict(color="#222", width=1))
        figure.add_annotation(x=x, y=y - height / 2 - 0.05, text=label, showarrow=False,
                              yanchor="top", font=dict(size=11))
        figure.add_trace(go.Scatter(x=[x], y=[y], mode="markers", marker=dict(size=30, opacity=0),
                                    hovertemplate=hover + "<extra></extra>", showlegend=False))

    def arrow(x0: float, y0: float, x1: float, y1: float, colour: str, dash: bool = False) -> None:
        head_x0, head_y0 = x0, y0
        if dash:  # annotation arrows cannot be dashed: a dashed shaft plus a short arrow head
            figure.add_shape(type="line", x0=x0, y0=y0, x1=x1, y1=y1,
                             line=dict(color=colour, width=1.6, dash="dash"))
            head_x0, head_y0 = x1 - 0.1 * (x1 - x0) / max(abs(x1 - x0), 1e-9), y1
        figure.add_annotation(x=x1, y=y1, ax=head_x0, ay=head_y0, xref="x", yref="y", axref="x",
                              ayref="y", showarrow=True, arrowhead=2, arrowsize=1.2,
                              arrowwidth=1.6, arrowcolor=colour, text="")

    encoder_x = [i * step_x for i in range(depth + 1)]
    decoder_x = [(2 * depth - i) * step_x for i in range(depth + 1)]
    ys = [-i * step_y for i in range(depth + 1)]
    block_word = "separable conv block" if cfg.variant == "lightweight" else "conv block"
    if cfg.variant == "residual":
        block_word = "residual block"
    for i, level in enumerate(levels):
        shape = _shape_label(level)
        if i < depth:
            name = f"{cfg.backbone} stage {i}" if cfg.variant == "pretrained" else f"encoder {i}"
            add_block(encoder_x[i], ys[i], level, encoder_colour, shape,
                      f"{name}: {block_word}<br>output {shape}")
            decoder_shape = _shape_label(level, level.get("decoder_channels") or level["channels"])
            add_block(decoder_x[i], ys[i], level, decoder_colour, decoder_shape,
                      f"decoder {i}: up-sample, concatenate skip, {block_word}"
                      f"<br>output {decoder_shape}")
        else:
            add_block(encoder_x[i], ys[i], level, bottleneck_colour, shape,
                      f"bottleneck: {block_word}<br>output {shape}")
    for i in range(depth):
        w_enc, _ = block_size(levels[i])
        w_next, h_next = block_size(levels[i + 1])
        arrow(encoder_x[i] + w_enc / 4, ys[i] - 0.2, encoder_x[i + 1] - w_next / 4,
              ys[i + 1] + h_next / 2, "#c0392b")
        arrow(decoder_x[i + 1] + w_next / 4, ys[i + 1] + h_next / 2, decoder_x[i] - w_enc / 4,
              ys[i] - 0.2, "#1e8449")
        skip_start = encoder_x[i] + w_enc / 2
        skip_end = decoder_x[i] - w_enc / 2
        if cfg.variant == "unetpp":
            nodes = [encoder_x[i] + (decoder_x[i] - encoder_x[i]) * j / (depth - i)
                     for j in range(1, depth - i)]
            for node_x in nodes:
                figure.add_shape(type="rect", x0=node_x - 0.12, x1=node_x + 0.12,
                                 y0=ys[i] - 0.12, y1=ys[i] + 0.12, fillcolor="#f0e442",
                                 line=dict(color="#222", width=1))
            figure.add_trace(go.Scatter(
                x=nodes, y=[ys[i]] * len(nodes), mode="markers",
                marker=dict(size=14, opacity=0), showlegend=False,
                hovertemplate="nested node: concatenates every earlier node of this level"
                              "<extra></extra>"))
        if levels[i].get("skip") == "none" or levels[i].get("channels") is None:
            continue
        arrow(skip_start, ys[i], skip_end, ys[i], "#7f7f7f", dash=True)
        if cfg.variant == "attention":
            gate_x = (skip_start + skip_end) / 2 + 0.4
            figure.add_annotation(x=gate_x, y=ys[i], text="<b>AG</b>", showarrow=False,
                                  bgcolor="#f0e442", bordercolor="#222", font=dict(size=11))
    if cfg.variant == "residual":
        for i in range(depth + 1):
            for x in {encoder_x[i], decoder_x[i]}:
                width, height = block_size(levels[i])
                figure.add_annotation(x=x + width / 2, y=ys[i] + height / 2, text="<b>+</b>",
                                      showarrow=False, font=dict(size=14, color="#fff"),
                                      bgcolor="#cc79a7", borderpad=1)
    head = "1×1 conv, sigmoid" if cfg.num_classes == 1 else f"1×1 conv, softmax ({cfg.num_classes})"
    out_x = decoder_x[0] + step_x * 0.9
    arrow(decoder_x[0] + block_size(levels[0])[0] / 2, ys[0], out_x - 0.25, ys[0], "#222")
    out_text = f"output<br>{head}"
    if cfg.variant == "unetpp" and cfg.deep_supervision:
        out_text += "<br>(average of all top nodes)"
    figure.add_annotation(x=out_x, y=ys[0], text=out_text, showarrow=False, bgcolor="#eeeeee",
                          bordercolor="#222", font=dict(size=11))
    in_x = encoder_x[0] - step_x * 0.9
    arrow(in_x + 0.3, ys[0], encoder_x[0] - block_size(levels[0])[0] / 2, ys[0], "#222")
    figure.add_annotation(x=in_x, y=ys[0], text=f"input<br>{_shape_label({**levels[0], 'channels': cfg.input_channels})}",
                          showarrow=False, bgcolor="#eeeeee", bordercolor="#222",
                          font=dict(size=11))
    for name, colour, dash in (("max-pool ↓ (halves the size)", "#c0392b", "solid"),
                               ("up-sample ↑ (doubles it)", "#1e8449", "solid"),
                               ("skip connection (copy + concatenate)", "#7f7f7f", "dash")):
        figure.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=name,
                                    line=dict(color=colour, dash=dash, width=2)))
    note = _VARIANT_NOTES[cfg.variant]
    if cfg.variant == "pretrained":
        note += f" ({cfg.backbone}{', frozen' if cfg.freeze_encoder else ''})"
    figure.update_layout(
        title=dict(text=note, font=dict(size=13), x=0.01),
        height=170 + 110 * (depth + 1),
        margin=dict(l=5, r=5, t=40, b=5),
        xaxis=dict(visible=False, range=[in_x - 0.6, out_x + 0.8]),
        yaxis=dict(visible=False, range=[ys[-1] - 0.9, 0.75], scaleanchor=None),
        plot_bgcolor="white", legend=dict(orientation="h", y=-0.02, x=0.0),
        showlegend=True,
    )
    return figure


def training_curves(history_rows: Sequence[dict[str, Any]], *, total_epochs: int | None = None,
                    best_epoch: int | None = None, title: str = ""):
    """Train/val loss, train/val Dice and the learning rate per epoch (the Train page's figure).

    The Train page engineer's `unet_demo.train_plots.training_curves_figure` draws it; this
    name keeps the figure reachable from the plotting module as well.

    Args:
        history_rows: one dict per epoch (epoch, loss, val_loss, dice, val_dice, lr).
        total_epochs: planned epochs (fixes the x axis).
        best_epoch: marks the best epoch.
        title: figure title.

    Example:
        >>> rows = [{"epoch": 1, "loss": 0.9, "val_loss": 1.0, "dice": 0.2, "val_dice": 0.1,
        ...          "lr": 1e-3}]
        >>> len(training_curves(rows).data)
        5
    """
    from unet_demo.train_plots import training_curves_figure

    return training_curves_figure(history_rows, total_epochs=total_epochs, best_epoch=best_epoch,
                                  title=title)
