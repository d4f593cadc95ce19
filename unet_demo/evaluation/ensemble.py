"""Ensembles: several trained models that predict together by averaging their probabilities.

nnU-Net averages the softmax outputs of its five cross-validation models; this module does
the same for any finished runs that share a task: the same input size and channels, the same
outputs (classes) and the same intensity normalisation. `open_ensemble` wraps them as one
`unet_demo.inference.registry.ModelHandle`, so the Evaluate and Segment pages, TTA and the
CLI use an ensemble exactly like a single model.

Example:
    >>> handle = open_ensemble(["bundled:nuclei", "bundled:nuclei"])
    >>> handle.input_shape, handle.num_classes, handle.model_id.startswith("ensemble:")
    ((128, 128, 1), 1, True)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from unet_demo.errors import UNetDemoError
from unet_demo.inference.registry import ModelHandle, open_model

ENSEMBLE_PREFIX = "ensemble:"


def mean_probabilities(outputs: Sequence[np.ndarray]) -> np.ndarray:
    """The pixel-wise mean of several models' probabilities (all the same shape).

    Args:
        outputs: one (N, H, W, K) array per model.

    Raises:
        UNetDemoError: no outputs, or shapes that differ.

    Example:
        >>> a, b = np.full((1, 2, 2, 1), 0.2), np.full((1, 2, 2, 1), 0.6)
        >>> mean_probabilities([a, b])[0, 0, 0, 0].round(6)
        np.float32(0.4)
    """
    if not len(outputs):
        raise UNetDemoError("An ensemble needs at least one model's probabilities.")
    shapes = {np.shape(output) for output in outputs}
    if len(shapes) != 1:
        raise UNetDemoError(f"Ensemble members gave outputs of different shapes {sorted(shapes)}; "
                            "members must share input size and classes.")
    total = np.zeros(next(iter(shapes)), np.float64)
    for output in outputs:
        total += np.asarray(output, np.float64)
    return (total / len(outputs)).astype(np.float32)


class EnsembleModel:
    """Averages the probabilities of several `SharedModel` members (thread-safe like them).

    ``keras_model`` is the first member's model: the out-of-distribution check reads its
    features (all members saw the same kind of training data).

    Args:
        members: the members' `SharedModel` objects (or bare Keras models).

    Example:
        >>> shared = open_model("bundled:nuclei").shared
        >>> images = np.zeros((2, 128, 128, 1), np.float32)
        >>> EnsembleModel([shared, shared]).predict_probabilities(images).shape
        (2, 128, 128, 1)
    """

    def __init__(self, members: Sequence[Any]) -> None:
        if not members:
            raise UNetDemoError("An ensemble needs at least one model.")
        self.members = list(members)

    @property
    def input_shape(self) -> tuple:
        """The members' common input shape, e.g. (None, 128, 128, 1)."""
        return tuple(self.members[0].input_shape)

    @property
    def output_shape(self) -> tuple:
        """The members' common output shape."""
        return tuple(self.members[0].output_shape)

    @property
    def keras_model(self) -> Any:
        """The first member's Keras model (for feature-based checks; not the ensemble)."""
        member = self.members[0]
        return getattr(member, "keras_model", member)

    def predict_probabilities(self, images: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """Mean of the members' probabilities for float32 images (N, H, W, C)."""
        from unet_demo.inference.registry import predict_with

        return mean_probabilities([predict_with(member, images, batch_size)
                                   for member in self.members])


def check_members(handles: Sequence[ModelHandle]) -> None:
    """Raise a UNetDemoError unless the models can be averaged pixel by pixel.

    Args:
        handles: opened models.

    Example:
        >>> check_members([open_model("bundled:nuclei"), open_model("bundled:brain_tissue")])
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        unet_demo.errors.UNetDemoError: Models in an ensemble must share ... classes 1 vs 4, ...
    """
    first = handles[0]
    for other in handles[1:]:
        if (other.input_shape, other.num_classes, other.normalization) != (
                first.input_shape, first.num_classes, first.normalization):
            raise UNetDemoError(
                "Models in an ensemble must share input size, channels, classes and "
                f"normalisation, but {first.title[:22]!r}... and {other.title[:22]!r}... differ: "
                f"input {first.input_shape} vs {other.input_shape}, classes "
                f"{first.num_classes} vs {other.num_classes}, normalisation "
                f"{first.normalization} vs {other.normalization}. Pick runs trained on the "
                "same dataset with the same size and normalisation.")


def open_ensemble(specs: Sequence[str], title: str = "") -> ModelHandle:
    """Open several models and wrap them as one handle that predicts their mean.

    Args:
        specs: model specs for `open_model` ("bundled:NAME", run folders, .keras files);
            at least two are usual, one gives that model unchanged (as an ensemble).
        title: a name for the ensemble (default: "Ensemble of N models").

    Raises:
        UNetDemoError: no specs, a model that does not open, or members that do not fit
            together (`check_members`).

    Example:
        >>> open_ensemble(["bundled:nuclei", "bundled:nuclei"]).title
        'Ensemble of 2 models'
    """
    specs = [str(spec) for spec in specs]
    if not specs:
        raise UNetDemoError("Pick at least one model for the ensemble (two or more to average).")
    handles = [open_model(spec) for spec in specs]
    check_members(handles)
    first = handles[0]
    digest = hashlib.sha256("|".join(h.model_id for h in handles).encode()).hexdigest()[:12]
    datasets = {h.dataset for h in handles if h.dataset}
    return ModelHandle(
        model_id=f"{ENSEMBLE_PREFIX}{len(handles)}@{digest}",
        title=title or f"Ensemble of {len(handles)} models",
        shared=EnsembleModel([h.shared for h in handles]),
        input_shape=first.input_shape,
        num_classes=first.num_classes,
        dataset=first.dataset if len(datasets) <= 1 else "",
        card={"ensemble": specs, **({"data": first.card.get("data")}
                                     if isinstance(first.card.get("data"), dict) else {})},
        fingerprint=first.fingerprint,
        source=first.source,
        normalization=first.normalization,
    )


def ensemble_spec(specs: Sequence[str]) -> str:
    """One string naming an ensemble of model specs (a cache key and an `open_any` argument).

    Args:
        specs: the members' model specs, in order.

    Example:
        >>> ensemble_spec(["bundled:nuclei", "runs/a"])
        'ensemble:bundled:nuclei\\nruns/a'
    """
    return ENSEMBLE_PREFIX + "\n".join(str(spec) for spec in specs)


def open_any(spec: str) -> ModelHandle:
    """Open a single model spec, or an ensemble made by `ensemble_spec`.

    Args:
        spec: "bundled:NAME", a run folder, a .keras file, or "ensemble:" + specs.

    Example:
        >>> open_any(ensemble_spec(["bundled:nuclei"] * 2)).title
        'Ensemble of 2 models'
        >>> open_any("bundled:nuclei").dataset
        'nuclei'
    """
    text = str(spec)
    if text.startswith(ENSEMBLE_PREFIX):
        return open_ensemble([part for part in text.removeprefix(ENSEMBLE_PREFIX).split("\n")
                              if part])
    return open_model(text)
