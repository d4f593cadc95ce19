"""One door to any dataset: a bundled name or an uploaded ``upload:<id>``, raw or model-ready.

Training, evaluation (the page and the CLI) and the lessons all read splits through here, so
a split is loaded and prepared the same way everywhere: raw arrays come from
`unet_demo.data.bundled` or `unet_demo.data.upload_dataset`, and model-ready arrays go through
the one model-input step, `unet_demo.data.preprocess.prepare_image` (via `prepare_batch`).

Example:
    >>> from unet_demo.config import DataConfig
    >>> images, masks, ids = prepare_split(DataConfig(dataset="nuclei", image_size=64), "test")
    >>> images.shape[1:], masks.shape[1:], len(ids) == len(images)
    ((64, 64, 1), (64, 64), True)
"""

from __future__ import annotations

import contextlib

import numpy as np

from unet_demo.config import DataConfig
from unet_demo.data.bundled import SplitArrays, get_dataset_info
from unet_demo.data.preprocess import prepare_batch
from unet_demo.data.upload_dataset import UPLOAD_PREFIX
from unet_demo.errors import UNetDemoError


def is_uploaded(dataset: str) -> bool:
    """True for an uploaded dataset id ("upload:<id>"), False for a bundled name.

    Example:
        >>> is_uploaded("upload:0123456789abcdef"), is_uploaded("nuclei")
        (True, False)
    """
    return str(dataset).startswith(UPLOAD_PREFIX)


def load_split(dataset: str, split: str) -> SplitArrays:
    """Raw images (float32 in [0, 1]), masks and ids of one split of any dataset.

    Args:
        dataset: bundled dataset name or "upload:<id>".
        split: "train", "val" or "test".

    Example:
        >>> load_split("nuclei", "test").images.dtype
        dtype('float32')
    """
    if is_uploaded(dataset):
        from unet_demo.data.upload_dataset import load_uploaded_split

        return load_uploaded_split(dataset, split)
    from unet_demo.data.bundled import load_split as load_bundled_split

    return load_bundled_split(dataset, split)


def load_split_arrays(dataset: str, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images, masks, ids) of one split as plain arrays (see `load_split`).

    Args:
        dataset: bundled dataset name or "upload:<id>".
        split: "train", "val" or "test".

    Example:
        >>> images, masks, ids = load_split_arrays("nuclei", "val")
        >>> images.shape[:3] == masks.shape
        True
    """
    arrays = load_split(dataset, split)
    return np.asarray(arrays.images), np.asarray(arrays.masks), list(arrays.ids)


def declared_label_count(dataset: str) -> int:
    """Labels including background that the dataset's card declares (0 when unknown).

    Args:
        dataset: bundled dataset name or "upload:<id>".

    Example:
        >>> declared_label_count("brain_tissue")
        4
    """
    if is_uploaded(dataset):
        from unet_demo.data.upload_dataset import load_uploaded_info

        with contextlib.suppress(UNetDemoError, OSError, ValueError, KeyError, TypeError):
            return int(load_uploaded_info(dataset).get("num_classes") or 0)
        return 0
    return int(get_dataset_info(dataset).num_classes)


def label_count(dataset: str, masks: list[np.ndarray]) -> int:
    """Labels including background: the card's count, at least what the masks hold, at least 2.

    Args:
        dataset: bundled dataset name or "upload:<id>".
        masks: mask arrays seen so far (e.g. the train and validation masks).

    Example:
        >>> label_count("nuclei", [np.zeros((2, 4, 4), np.uint8)])
        2
    """
    seen = max(int(m.max()) for m in masks if m.size) + 1 if masks else 2
    return max(2, declared_label_count(dataset), seen)


def prepare_split(
    data: DataConfig, split: str, *, channels: int | None = None, seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Model-ready (images, masks, ids) of one split, as a run with ``data`` trains or tests.

    Images go through `prepare_batch` (so `prepare_image`) with the config's size and
    normalisation; when ``data.max_train_images`` is set, the training split is cut to that many
    images, drawn with ``seed`` and kept in their original order.

    Args:
        data: the run's `DataConfig` (dataset, image_size, normalization, max_train_images).
        split: "train", "val" or "test".
        channels: model input channels; None keeps the dataset's own.
        seed: draws the training subset.

    Example:
        >>> cfg = DataConfig(dataset="nuclei", image_size=32, max_train_images=3)
        >>> len(prepare_split(cfg, "train")[2])
        3
    """
    images, masks, ids = load_split_arrays(data.dataset, split)
    limit = data.max_train_images
    if split == "train" and limit and len(images) > limit:
        keep = np.sort(np.random.default_rng(seed).permutation(len(images))[:limit])
        images, masks, ids = images[keep], masks[keep], [ids[i] for i in keep]
    if len(images) == 0:
        return (np.zeros((0, data.image_size, data.image_size, channels or 1), np.float32),
                np.zeros((0, data.image_size, data.image_size), np.uint8), [])
    prepared, labels = prepare_batch(images, masks, size=data.image_size, channels=channels,
                                     normalization=data.normalization)
    return prepared, labels, ids


def dataset_choices() -> dict[str, str]:
    """Dataset key -> label for a picker: the bundled datasets, then the uploaded ones.

    An unreadable uploads folder only leaves the uploads out (the bundled ones still show).

    Example:
        >>> dataset_choices()["nuclei"]
        'Nuclei in fluorescence microscopy (nuclei)'
    """
    from unet_demo.data.bundled import list_datasets

    choices = {info.name: f"{info.title} ({info.name})" for info in list_datasets()}
    try:
        from unet_demo.data.upload_dataset import list_uploaded_datasets

        for card in list_uploaded_datasets():
            choices[card["name"]] = f"{card.get('title', card['name'])} ({card['name']})"
    except (UNetDemoError, OSError, KeyError):
        pass
    return choices


def is_binary(dataset: str) -> bool:
    """True when the dataset has one foreground class (background + 1 label).

    Args:
        dataset: bundled dataset name or "upload:<id>".

    Raises:
        UNetDemoError: the dataset is unknown or its card unreadable (the message says which).

    Example:
        >>> is_binary("nuclei"), is_binary("brain_tissue")
        (True, False)
    """
    if is_uploaded(dataset):
        from unet_demo.data.upload_dataset import load_uploaded_info

        return int(load_uploaded_info(dataset).get("num_classes", 1)) <= 2
    return get_dataset_info(dataset).is_binary
