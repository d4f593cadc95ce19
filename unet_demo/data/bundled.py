"""The four bundled datasets: names, dataset cards and train/val/test arrays.

Three datasets are small real images derived from public packages by
``scripts/build_sample_data.py`` and stored in ``sample_data/<name>/`` (one ``<split>.npz`` per
split plus ``card.json``); ``synthetic_lesions`` is generated from a seed at run time. The
folder can be moved with the environment variable ``UNET_DEMO_SAMPLE_DATA_DIR``.

Loaded arrays are cached per process and returned read-only, so every caller sees the same
data and nobody can change it for the others (copy an array before editing it). Importing this
module does not import TensorFlow.

Example:
    >>> [info.name for info in list_datasets()]
    ['brain_skullstrip', 'brain_tissue', 'nuclei', 'synthetic_lesions']
    >>> split = load_split("nuclei", "val")
    >>> split.images.dtype, split.images.shape[1:], split.masks.dtype
    (dtype('float32'), (128, 128, 1), dtype('uint8'))
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from unet_demo.errors import UNetDemoError
from unet_demo.settings import REPO_ROOT

SPLITS = ("train", "val", "test")
SYNTHETIC_NAME = "synthetic_lesions"
DATASET_NAMES = ("brain_skullstrip", "brain_tissue", "nuclei", SYNTHETIC_NAME)
CARD_FILE = "card.json"
README_FILE = "README.md"
SOURCE_FIELDS = ("package", "version", "file", "sha256", "licence", "notice", "citation")
CARD_FIELDS = (
    "name", "title", "modality", "task", "num_classes", "class_names", "label_meaning",
    "image_size", "channels", "split_counts", "class_balance", "split_rule", "split_proves",
    "split_does_not_prove", "sources", "derivation",
)
_PLANE_ID = re.compile(r"^(axial|coronal|sagittal)_[xyz](\d+)$")


def sample_data_dir() -> Path:
    """Folder with one sub-folder per file-backed dataset (``UNET_DEMO_SAMPLE_DATA_DIR``)."""
    return Path(os.environ.get("UNET_DEMO_SAMPLE_DATA_DIR", REPO_ROOT / "sample_data"))


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a page or the CLI needs to know about a dataset before loading its arrays.

    Attributes:
        name: dataset key, e.g. "nuclei".
        title: human title.
        modality: imaging modality in words.
        task: the segmentation task in words.
        num_classes: label count including background (2 for a binary task).
        class_names: one name per label value 0..num_classes-1.
        image_size: (height, width) of every image.
        channels: image channels (1 = grey).
        split_counts: images per split, keys "train", "val", "test".

    Example:
        >>> get_dataset_info("brain_tissue").class_names
        ('background', 'csf_other', 'grey_matter', 'white_matter')
    """

    name: str
    title: str
    modality: str
    task: str
    num_classes: int
    class_names: tuple[str, ...]
    image_size: tuple[int, int]
    channels: int
    split_counts: dict[str, int]

    @property
    def is_binary(self) -> bool:
        """True when the masks hold only background (0) and foreground (1)."""
        return self.num_classes == 2

    @property
    def total_images(self) -> int:
        """Images over all three splits."""
        return sum(self.split_counts.values())


@dataclasses.dataclass(frozen=True)
class SplitArrays:
    """One split of a dataset, ready for training or evaluation.

    Attributes:
        name: dataset key.
        split: "train", "val" or "test".
        images: float32 (N, H, W, C) in [0, 1], read-only.
        masks: uint8 (N, H, W) integer labels 0..num_classes-1, read-only.
        ids: one string per image saying where it came from, e.g. "axial_z087" (axial slice
            at voxel z=87), "nuclei_r064_c128" (patch whose top-left pixel is row 64, column
            128 of the source image) or "synthetic_train_0007".

    Example:
        >>> split = load_split("brain_skullstrip", "test")
        >>> len(split) == len(split.ids) == split.images.shape[0]
        True
    """

    name: str
    split: str
    images: np.ndarray
    masks: np.ndarray
    ids: list[str]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def planes(self) -> list[str]:
        """Slicing plane of each image ("axial", "coronal", ...) or "" when not a slice."""
        return [match.group(1) if (match := _PLANE_ID.match(i)) else "" for i in self.ids]

    @property
    def slice_indices(self) -> list[int | None]:
        """Voxel index of each slice along its plane's axis, or None when not a slice."""
        return [int(match.group(2)) if (match := _PLANE_ID.match(i)) else None for i in self.ids]


def _check_name(name: str) -> str:
    if name not in DATASET_NAMES:
        raise UNetDemoError(
            f"Unknown dataset {name!r}. Expected one of {list(DATASET_NAMES)} "
            "(see `python -m unet_demo datasets`)."
        )
    return name


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise UNetDemoError(f"Unknown split {split!r}. Expected one of {list(SPLITS)}.")
    return split


def _missing_files_error(path: Path) -> UNetDemoError:
    return UNetDemoError(
        f"Bundled data file {path} is missing. Expected the sample_data/ folder of the "
        "repository; rebuild it with `.venv/bin/python scripts/build_sample_data.py` or set "
        "UNET_DEMO_SAMPLE_DATA_DIR to a folder that has it."
    )


def class_fractions(masks: np.ndarray, num_classes: int) -> list[float]:
    """Fraction of pixels carrying each label 0..num_classes-1.

    Args:
        masks: integer label array of any shape.
        num_classes: label count including background.

    Example:
        >>> class_fractions(np.array([[0, 1], [1, 1]], dtype=np.uint8), 2)
        [0.25, 0.75]
    """
    counts = np.bincount(np.asarray(masks).ravel(), minlength=num_classes)[:num_classes]
    total = max(int(counts.sum()), 1)
    return [round(float(c) / total, 6) for c in counts]


@functools.cache
def _synthetic_uint8(split: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    from unet_demo.data.synthetic import generate_split

    images, masks, ids = generate_split(split)
    return images, masks, tuple(ids)


@functools.cache
def _stored_card(name: str) -> dict[str, Any]:
    if name == SYNTHETIC_NAME:
        from unet_demo.data.synthetic import CARD

        card = copy.deepcopy(CARD)
        num_classes = int(card["num_classes"])
        card["split_counts"] = {}
        card["class_balance"] = {}
        for split in SPLITS:
            _, masks, _ = _synthetic_uint8(split)
            card["split_counts"][split] = int(masks.shape[0])
            fractions = class_fractions(masks, num_classes)
            card["class_balance"][split] = dict(zip(card["class_names"], fractions, strict=True))
        return card
    path = sample_data_dir() / name / CARD_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _missing_files_error(path) from None
    except (OSError, ValueError) as error:
        raise UNetDemoError(f"Cannot read dataset card {path}: {error}. Rebuild it.") from None


def load_card(name: str) -> dict[str, Any]:
    """Return the dataset card (a fresh copy; fields listed in `CARD_FIELDS`).

    Args:
        name: dataset key, one of `DATASET_NAMES`.

    Example:
        >>> load_card("nuclei")["sources"][0]["package"]
        'stardist'
    """
    return copy.deepcopy(_stored_card(_check_name(name)))


def get_dataset_info(name: str) -> DatasetInfo:
    """Return the `DatasetInfo` of one dataset, or a UNetDemoError listing the valid names.

    Args:
        name: dataset key, e.g. "brain_skullstrip".

    Example:
        >>> get_dataset_info("nuclei").image_size
        (128, 128)
    """
    card = _stored_card(_check_name(name))
    return DatasetInfo(
        name=name,
        title=str(card["title"]),
        modality=str(card["modality"]),
        task=str(card["task"]),
        num_classes=int(card["num_classes"]),
        class_names=tuple(card["class_names"]),
        image_size=(int(card["image_size"][0]), int(card["image_size"][1])),
        channels=int(card["channels"]),
        split_counts={split: int(card["split_counts"][split]) for split in SPLITS},
    )


def list_datasets() -> list[DatasetInfo]:
    """Return the `DatasetInfo` of every bundled dataset, in a fixed order.

    Example:
        >>> len(list_datasets())
        4
    """
    return [get_dataset_info(name) for name in DATASET_NAMES]


def available_datasets() -> list[DatasetInfo]:
    """`DatasetInfo` of every bundled dataset whose files are present (missing ones skipped).

    Unlike `list_datasets`, a dataset whose card is missing or unreadable is left out instead
    of raising, so a page can still offer the others.

    Example:
        >>> [info.name for info in available_datasets()][:1]
        ['brain_skullstrip']
    """
    infos = []
    for name in DATASET_NAMES:
        try:
            infos.append(get_dataset_info(name))
        except UNetDemoError:
            continue
    return infos


def class_balance(name: str) -> dict[str, list[float]]:
    """Share of pixels per class in each split, from the dataset card: split -> one per class.

    Args:
        name: dataset key, one of `DATASET_NAMES`.

    Example:
        >>> balance = class_balance("nuclei")
        >>> list(balance), len(balance["train"]), round(sum(balance["train"]), 3)
        (['train', 'val', 'test'], 2, 1.0)
    """
    card = load_card(name)
    class_names = get_dataset_info(name).class_names
    return {split: [float(card["class_balance"][split][c]) for c in class_names]
            for split in SPLITS}


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@functools.cache
def _cached_split(name: str, split: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    if name == SYNTHETIC_NAME:
        images_u8, masks, ids = _synthetic_uint8(split)
        masks = masks.copy()
    else:
        path = sample_data_dir() / name / f"{split}.npz"
        try:
            with np.load(path) as stored:
                images_u8, masks, ids = stored["images"], stored["masks"], stored["ids"]
        except FileNotFoundError:
            raise _missing_files_error(path) from None
        except (OSError, ValueError, KeyError) as error:
            raise UNetDemoError(f"Cannot read {path}: {error}. Rebuild sample_data.") from None
        ids = tuple(str(i) for i in ids)
    images = images_u8.astype(np.float32)[..., np.newaxis]
    images *= np.float32(1.0 / 255.0)
    return _read_only(images), _read_only(masks.astype(np.uint8, copy=False)), ids


def load_split(name: str, split: str) -> SplitArrays:
    """Load one split: images float32 (N,H,W,C) in [0, 1], masks uint8 (N,H,W), ids.

    The arrays are cached and read-only; copy them (``split.images.copy()``) before editing.

    Args:
        name: dataset key, one of `DATASET_NAMES`.
        split: "train", "val" or "test".

    Example:
        >>> split = load_split("synthetic_lesions", "train")
        >>> split.images.shape, int(split.masks.max())
        ((140, 128, 128, 1), 1)
    """
    _check_name(name)
    _check_split(split)
    images, masks, ids = _cached_split(name, split)
    return SplitArrays(name=name, split=split, images=images, masks=masks, ids=list(ids))


def _markdown_text(value: Any) -> str:
    return str(value).replace("\n", "\n\n") if value is not None else "none"


def card_markdown(card: dict[str, Any], for_readme: bool = True) -> str:
    """Render a dataset card as Markdown (the README.md written next to card.json).

    Args:
        card: a card as returned by `load_card`.
        for_readme: add the maintainers' note that the README is generated (left out when the
            card is shown to students in the app).

    Example:
        >>> card_markdown(load_card("nuclei")).splitlines()[0]
        '# Nuclei in fluorescence microscopy (nuclei)'
        >>> "edit the script" in card_markdown(load_card("nuclei"), for_readme=False)
        False
    """
    note = ("> Education and research only, not for diagnosis."
            + (" Generated from card.json by scripts/build_sample_data.py; edit the script, "
               "not this file." if for_readme else ""))
    lines = [
        f"# {card['title']} ({card['name']})",
        "",
        note,
        "",
        f"- **Modality:** {card['modality']}",
        f"- **Task:** {card['task']}",
        f"- **Image size:** {card['image_size'][0]} x {card['image_size'][1]}, "
        f"{card['channels']} channel(s), stored as 8-bit, loaded as float32 in [0, 1]",
        "",
        "## Labels",
        "",
        "| value | name | meaning |",
        "|---|---|---|",
    ]
    for value, name in enumerate(card["class_names"]):
        lines.append(f"| {value} | {name} | {card['label_meaning'][str(value)]} |")
    lines += [
        "",
        "## Splits and class balance (fraction of pixels)",
        "",
        "| split | images | " + " | ".join(card["class_names"]) + " |",
        "|---|---|" + "---|" * len(card["class_names"]),
    ]
    for split in SPLITS:
        balance = card["class_balance"][split]
        cells = " | ".join(f"{balance[n]:.4f}" for n in card["class_names"])
        lines.append(f"| {split} | {card['split_counts'][split]} | {cells} |")
    lines += [
        "",
        f"**Split rule.** {card['split_rule']}",
        "",
        f"**What the split shows.** {card['split_proves']}",
        "",
        f"**What it does not show.** {card['split_does_not_prove']}",
        "",
        "## How the files were made",
        "",
    ]
    lines += [f"{number}. {step}" for number, step in enumerate(card["derivation"], start=1)]
    lines += ["", "## Sources, licences and notices", ""]
    for source in card["sources"]:
        lines += [
            f"### {source['file']}",
            "",
            f"- **Package:** {source['package']} {source['version']}",
            f"- **sha256:** `{source['sha256']}`",
        ]
        if source.get("archive"):
            lines.append(f"- **Package file:** {source['archive']} "
                         f"(sha256 `{source.get('archive_sha256')}`)")
        lines += [
            f"- **Licence:** {_markdown_text(source['licence'])}",
            f"- **Citation:** {_markdown_text(source['citation'])}",
            "",
            "Notice:",
            "",
            "```text",
            str(source["notice"]),
            "```",
            "",
        ]
    if card.get("files"):
        lines += ["## Files", "", "| file | sha256 | bytes |", "|---|---|---|"]
        for file_name, entry in sorted(card["files"].items()):
            lines.append(f"| {file_name} | `{entry['sha256']}` | {entry['bytes']} |")
        lines.append("")
    return "\n".join(lines)
