"""User dataset upload: a ZIP with ``images/`` and ``masks/`` folders, checked before use.

The archive goes through the project's one ZIP guard (`unet_demo.data.archive`, with this
module's `ZIP_LIMITS`), which inspects the central directory BEFORE anything is decompressed:
unsafe paths (``..``, absolute paths, drive letters, backslashes, control characters),
symlinks and other special files, encrypted members, nested archives, too many files and zip
bombs (per-member and total compression ratio, total uncompressed size) refuse the whole
archive with a `UNetDemoError`. Members are then read one at a time into memory through the
guard's `BoundedReader` (never written to disk; a member that inflates to more than it
declares is refused) and decoded with the shared readers (`read_image_bytes`,
`read_mask_file`). Per-file problems (missing mask, size mismatch, unexpected labels,
unreadable file, ...) become rows of a table and the valid pairs go on: they are resized to a
common size with aspect-preserving padding and split 70/15/15 by a hash of the sorted stems.

Layout (an optional single top folder around both is fine)::

    images/case01.png   masks/case01.png
    images/case02.dcm   masks/case02.png     <- any supported format on either side

Splits and leakage: the split treats every file as independent. When several files are
slices of one patient or volume, neighbouring (nearly identical) slices end up in both train
and test and the test score overstates how well the model generalises. Name such files
``<patient>_<slice>`` and pass ``group_separator="_"`` so all slices of a patient share a split.

Example:
    >>> import io; from PIL import Image
    >>> from unet_demo.data.sources import load_split
    >>> nuclei = load_split("nuclei", "test")  # 5 bundled images and masks, zipped as PNGs
    >>> buffer = io.BytesIO()
    >>> with zipfile.ZipFile(buffer, "w") as archive:
    ...     for stem, image, mask in zip(nuclei.ids, nuclei.images, nuclei.masks):
    ...         for folder, array in (("images", image[..., 0] * 255), ("masks", mask * 255)):
    ...             png = io.BytesIO(); Image.fromarray(array.astype(np.uint8)).save(png, "PNG")
    ...             archive.writestr(f"{folder}/{stem}.png", png.getvalue())
    >>> report = inspect_zip(buffer.getvalue(), name="nuclei.zip", image_size=64)
    >>> report.summary()
    '5 pair(s) kept, 0 skipped; 64x64x1, num_classes=1; train/val/test = 3/1/1.'
    >>> report.table()[0]  # doctest: +NORMALIZE_WHITESPACE
    {'stem': 'nuclei_r256_c384', 'image': 'images/nuclei_r256_c384.png',
     'mask': 'masks/nuclei_r256_c384.png', 'status': 'ok', 'reason': '', 'detail': ''}
    >>> with tempfile.TemporaryDirectory() as runs:
    ...     dataset_id = save_uploaded_dataset(report, runs)
    ...     load_uploaded_split("upload:" + dataset_id, "train", runs).images.shape
    (3, 64, 64, 1)
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from unet_demo.data import validation
from unet_demo.data.archive import (
    ArchiveError,
    BoundedReader,
    ZipLimits,
    open_zip,
    refuse_nested,
)
from unet_demo.data.bundled import SPLITS, SplitArrays
from unet_demo.data.preprocess import normalize, resize_with_pad, to_channels
from unet_demo.data.readers import (
    IMAGE_SUFFIXES,
    read_image_bytes,
    read_mask_file,
    validate_pair,
)
from unet_demo.errors import UNetDemoError

UPLOAD_PREFIX = "upload:"
"""Prefix of a user dataset name in `DataConfig.dataset`, e.g. "upload:3f2a9c0d1e2b4a5c"."""
UPLOADS_DIRNAME = "uploads"
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)

MAX_FILES = 2000
"""Most file entries in a dataset ZIP."""
MAX_TOTAL_UNCOMPRESSED = 500 * 1024 * 1024
"""Largest total uncompressed size of all members (declared and actually read)."""
MAX_RATIO = 100
"""Largest compression ratio (uncompressed / compressed), per member and for the archive."""
MAX_MEMBER_BYTES = validation.MAX_BYTES
"""Largest single member (same budget as a single uploaded image)."""
MAX_ARCHIVE_BYTES = 500 * 1024 * 1024
"""Largest ZIP file accepted."""
MAX_INFERRED_CLASSES = 32
"""When `num_classes` is not given, labels 0..31 are accepted and the count is inferred."""

ZIP_LIMITS = ZipLimits(
    max_archive_bytes=MAX_ARCHIVE_BYTES,
    max_members=MAX_FILES,
    max_member_bytes=MAX_MEMBER_BYTES,
    max_total_bytes=MAX_TOTAL_UNCOMPRESSED,
    max_ratio=MAX_RATIO,
    hints=(
        ("name", "Re-create the ZIP from inside the dataset folder "
                 "(e.g. `zip -r data.zip images masks`)."),
        ("members", "Split the dataset or upload fewer images."),
        ("member_size", "Downsample or crop the images, or save single slices."),
        ("total_size", "It looks like a zip bomb or is too big; upload a smaller dataset."),
        ("ratio", "It looks like a zip bomb or is too big; upload a smaller dataset."),
        ("budget", "Upload a smaller dataset."),
        ("nested", "Nested archives are not unpacked; put the image files directly in "
                   "images/ and masks/."),
        ("corrupt", "Re-create the ZIP and upload it again."),
        ("checksum", "Re-create the ZIP and upload it again."),
    ),
)
"""The ZIP guard's budgets and fixes for dataset uploads (`inspect_zip` overrides budgets)."""
_DATASET_ID = re.compile(r"^[0-9a-f]{16}$")

SPLIT_LEAKAGE_NOTE = (
    "Files are split 70/15/15 by a hash of their names, each file on its own. If several "
    "files are slices of one patient or volume, neighbouring slices land in both train and "
    "test and the test score is too optimistic; group them by patient (group_separator)."
)


@dataclasses.dataclass
class DatasetUploadReport:
    """What `inspect_zip` found: a row per stem, the valid pairs as arrays and their split.

    Attributes:
        name: the archive's file name (for messages and the dataset card).
        sha256: SHA-256 of the archive bytes.
        rows: one dict per stem: stem, image, mask (member paths or ""), status ("ok" or
            "skipped"), reason (short category, e.g. "missing mask") and detail (full message).
        images: float32 (N, H, W, C) in [0, 1] for the valid pairs (sorted by stem).
        masks: uint8 (N, H, W) integer labels.
        ids: stems of the valid pairs, in the same order.
        splits: "train"/"val"/"test" -> list of stems.
        image_size: (H, W) every pair was resized/padded to.
        channels: 1 (grey) or 3 (RGB).
        num_classes: 1 for binary masks (labels 0/1), else the number of classes.
        labels: label values found in the valid masks.
        ignored: member paths not used, each with the reason ("__MACOSX/x: macOS metadata").
        options: the options that shaped the arrays (size, channels, classes, grouping).

    Example:
        >>> import io; from PIL import Image
        >>> png = io.BytesIO(); Image.new("L", (16, 16), 255).save(png, "PNG")
        >>> buffer = io.BytesIO()
        >>> with zipfile.ZipFile(buffer, "w") as archive:
        ...     for member in ("images/a.png", "masks/a.png", "images/b.png"):  # b has no mask
        ...         archive.writestr(member, png.getvalue())
        >>> report = inspect_zip(buffer.getvalue(), image_size=16)
        >>> report.num_valid, report.num_skipped
        (1, 1)
    """

    name: str
    sha256: str
    rows: list[dict[str, str]]
    images: np.ndarray
    masks: np.ndarray
    ids: list[str]
    splits: dict[str, list[str]]
    image_size: tuple[int, int]
    channels: int
    num_classes: int
    labels: list[int]
    ignored: list[str]
    options: dict[str, Any]

    @property
    def num_valid(self) -> int:
        """Number of usable image/mask pairs."""
        return len(self.ids)

    @property
    def num_skipped(self) -> int:
        """Number of stems that were skipped."""
        return sum(1 for row in self.rows if row["status"] != "ok")

    def table(self) -> list[dict[str, str]]:
        """The per-stem rows (a list of dicts, ready for a dataframe)."""
        return [dict(row) for row in self.rows]

    def split_counts(self) -> dict[str, int]:
        """Number of pairs in each split."""
        return {split: len(self.splits.get(split, [])) for split in SPLITS}

    def split_arrays(self, split: str) -> SplitArrays:
        """The arrays of one split ("train", "val" or "test")."""
        _check_split(split)
        position = {stem: index for index, stem in enumerate(self.ids)}
        chosen = [position[stem] for stem in self.splits[split]]
        return SplitArrays(
            name=UPLOAD_PREFIX + dataset_id_for(self),
            split=split,
            images=self.images[chosen],
            masks=self.masks[chosen],
            ids=list(self.splits[split]),
        )

    def summary(self) -> str:
        """One line: pairs kept and skipped, size, classes and split counts."""
        counts = self.split_counts()
        return (
            f"{self.num_valid} pair(s) kept, {self.num_skipped} skipped; "
            f"{self.image_size[1]}x{self.image_size[0]}x{self.channels}, "
            f"num_classes={self.num_classes}; train/val/test = "
            f"{counts['train']}/{counts['val']}/{counts['test']}."
        )


# ------------------------------------------------------------------------- archive checks


def _refuse(name: str, problem: str, fix: str) -> ArchiveError:
    """An archive-level refusal worded like the ZIP guard's own ("... was refused: ...")."""
    return ArchiveError(f"{_subject(name)} was refused: {problem} {fix}", kind="dataset")


def _subject(name: str) -> str:
    return f"Dataset archive '{name}'"


def _is_ignored(path: str) -> str:
    """Reason to skip a member silently (macOS/hidden metadata), or "" to keep it."""
    parts = PurePosixPath(path).parts
    if parts and parts[0] == "__MACOSX":
        return "macOS metadata"
    if any(part.startswith(".") for part in parts):
        return "hidden file"
    if parts and parts[-1] in ("Thumbs.db", "desktop.ini"):
        return "system file"
    return ""


def _file_stem(filename: str) -> tuple[str, bool]:
    """(stem, looks like an image file) for a member's base name."""
    lowered = filename.lower()
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if lowered.endswith(suffix):
            return filename[: -len(suffix)], True
    if "." not in filename:
        return filename, True  # DICOM files often have no extension
    return filename.rsplit(".", 1)[0], False


def _layout(files: list[zipfile.ZipInfo], name: str) -> str:
    """The folder prefix holding images/ and masks/ ("" or "top/")."""
    folders = set()
    for info in files:
        parts = PurePosixPath(info.filename).parts
        if len(parts) >= 2 and parts[0] in ("images", "masks"):
            folders.add("")
        if len(parts) >= 3 and parts[1] in ("images", "masks"):
            folders.add(parts[0] + "/")
    if len(folders) == 1:
        return folders.pop()
    if not folders:
        tops = sorted({PurePosixPath(info.filename).parts[0] for info in files})[:5]
        raise _refuse(
            name, f"it has no images/ and masks/ folders (top-level entries: {tops}).",
            "Put the images in images/ and the masks in masks/ with matching file names "
            "(images/a.png + masks/a.png), then zip both folders.",
        )
    raise _refuse(
        name, f"it has several images/ or masks/ folders ({sorted(folders)}).",
        "Keep one images/ and one masks/ folder.",
    )


# --------------------------------------------------------------------------- pixels


def _to_unit_range(pixels: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """8-bit images / 255; anything else (16-bit, CT, MRI) per-image min-max, 0.5-99.5 %."""
    low, high = meta.get("value_range", (float(pixels.min()), float(pixels.max())))
    if meta.get("bit_depth") in (1, 8) and low >= 0 and high <= 255:
        return np.clip(pixels / 255.0 if high > 1 else pixels, 0.0, 1.0).astype(np.float32)
    return normalize(pixels, "minmax", percentiles=(0.5, 99.5))


def _split_key(stem: str, group_separator: str | None) -> str:
    group = stem.split(group_separator, 1)[0] if group_separator else stem
    return hashlib.sha256(group.encode("utf-8")).hexdigest()


def deterministic_split(
    stems: list[str], *, group_separator: str | None = None
) -> dict[str, list[str]]:
    """Split stems 70/15/15 by the SHA-256 of each stem (or of its group prefix).

    The same names always give the same split, whatever order the ZIP lists them in.
    With 3 or more items (or groups) val and test get at least one each.

    Args:
        stems: file stems of the valid pairs.
        group_separator: when given, the part of a stem before the first separator is the
            group (e.g. the patient in "p01_slice07"); a group never straddles two splits.

    Example:
        >>> parts = deterministic_split([f"case{i:02d}" for i in range(20)])
        >>> [len(parts[s]) for s in ("train", "val", "test")]
        [14, 3, 3]
    """
    groups: dict[str, list[str]] = {}
    for stem in sorted(stems):
        groups.setdefault(_split_key(stem, group_separator), []).append(stem)
    ordered = [groups[key] for key in sorted(groups)]
    count = len(ordered)
    if count < 3:
        n_val = n_test = 0
    else:
        n_val = max(1, round(count * SPLIT_FRACTIONS[1]))
        n_test = max(1, round(count * SPLIT_FRACTIONS[2]))
    n_train = count - n_val - n_test
    chunks = (ordered[:n_train], ordered[n_train : n_train + n_val], ordered[n_train + n_val :])
    return {
        split: sorted(stem for group in chunk for stem in group)
        for split, chunk in zip(SPLITS, chunks, strict=True)
    }


# ------------------------------------------------------------------------------ main API


def inspect_zip(
    data: bytes,
    *,
    name: str = "dataset.zip",
    max_files: int = MAX_FILES,
    max_total_uncompressed: int = MAX_TOTAL_UNCOMPRESSED,
    max_ratio: float = MAX_RATIO,
    max_member_bytes: int = MAX_MEMBER_BYTES,
    max_archive_bytes: int = MAX_ARCHIVE_BYTES,
    image_size: int | tuple[int, int] = 128,
    channels: int | None = None,
    num_classes: int | None = None,
    group_separator: str | None = None,
) -> DatasetUploadReport:
    """Check a dataset ZIP safely, decode the valid image/mask pairs and split them.

    Whole-archive problems raise `UNetDemoError`; problems with single files become
    "skipped" rows in `report.rows` and the other pairs are still returned.

    Args:
        data: the ZIP file's bytes.
        name: its file name, for messages.
        max_files: most file entries.
        max_total_uncompressed: largest total uncompressed size in bytes.
        max_ratio: largest compression ratio of a member or of the whole archive.
        max_member_bytes: largest uncompressed size of one member.
        max_archive_bytes: largest ZIP size.
        image_size: side (or (H, W)) every pair is resized to, keeping the aspect ratio
            and padding (masks with nearest neighbour, padded with background).
        channels: 1 or 3; None uses the channel count most images have.
        num_classes: 1 (binary, labels 0/1) or the class count; masks with other labels are
            skipped. None accepts labels 0..31 and infers the count (0/1 only -> 1).
        group_separator: see `deterministic_split`.

    Example:
        >>> import io; from PIL import Image
        >>> png = io.BytesIO(); Image.new("L", (16, 16), 255).save(png, "PNG")
        >>> buffer = io.BytesIO()
        >>> with zipfile.ZipFile(buffer, "w") as archive:
        ...     for member in ("images/a.png", "masks/a.png", "images/b.png"):  # b has no mask
        ...         archive.writestr(member, png.getvalue())
        >>> report = inspect_zip(buffer.getvalue(), image_size=16)
        >>> [(row["stem"], row["reason"]) for row in report.rows if row["status"] == "skipped"]
        [('b', 'missing mask')]
    """
    validation.validate_upload(
        data, name, allowed=validation.ARCHIVE_KINDS,
        limits=validation.Limits(max_bytes=max_archive_bytes),
    )
    if channels not in (None, 1, 3):
        raise UNetDemoError(f"channels must be 1, 3 or None. Received: {channels!r}.")
    if num_classes is not None and not 1 <= num_classes <= 255:
        raise UNetDemoError(f"num_classes must be between 1 and 255. Received: {num_classes!r}.")
    data = bytes(data)
    zip_limits = dataclasses.replace(
        ZIP_LIMITS, max_archive_bytes=max_archive_bytes, max_members=max_files,
        max_member_bytes=max_member_bytes, max_total_bytes=max_total_uncompressed,
        max_ratio=max_ratio,
    )
    subject = _subject(name)
    with open_zip(data, zip_limits, subject) as archive:
        files = [info for info in archive.infolist() if not info.is_dir()]
        refuse_nested(
            (info for info in files if not _is_ignored(info.filename)), zip_limits, subject
        )
        ignored: list[str] = []
        kept = []
        for info in files:
            reason = _is_ignored(info.filename)
            if reason:
                ignored.append(f"{info.filename}: {reason}")
            else:
                kept.append(info)
        if not kept:
            raise _refuse(name, "it holds no files.", "Zip the images/ and masks/ folders.")
        prefix = _layout(kept, name)
        sides: dict[str, dict[str, list[zipfile.ZipInfo]]] = {"images": {}, "masks": {}}
        for info in kept:
            relative = info.filename[len(prefix):] if info.filename.startswith(prefix) else ""
            parts = PurePosixPath(relative).parts
            if len(parts) != 2 or parts[0] not in sides:
                ignored.append(f"{info.filename}: not directly inside images/ or masks/")
                continue
            stem, is_image = _file_stem(parts[1])
            if not is_image:
                ignored.append(f"{info.filename}: not an image file type")
                continue
            sides[parts[0]].setdefault(stem, []).append(info)
        reader = BoundedReader(archive, zip_limits, subject)
        limits = validation.Limits(max_bytes=max_member_bytes)
        label_limit = num_classes if num_classes is not None else MAX_INFERRED_CLASSES
        rows, decoded = _decode_pairs(sides, reader, limits, label_limit)
    if not decoded:
        reasons = Counter(row["reason"] for row in rows)
        raise _refuse(
            name, f"none of its {len(rows)} image/mask pair(s) could be used "
            f"({dict(reasons) or 'no image files found'}).",
            "Check that images/x.ext has a matching masks/x.ext of the same size.",
        )
    return _assemble(
        name, data, rows, decoded, ignored,
        image_size=image_size, channels=channels, num_classes=num_classes,
        group_separator=group_separator,
    )


def _row(stem: str, image: str, mask: str, reason: str = "", detail: str = "") -> dict[str, str]:
    status = "skipped" if reason else "ok"
    return {
        "stem": stem, "image": image, "mask": mask, "status": status,
        "reason": reason, "detail": detail,
    }


def _decode_pairs(
    sides: dict[str, dict[str, list[zipfile.ZipInfo]]],
    reader: BoundedReader,
    limits: validation.Limits,
    label_limit: int,
) -> tuple[list[dict[str, str]], list[tuple[str, Any, np.ndarray]]]:
    """Read and check each pair; return the rows and the decoded (stem, image, mask) triples."""
    rows: list[dict[str, str]] = []
    decoded: list[tuple[str, Any, np.ndarray]] = []
    images, masks = sides["images"], sides["masks"]
    for stem in sorted(set(images) | set(masks)):
        image_infos, mask_infos = images.get(stem, []), masks.get(stem, [])
        image_path = ", ".join(i.filename for i in image_infos)
        mask_path = ", ".join(i.filename for i in mask_infos)
        if len(image_infos) > 1 or len(mask_infos) > 1:
            rows.append(_row(stem, image_path, mask_path, "duplicate stem",
                             "Several files share this name stem; keep one per side."))
            continue
        if not mask_infos:
            rows.append(_row(stem, image_path, "", "missing mask",
                             f"No file named '{stem}.*' in masks/."))
            continue
        if not image_infos:
            rows.append(_row(stem, "", mask_path, "missing image",
                             f"No file named '{stem}.*' in images/."))
            continue
        image_info, mask_info = image_infos[0], mask_infos[0]
        try:
            loaded = read_image_bytes(reader.read(image_info), image_info.filename, limits=limits)
        except ArchiveError:
            raise
        except UNetDemoError as error:
            rows.append(_row(stem, image_path, mask_path, "unreadable image", str(error)))
            continue
        try:
            mask = read_mask_file(reader.read(mask_info), mask_info.filename, limits=limits)
        except ArchiveError:
            raise
        except UNetDemoError as error:
            rows.append(_row(stem, image_path, mask_path, "unreadable mask", str(error)))
            continue
        if loaded.pixels.shape[:2] != mask.shape[:2]:
            (ih, iw), (mh, mw) = loaded.pixels.shape[:2], mask.shape[:2]
            rows.append(_row(stem, image_path, mask_path, "size mismatch",
                             f"Image is {iw}x{ih} but mask is {mw}x{mh} (width x height)."))
            continue
        try:
            validate_pair(loaded, mask, stem, num_classes=label_limit)
        except UNetDemoError as error:
            reason = "unexpected labels" if "label" in str(error) else "invalid pair"
            rows.append(_row(stem, image_path, mask_path, reason, str(error)))
            continue
        rows.append(_row(stem, image_path, mask_path))
        decoded.append((stem, loaded, mask))
    return rows, decoded


def _assemble(
    name: str,
    data: bytes,
    rows: list[dict[str, str]],
    decoded: list[tuple[str, Any, np.ndarray]],
    ignored: list[str],
    *,
    image_size: int | tuple[int, int],
    channels: int | None,
    num_classes: int | None,
    group_separator: str | None,
) -> DatasetUploadReport:
    if channels is None:
        counts = Counter(loaded.pixels.shape[-1] for _, loaded, _ in decoded)
        channels = 3 if counts[3] > counts[1] else 1
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    images, masks = [], []
    for _, loaded, mask in decoded:
        pixels = to_channels(_to_unit_range(loaded.pixels, loaded.meta), channels)
        images.append(resize_with_pad(pixels, size))
        masks.append(resize_with_pad(mask, size, is_mask=True))
    image_array = np.clip(np.stack(images).astype(np.float32), 0.0, 1.0)
    mask_array = np.stack(masks).astype(np.uint8)
    labels = [int(v) for v in np.unique(mask_array)]
    if num_classes is None:
        top = max(labels) if labels else 0
        num_classes = 1 if top <= 1 else top + 1
    ids = [stem for stem, _, _ in decoded]
    options = {
        "image_size": list(size), "channels": channels, "num_classes": num_classes,
        "group_separator": group_separator,
    }
    return DatasetUploadReport(
        name=name,
        sha256=hashlib.sha256(data).hexdigest(),
        rows=rows,
        images=image_array,
        masks=mask_array,
        ids=ids,
        splits=deterministic_split(ids, group_separator=group_separator),
        image_size=(int(size[0]), int(size[1])),
        channels=channels,
        num_classes=num_classes,
        labels=labels,
        ignored=ignored,
        options=options,
    )


# ------------------------------------------------------------------------ saving/loading


def _uploads_root(root: str | os.PathLike[str] | None) -> Path:
    from unet_demo.settings import runs_dir

    return Path(root) if root is not None else runs_dir()


def dataset_id_for(report: DatasetUploadReport) -> str:
    """16 hex digits: SHA-256 of the archive's hash plus the options that shaped the arrays."""
    key = report.sha256 + json.dumps(report.options, sort_keys=True)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def save_uploaded_dataset(
    report: DatasetUploadReport, root: str | os.PathLike[str] | None = None
) -> str:
    """Write the splits as ``train.npz``/``val.npz``/``test.npz`` (no pickle) plus a card.

    Files go to ``<root>/uploads/<id>/``; root defaults to the runs folder
    (`unet_demo.settings.runs_dir`). Saving the same report twice returns the same id.

    Args:
        report: from `inspect_zip`.
        root: the runs root.

    Returns:
        The dataset id; train on it with ``DataConfig(dataset="upload:<id>")``.

    Example:
        >>> import io; from PIL import Image
        >>> png = io.BytesIO(); Image.new("L", (16, 16), 255).save(png, "PNG")
        >>> buffer = io.BytesIO()
        >>> with zipfile.ZipFile(buffer, "w") as archive:
        ...     for member in ("images/a.png", "masks/a.png", "images/b.png"):  # b has no mask
        ...         archive.writestr(member, png.getvalue())
        >>> report = inspect_zip(buffer.getvalue(), image_size=16)
        >>> with tempfile.TemporaryDirectory() as runs:
        ...     dataset_id = save_uploaded_dataset(report, runs)
        ...     len(dataset_id), save_uploaded_dataset(report, runs) == dataset_id
        (16, True)
    """
    dataset_id = dataset_id_for(report)
    uploads = _uploads_root(root) / UPLOADS_DIRNAME
    target = uploads / dataset_id
    if (target / "dataset.json").is_file():
        return dataset_id
    uploads.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dataset_id}-", dir=uploads))
    try:
        for split in SPLITS:
            arrays = report.split_arrays(split)
            np.savez_compressed(
                staging / f"{split}.npz",
                images=arrays.images.astype(np.float32),
                masks=arrays.masks.astype(np.uint8),
                ids=np.asarray(arrays.ids, dtype=np.str_),
            )
        card = {
            "dataset_id": dataset_id,
            "name": f"{UPLOAD_PREFIX}{dataset_id}",
            "title": f"Uploaded: {report.name}",
            "source_archive": report.name,
            "source_sha256": report.sha256,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "image_size": list(report.image_size),
            "channels": report.channels,
            "num_classes": report.num_classes,
            "labels": report.labels,
            "split_counts": report.split_counts(),
            "split_rule": SPLIT_LEAKAGE_NOTE,
            "options": report.options,
            "rows": report.rows,
            "ignored": report.ignored,
        }
        (staging / "dataset.json").write_text(json.dumps(card, indent=2))
        try:
            staging.rename(target)
        except OSError:
            if not (target / "dataset.json").is_file():  # not a concurrent save of the same data
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return dataset_id


def _dataset_dir(dataset_id: str, root: str | os.PathLike[str] | None) -> Path:
    plain = dataset_id.removeprefix(UPLOAD_PREFIX)
    if not _DATASET_ID.match(plain):
        raise UNetDemoError(
            f"{dataset_id!r} is not an uploaded dataset id; expected 'upload:' followed by 16 "
            "hex digits, as returned by save_uploaded_dataset."
        )
    folder = _uploads_root(root) / UPLOADS_DIRNAME / plain
    if not (folder / "dataset.json").is_file():
        raise UNetDemoError(
            f"No uploaded dataset {dataset_id!r} under {folder.parent}. Upload the ZIP again "
            "(uploads are stored per runs folder)."
        )
    return folder


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise UNetDemoError(f"split must be one of {list(SPLITS)}. Received: {split!r}.")


def load_uploaded_info(dataset_id: str, root: str | os.PathLike[str] | None = None) -> dict:
    """The card (dataset.json) of an uploaded dataset: sizes, classes, split counts, rows.

    Example:
        >>> import io; from PIL import Image
        >>> png = io.BytesIO(); Image.new("L", (16, 16), 255).save(png, "PNG")
        >>> buffer = io.BytesIO()
        >>> with zipfile.ZipFile(buffer, "w") as archive:
        ...     for member in ("images/a.png", "masks/a.png", "images/b.png"):  # b has no mask
        ...         archive.writestr(member, png.getvalue())
        >>> report = inspect_zip(buffer.getvalue(), image_size=16)
        >>> with tempfile.TemporaryDirectory() as runs:
        ...     card = load_uploaded_info(save_uploaded_dataset(report, runs), runs)
        >>> card["num_classes"], card["split_counts"]
        (1, {'train': 1, 'val': 0, 'test': 0})
    """
    folder = _dataset_dir(dataset_id, root)
    return json.loads((folder / "dataset.json").read_text())


def load_uploaded_split(
    dataset_id: str, split: str, root: str | os.PathLike[str] | None = None
) -> SplitArrays:
    """Load one split of an uploaded dataset (same `SplitArrays` as the bundled datasets).

    Args:
        dataset_id: "upload:<id>" or the bare id.
        split: "train", "val" or "test".
        root: the runs root used when saving (default: `runs_dir()`).

    Example:
        >>> import io; from PIL import Image
        >>> png = io.BytesIO(); Image.new("L", (16, 16), 255).save(png, "PNG")
        >>> buffer = io.BytesIO()
        >>> with zipfile.ZipFile(buffer, "w") as archive:
        ...     for member in ("images/a.png", "masks/a.png", "images/b.png"):  # b has no mask
        ...         archive.writestr(member, png.getvalue())
        >>> report = inspect_zip(buffer.getvalue(), image_size=16)
        >>> with tempfile.TemporaryDirectory() as runs:
        ...     train = load_uploaded_split(save_uploaded_dataset(report, runs), "train", runs)
        >>> train.images.shape, train.masks.dtype, train.ids
        ((1, 16, 16, 1), dtype('uint8'), ['a'])
    """
    _check_split(split)
    path = _dataset_dir(dataset_id, root) / f"{split}.npz"
    try:
        with np.load(path, allow_pickle=False) as archive:
            images = archive["images"].astype(np.float32, copy=False)
            masks = archive["masks"].astype(np.uint8, copy=False)
            ids = [str(value) for value in archive["ids"]]
    except (OSError, KeyError, ValueError) as error:
        raise UNetDemoError(
            f"Could not read {path}: {error}. Upload the dataset again."
        ) from error
    if images.ndim != 4 or masks.ndim != 3 or not len(images) == len(masks) == len(ids):
        raise UNetDemoError(
            f"{path} holds images {images.shape} and masks {masks.shape}; expected (N,H,W,C) "
            "and (N,H,W). Upload the dataset again."
        )
    images.flags.writeable = False
    masks.flags.writeable = False
    plain = dataset_id.removeprefix(UPLOAD_PREFIX)
    return SplitArrays(
        name=UPLOAD_PREFIX + plain, split=split, images=images, masks=masks, ids=ids
    )


def list_uploaded_datasets(root: str | os.PathLike[str] | None = None) -> list[dict]:
    """Cards of all uploaded datasets under the runs root, newest first.

    Example:
        >>> import io; from PIL import Image
        >>> png = io.BytesIO(); Image.new("L", (16, 16), 255).save(png, "PNG")
        >>> buffer = io.BytesIO()
        >>> with zipfile.ZipFile(buffer, "w") as archive:
        ...     for member in ("images/a.png", "masks/a.png", "images/b.png"):  # b has no mask
        ...         archive.writestr(member, png.getvalue())
        >>> report = inspect_zip(buffer.getvalue(), image_size=16)
        >>> with tempfile.TemporaryDirectory() as runs:
        ...     dataset_id = save_uploaded_dataset(report, runs)
        ...     [card["name"] == "upload:" + dataset_id for card in list_uploaded_datasets(runs)]
        [True]
    """
    uploads = _uploads_root(root) / UPLOADS_DIRNAME
    if not uploads.is_dir():
        return []
    cards = []
    for folder in uploads.iterdir():
        if _DATASET_ID.match(folder.name) and (folder / "dataset.json").is_file():
            try:
                cards.append(json.loads((folder / "dataset.json").read_text()))
            except (OSError, ValueError):
                continue
    return sorted(cards, key=lambda card: card.get("created", ""), reverse=True)
