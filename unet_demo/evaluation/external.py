"""Score a model on the labelled external test sets in ``benchmarks/external/``.

The bundled models learn from ``sample_data/`` only (one head, one template, one microscope
image). The external sets, built by ``scripts/build_external_sets.py`` from other public files,
show how a model does on images it never saw; nothing in training reads them. Each set's
``card.json`` names the bundled datasets it can score (``for_models``) and how:

* ``"binary"``: the model's labels are compared with the set's binary mask as they are.
* ``"foreground"``: a multi-class model's classes above 0 are merged into one foreground
  class first (a tissue model scored on a brain mask, because no external tissue labels exist).

Example:
    >>> [s for s in list_external_sets()]
    ['mni152_fsl_brain', 'mni152_fsl_head', 'stardist_nuclei3d']
    >>> external_sets_for("brain_skullstrip")
    ['mni152_fsl_head']
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from unet_demo.data.preprocess import prepare_batch
from unet_demo.errors import UNetDemoError
from unet_demo.evaluation.scores import mean_metrics, per_image_metrics
from unet_demo.inference.labels import labels_from_probabilities

REPO_ROOT = Path(__file__).resolve().parents[2]
SCORING_RULES = ("binary", "foreground")


def external_dir() -> Path:
    """Folder with one sub-folder per external set (``UNET_DEMO_EXTERNAL_DIR`` moves it).

    Example:
        >>> external_dir().name
        'external'
    """
    return Path(os.environ.get("UNET_DEMO_EXTERNAL_DIR", REPO_ROOT / "benchmarks" / "external"))


@dataclasses.dataclass(frozen=True)
class ExternalSet:
    """One external set: images, binary masks, ids and its card.

    Args:
        name: folder name, e.g. "mni152_fsl_head".
        images: float32 (N, H, W, 1) in [0, 1], as the bundled loader gives sample_data.
        masks: uint8 (N, H, W) labels (0 = background, 1 = foreground).
        ids: one name per image.
        card: the set's card.json (sources, licence, derivation, `for_models`).
    """

    name: str
    images: np.ndarray
    masks: np.ndarray
    ids: list[str]
    card: dict[str, Any]


def list_external_sets() -> list[str]:
    """Names of the external sets present (folders with a card.json), sorted.

    Example:
        >>> "mni152_fsl_head" in list_external_sets()
        True
    """
    root = external_dir()
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob("*/card.json"))


def external_sets_for(dataset: str) -> list[str]:
    """The external sets whose card says they can score a model of `dataset`.

    Args:
        dataset: a bundled dataset name, e.g. "nuclei".

    Example:
        >>> external_sets_for("nuclei")
        ['stardist_nuclei3d']
        >>> external_sets_for("synthetic_lesions")
        []
    """
    return [name for name in list_external_sets()
            if dataset in _read_card(external_dir() / name)["for_models"]]


def _read_card(folder: Path) -> dict[str, Any]:
    path = folder / "card.json"
    if not path.is_file():
        raise UNetDemoError(
            f"No external set at {folder}: card.json is missing. Expected one of "
            f"{list_external_sets()}; rebuild with scripts/build_external_sets.py."
        )
    return json.loads(path.read_text(encoding="utf-8"))


def load_external_set(name: str) -> ExternalSet:
    """Load one external set from its folder.

    Args:
        name: a name from `list_external_sets`.

    Example:
        >>> s = load_external_set("stardist_nuclei3d")
        >>> s.images.shape, s.images.dtype, int(s.masks.max())
        ((16, 128, 128, 1), dtype('float32'), 1)
    """
    folder = external_dir() / name
    card = _read_card(folder)
    with np.load(folder / "test.npz", allow_pickle=False) as data:
        images = data["images"].astype(np.float32)[..., None] / 255.0
        masks = data["masks"].astype(np.uint8)
        ids = [str(i) for i in data["ids"]]
    if len(images) != len(masks) or len(ids) != len(images):
        raise UNetDemoError(
            f"External set {name!r} is inconsistent: {len(images)} images, {len(masks)} masks, "
            f"{len(ids)} ids. Rebuild it with scripts/build_external_sets.py."
        )
    return ExternalSet(name=name, images=images, masks=masks, ids=ids, card=card)


def merge_foreground(labels: np.ndarray) -> np.ndarray:
    """Turn a label map into background (0) versus any other class (1).

    Args:
        labels: integer labels of any shape.

    Example:
        >>> merge_foreground(np.array([0, 1, 2, 3])).tolist()
        [0, 1, 1, 1]
    """
    return (np.asarray(labels) > 0).astype(np.uint8)


def score_external(handle: Any, name: str, *, rule: str | None = None,
                   batch_size: int = 8) -> dict[str, Any]:
    """Mean Dice, IoU, precision, recall (and HD95/ASD in pixels) of a model on an external set.

    Images are prepared with the model's own input size and normalisation (as `predict_split`
    does for a bundled split); labels come from the model's usual 0.5 threshold or argmax.

    Args:
        handle: an opened model (`unet_demo.inference.registry.ModelHandle`).
        name: an external set name.
        rule: "binary" or "foreground"; None reads it from the set's card for the model's
            dataset (an error when the card does not list that dataset).
        batch_size: images per model call.

    Returns:
        {"set", "rule", "num_images", "dice", "iou", ...} (means over images).

    Example:
        >>> from unet_demo.inference.registry import open_model
        >>> score = score_external(open_model("bundled:nuclei"), "stardist_nuclei3d")
        >>> score["num_images"], 0.0 <= score["dice"] <= 1.0
        (16, True)
    """
    data = load_external_set(name)
    if rule is None:
        rules = data.card["for_models"]
        if handle.dataset not in rules:
            raise UNetDemoError(
                f"External set {name!r} does not score {handle.dataset!r} models; it lists "
                f"{sorted(rules)}. Use one of {external_sets_for(handle.dataset)} or pass rule."
            )
        rule = rules[handle.dataset]
    if rule not in SCORING_RULES:
        raise UNetDemoError(f"rule must be one of {list(SCORING_RULES)}. Received: {rule!r}.")
    height, width, channels = handle.input_shape
    prepared, masks = prepare_batch(data.images, data.masks, size=(height, width),
                                    channels=channels, normalization=handle.normalization)
    probabilities = np.asarray(handle.predict_fn(batch_size=batch_size)(prepared), np.float32)
    num_classes = max(handle.num_classes, 2)
    labels = labels_from_probabilities(probabilities, num_classes, 0.5)
    if rule == "foreground":
        labels = merge_foreground(labels)
    elif num_classes != 2:
        raise UNetDemoError(
            f"A {num_classes}-class model cannot be scored on the binary set {name!r} as it is; "
            "use rule='foreground' to merge its classes."
        )
    rows = per_image_metrics(masks, labels, 2, ids=data.ids, distances=True)
    return {"set": name, "rule": rule, "num_images": len(rows), **mean_metrics(rows)}
