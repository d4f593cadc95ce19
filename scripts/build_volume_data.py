"""Build ``sample_data/brain_volume``: the Colin27 head at 2 mm with its brain mask, in 3D.

The volumetric sibling of ``scripts/build_sample_data.py`` (same Debian source, same download
cache, same fixed-bytes writer). Re-runnable; only this script touches the network.

Output: ``volume.npz`` (``image`` and ``mask`` uint8 (x, y, z) in RAS+, ``spacing`` (3,) mm,
``affine`` (4, 4)), ``card.json`` with the split ``regions``, ``README.md`` and ``LICENSE.txt``.
The loader is ``unet_demo.data.volumes``.

Args (command line):
    --cache DIR: download/extract folder (default build/sample_data_cache).
    --out DIR: output folder (default sample_data/ in the repository).

Example:
    $ .venv/bin/python scripts/build_volume_data.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from unet_demo.data.bundled import CARD_FILE, README_FILE, SPLITS, class_fractions  # noqa: E402
from unet_demo.data.volumes import VOLUME_FILE  # noqa: E402

NAME = "brain_volume"
FACTOR = 2  # 1 mm -> 2 mm: mean of each 2x2x2 block
# Half-open voxel boxes on the 2 mm grid (90 x 108 x 90): ((x0, x1), (y0, y1), (z0, z1)).
# Train: the patient's right side (x < 84 mm). Held out: the left side from x = 96 mm, cut
# front/back into val (anterior) and test (posterior). Gaps: 12 mm in x, 8 mm in y.
REGIONS = {
    "train": ((0, 42), (0, 108), (0, 90)),
    "val": ((48, 90), (56, 108), (0, 90)),
    "test": ((48, 90), (0, 52), (0, 90)),
}


def _load_build_script():
    spec = importlib.util.spec_from_file_location("build_sample_data",
                                                  REPO_ROOT / "scripts" / "build_sample_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def block_mean(volume: np.ndarray, factor: int = FACTOR) -> np.ndarray:
    """Mean over non-overlapping factor^3 blocks (the edge that does not fill a block is cut).

    Args:
        volume: 3-D array.
        factor: block side.

    Example:
        >>> block_mean(np.arange(8.0).reshape(2, 2, 2)).tolist()
        [[[3.5]]]
    """
    x, y, z = (s // factor * factor for s in volume.shape)
    cut = volume[:x, :y, :z].astype(np.float64)
    return cut.reshape(x // factor, factor, y // factor, factor, z // factor, factor).mean(
        axis=(1, 3, 5))


def check_regions(shape: tuple[int, ...]) -> None:
    """Refuse overlapping or out-of-bounds split boxes (the split must not leak)."""
    masks = {}
    for split, box in REGIONS.items():
        inside = np.zeros(shape, bool)
        if any(a < 0 or b > s for (a, b), s in zip(box, shape, strict=True)):
            raise SystemExit(f"region {split} {box} is outside the volume {shape}")
        inside[tuple(slice(a, b) for a, b in box)] = True
        masks[split] = inside
    for first in SPLITS:
        for second in SPLITS:
            if first < second and (masks[first] & masks[second]).any():
                raise SystemExit(f"regions {first} and {second} overlap")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / "build" / "sample_data_cache")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "sample_data")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    base = _load_build_script()

    import nibabel as nib
    from scipy import ndimage

    deb, root = base.fetch_mricron(args.cache)
    version = deb.name.split("_")[1]
    template_dir = root / "usr/share/mricron/templates"
    head_path, bet_path = template_dir / "ch2.nii.gz", template_dir / "ch2bet.nii.gz"
    head_image, bet_image = nib.load(head_path), nib.load(bet_path)
    for image in (head_image, bet_image):
        if nib.aff2axcodes(image.affine) != ("R", "A", "S"):
            raise SystemExit(f"unexpected orientation {nib.aff2axcodes(image.affine)}")
    head = block_mean(np.asarray(head_image.dataobj, dtype=np.float32))
    brain = ndimage.binary_fill_holes(np.asarray(bet_image.dataobj) > 0)
    mask = ndimage.binary_fill_holes(block_mean(brain.astype(np.float32)) >= 0.5)
    # One scaling for the whole volume, from its 0.5th-99.5th percentiles (air included): the
    # same rule the Segment page applies to an uploaded volume before a model sees it.
    image = base.to_uint8(head, np.ones(head.shape, bool))
    # New voxel j covers old voxels FACTOR*j .. FACTOR*j + FACTOR-1; its centre is the old
    # index FACTOR*j + (FACTOR-1)/2, so the axes scale by FACTOR and the origin shifts.
    affine = head_image.affine.astype(np.float64).copy()
    affine[:3, 3] += affine[:3, :3] @ np.full(3, (FACTOR - 1) / 2.0)
    affine[:3, :3] *= FACTOR
    spacing = np.full(3, float(FACTOR), np.float32)
    check_regions(image.shape)

    folder = args.out / NAME
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / VOLUME_FILE
    base.write_npz(path, {"image": image, "mask": mask.astype(np.uint8), "spacing": spacing,
                          "affine": affine.astype(np.float64)})
    balance, counts = {}, {}
    for split, box in REGIONS.items():
        inside = mask[tuple(slice(a, b) for a, b in box)]
        balance[split] = dict(zip(("background", "brain"), class_fractions(inside, 2),
                                  strict=True))
        counts[split] = int(inside.size)
    licence = (
        "Debian's copyright file for mricron-data lists BSD-3-Clause (Chris Rorden) for the "
        "package; the Colin27 template itself comes from the Montreal Neurological Institute "
        "under the MNI notice below (free use, keep the notice).")
    regions_text = "; ".join(
        f"{split}: x {b[0][0]}-{b[0][1] - 1}, y {b[1][0]}-{b[1][1] - 1}, z {b[2][0]}-{b[2][1] - 1}"
        for split, b in REGIONS.items())
    card = {
        "name": NAME,
        "kind": "volume",
        "title": "Brain extraction in 3D on a T1 MRI head (Colin27, 2 mm)",
        "modality": "MRI, T1-weighted, single healthy adult scanned 27 times and averaged "
                    "(Colin27), resampled to 2 mm voxels",
        "task": "Binary 3D segmentation: brain versus everything else (skull stripping)",
        "num_classes": 2,
        "class_names": ["background", "brain"],
        "label_meaning": {
            "0": "background: air, scalp, skull, eyes, neck and other non-brain tissue",
            "1": "brain: the ch2bet brain mask with holes filled (ventricles count as brain)",
        },
        "image_size": [int(s) for s in image.shape],
        "volume_shape": [int(s) for s in image.shape],
        "spacing_mm": [float(s) for s in spacing],
        "channels": 1,
        "regions": {split: [list(pair) for pair in box] for split, box in REGIONS.items()},
        "split_counts": counts,
        "class_balance": balance,
        "split_rule": (
            "Three non-overlapping boxes of voxels on the 2 mm grid (x runs from the patient's "
            f"right to left, y from back to front, z from feet to head): {regions_text}. "
            "Train is the right side of the head; the left side, 12 mm (6 voxels) away, is cut "
            "front/back into val (anterior) and test (posterior) with an 8 mm gap. Training "
            "and validation patches are cut inside their own box only, so no voxel is seen by "
            "two splits; test scores are computed on the whole test box in 3D. No randomness."),
        "split_proves": (
            "Test scores measure how well a model finds the brain in a part of the head it "
            "never saw (the back of the left side), at the same 2 mm resolution."),
        "split_does_not_prove": (
            "All voxels come from one person's head (Colin27), so train and test share anatomy, "
            "scanner, contrast and intensity scaling, and the two halves of a head are nearly "
            "mirror images (training also adds left-right mirrored patches): scores overstate "
            "how well a model would do on other people, scanners or diseases."),
        "sources": [
            base.source_entry(base.MRICRON_PACKAGE, version, head_path,
                              "usr/share/mricron/templates/ch2.nii.gz", deb, licence,
                              base.MNI_NOTICE, base.HOLMES_1998),
            base.source_entry(base.MRICRON_PACKAGE, version, bet_path,
                              "usr/share/mricron/templates/ch2bet.nii.gz", deb, licence,
                              base.MNI_NOTICE, base.HOLMES_1998),
        ],
        "derivation": [
            f"`apt-get download {base.MRICRON_PACKAGE}` and `dpkg -x`; read ch2.nii.gz (head) and "
            "ch2bet.nii.gz (brain only) with nibabel: 181x217x181 voxels of 1 mm, RAS+.",
            "Downsampled to 2 mm by averaging each 2x2x2 block (the last 1 mm plane of each "
            "axis is dropped): 90x108x90 voxels.",
            "Brain mask: ch2bet > 0 with holes filled in 3D, averaged over the same blocks, "
            "kept where at least half of a block is brain, holes filled again.",
            "Head intensities clipped to the 0.5th-99.5th percentiles of all voxels and scaled "
            "to 0-255 (uint8); the loader divides by 255.",
            "The affine scales the 1 mm voxel axes by 2 and moves the origin to the centre of "
            "the first block, so the volume sits where the source head sits in world space.",
        ],
        "files": {VOLUME_FILE: {"sha256": base.sha256_of(path), "bytes": path.stat().st_size}},
    }
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (folder / README_FILE).write_text(volume_card_markdown(card) + "\n", encoding="utf-8")
    (folder / base.LICENCE_FILE).write_text(base.licence_text(card), encoding="utf-8")
    print(f"{NAME}: {image.shape} voxels of 2 mm, {path.stat().st_size / 1e3:.0f} KB", flush=True)


def volume_card_markdown(card: dict) -> str:
    """The README.md of a volume dataset, from its card."""
    lines = [
        f"# {card['title']} ({card['name']})",
        "",
        "> Education and research only, not for diagnosis. Generated from card.json by "
        "scripts/build_volume_data.py; edit the script, not this file.",
        "",
        f"- **Modality:** {card['modality']}",
        f"- **Task:** {card['task']}",
        f"- **Volume:** {' x '.join(str(s) for s in card['volume_shape'])} voxels of "
        f"{' x '.join(f'{s:g}' for s in card['spacing_mm'])} mm, stored as 8-bit, loaded as "
        "float32 in [0, 1]",
        "",
        "## Labels",
        "",
        "| value | name | meaning |",
        "|---|---|---|",
    ]
    for value, name in enumerate(card["class_names"]):
        lines.append(f"| {value} | {name} | {card['label_meaning'][str(value)]} |")
    lines += ["", "## Split regions and class balance (fraction of voxels)", "",
              "| split | box (x, y, z), voxels | voxels | background | brain |",
              "|---|---|---|---|---|"]
    for split in SPLITS:
        box = ", ".join(f"{a}-{b - 1}" for a, b in card["regions"][split])
        balance = card["class_balance"][split]
        lines.append(f"| {split} | {box} | {card['split_counts'][split]} | "
                     f"{balance['background']:.4f} | {balance['brain']:.4f} |")
    lines += ["", f"**Split rule.** {card['split_rule']}", "",
              f"**What the split shows.** {card['split_proves']}", "",
              f"**What it does not show.** {card['split_does_not_prove']}", "",
              "## How the files were made", ""]
    lines += [f"{n}. {step}" for n, step in enumerate(card["derivation"], start=1)]
    lines += ["", "## Sources, licences and notices", ""]
    for source in card["sources"]:
        lines += [f"### {source['file']}", "",
                  f"- **Package:** {source['package']} {source['version']}",
                  f"- **sha256:** `{source['sha256']}`",
                  f"- **Package file:** {source['archive']} (sha256 `{source['archive_sha256']}`)",
                  f"- **Licence:** {source['licence']}",
                  f"- **Citation:** {source['citation']}", "", "Notice:", "", "```text",
                  str(source["notice"]), "```", ""]
    lines += ["## Files", "", "| file | sha256 | bytes |", "|---|---|---|"]
    for file_name, entry in sorted(card["files"].items()):
        lines.append(f"| {file_name} | `{entry['sha256']}` | {entry['bytes']} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
