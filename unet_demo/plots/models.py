"""The U-Net diagram of the Build page: feature-map shapes per level, drawn with plotly.

Example:
    >>> from unet_demo.config import UNetConfig
    >>> [lvl["height"] for lvl in level_shapes(UNetConfig(input_height=64, depth=2))]
    [64, 32, 16]
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from unet_demo.config import UNetConfig


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
    sides = {"height": cfg.input_height, "width": cfg.input_width,
             "depth": cfg.input_depth if cfg.variant == "unet3d" else 0}
    levels: list[dict[str, int]] = []
    for level, filters in enumerate(cfg.level_filters()):
        entry = {"level": level, "channels": filters}
        for side, size in sides.items():
            # each pooling floors: 100 -> 50 -> 25 -> 12 (the same as size // 2**level)
            entry[side] = max(1, size // 2**level) if size else 0
        levels.append(entry)
    # the decoder doubles what comes from below, starting at the bottleneck: 12 -> 24 -> 48
    below = levels[-1]
    for entry in reversed(levels[:-1]):
        for side in sides:
            entry[f"up_{side}"] = 2 * below.get(f"up_{side}", below[side])
        below = entry
    return levels


def first_mismatch(levels: Sequence[Mapping[str, Any]]) -> int | None:
    """The deepest level whose up-sampled map differs from its skip map, or None if all match.

    The decoder works upwards, so this is where the skip concatenation fails first; the levels
    above it are never built. Level dicts without "up_height"/"up_width" (those from
    `levels_from_stats`, i.e. a model Keras built) count as matching.

    Args:
        levels: level dicts as from `level_shapes`, level 0 first, bottleneck last.

    Example:
        >>> levels = level_shapes(UNetConfig(input_height=100, depth=3))
        >>> i = first_mismatch(levels); i, levels[i]["up_height"], levels[i]["height"]
        (2, 24, 25)
        >>> first_mismatch(level_shapes(UNetConfig(input_height=96, depth=3))) is None
        True
    """
    for i in range(len(levels) - 2, -1, -1):
        level = levels[i]
        if any(level.get(f"up_{side}", level.get(side)) != level.get(side)
               for side in ("height", "width", "depth")):
            return i
    return None


def mismatch_text(levels: Sequence[Mapping[str, Any]]) -> str | None:
    """Plain-words account of the first shape mismatch, or None when the shapes fit.

    Args:
        levels: level dicts as from `level_shapes`.

    Example:
        >>> mismatch_text(level_shapes(UNetConfig(input_height=100, input_width=96, depth=3)))
        'Down: 100 -> 50 -> 25 -> 12. Up: 12 -> 24, but the skip map is 25 high: the concatenation fails.'
    """
    i = first_mismatch(levels)
    if i is None:
        return None
    level = levels[i]
    side = next(s for s in ("height", "width", "depth")
                if level.get(f"up_{s}", level.get(s)) != level.get(s))
    down = " -> ".join(str(lvl[side]) for lvl in levels)
    up = " -> ".join([str(levels[-1][side])]
                     + [str(lvl[f"up_{side}"]) for lvl in reversed(levels[i:-1])])
    word = {"height": "high", "width": "wide", "depth": "slices deep"}[side]
    return (f"Down: {down}. Up: {up}, but the skip map is {level[side]} {word}: "
            "the concatenation fails.")


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


TEXT_COLOUR = "#111111"
"""Diagram text: near-black, readable when projected."""
FONT_SIZE = 14
"""Smallest diagram text in px (about what a projected classroom screen still shows)."""
MISMATCH_COLOUR = "#d00000"
"""Red of the block whose skip concatenation fails."""


def _shape_label(level: Mapping[str, Any], channels: Any = None, prefix: str = "") -> str:
    size = f"{level[prefix + 'height']}×{level[prefix + 'width']}"
    if level.get(prefix + "depth"):
        size = f"{level[prefix + 'depth']}×{size}"
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
    U-Net++ nested nodes with their up-sampled inputs, backbone encoder, separable convs, deep
    supervision). When the input size does not halve evenly (see `first_mismatch`), the decoder
    shows the real doubled sizes, the first block whose concatenation fails is outlined in red
    with a label saying so (shape name "mismatch"), and the blocks above it read "not built".
    Text is at least `FONT_SIZE` px and near-black, for projectors.

    Args:
        cfg: the model config.
        levels: per-level dicts with height, width, channels (and depth for 3D), level 0 first,
            bottleneck last; default `level_shapes(cfg)`.

    Example:
        >>> fig = unet_diagram(UNetConfig(depth=2))
        >>> any("128×128×16" in (a.text or "") for a in fig.layout.annotations)
        True
        >>> bad = unet_diagram(UNetConfig(input_height=100, depth=3))
        >>> [s.line.color for s in bad.layout.shapes if s.name == "mismatch"]
        ['#d00000']
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
                  hover: str, outline: str = "#222", label_colour: str = TEXT_COLOUR,
                  name: str | None = None) -> None:
        width, height = block_size(level)
        figure.add_shape(type="rect", x0=x - width / 2, x1=x + width / 2, y0=y - height / 2,
                         y1=y + height / 2, fillcolor=colour, opacity=0.85, name=name,
                         line=dict(color=outline, width=4 if name == "mismatch" else 1))
        if name == "mismatch":  # beside the block: below it sits the encoder's label
            figure.add_annotation(x=x + width / 2 + 0.08, y=y, text=label, showarrow=False,
                                  xanchor="left", align="left", name=name,
                                  font=dict(size=FONT_SIZE, color=label_colour))
        else:
            figure.add_annotation(x=x, y=y - height / 2 - 0.05, text=label, showarrow=False,
                                  yanchor="top", font=dict(size=FONT_SIZE, color=label_colour),
                                  name=name)
        figure.add_trace(go.Scatter(x=[x], y=[y], mode="markers", marker=dict(size=30, opacity=0),
                                    hovertemplate=hover + "<extra></extra>", showlegend=False))

    def arrow(x0: float, y0: float, x1: float, y1: float, colour: str, dash: bool = False,
              name: str | None = None) -> None:
        head_x0, head_y0 = x0, y0
        if dash:  # annotation arrows cannot be dashed: a dashed shaft plus a short arrow head
            figure.add_shape(type="line", x0=x0, y0=y0, x1=x1, y1=y1,
                             line=dict(color=colour, width=1.6, dash="dash"))
            head_x0, head_y0 = x1 - 0.1 * (x1 - x0) / max(abs(x1 - x0), 1e-9), y1
        figure.add_annotation(x=x1, y=y1, ax=head_x0, ay=head_y0, xref="x", yref="y", axref="x",
                              ayref="y", showarrow=True, arrowhead=2, arrowsize=1.2,
                              arrowwidth=1.6, arrowcolor=colour, text="", name=name)

    encoder_x = [i * step_x for i in range(depth + 1)]
    decoder_x = [(2 * depth - i) * step_x for i in range(depth + 1)]
    ys = [-i * step_y for i in range(depth + 1)]
    block_word = "separable conv block" if cfg.variant == "lightweight" else "conv block"
    if cfg.variant == "residual":
        block_word = "residual block"
    if cfg.variant == "dense":
        block_word = "dense block"
    mismatch = first_mismatch(levels)
    for i, level in enumerate(levels):
        shape = _shape_label(level)
        if i < depth:
            name = f"{cfg.backbone} stage {i}" if cfg.variant == "pretrained" else f"encoder {i}"
            add_block(encoder_x[i], ys[i], level, encoder_colour, shape,
                      f"{name}: {block_word}<br>output {shape}")
            decoder_shape = _shape_label(level, level.get("decoder_channels") or level["channels"])
            if mismatch is not None and i == mismatch:
                up = _shape_label(level, None, "up_").rsplit("×", 1)[0]
                skip = shape.rsplit("×", 1)[0]
                add_block(decoder_x[i], ys[i], level, "#f4b6b6",
                          f"<b>up-sampled {up}<br>≠ skip {skip}:<br>concatenation<br>fails</b>",
                          f"decoder {i}: the up-sampled map is {up}, the skip map {skip};"
                          "<br>they cannot be concatenated, so Keras refuses to build the model",
                          outline=MISMATCH_COLOUR, label_colour=MISMATCH_COLOUR, name="mismatch")
            elif mismatch is not None and i < mismatch:
                add_block(decoder_x[i], ys[i], level, "#d9d9d9", "not built",
                          f"decoder {i}: never reached, the concatenation below fails",
                          outline="#777", name="not built")
            else:
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
              ys[i] - 0.2, "#1e8449", name="up-sample")
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
                              " and the up-sampled node below-left<extra></extra>"))
            # X(i,j) (x = (i + 2j) steps) also takes the up-sampled X(i+1, j-1), one step
            # down-left: the encoder block for j = 1, else a nested node of the level below
            _, h_below = block_size(levels[i + 1])
            for j in range(1, depth - i):
                source_x = (i + 2 * j - 1) * step_x
                source_top = ys[i + 1] + (h_below / 2 if j == 1 else 0.12)
                arrow(source_x + 0.05, source_top, (i + 2 * j) * step_x - 0.08, ys[i] - 0.12,
                      "#1e8449", name="nested up-sample")
        if levels[i].get("skip") == "none" or levels[i].get("channels") is None:
            continue
        arrow(skip_start, ys[i], skip_end, ys[i], "#7f7f7f", dash=True)
        if cfg.variant == "attention":
            gate_x = (skip_start + skip_end) / 2 + 0.4
            figure.add_annotation(x=gate_x, y=ys[i], text="<b>AG</b>", showarrow=False,
                                  bgcolor="#f0e442", bordercolor="#222",
                                  font=dict(size=FONT_SIZE, color=TEXT_COLOUR))
    if cfg.variant == "residual":
        for i in range(depth + 1):
            for x in {encoder_x[i], decoder_x[i]}:
                width, height = block_size(levels[i])
                figure.add_annotation(x=x + width / 2, y=ys[i] + height / 2, text="<b>+</b>",
                                      showarrow=False, font=dict(size=FONT_SIZE, color="#fff"),
                                      bgcolor="#cc79a7", borderpad=1)
    head = ("1×1 conv<br>sigmoid" if cfg.num_classes == 1
            else f"1×1 conv<br>softmax ({cfg.num_classes})")
    out_x = decoder_x[0] + step_x * 0.9
    arrow(decoder_x[0] + block_size(levels[0])[0] / 2, ys[0], out_x - 0.25, ys[0], "#222")
    out_text = f"output<br>{head}"
    if cfg.variant == "unetpp" and cfg.deep_supervision:
        out_text += "<br>(average of<br>all top nodes)"
    figure.add_annotation(x=out_x, y=ys[0], text=out_text, showarrow=False, bgcolor="#eeeeee",
                          bordercolor="#222", font=dict(size=FONT_SIZE, color=TEXT_COLOUR))
    in_x = encoder_x[0] - step_x * 0.9
    arrow(in_x + 0.3, ys[0], encoder_x[0] - block_size(levels[0])[0] / 2, ys[0], "#222")
    figure.add_annotation(x=in_x, y=ys[0], text=f"input<br>{_shape_label({**levels[0], 'channels': cfg.input_channels})}",
                          showarrow=False, bgcolor="#eeeeee", bordercolor="#222",
                          font=dict(size=FONT_SIZE, color=TEXT_COLOUR))
    for name, colour, dash in (("max-pool ↓ (halves the size)", "#c0392b", "solid"),
                               ("up-sample ↑ (doubles it)", "#1e8449", "solid"),
                               ("skip connection (copy + concatenate)", "#7f7f7f", "dash")):
        figure.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=name,
                                    line=dict(color=colour, dash=dash, width=2)))
    note = _VARIANT_NOTES[cfg.variant]
    if cfg.variant == "pretrained":
        note += f" ({cfg.backbone}{', frozen' if cfg.freeze_encoder else ''})"
    # plotly titles do not wrap; the Build page's diagram column is about 500 px wide
    note = "<br>".join(textwrap.wrap(note, 60))
    figure.update_layout(
        title=dict(text=note, font=dict(size=FONT_SIZE + 2, color=TEXT_COLOUR), x=0.01),
        font=dict(size=FONT_SIZE, color=TEXT_COLOUR),
        height=210 + 120 * (depth + 1),
        margin=dict(l=5, r=5, t=60, b=5),
        xaxis=dict(visible=False, range=[in_x - 0.9, out_x + 0.9]),
        yaxis=dict(visible=False, range=[ys[-1] - 0.9, 0.75], scaleanchor=None),
        plot_bgcolor="white",
        legend=dict(orientation="h", y=-0.02, x=0.0, font=dict(size=FONT_SIZE, color=TEXT_COLOUR)),
        hoverlabel=dict(font=dict(size=FONT_SIZE)),
        showlegend=True,
    )
    return figure


_VARIANT_NOTES = {
    "classic": "Classic U-Net: two convolutions per block, skips concatenate encoder features.",
    "attention": "Attention gates (AG) weight each skip by what the coarser decoder level found.",
    "residual": "Residual blocks: each block adds a shortcut (+) around its convolutions.",
    "dense": "Dense U-Net: in every block each convolution reads all earlier ones (concatenated).",
    "unetpp": "U-Net++: nested decoder nodes (small squares) densely re-use every skip.",
    "lightweight": "Lightweight: depthwise-separable convolutions in every block (far fewer weights).",
    "unet3d": "3D U-Net: volumes (D x H x W), Conv3D and 3D pooling.",
    "pretrained": "Pretrained encoder: a keras.applications backbone replaces the left arm.",
}
