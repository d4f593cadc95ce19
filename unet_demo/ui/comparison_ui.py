"""Evaluate page views: one model or ensemble (`evaluate_ui.evaluate_page`), A/B comparison
of two models, and the cross-validation view (fold table, mean +- sd, the ensemble's gain over
the best fold).

The numbers come from `unet_demo.evaluation.curves` and `unet_demo.evaluation.crossval`, the
figures from `unet_demo.plots.evaluation`; predictions reuse the Evaluate page's cache.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import streamlit as st

from unet_demo.errors import UNetDemoError
from unet_demo.ui.kept import keep, kept, kept_index

PREFIX = "evaluate."
PLOTLY_CONFIG = {"displayModeBar": "hover", "displaylogo": False}


# --------------------------------------------------------------------------- views

MODES = ("One model or ensemble", "Compare two (A/B)", "Cross-validation")
MODE_KEY = PREFIX + "mode"


def evaluate_views() -> None:
    """The Evaluate page: a switch between one model (or ensemble), A/B and cross-validation."""
    from unet_demo.ui.evaluate_ui import evaluate_page

    if MODE_KEY not in st.session_state:
        st.session_state[MODE_KEY] = kept(MODE_KEY, MODES[0])
    mode = keep(MODE_KEY, st.radio(
        "View", MODES, horizontal=True, key=MODE_KEY,
        help="One model (or the average of several), two models side by side image by "
             "image, or the folds of a cross-validation."))
    if mode == MODES[1]:
        ab_section()
    elif mode == MODES[2]:
        crossval_section()
    else:
        evaluate_page()


# --------------------------------------------------------------------------- A/B

def ab_section() -> None:
    """Two models on the same split: per-image Dice scatter and the images that changed."""
    from unet_demo.data.bundled import SPLITS
    from unet_demo.evaluation.curves import compare_runs, comparison_summary
    from unet_demo.evaluation.evaluate import evaluate_predictions
    from unet_demo.inference.registry import compatible_datasets, open_model
    from unet_demo.plots.evaluation import ab_scatter_figure
    from unet_demo.ui.evaluate_ui import pick_model, split_predictions

    left, right = st.columns(2)
    with left:
        st.markdown("**Model A** (the baseline)")
        spec_a = pick_model("evaluate.model_a")
    with right:
        st.markdown("**Model B** (the change)")
        spec_b = pick_model("evaluate.model_b")
    if spec_a is None or spec_b is None:
        return
    try:
        handle_a, handle_b = open_model(spec_a), open_model(spec_b)
    except UNetDemoError as error:
        st.error(str(error))
        return
    shared = [name for name in compatible_datasets(handle_a)
              if name in compatible_datasets(handle_b)]
    if not shared:
        st.error("Models A and B fit no common dataset (different classes or channels).")
        return
    col_data, col_split = st.columns([2, 1])
    data_key, split_key = PREFIX + "ab_dataset", PREFIX + "ab_split"
    default = handle_a.dataset if handle_a.dataset in shared else shared[0]
    dataset = keep(data_key, col_data.selectbox(
        "Dataset", shared, index=kept_index(data_key, shared, default=shared.index(default)),
        key=data_key))
    split = keep(split_key, col_split.selectbox(
        "Split", SPLITS, index=kept_index(split_key, SPLITS, default=SPLITS.index("test")),
        key=split_key))
    with st.spinner("Predicting with both models..."):
        try:
            data_a = split_predictions(spec_a, handle_a.model_id, dataset, split, False)
            data_b = split_predictions(spec_b, handle_b.model_id, dataset, split, False)
        except UNetDemoError as error:
            st.error(str(error))
            return
    rows_a = evaluate_predictions(data_a["probabilities"], data_a["masks"],
                                  handle_a.num_classes, ids=data_a["ids"], distances=False).rows
    rows_b = evaluate_predictions(data_b["probabilities"], data_b["masks"],
                                  handle_b.num_classes, ids=data_b["ids"], distances=False).rows
    table = compare_runs(rows_a, rows_b)
    summary = comparison_summary(table)
    cols = st.columns(4)
    cols[0].metric("B better", summary["B better"])
    cols[1].metric("A better", summary["A better"])
    cols[2].metric("about the same", summary["same"], help="Dice within ±0.01")
    cols[3].metric(f"mean {split} Dice change (B − A)", f"{summary['mean change']:+.3f}")
    st.plotly_chart(ab_scatter_figure(table, handle_a.title, handle_b.title), width="stretch",
                    config=PLOTLY_CONFIG, key=PREFIX + "ab_chart")
    st.markdown("**Images that changed most** (largest gain of B first)")
    st.dataframe(table, hide_index=True, width="stretch", key=PREFIX + "ab_table",
                 column_config={name: st.column_config.NumberColumn(format="%.3f")
                                for name in ("A", "B", "change")})
    st.caption("A mean can hide that B fixed some images and broke others: look at both ends "
               "of the table before you keep the change.")


# --------------------------------------------------------------------------- cross-validation

def _open_folds_as_ensemble(summary: dict[str, Any]) -> None:
    """on_click: offer the CV's fold runs to the ensemble picker and switch to it."""
    from unet_demo.ui.ensemble_ui import EXTRA_SPECS_KEY

    labels = {}
    for row in summary["runs"]:
        label = f"CV {Path(summary['folder']).name}: fold {row['fold']}/{summary['folds']}"
        labels[label] = row["path"]
    extra = dict(st.session_state.get(EXTRA_SPECS_KEY, {}))
    extra.update(labels)
    st.session_state[EXTRA_SPECS_KEY] = extra
    st.session_state[PREFIX + "ensemble_members.kept"] = list(labels.values())
    st.session_state[PREFIX + "ensemble_on.kept"] = True
    st.session_state[MODE_KEY] = MODES[0]


def crossval_section() -> None:
    """Pick a finished cross-validation; show its fold table, mean +- sd and ensemble gain."""
    from unet_demo.evaluation.crossval import fold_table, list_crossval, load_crossval
    from unet_demo.plots.evaluation import fold_figure

    folders = list_crossval()
    if not folders:
        st.info("No cross-validation has finished yet. Train one from a terminal, e.g. "
                "`python -m unet_demo train --dataset brain_skullstrip --folds 5` (queued "
                "like the Train page's runs), and it appears here.")
        return
    names = [str(folder) for folder in folders]
    key = PREFIX + "crossval"
    chosen = keep(key, st.selectbox("Cross-validation", names,
                                    index=kept_index(key, names), key=key,
                                    help="Folders with a crossval.json in the runs folder."))
    try:
        summary = load_crossval(chosen)
    except UNetDemoError as error:
        st.error(str(error))
        return
    st.markdown(f"**{summary['folds']}-fold cross-validation on {summary['dataset']}** "
                f"({summary['image_size']} px, {summary['normalization']} normalisation)")
    ensemble = summary.get("ensemble") or {}
    cols = st.columns(3)
    cols[0].metric("mean validation Dice ± sd",
                   f"{summary['val_dice_mean']:.3f} ± {summary['val_dice_sd']:.3f}",
                   help="Each fold scored on its own held-out fold; sd over the folds.")
    if ensemble:
        gain = ensemble.get("gain_over_best_fold", math.nan)
        cols[1].metric("ensemble test Dice", f"{ensemble['test_dice']:.3f}",
                       f"{gain:+.3f} vs best single fold", help="The mean of the fold models' "
                       "probabilities, scored on the test split none of them saw.")
        cols[2].metric(f"best single fold (fold {ensemble['best_fold']}) test Dice",
                       f"{ensemble['best_fold_test_dice']:.3f}")
    st.plotly_chart(fold_figure(summary["runs"], ensemble.get("test_dice")), width="stretch",
                    config=PLOTLY_CONFIG, key=PREFIX + "fold_chart")
    st.dataframe(fold_table(summary), hide_index=True, width="stretch",
                 key=PREFIX + "fold_table",
                 column_config={name: st.column_config.NumberColumn(format="%.3f")
                                for name in ("val Dice", "test Dice")})
    st.caption("Folds keep neighbouring slices, overlapping patches and one patient's images "
               "together, so no fold validates on near copies of its training images. Note: "
               "picking the best fold by its test Dice is itself a look at the test split; the "
               "ensemble needs no such choice.")
    st.button("Open these folds as an ensemble", key=PREFIX + "crossval_open",
              on_click=_open_folds_as_ensemble, args=(summary,),
              help="Switches to the single-model view with the fold runs picked as an ensemble.")
