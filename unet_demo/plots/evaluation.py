"""Figures for the Evaluate and Segment pages: per-image scores, thresholds, confusion, variance.

Pure functions: per-image metric rows, curves or arrays in, plotly figures out. No streamlit,
no TensorFlow and no engine imports (the threshold curve is any object with ``thresholds``,
``dice``, ``precision``, ``recall`` and ``best(name)``, as `unet_demo.evaluation.scores`
makes it).

Example:
    >>> figure = dice_distribution_figure([{"id": "a", "dice": 0.8}, {"id": "b", "dice": 0.6}])
    >>> list(figure.data[0].y)
    [0.8, 0.6]
"""

from __future__ import annotations

from typing import Any

import numpy as np

DICE_COLOUR = "#0072b2"
PRECISION_COLOUR = "#e69f00"
RECALL_COLOUR = "#009e73"
OTSU_COLOUR = "#cc79a7"


def dice_distribution_figure(rows: list[dict[str, Any]], metric: str = "dice"):
    """Plotly violin + box + points of a per-image metric; hover shows the image id.

    Args:
        rows: per-image rows (`unet_demo.evaluation.scores.per_image_metrics` output) with
            "id" and the metric.
        metric: which metric to plot.

    Example:
        >>> figure = dice_distribution_figure([{"id": "a", "dice": 0.5}])
        >>> figure.data[0].type, list(figure.data[0].text), figure.layout.yaxis.range
        ('violin', ['a'], (0, 1.02))
    """
    import plotly.graph_objects as go

    values = [float(r[metric]) for r in rows]
    figure = go.Figure(go.Violin(
        y=values, text=[r["id"] for r in rows], name=metric.upper() if len(metric) < 5 else metric,
        box_visible=True, meanline_visible=True, points="all", hoverinfo="y+text",
        fillcolor="rgba(0,114,178,0.25)", line_color=DICE_COLOUR,
    ))
    figure.update_layout(height=320, margin=dict(l=40, r=10, t=30, b=30),
                         title=f"Per-image {metric} ({len(values)} images)",
                         yaxis=dict(range=[0, 1.02]) if metric in ("dice", "iou") else {})
    return figure


def threshold_figure(curve, chosen: float, otsu: float | None):
    """Plotly lines of Dice / precision / recall against the threshold, with markers.

    Args:
        curve: a `unet_demo.evaluation.scores.ThresholdCurve` (thresholds, dice, precision,
            recall and ``best(name) -> (threshold, value)``).
        chosen: the threshold currently used (dashed line).
        otsu: Otsu's threshold of the probabilities (dotted line), or None.

    Example:
        >>> from types import SimpleNamespace
        >>> curve = SimpleNamespace(thresholds=[0.25, 0.5, 0.75], dice=[0.5, 0.8, 0.6],
        ...                         precision=[0.4, 0.8, 0.9], recall=[0.9, 0.8, 0.5],
        ...                         best=lambda name: (0.5, 0.8))
        >>> [trace.name for trace in threshold_figure(curve, 0.5, 0.4).data]
        ['Dice', 'Precision', 'Recall', 'best Dice']
    """
    import plotly.graph_objects as go

    figure = go.Figure()
    colours = {"dice": DICE_COLOUR, "precision": PRECISION_COLOUR, "recall": RECALL_COLOUR}
    for name, colour in colours.items():
        figure.add_trace(go.Scatter(x=curve.thresholds, y=getattr(curve, name), mode="lines",
                                    name=name.capitalize(), line=dict(color=colour, width=2)))
    best_t, best_v = curve.best("dice")
    figure.add_trace(go.Scatter(x=[best_t], y=[best_v], mode="markers", name="best Dice",
                                marker=dict(size=11, color=DICE_COLOUR, symbol="star")))
    figure.add_vline(x=chosen, line_dash="dash", line_color="#555",
                     annotation_text=f"chosen {chosen:.2f}", annotation_position="top left")
    if otsu is not None:
        figure.add_vline(x=otsu, line_dash="dot", line_color=OTSU_COLOUR,
                         annotation_text=f"Otsu {otsu:.2f}", annotation_position="bottom right")
    figure.update_layout(height=360, margin=dict(l=40, r=10, t=30, b=40),
                         xaxis_title="threshold (probability >= t is foreground)",
                         yaxis=dict(title="mean over images", range=[0, 1.02]),
                         legend=dict(orientation="h", y=-0.25))
    return figure


def confusion_figure(normalised: np.ndarray, counts: np.ndarray, class_names: list[str]):
    """Plotly heatmap of a row-normalised pixel confusion matrix with counts on hover.

    Args:
        normalised: rows sum to 1 (true class), columns = predicted class.
        counts: pixel counts of the same shape.
        class_names: one name per class.

    Example:
        >>> counts = np.array([[8, 2], [1, 9]])
        >>> figure = confusion_figure(counts / counts.sum(1, keepdims=True), counts, ["bg", "fg"])
        >>> figure.data[0].text[0]
        ['0.80', '0.20']
    """
    import plotly.graph_objects as go

    text = [[f"{normalised[i, j]:.2f}" for j in range(len(class_names))]
            for i in range(len(class_names))]
    figure = go.Figure(go.Heatmap(
        z=normalised, x=class_names, y=class_names, text=text, texttemplate="%{text}",
        customdata=counts, colorscale="Blues", zmin=0, zmax=1,
        hovertemplate="true %{y}<br>predicted %{x}<br>share %{z:.3f}<br>pixels %{customdata}"
                      "<extra></extra>",
    ))
    figure.update_layout(height=380, margin=dict(l=60, r=10, t=30, b=60),
                         xaxis_title="predicted class", yaxis_title="true class",
                         yaxis_autorange="reversed")
    return figure


UNCERTAINTY_COLOURS = [[0.0, "#000000"], [0.25, "#51127c"], [0.5, "#b73779"],
                       [0.75, "#fc8961"], [1.0, "#fcfdbf"]]
"""Magma, written out: black at zero variance (sure), pale yellow at the most (unsure).

Magma's own first colour, #000004, must not be used: Streamlit's browser code reads #000001 to
#0000xx in any plotly figure as placeholders for its theme's category colours and paints them
light purple, which drew zero variance bright (the inverted map of the classroom issue)."""


def uncertainty_figure(variance: np.ndarray):
    """Plotly heatmap of the flip-TTA per-pixel variance of one image: dark = sure, bright = unsure.

    Zero variance (all flips agree) is black and the largest variance pale yellow, as the
    colour bar says. The colour scale runs from 0 to at least 0.25 (the largest variance of a
    probability), so two images' maps can be compared by eye. The scale is written out rather
    than named (see `UNCERTAINTY_COLOURS` for why not Magma's own black).

    Args:
        variance: (H, W) per-pixel variance.

    Example:
        >>> figure = uncertainty_figure(np.zeros((4, 4)))
        >>> figure.data[0].zmax, figure.data[0].colorscale[0][1], figure.data[0].colorscale[-1][1]
        (0.25, '#000000', '#fcfdbf')
    """
    import plotly.graph_objects as go

    zmax = max(0.25, float(np.max(variance)))
    figure = go.Figure(go.Heatmap(
        z=variance, colorscale=UNCERTAINTY_COLOURS, zmin=0, zmax=zmax, reversescale=False,
        hovertemplate="variance %{z:.3f}<extra></extra>",
        colorbar=dict(title=dict(text="flip variance", side="right"),
                      tickvals=[0, zmax / 2, zmax],
                      ticktext=["0 dark = sure", f"{zmax / 2:.2f}", f"{zmax:.2f} bright = unsure"],
                      tickfont=dict(size=14))))
    figure.update_layout(height=340, margin=dict(l=10, r=10, t=10, b=10),
                         paper_bgcolor="white", plot_bgcolor="white", font=dict(size=14),
                         yaxis=dict(autorange="reversed", scaleanchor="x", visible=False),
                         xaxis=dict(visible=False))
    return figure


def roc_figure(curves):
    """Plotly ROC curve (true- against false-positive rate) with its AUC and the chance line.

    Args:
        curves: a `unet_demo.evaluation.curves.RocPrCurves` (``fpr``, ``tpr``, ``roc_auc``).

    Example:
        >>> from types import SimpleNamespace
        >>> figure = roc_figure(SimpleNamespace(fpr=[0, 0.5, 1], tpr=[0, 0.9, 1], roc_auc=0.7))
        >>> figure.data[0].name, figure.layout.xaxis.title.text
        ('ROC (AUC 0.700)', 'false-positive rate (background called foreground)')
    """
    import plotly.graph_objects as go

    figure = go.Figure()
    figure.add_trace(go.Scatter(x=list(curves.fpr), y=list(curves.tpr), mode="lines",
                                name=f"ROC (AUC {curves.roc_auc:.3f})",
                                line=dict(color=DICE_COLOUR, width=2)))
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance (AUC 0.5)",
                                line=dict(color="#999999", dash="dot")))
    figure.update_layout(
        height=340, margin=dict(l=50, r=10, t=30, b=40), title="ROC curve (every pixel)",
        xaxis=dict(title="false-positive rate (background called foreground)",
                   range=[0, 1]),
        yaxis=dict(title="true-positive rate (recall)", range=[0, 1.02]),
        legend=dict(x=0.45, y=0.08))
    return figure


def precision_recall_figure(curves):
    """Plotly precision-recall curve with its average precision and the prevalence baseline.

    Args:
        curves: a `unet_demo.evaluation.curves.RocPrCurves` (``recall``, ``precision``,
            ``average_precision``, ``prevalence``).

    Example:
        >>> from types import SimpleNamespace
        >>> figure = precision_recall_figure(SimpleNamespace(
        ...     recall=[0, 0.5, 1], precision=[1, 0.8, 0.3], average_precision=0.75,
        ...     prevalence=0.1))
        >>> figure.data[0].name, figure.data[1].y
        ('PR (AP 0.750)', (0.1, 0.1))
    """
    import plotly.graph_objects as go

    figure = go.Figure()
    figure.add_trace(go.Scatter(x=list(curves.recall), y=list(curves.precision), mode="lines",
                                name=f"PR (AP {curves.average_precision:.3f})",
                                line=dict(color=PRECISION_COLOUR, width=2)))
    figure.add_trace(go.Scatter(x=[0, 1], y=[curves.prevalence, curves.prevalence],
                                mode="lines", name=f"guessing ({curves.prevalence:.3f})",
                                line=dict(color="#999999", dash="dot")))
    figure.update_layout(
        height=340, margin=dict(l=50, r=10, t=30, b=40),
        title="Precision-recall curve (every pixel)",
        xaxis=dict(title="recall (share of the foreground found)", range=[0, 1]),
        yaxis=dict(title="precision (share of the found that is right)", range=[0, 1.02]),
        legend=dict(x=0.02, y=0.08))
    return figure


def ab_scatter_figure(table: list[dict[str, Any]], label_a: str = "A", label_b: str = "B",
                      metric: str = "Dice"):
    """Plotly scatter of per-image scores of model A (x) against model B (y), with y = x.

    Points above the diagonal are images where B does better; hover names the image.

    Args:
        table: rows with "id", "A", "B" and "verdict" (`unet_demo.evaluation.curves.compare_runs`).
        label_a, label_b: axis names of the two models.
        metric: the score's name for the axis titles.

    Example:
        >>> figure = ab_scatter_figure([{"id": "x", "A": 0.5, "B": 0.8, "verdict": "B better"}])
        >>> [trace.name for trace in figure.data]
        ['B better', 'A = B']
    """
    import plotly.graph_objects as go

    colours = {"B better": RECALL_COLOUR, "A better": "#d55e00", "same": "#999999",
               "n/a": "#cccccc"}
    figure = go.Figure()
    for verdict, colour in colours.items():
        rows = [row for row in table if row["verdict"] == verdict]
        if rows:
            figure.add_trace(go.Scatter(
                x=[row["A"] for row in rows], y=[row["B"] for row in rows], mode="markers",
                name=verdict, text=[row["id"] for row in rows], hoverinfo="x+y+text",
                marker=dict(color=colour, size=9, line=dict(width=0.5, color="#333333"))))
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="A = B",
                                line=dict(color="#666666", dash="dot"), hoverinfo="skip"))
    figure.update_layout(
        height=380, margin=dict(l=50, r=10, t=30, b=40),
        title=f"Per-image {metric}: above the line B does better",
        xaxis=dict(title=f"{metric} of A: {label_a}"[:70], range=[0, 1.02]),
        yaxis=dict(title=f"{metric} of B: {label_b}"[:70], range=[0, 1.02],
                   scaleanchor="x"))
    return figure


def fold_figure(fold_rows: list[dict[str, Any]], ensemble_dice: float | None = None):
    """Plotly bars of per-fold validation and test Dice, with the ensemble's test Dice line.

    Args:
        fold_rows: one row per fold with "fold", "val_dice" and optionally "test_dice".
        ensemble_dice: the ensemble's test Dice (a dashed line), or None.

    Example:
        >>> figure = fold_figure([{"fold": 1, "val_dice": 0.8, "test_dice": 0.7}], 0.75)
        >>> [trace.name for trace in figure.data]
        ['validation Dice (own fold)', 'test Dice', 'ensemble test Dice 0.750']
    """
    import plotly.graph_objects as go

    names = [f"fold {row['fold']}" for row in fold_rows]
    figure = go.Figure()
    figure.add_trace(go.Bar(x=names, y=[row.get("val_dice") for row in fold_rows],
                            name="validation Dice (own fold)", marker_color=DICE_COLOUR))
    if any(row.get("test_dice") is not None for row in fold_rows):
        figure.add_trace(go.Bar(x=names, y=[row.get("test_dice") for row in fold_rows],
                                name="test Dice", marker_color=PRECISION_COLOUR))
    if ensemble_dice is not None:
        figure.add_trace(go.Scatter(x=names, y=[ensemble_dice] * len(names), mode="lines",
                                    name=f"ensemble test Dice {ensemble_dice:.3f}",
                                    line=dict(color=RECALL_COLOUR, dash="dash", width=3)))
    figure.update_layout(height=340, barmode="group", margin=dict(l=40, r=10, t=30, b=30),
                         title="Cross-validation: Dice per fold", yaxis=dict(range=[0, 1.02]))
    return figure
