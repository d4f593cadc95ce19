"""The out-of-distribution matrix: every bundled model against every other kind of image.

For each bundled model the in-distribution images are its own test split; the foreign images
are the other bundled datasets' test splits, the photographs and other pictures that
scikit-image ships (`skimage.data`, those available without a download) and the CT and MR
slices among pydicom's test files (one per distinct image, at least 32x32 pixels). Every image
goes through the model's own input step (`prepare_image`), then through

* the feature-space detector stored with the model (`ood_features.npz`): its score
  (distance / threshold; > 1 is a warning), and
* the image-statistics checks of the fingerprint (`ood_check`, any warning counts),

and the script reports per model: AUROC (own test split vs all foreign images, on the feature
score), the false-alarm rate on the own test split and the warning rate per foreign source.
Goals: AUROC >= 0.95 and at most 5% false alarms.

Example:
    .venv/bin/python benchmarks/ood_matrix.py            # prints a table, saves results/ood_matrix.json
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.common import machine_description, save_result  # noqa: E402

SKIMAGE_IMAGES = (
    "astronaut", "brick", "camera", "cat", "cell", "checkerboard", "chelsea", "clock", "coffee",
    "coins", "colorwheel", "grass", "gravel", "horse", "hubble_deep_field",
    "immunohistochemistry", "logo", "moon", "page", "retina", "rocket", "text",
)
GOAL_AUROC = 0.95
GOAL_FALSE_ALARMS = 0.05


def skimage_images() -> list[tuple[str, np.ndarray]]:
    """(name, pixels) of the scikit-image sample pictures that load without a download."""
    import skimage.data

    images = []
    for name in SKIMAGE_IMAGES:
        loader = getattr(skimage.data, name, None)
        if loader is None:
            continue
        try:
            pixels = np.asarray(loader(), np.float32)
        except Exception:  # noqa: BLE001 - needs pooch (a download): skip it
            continue
        if pixels.ndim == 3 and pixels.shape[-1] == 4:
            pixels = pixels[..., :3]
        images.append((f"skimage:{name}", pixels))
    return images


def dicom_slices(modalities: tuple[str, ...] = ("CT", "MR")) -> list[tuple[str, np.ndarray]]:
    """(name, pixels) of pydicom's CT and MR test images (distinct pixels, >= 32x32)."""
    import pydicom
    from pydicom.data import get_testdata_files

    from unet_demo.data.readers import read_image_file
    from unet_demo.errors import UNetDemoError

    seen: set[str] = set()
    slices = []
    for path in sorted(get_testdata_files("*.dcm")):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            modality = str(header.get("Modality", ""))
            if modality not in modalities or int(header.get("Rows", 0) or 0) < 32:
                continue
            pixels = read_image_file(path).pixels
        except (UNetDemoError, OSError, ValueError, TypeError):
            continue
        digest = hashlib.sha256(np.round(pixels, 3).tobytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        slices.append((f"pydicom:{modality}:{Path(path).name}", pixels))
    return slices


def score_images(handle, detector, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(feature scores, image-statistics warning flags) of raw images for one model."""
    from unet_demo.data.preprocess import prepare_image
    from unet_demo.inference import ood

    prepared = [prepare_image(image, size=handle.input_shape[:2], channels=handle.input_shape[2],
                              normalization=handle.normalization) for image in images]
    batch = np.stack([p.model_input for p in prepared]).astype(np.float32)
    features = ood.pooled_features(handle.shared.keras_model, batch, detector.layers)
    scores = np.array([s.score for s in ood.score_features(detector, features)])
    stats = np.array([bool(ood.ood_check(p.normalized, handle.fingerprint)) for p in prepared])
    return scores, stats


def model_row(name: str, datasets: list[str], sources: dict[str, list] | None = None) -> dict:
    """The matrix row of one bundled model (see the module docstring)."""
    from unet_demo.data.sources import load_split
    from unet_demo.inference import ood
    from unet_demo.inference.registry import open_model

    handle = open_model(f"bundled:{name}")
    detector = ood.load_feature_detector(handle.source)
    if detector is None:
        raise SystemExit(f"bundled:{name} has no {ood.FEATURE_FILE}; run scripts/fit_ood.py.")
    own = load_split(handle.dataset, "test").images
    own_scores, own_stats = score_images(handle, detector, list(own))
    if sources is None:
        sources = foreign_sources_datasets(handle.dataset, datasets)
        dicom = dicom_slices()
        sources["skimage photographs"] = skimage_images()
        sources["pydicom CT"] = [item for item in dicom if ":CT:" in item[0]]
        sources["pydicom MR"] = [item for item in dicom if ":MR:" in item[0]]
    row = {"model": name, "threshold": detector.threshold, "test_images": len(own),
           "false_alarms": float((own_scores > 1).mean()),
           "false_alarms_image_stats": float(own_stats.mean()),
           # The threshold without the training-maximum floor (validation 99th percentile only):
           "false_alarms_val_only": float((own_scores * detector.threshold > detector.info.get(
               "val_percentile_distance", detector.threshold)).mean()),
           "test_score_max": float(own_scores.max()), "sources": {}}
    foreign = []
    for source, items in sources.items():
        if not items:
            continue
        scores, stats = score_images(handle, detector, [pixels for _, pixels in items])
        foreign.append(scores)
        row["sources"][source] = {
            "images": len(items), "warned": float((scores > 1).mean()),
            "warned_image_stats": float(stats.mean()), "score_min": float(scores.min()),
            "score_median": float(np.median(scores)),
        }
    everything = np.concatenate(foreign)
    row["foreign_images"] = int(everything.size)
    row["auroc"] = ood.auroc(own_scores, everything)
    row["warned"] = float((everything > 1).mean())
    row["meets_goal"] = bool(row["auroc"] >= GOAL_AUROC and row["false_alarms"]
                             <= GOAL_FALSE_ALARMS)
    return row


def markdown(rows: list[dict]) -> str:
    """The matrix as two markdown tables (summary, warning rate per source)."""
    lines = ["| model | AUROC | false alarms (own test) | foreign warned | image-stats checks: "
             "false alarms / foreign warned |", "|---|---|---|---|---|"]
    for row in rows:
        stats_foreign = np.mean([s["warned_image_stats"] for s in row["sources"].values()])
        lines.append(
            f"| {row['model']} | {row['auroc']:.3f} | {row['false_alarms']:.0%} of "
            f"{row['test_images']} | {row['warned']:.0%} of {row['foreign_images']} | "
            f"{row['false_alarms_image_stats']:.0%} / {stats_foreign:.0%} (mean over sources) |")
    sources = list(dict.fromkeys(s for row in rows for s in row["sources"]))
    lines += ["", "| model | " + " | ".join(sources) + " |",
              "|---|" + "---|" * len(sources)]
    for row in rows:
        cells = []
        for source in sources:
            cell = row["sources"].get(source)
            cells.append("(own)" if cell is None else
                         f"{cell['warned']:.0%} (min {cell['score_min']:.1f})")
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Compute, print and save the matrix; the exit status says whether every goal is met."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None)
    args = parser.parse_args(argv)
    from unet_demo.inference.registry import bundled_model_names, get_bundled_model_info

    names = args.models or bundled_model_names()
    datasets = [get_bundled_model_info(n).dataset for n in bundled_model_names()]
    shared = {"skimage photographs": skimage_images()}
    dicom = dicom_slices()
    shared["pydicom CT"] = [item for item in dicom if ":CT:" in item[0]]
    shared["pydicom MR"] = [item for item in dicom if ":MR:" in item[0]]
    rows = []
    for name in names:
        own = get_bundled_model_info(name).dataset
        sources = {**foreign_sources_datasets(own, datasets), **shared}
        rows.append(model_row(name, datasets, sources))
    result = {"machine": machine_description(), "goal_auroc": GOAL_AUROC,
              "goal_false_alarms": GOAL_FALSE_ALARMS, "rows": rows,
              "dicom_files": [n for n, _ in dicom], "skimage_images": [n for n, _ in
                                                                     shared["skimage photographs"]]}
    print(markdown(rows))
    save_result("ood_matrix", result)
    return result


def foreign_sources_datasets(model_dataset: str, datasets: list[str]) -> dict[str, list]:
    """The other bundled datasets' test images only (the shared sources are loaded once)."""
    from unet_demo.data.sources import load_split

    sources = {}
    for dataset in datasets:
        if dataset != model_dataset:
            split = load_split(dataset, "test")
            sources[f"dataset:{dataset}"] = [(f"{dataset}:{i}", image) for i, image in
                                             zip(split.ids, split.images, strict=False)]
    return sources


if __name__ == "__main__":
    outcome = main()
    raise SystemExit(0 if all(row["meets_goal"] for row in outcome["rows"]) else 1)
