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
from unet_demo.data.bundled import DatasetInfo, SplitArrays, get_dataset_info
from unet_demo.data.preprocess import prepare_batch
from unet_demo.data.upload_dataset import UPLOAD_PREFIX
from unet_demo.data.volumes import (
    is_volume_dataset,
    prepare_volume_split,
    volume_choices,
    volume_label_count,
)
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
    if is_volume_dataset(dataset):  # 3D patches of the default size
        return prepare_volume_split(dataset, split, DataConfig().image_size // 4)
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
    if is_volume_dataset(dataset):
        return volume_label_count(dataset)
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
    if is_volume_dataset(data.dataset):  # cubic patches, already in [0, 1]
        if data.normalization != "minmax":
            raise UNetDemoError(
                f"Volume datasets are stored scaled to [0, 1] (minmax over the whole volume); "
                f"normalization={data.normalization!r} is not available for "
                f"{data.dataset!r}. Use normalization='minmax'.")
        return prepare_volume_split(data.dataset, split, data.image_size,
                                    max_images=data.max_train_images, seed=seed)
    images, masks, ids = _split_subset(data, split, seed)
    if len(images) == 0:
        return (np.zeros((0, data.image_size, data.image_size, channels or 1), np.float32),
                np.zeros((0, data.image_size, data.image_size), np.uint8), [])
    prepared, labels = prepare_batch(images, masks, size=data.image_size, channels=channels,
                                     normalization=data.normalization)
    return prepared, labels, ids


def fold_groups_separator(dataset: str) -> str | None:
    """The separator an uploaded dataset was split by patient with (None: none, or bundled).

    Args:
        dataset: bundled dataset name or "upload:<id>".

    Example:
        >>> fold_groups_separator("nuclei") is None
        True
    """
    if not is_uploaded(dataset):
        return None
    from unet_demo.data.upload_dataset import load_uploaded_info

    return (load_uploaded_info(dataset).get("options") or {}).get("group_separator") or None


def fold_split_arrays(dataset: str, folds: int, fold: int,
                      split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images, masks, ids) of fold ``fold``'s "train" or "val" part of K-fold cross-validation.

    The train and val splits are pooled and cut by `unet_demo.data.folds.make_folds` (whole
    leak-free groups per fold); the test split is not part of the pool.

    Args:
        dataset: bundled dataset name or "upload:<id>".
        folds: number of folds K (2-20).
        fold: 0-based fold that validates.
        split: "train" (the other folds, minus images too close to a validation image) or
            "val" (this fold).

    Example:
        >>> _, _, val_ids = fold_split_arrays("brain_skullstrip", 3, 0, "val")
        >>> _, _, train_ids = fold_split_arrays("brain_skullstrip", 3, 0, "train")
        >>> set(val_ids) & set(train_ids), len(val_ids) + len(train_ids)
        (set(), 119)
    """
    from unet_demo.data.folds import check_fold_count, make_folds

    check_fold_count(folds, fold)
    if split not in ("train", "val"):
        raise UNetDemoError(f"Cross-validation folds have 'train' and 'val' parts; the test "
                            f"split stays as it is. Received: {split!r}.")
    parts = [load_split_arrays(dataset, name) for name in ("train", "val")]
    ids = parts[0][2] + parts[1][2]
    images = np.concatenate([parts[0][0], parts[1][0]])
    masks = np.concatenate([parts[0][1], parts[1][1]])
    chosen = make_folds(ids, folds, group_separator=fold_groups_separator(dataset),
                        patch_size=tuple(images.shape[1:3]))[fold]
    keep = chosen.val if split == "val" else chosen.train
    return images[keep], masks[keep], [ids[i] for i in keep]


def _split_subset(data: DataConfig, split: str, seed: int):
    """Raw (images, masks, ids) of a split, the training split cut to ``max_train_images``."""
    if data.folds and split in ("train", "val"):
        images, masks, ids = fold_split_arrays(data.dataset, data.folds, data.fold, split)
    else:
        images, masks, ids = load_split_arrays(data.dataset, split)
    limit = data.max_train_images
    if split == "train" and limit and len(images) > limit:
        keep = np.sort(np.random.default_rng(seed).permutation(len(images))[:limit])
        images, masks, ids = images[keep], masks[keep], [ids[i] for i in keep]
    return images, masks, ids


def mask_targets(data: DataConfig, split: str, *, seed: int = 0) -> np.ndarray | None:
    """The float mask targets a run trains on when ``data.mask_resize`` is not "nearest".

    This rebuilds the guide's mask loader on purpose: ``tf.image.resize`` (bilinear) on a
    binary mask, then a division by 255. A mask stored as 0/255 ends up with fractional labels
    along every edge ("bilinear"); one stored as 0/1 ends up with labels below 1/255
    ("bilinear_div255"). The images and the test scores are unchanged (`prepare_split`).

    Args:
        data: the run's `DataConfig`; its ``mask_resize`` picks the loader.
        split: "train" or "val" (the splits a run trains and validates on).
        seed: draws the training subset, as in `prepare_split`.

    Returns:
        float32 (N, image_size, image_size) in [0, 1], aligned with `prepare_split`, or None
        for "nearest" (the integer labels are the targets).

    Raises:
        UNetDemoError: a multi-class dataset (the guide's loader is for binary masks).

    Example:
        >>> cfg = DataConfig(dataset="nuclei", image_size=64, mask_resize="bilinear")
        >>> soft = mask_targets(cfg, "val")
        >>> soft.shape[1:], bool(((soft > 0) & (soft < 1)).any())
        ((64, 64), True)
        >>> round(float(mask_targets(cfg.replace(mask_resize="bilinear_div255"), "val").max()) * 255, 4)
        1.0
    """
    import cv2

    if data.mask_resize == "nearest":
        return None
    _, masks, _ = _split_subset(data, split, seed)
    if len(masks) and int(np.max([m.max() for m in masks])) > 1:
        raise UNetDemoError(
            f"mask_resize={data.mask_resize!r} reproduces the guide's loader for binary masks, "
            f"but {data.dataset!r} has several classes. Use mask_resize='nearest'.")
    size = data.image_size
    targets = np.zeros((len(masks), size, size), np.float32)
    for index, mask in enumerate(masks):
        mask = np.asarray(mask, np.float32).reshape(mask.shape[:2])
        height, width = mask.shape
        scale = min(size / height, size / width)
        shape = (min(size, max(1, round(height * scale))), min(size, max(1, round(width * scale))))
        resized = cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        top, left = (size - shape[0]) // 2, (size - shape[1]) // 2  # as resize_with_pad
        targets[index, top:top + shape[0], left:left + shape[1]] = resized
    if data.mask_resize == "bilinear_div255":
        targets /= 255.0
    return np.clip(targets, 0.0, 1.0)


def dataset_choices() -> dict[str, str]:
    """Dataset key -> label for a picker: the bundled datasets, then the uploaded ones.

    An unreadable uploads folder only leaves the uploads out (the bundled ones still show).

    Example:
        >>> dataset_choices()["nuclei"]
        'Nuclei in fluorescence microscopy (nuclei)'
    """
    from unet_demo.data.bundled import list_datasets

    choices = {info.name: f"{info.title} ({info.name})" for info in list_datasets()}
    choices.update(volume_choices())
    try:
        from unet_demo.data.upload_dataset import list_uploaded_datasets

        for card in list_uploaded_datasets():
            choices[card["name"]] = f"{card.get('title', card['name'])} ({card['name']})"
    except (UNetDemoError, OSError, KeyError):
        pass
    return choices


def dataset_info(dataset: str) -> DatasetInfo:
    """The `DatasetInfo` of a bundled dataset or of an uploaded one (from its card).

    An upload's labels are called "background", "foreground" (binary) or "class 1", ...

    Args:
        dataset: bundled dataset name or "upload:<id>".

    Raises:
        UNetDemoError: unknown dataset or unreadable card (the message says which).

    Example:
        >>> dataset_info("nuclei").class_names
        ('background', 'nucleus')
    """
    if not is_uploaded(dataset):
        return get_dataset_info(dataset)
    from unet_demo.data.upload_dataset import load_uploaded_info

    card = load_uploaded_info(dataset)
    classes = max(2, int(card.get("num_classes") or 1))
    names = ("background", "foreground") if classes == 2 else (
        "background", *(f"class {value}" for value in range(1, classes)))
    size = list(card.get("image_size") or [0, 0])
    return DatasetInfo(
        name=str(card.get("name", dataset)), title=str(card.get("title", dataset)),
        modality="your uploaded images", task="segmentation of your own labels",
        num_classes=classes, class_names=names, image_size=(int(size[0]), int(size[-1])),
        channels=int(card.get("channels") or 1),
        split_counts={split: int((card.get("split_counts") or {}).get(split, 0))
                      for split in ("train", "val", "test")})


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
    if is_volume_dataset(dataset):
        return volume_label_count(dataset) == 2
    return get_dataset_info(dataset).is_binary
