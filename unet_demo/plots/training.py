"""Figures for the Train page: learning curves, A/B overlays and validation snapshot strips.

Pure functions: per-epoch history rows (dicts as in ``history.csv``) or arrays in, plotly
figures or RGB arrays out. No streamlit and no TensorFlow here, so the functions are cheap to
call on every refresh of the live view.

Example:
    >>> rows = [{"epoch": 1, "loss": 0.9, "val_loss": 1.0, "dice": 0.3, "val_dice": 0.2, "lr": 1e-3}]
    >>> figure = training_curves_figure(rows)
    >>> [trace.name for trace in figure.data][:2]
    ['train loss', 'val loss']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

TRAIN_COLOUR = "#0072b2"
VAL_COLOUR = "#e69f00"
LR_COLOUR = "#009e73"
RUN_COLOURS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7")


def _value(row: dict[str, Any], key: str) -> float | None:
    """A finite float from a history row, or None (plotly draws a gap)."""
    value = row.get(key)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _dice_key(rows: Sequence[dict[str, Any]], prefix: str) -> str:
    """The history column holding Dice: ``dice`` or, for multi-class runs, ``mean_dice``-like."""
    for candidate in (f"{prefix}dice", f"{prefix}mean_dice", f"{prefix}dice_coefficient"):
        if any(_value(row, candidate) is not None for row in rows):
            return candidate
    return f"{prefix}dice"


def training_curves_figure(rows: Sequence[dict[str, Any]], *, total_epochs: int | None = None,
                           best_epoch: int | None = None, title: str = ""):
    """Three side-by-side panels: train/val loss, train/val Dice and the learning rate per epoch.

    Every trace has exactly one point per finished epoch (x = epoch number, 1-based).

    Args:
        rows: one dict per finished epoch with keys epoch, loss, val_loss, dice, val_dice, lr
            (missing or non-finite values become gaps).
        total_epochs: planned epochs; fixes the x axis so the curve grows to the right.
        best_epoch: draws a dotted marker line at the best epoch when given.
        title: figure title.

    Example:
        >>> rows = [{"epoch": e, "loss": 1 / e, "val_loss": 1.1 / e, "dice": 0.2 * e,
        ...          "val_dice": 0.18 * e, "lr": 1e-3} for e in (1, 2, 3)]
        >>> len(training_curves_figure(rows, total_epochs=5).data[0].x)
        3
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=3, subplot_titles=("Loss", "Dice (overlap, 1 = perfect)",
                                                           "Learning rate"),
                           horizontal_spacing=0.07)
    epochs = [int(row["epoch"]) for row in rows]
    keys = {"Loss": ("loss", "val_loss"),
            "Dice": (_dice_key(rows, ""), _dice_key(rows, "val_"))}
    for column, (panel, (train_key, val_key)) in enumerate(keys.items(), start=1):
        for key, colour, label in ((train_key, TRAIN_COLOUR, "train"),
                                   (val_key, VAL_COLOUR, "val")):
            figure.add_trace(go.Scatter(
                x=epochs, y=[_value(row, key) for row in rows], mode="lines+markers",
                name=f"{label} {panel.lower()}", line=dict(color=colour, width=2),
                marker=dict(size=6), legendgroup=label,
                hovertemplate=f"epoch %{{x}}<br>{label} {panel.lower()} %{{y:.4f}}<extra></extra>",
            ), row=1, col=column)
    figure.add_trace(go.Scatter(
        x=epochs, y=[_value(row, "lr") for row in rows], mode="lines+markers",
        name="learning rate", line=dict(color=LR_COLOUR, width=2), marker=dict(size=6),
        hovertemplate="epoch %{x}<br>lr %{y:.2e}<extra></extra>",
    ), row=1, col=3)
    x_range = [0.5, max(total_epochs or 0, max(epochs, default=1)) + 0.5]
    for column in (1, 2, 3):
        figure.update_xaxes(title_text="epoch", range=x_range, row=1, col=column)
    figure.update_yaxes(range=[0, 1.02], row=1, col=2)
    lr_values = [v for v in (_value(row, "lr") for row in rows) if v is not None and v > 0]
    tickvals, ticktext = log_ticks(lr_values)
    # The range spans the ticks, so a narrow run (3e-3 down to 1.5e-3) still shows several.
    lr_range = ([math.log10(min(tickvals[0], min(lr_values))) - 0.05,
                 math.log10(max(tickvals[-1], max(lr_values))) + 0.05] if tickvals else None)
    figure.update_yaxes(type="log", tickvals=tickvals or None, ticktext=ticktext or None,
                        range=lr_range, row=1, col=3)
    if best_epoch:
        for column in (1, 2):
            figure.add_vline(x=best_epoch, line_dash="dot", line_color="#555", row=1, col=column)
    figure.update_layout(height=330, margin=dict(l=40, r=10, t=50, b=40), title=title or None,
                         legend=dict(orientation="h", y=-0.25), uirevision="train-curves")
    return figure


def log_ticks(values: Sequence[float]) -> tuple[list[float], list[str]]:
    """Readable ticks for a log axis: 1, 2 and 5 x 10^k covering ``values``, as "2e-3".

    Plotly's default log ticks mix forms ("2, 1e-3, 5, 2, 1e-4"); these all read alike. When
    the values span more than two decades only the powers of ten are kept.

    Args:
        values: the positive values on the axis.

    Example:
        >>> log_ticks([3e-3, 1.2e-4])
        ([0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005], ['1e-4', '2e-4', '5e-4', '1e-3', '2e-3', '5e-3'])
        >>> log_ticks([])
        ([], [])
    """
    positive = [float(v) for v in values if v and v > 0 and math.isfinite(v)]
    if not positive:
        return [], []
    low, high = min(positive), max(positive)
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    mantissas, step = ((1, 2, 5), 2.5) if last - first <= 2 else ((1,), 10.0)
    ticks = []
    for power in range(first, last + 1):
        for mantissa in mantissas:
            value = mantissa * 10.0 ** power
            if low / step <= value <= high * step:
                ticks.append((float(f"{value:.0e}"), f"{mantissa}e{power}"))
    return [v for v, _ in ticks], [t for _, t in ticks]


def overlay_runs_figure(runs: Sequence[tuple[str, Sequence[dict[str, Any]]]],
                        loss_names: Sequence[str] | None = None):
    """A/B comparison: validation Dice of the runs on one axis, each run's loss on its own.

    Dice means the same for every run, so it shares an axis. Losses do not: a BCE value and a
    Dice-loss value are on different scales, so putting them on one axis would make one run
    look "better" for no reason. Each run's train and validation loss get their own panel.

    Args:
        runs: (label, history rows) per run; one colour per run.
        loss_names: the loss of each run (panel titles), e.g. ["BCE", "Dice"].

    Example:
        >>> a = [{"epoch": 1, "loss": 0.7, "val_loss": 0.8, "val_dice": 0.5}]
        >>> b = [{"epoch": 1, "loss": 0.5, "val_loss": 0.6, "val_dice": 0.7}]
        >>> figure = overlay_runs_figure([("A", a), ("B", b)], ["BCE", "Dice"])
        >>> [trace.name for trace in figure.data]
        ['A val Dice', 'B val Dice', 'A train loss', 'A val loss', 'B train loss', 'B val loss']
        >>> figure.layout.annotations[1].text
        'A: loss (BCE), own axis'
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(loss_names or [""] * len(runs))
    titles = ["Validation Dice (shared axis)"] + [
        f"{label.split(':')[0]}: loss" + (f" ({name})" if name else "") + ", own axis"
        for (label, _), name in zip(runs, names, strict=False)]
    figure = make_subplots(rows=1, cols=1 + len(runs), subplot_titles=titles,
                           horizontal_spacing=0.06,
                           column_widths=[2.0] + [1.0] * len(runs))
    for index, (label, rows) in enumerate(runs):
        colour = RUN_COLOURS[index % len(RUN_COLOURS)]
        epochs = [int(row["epoch"]) for row in rows]
        dice_key = _dice_key(rows, "val_")
        figure.add_trace(go.Scatter(x=epochs, y=[_value(r, dice_key) for r in rows],
                                    mode="lines+markers", name=f"{label} val Dice",
                                    line=dict(color=colour, width=2)), row=1, col=1)
    for index, (label, rows) in enumerate(runs):
        colour = RUN_COLOURS[index % len(RUN_COLOURS)]
        epochs = [int(row["epoch"]) for row in rows]
        for key, dash, what in (("loss", "dot", "train loss"), ("val_loss", "solid", "val loss")):
            figure.add_trace(go.Scatter(x=epochs, y=[_value(r, key) for r in rows],
                                        mode="lines+markers", name=f"{label} {what}",
                                        line=dict(color=colour, width=2, dash=dash)),
                             row=1, col=2 + index)
    figure.update_xaxes(title_text="epoch")
    figure.update_yaxes(range=[0, 1.02], row=1, col=1)
    figure.update_layout(height=340, margin=dict(l=40, r=10, t=50, b=40),
                         legend=dict(orientation="h", y=-0.25))
    return figure
