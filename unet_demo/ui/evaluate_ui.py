"""Evaluate page: how good is a model, where does it fail, and what helps?

Pick a trained run or a bundled model and a data split; the page shows image / truth /
prediction / overlay / TP-FP-FN error map, a sortable per-image table with the worst cases,
the spread of per-image Dice, a confusion matrix (multi-class), a threshold explorer with
Otsu's threshold, post-processing with before/after numbers and flip-TTA uncertainty.

Predictions are cached with ``st.cache_data`` keyed by (model id, dataset, split, TTA) strings;
arrays are never hashed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import streamlit as st

from unet_demo.data.bundled import SPLITS
from unet_demo.errors import UNetDemoError
from unet_demo.plots.evaluation import (
    confusion_figure,
    dice_distribution_figure,
    threshold_figure,
    uncertainty_figure,
)
from unet_demo.ui.kept import keep, kept, kept_index

UNCERTAINTY_CAPTION = ("Flip-TTA variance: dark where the mirrored predictions agree (the model "
                       "is sure), bright where they disagree (unsure; often the borders).")
METRIC_LABELS = {"dice": "Dice", "iou": "IoU", "hd95": "HD95 (px)", "recall": "recall"}
MAX_EVAL_IMAGES = 64
STATE_PREFIX = "evaluate."
DATASET_KEY = STATE_PREFIX + "dataset"
DATASET_CHOICES_KEY = STATE_PREFIX + "dataset_by_model"
"""Session-state key (no widget): model spec -> the dataset the user picked on purpose."""
DATASET_MODEL_KEY = STATE_PREFIX + "dataset_model"
"""Session-state key (no widget): the model spec the dataset box was last drawn for."""
PLOTLY_CONFIG = {"displayModeBar": "hover", "displaylogo": False}
"""Plotly toolbar only while the pointer is over a chart, so it never hides a legend."""


# --------------------------------------------------------------------------- cached compute

@st.cache_data(show_spinner=False, max_entries=8)
def split_predictions(model_spec: str, model_id: str, dataset: str, split: str,
                      tta: bool) -> dict[str, Any]:
    """`predict_split` of a model on a split, as a dict (cached per model, split and TTA).

    Args:
        model_spec: "bundled:NAME", a run folder or an ensemble (what `open_any` accepts).
        model_id: the handle's id (file digest inside): part of the cache key only.
        dataset: bundled dataset name or "upload:<id>".
        split: "train", "val" or "test".
        tta: use flip test-time augmentation; adds the per-pixel variance.
    """
    import dataclasses

    from unet_demo.evaluation.ensemble import open_any
    from unet_demo.evaluation.evaluate import predict_split

    del model_id  # only keys the cache
    prediction = predict_split(open_any(model_spec), dataset, split, tta=tta,
                               limit=MAX_EVAL_IMAGES)
    return dataclasses.asdict(prediction)


# --------------------------------------------------------------------------- widgets

def pick_model(key: str, prefer: str = "runs") -> str | None:
    """Selectbox of trained runs and bundled models; returns the spec for `open_model`.

    Args:
        key: widget key.
        prefer: "runs" (newest run first) or "bundled" (bundled models first).
    """
    from unet_demo.training.rundir import list_model_choices

    choices = list_model_choices(prefer)
    if not choices:
        st.info(
            "No model is available yet: no training run has finished and no bundled model is "
            "installed. Train one on the **Train** page, or install the bundled models with "
            "`python scripts/train_bundled_models.py`."
        )
        return None
    if all(spec.startswith("bundled:") for _, spec in choices):
        st.caption("No finished training run yet: the bundled models are listed. Runs you "
                   "finish on the **Train** page appear here too.")
    labels = [label for label, _ in choices]
    remembered = st.session_state.get(STATE_PREFIX + key + ".spec")
    specs = [spec for _, spec in choices]
    index = specs.index(remembered) if remembered in specs else 0
    label = st.selectbox("Model", labels, index=index, key=key,
                         help="Runs you trained in this app, or a model shipped with it.")
    spec = specs[labels.index(label)]
    st.session_state[STATE_PREFIX + key + ".spec"] = spec
    return spec


def _kept_checkbox(column, label: str, key: str, help: str | None = None) -> bool:
    return bool(keep(key, column.checkbox(label, kept(key, False), key=key, help=help)))


def _kept_number(column, label: str, low: int, high: int, default: int, key: str) -> int:
    return int(keep(key, column.number_input(label, low, high, kept(key, default), key=key)))


def postprocess_controls(key: str) -> list[str]:
    """Checkboxes and radii for the post-processing chain; returns the op strings in order.

    The choices are kept across pages (`unet_demo.ui.kept`).

    Args:
        key: prefix of the widget keys ("evaluate.pp", "segment.pp").

    Example:
        >>> postprocess_controls("evaluate.pp")  # doctest: +SKIP
        ['fill_holes']
    """
    ops: list[str] = []
    cols = st.columns(5)
    if _kept_checkbox(cols[0], "Opening", f"{key}.open", "remove specks thinner than the disk"):
        ops.append(f"opening:{_kept_number(cols[0], 'radius', 1, 10, 1, f'{key}.open_r')}")
    if _kept_checkbox(cols[1], "Closing", f"{key}.close", "close gaps narrower than the disk"):
        ops.append(f"closing:{_kept_number(cols[1], 'radius', 1, 10, 2, f'{key}.close_r')}")
    if _kept_checkbox(cols[2], "Fill holes", f"{key}.fill"):
        ops.append("fill_holes")
    if _kept_checkbox(cols[3], "Remove small", f"{key}.small", "drop blobs up to N pixels"):
        ops.append(f"remove_small:{_kept_number(cols[3], 'N', 1, 5000, 20, f'{key}.small_n')}")
    if _kept_checkbox(cols[4], "Largest blob", f"{key}.largest",
                      "keep only the largest connected component of each class; this also "
                      "deletes real extra lesions and all nuclei but one"):
        ops.append("largest_component")
    return ops


def dataset_for_model(spec: str, model_dataset: str, compatible: list[str],
                      state=None) -> str:
    """The dataset to score `spec` on: the one picked on purpose for it, else the model's own.

    Args:
        spec: the model spec ("bundled:NAME" or a run folder).
        model_dataset: the dataset the model was trained on ("" when unknown).
        compatible: bundled datasets the model can be scored on.
        state: a mapping to read (tests); default `st.session_state`.

    Example:
        >>> dataset_for_model("bundled:nuclei", "nuclei", ["nuclei", "brain_skullstrip"], {})
        'nuclei'
        >>> dataset_for_model("bundled:nuclei", "nuclei", ["nuclei", "brain_skullstrip"],
        ...                   {DATASET_CHOICES_KEY: {"bundled:nuclei": "brain_skullstrip"}})
        'brain_skullstrip'
    """
    state = st.session_state if state is None else state
    picked = state.get(DATASET_CHOICES_KEY, {}).get(spec)
    if picked in compatible:
        return picked
    return model_dataset if model_dataset in compatible else compatible[0]


def _remember_dataset(spec: str) -> None:
    """on_change of the dataset box: remember this model's dataset as picked on purpose."""
    choices = dict(st.session_state.get(DATASET_CHOICES_KEY, {}))
    choices[spec] = st.session_state[DATASET_KEY]
    st.session_state[DATASET_CHOICES_KEY] = choices


# --------------------------------------------------------------------------- page

def evaluate_page() -> None:
    """Draw the one-model (or ensemble) view of the Evaluate page (see `comparison_ui`)."""
    from unet_demo.data.sources import dataset_info as get_dataset_info
    from unet_demo.evaluation.ensemble import open_any
    from unet_demo.inference.registry import compatible_datasets
    from unet_demo.ui.ensemble_ui import pick_model_or_ensemble

    spec = pick_model_or_ensemble("evaluate", pick_model)
    if spec is None:
        return
    try:
        handle = open_any(spec)
    except UNetDemoError as error:
        st.error(str(error))
        return
    compatible = compatible_datasets(handle)
    if not compatible:
        st.error(f"No dataset matches this model ({handle.num_classes} classes, "
                 f"{handle.input_shape[-1]} channel(s)).")
        return
    # The dataset follows the model: a new model (or a return from another page) sets the box
    # to the dataset picked on purpose for that model, else to the model's own dataset.
    state = st.session_state
    if state.get(DATASET_MODEL_KEY) != spec or state.get(DATASET_KEY) not in compatible:
        state[DATASET_KEY] = dataset_for_model(spec, handle.dataset, compatible)
    state[DATASET_MODEL_KEY] = spec
    col_data, col_split, col_tta = st.columns([2, 1, 1])
    dataset = col_data.selectbox("Dataset", compatible, key=DATASET_KEY,
                                 on_change=_remember_dataset, args=(spec,),
                                 help="Follows the model: it opens on the data the model was "
                                      "trained on. Pick another to test how it transfers.")
    split_key = STATE_PREFIX + "split"
    split = keep(split_key, col_split.selectbox(
        "Split", SPLITS, index=kept_index(split_key, SPLITS, default=SPLITS.index("test")),
        key=split_key, help="Judge a model on the test split: it never saw those images."))
    tta = keep(STATE_PREFIX + "tta", col_tta.toggle(
        "Flip TTA", kept(STATE_PREFIX + "tta", False), key=STATE_PREFIX + "tta",
        help="Average predictions over 4 flips; shows where the model is unsure."))
    info = get_dataset_info(dataset)
    if dataset != handle.dataset and handle.dataset:
        st.warning(f"This model was trained on **{handle.dataset}**; scores on **{dataset}** "
                   "test how it transfers to other data (expect them to be low).")
    with st.spinner(f"Predicting the {split} split..."):
        try:
            data = split_predictions(spec, handle.model_id, dataset, split, tta)
        except UNetDemoError as error:
            st.error(str(error))
            return
    if data["total"] > len(data["ids"]):
        st.caption(f"Showing the first {len(data['ids'])} of {data['total']} images.")
    if spec.startswith("ensemble:"):
        _ensemble_members(spec, data, handle, dataset, split, tta)
    _render_results(data, handle, info, split)


def _ensemble_members(spec: str, data: dict[str, Any], handle, dataset: str, split: str,
                      tta: bool) -> None:
    """Each member's mean Dice next to the ensemble's, at threshold 0.5 (the gain it brings)."""
    from unet_demo.evaluation.ensemble import open_any
    from unet_demo.evaluation.evaluate import evaluate_predictions

    def mean_dice(values: dict[str, Any]) -> float:
        return float(evaluate_predictions(values["probabilities"], values["masks"],
                                          handle.num_classes, ids=values["ids"],
                                          distances=False).mean["dice"])

    rows = []
    with st.spinner("Scoring each member..."):
        for member in spec.removeprefix("ensemble:").split("\n"):
            member_handle = open_any(member)
            values = split_predictions(member, member_handle.model_id, dataset, split, tta)
            rows.append({"model": member_handle.title, "Dice": mean_dice(values)})
    ensemble_dice = mean_dice(data)
    best = max(row["Dice"] for row in rows)
    rows.append({"model": handle.title, "Dice": ensemble_dice})
    st.metric(f"ensemble {split} Dice (threshold 0.5)", f"{ensemble_dice:.3f}",
              f"{ensemble_dice - best:+.3f} vs best member")
    st.dataframe(rows, hide_index=True, key=STATE_PREFIX + "members_table",
                 column_config={"Dice": st.column_config.NumberColumn(format="%.3f")})


def _render_results(data: dict[str, Any], handle, info, split: str = "test") -> None:
    from unet_demo.evaluation.evaluate import evaluate_predictions
    from unet_demo.evaluation.scores import (
        confusion_matrix,
        metrics_table,
        otsu_threshold,
        threshold_curve,
        worst_k,
    )

    binary = data["probabilities"].shape[-1] == 1
    threshold = 0.5
    if binary:
        key = STATE_PREFIX + "threshold"
        threshold = keep(key, st.slider(
            "Threshold", 0.0, 1.0, kept(key, 0.5), 0.01, key=key,
            help="A pixel is foreground when its probability is at least this."))
    st.markdown("**Post-processing** (applied after thresholding)")
    ops = postprocess_controls("evaluate.pp")
    raw = evaluate_predictions(data["probabilities"], data["masks"], handle.num_classes,
                               threshold, ids=data["ids"])
    result = evaluate_predictions(data["probabilities"], data["masks"], handle.num_classes,
                                  threshold, ops, ids=data["ids"]) if ops else raw
    _metric_row(result.mean, raw.mean if ops else None, split)
    if ops:
        _before_after_table(raw.mean, result.mean, ops)

    tabs = st.tabs(["Per-image", "Gallery", "Threshold", "Confusion", "Uncertainty",
                    "ROC / PR"])
    with tabs[0]:
        table = metrics_table(result.rows)
        st.dataframe(table, width="stretch", hide_index=True,
                     column_config={"index": None})
        st.plotly_chart(dice_distribution_figure(result.rows), width="stretch",
                        config=PLOTLY_CONFIG)
        st.caption(f"Per-image Dice on the **{split}** split.")
        st.caption("HD95 and ASD are in pixels. They are empty (NaN) when exactly one of mask "
                   "and prediction is empty (nothing to measure to), and those images drop "
                   "out of their mean; 0 when both are empty.")
    with tabs[1]:
        metric = st.selectbox("Worst cases by", ["dice", "iou", "hd95", "recall", "precision"],
                              key="evaluate.worst_metric")
        k = 1
        if len(result.rows) > 1:
            k = st.slider("How many", 1, min(8, len(result.rows)), min(4, len(result.rows)),
                          key="evaluate.worst_k")
        worst = worst_k(result.rows, k, metric)
        choice = st.selectbox("Or pick an image", ["(worst cases)"] + data["ids"],
                              key="evaluate.image")
        indices = worst if choice == "(worst cases)" else [data["ids"].index(choice)]
        _legend()
        for index in indices:
            _image_row(data, result, index, info, split)
    with tabs[2]:
        if binary:
            curve = threshold_curve(data["probabilities"], data["masks"], 51)
            otsu = otsu_threshold(data["probabilities"])
            st.plotly_chart(threshold_figure(curve, threshold, otsu), width="stretch",
                            config=PLOTLY_CONFIG)
            best_t, best_dice = curve.best("dice")
            st.caption(f"Best mean {split} Dice {best_dice:.3f} at threshold {best_t:.2f}; Otsu's "
                       f"threshold on the probabilities is {otsu:.2f}. Choosing the threshold on "
                       "the test split flatters the score: pick it on 'val'.")
        else:
            st.info("Multi-class models take the most likely class (argmax): no threshold.")
    with tabs[3]:
        counts, normalised = confusion_matrix(data["masks"], result.predictions,
                                              max(2, handle.num_classes))
        names = list(info.class_names) if len(info.class_names) == len(counts) else [
            str(i) for i in range(len(counts))]
        st.plotly_chart(confusion_figure(normalised, counts, names), width="stretch",
                        config=PLOTLY_CONFIG)
        st.caption("Rows are the true class and sum to 1; hover for pixel counts.")
    with tabs[4]:
        if data["variance"] is None:
            st.info("Switch on **Flip TTA** above to see where the model changes its mind when "
                    "the image is mirrored.")
        else:
            mean_var = data["variance"].reshape(len(data["ids"]), -1).mean(axis=1)
            index = int(np.argmax(mean_var))
            st.markdown(f"Most uncertain image: **{data['ids'][index]}** "
                        f"(mean variance {mean_var[index]:.4f})")
            cols = st.columns(2)
            cols[0].image(_display(data["images"][index]), caption="image", width="stretch",
                          clamp=True)
            with cols[1]:
                # theme=None: the figure's own white background, so black reads as "no variance".
                st.plotly_chart(uncertainty_figure(data["variance"][index]), width="stretch",
                                theme=None, config=PLOTLY_CONFIG)
            st.caption(UNCERTAINTY_CAPTION)
    with tabs[5]:
        roc_pr_tab(data, split)


def roc_pr_tab(data: dict[str, Any], split: str) -> None:
    """ROC and precision-recall curves of a binary model's pixels, with AUC and AP."""
    from unet_demo.evaluation.curves import roc_pr_curves
    from unet_demo.plots.evaluation import precision_recall_figure, roc_figure

    if data["probabilities"].shape[-1] != 1:
        st.info("ROC and precision-recall curves are for binary models (one foreground class).")
        return
    try:
        curves = roc_pr_curves(data["probabilities"], data["masks"])
    except UNetDemoError as error:
        st.info(str(error))
        return
    left, right = st.columns(2)
    with left:
        st.plotly_chart(roc_figure(curves), width="stretch", config=PLOTLY_CONFIG,
                        key=STATE_PREFIX + "roc_chart")
    with right:
        st.plotly_chart(precision_recall_figure(curves), width="stretch",
                        config=PLOTLY_CONFIG, key=STATE_PREFIX + "pr_chart")
    cols = st.columns(3)
    cols[0].metric(f"ROC AUC ({split})", f"{curves.roc_auc:.3f}")
    cols[1].metric(f"average precision ({split})", f"{curves.average_precision:.3f}")
    cols[2].metric("foreground pixels", f"{100 * curves.prevalence:.2f} %")
    st.caption(
        f"Each of the {curves.positives + curves.negatives:,} pixels is one yes/no decision. "
        "ROC AUC is the chance that a random foreground pixel gets a higher probability than a "
        "random background pixel; with few foreground pixels it looks good even when many "
        "found pixels are wrong. The precision-recall curve shows that cost: its baseline is "
        "the foreground share, not 0.5.")


def _metric_row(mean: dict[str, float], before: dict[str, float] | None,
                split: str = "test") -> None:
    cols = st.columns(4)
    for col, key in zip(cols, ("dice", "iou", "hd95", "recall"), strict=True):
        value = mean.get(key, math.nan)
        delta = None
        if before is not None and not math.isnan(value) and not math.isnan(before.get(key, math.nan)):
            delta = f"{value - before[key]:+.3f} after post-processing"
        col.metric(f"mean {split} {METRIC_LABELS[key]}",
                   "n/a" if math.isnan(value) else f"{value:.3f}", delta,
                   delta_color="inverse" if key == "hd95" else "normal")


def _before_after_table(before: dict[str, float], after: dict[str, float],
                        ops: list[str]) -> None:
    keys = [key for key in ("dice", "iou", "precision", "recall", "hd95") if key in before]
    rows = [{"metric": key, "before": before[key], "after": after.get(key, math.nan),
             "change": after.get(key, math.nan) - before[key]} for key in keys]
    st.caption("Post-processing: " + " → ".join(ops))
    st.dataframe(rows, hide_index=True, column_config={
        name: st.column_config.NumberColumn(format="%.3f") for name in ("before", "after",
                                                                        "change")})


def _legend() -> None:
    from unet_demo.plots.images import error_legend, legend_rgb

    st.image(legend_rgb(error_legend()), caption="error map colours")
    st.caption("Black = true negative; the white outline in the overlay is the ground truth.")


def _image_row(data: dict[str, Any], result, index: int, info, split: str = "test") -> None:
    from unet_demo.plots.images import draw_outline, error_map, overlay_rgb

    image = _display(data["images"][index])
    truth = data["masks"][index]
    prediction = result.predictions[index]
    row = result.rows[index]
    st.markdown(f"**{row['id']}** ({split}) — {split} Dice {row['dice']:.3f}, IoU "
                f"{row['iou']:.3f}, "
                f"HD95 {_fmt(row.get('hd95'))} px")
    cols = st.columns(5)
    scale = max(1, int(info.num_classes) - 1)
    cols[0].image(image, caption="image", width="stretch")
    cols[1].image((truth * (255 // scale)).astype(np.uint8), caption="ground truth",
                  width="stretch")
    cols[2].image((prediction * (255 // scale)).astype(np.uint8), caption="prediction",
                  width="stretch")
    overlay = draw_outline(overlay_rgb(image, prediction, max(2, int(info.num_classes))), truth,
                           colour="#ffffff")
    cols[3].image(overlay, caption="prediction (fill), truth (outline)", width="stretch")
    cols[4].image(error_map(truth, prediction), caption="TP / FP / FN", width="stretch")


def _display(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image, np.float32)
    if array.shape[-1] == 1:
        array = array[..., 0]
    low, high = float(array.min()), float(array.max())
    return (array - low) / (high - low) if high > low else np.zeros_like(array)


def _fmt(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{float(value):.1f}"
