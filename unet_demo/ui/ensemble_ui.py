"""Model pickers shared by Evaluate and Segment: one model, or an ensemble of finished runs.

An ensemble averages the members' probabilities (`unet_demo.evaluation.ensemble`); the pages
then treat it like one model. Runs of a cross-validation that live outside the runs folder
(``train --folds K --out DIR``) can be added through `EXTRA_SPECS_KEY` (the Evaluate page's
cross-validation view does that).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from unet_demo.ui.kept import keep, kept

EXTRA_SPECS_KEY = "ensemble.extra_specs"
"""Session-state key (no widget): label -> spec of models to offer besides the runs folder."""


def model_options(prefer: str = "runs") -> dict[str, str]:
    """Label -> spec of every model a picker offers (runs, bundled, extra CV folds).

    Args:
        prefer: "runs" or "bundled" first (as `list_model_choices`).
    """
    from unet_demo.training.rundir import list_model_choices

    options = dict(list_model_choices(prefer))
    for label, spec in dict(st.session_state.get(EXTRA_SPECS_KEY, {})).items():
        if spec not in options.values():
            options[label] = spec
    return options


def _same_path(spec: str) -> str:
    """A spec in one spelling: run folders resolved, labels and bundled names unchanged."""
    path = Path(spec)
    return str(path.resolve()) if path.is_dir() else str(spec)


def pick_ensemble(prefix: str, prefer: str = "runs") -> str | None:
    """Multiselect of models to average; returns their `ensemble_spec` (None: fewer than 2).

    Args:
        prefix: page prefix of the widget keys ("evaluate", "segment").
        prefer: which models come first in the list.
    """
    from unet_demo.evaluation.ensemble import ensemble_spec

    options = model_options(prefer)
    key = f"{prefix}.ensemble_members"
    wanted = {_same_path(item) for item in kept(key, [])}  # labels, or specs set by a page
    remembered = [label for label, spec in options.items()
                  if label in wanted or _same_path(spec) in wanted]
    chosen = keep(key, st.multiselect(
        "Models to average", list(options), default=remembered, key=key,
        help="Finished runs (or bundled models) with the same input size, classes and "
             "normalisation, e.g. the K runs of a cross-validation. The ensemble's probability "
             "is the mean of theirs."))
    if len(chosen) < 2:
        st.info("Pick two or more models to average.")
        return None
    return ensemble_spec([options[label] for label in chosen])


def pick_model_or_ensemble(prefix: str, pick_model, prefer: str = "runs") -> str | None:
    """A toggle between one model (``pick_model``) and an ensemble (`pick_ensemble`).

    Args:
        prefix: page prefix of the widget keys; one model keeps the key ``<prefix>.model``.
        pick_model: the one-model picker, ``pick_model(key, prefer=...) -> spec`` (the
            Evaluate page's).
        prefer: which models come first.

    Returns:
        A spec for `unet_demo.evaluation.ensemble.open_any`, or None when nothing is picked.
    """
    key = f"{prefix}.ensemble_on"
    on = keep(key, st.toggle(
        "Ensemble of several models", kept(key, False), key=key,
        help="Average the probabilities of several trained models (as nnU-Net does with its "
             "five cross-validation folds): usually a little better and steadier than any one."))
    if on:
        return pick_ensemble(prefix, prefer)
    return pick_model(f"{prefix}.model", prefer=prefer)
