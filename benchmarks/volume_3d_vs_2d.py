"""3D U-Net versus slice-by-slice 2D on the same NIfTI volume: Dice, HD95 (mm) and time.

The volume is the bundled 2 mm Colin27 head (``brain_volume``) written as a NIfTI file and read
back through the Segment page's reader. The 3D model is the bundled one
(models/volumetric/brain_volume); the 2D model is the bundled skull-strip model, run on every
axial slice. Scores are computed on the held-out test box (the 3D model never trained there)
and, for reference, on the whole volume. Each segmentation is timed three times (the first run
includes graph set-up); the median is printed. Prints one JSON object; name the CPU with it.

Example:
    $ .venv/bin/python benchmarks/volume_3d_vs_2d.py
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from unet_demo.data.readers import read_image_bytes  # noqa: E402
from unet_demo.data.volumes import load_volume  # noqa: E402
from unet_demo.evaluation.metrics import dice, hd95  # noqa: E402
from unet_demo.evaluation.volume import evaluate_volume_split  # noqa: E402
from unet_demo.inference.registry import open_model  # noqa: E402
from unet_demo.inference.segment import segment_volume  # noqa: E402
from unet_demo.inference.volume3d import (  # noqa: E402
    VOLUME_MODELS_DIR,
    open_volume_model,
    segment_volume_3d,
)
from unet_demo.training.runner import cpu_description  # noqa: E402
from unet_demo.ui.volume3d_ui import sample_volume_bytes  # noqa: E402

REPEATS = 3


def timed(function):
    """(result of the last call, median seconds over REPEATS calls)."""
    seconds = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return result, statistics.median(seconds), seconds


def main() -> None:
    volume = load_volume("brain_volume")
    loaded = read_image_bytes(sample_volume_bytes(), "brain_volume.nii.gz")
    zooms = loaded.meta["voxel_size"]
    model3d = open_volume_model(REPO_ROOT / VOLUME_MODELS_DIR / "brain_volume")
    model2d = open_model("bundled:brain_skullstrip")
    labels3d, t3d, all3d = timed(lambda: segment_volume_3d(
        model3d.predict_fn(), loaded.volume, patch=model3d.patch,
        num_classes=model3d.num_classes, zooms=zooms, model_spacing=model3d.spacing)[0])
    labels2d, t2d, all2d = timed(lambda: segment_volume(
        model2d.predict_fn(), loaded.volume, plane="axial", input_shape=model2d.input_shape,
        num_classes=model2d.num_classes, zooms=zooms)[0])
    test_box = tuple(slice(a, b) for a, b in volume.regions["test"])
    spacing = [float(z) for z in zooms[:3]]
    report = {}
    for where, box in (("test_box", test_box), ("whole_volume", (slice(None),) * 3)):
        truth = volume.mask[box] > 0
        report[where] = {
            "dice_3d": round(dice(truth, labels3d[box] > 0), 4),
            "dice_2d": round(dice(truth, labels2d[box] > 0), 4),
            "hd95_mm_3d": round(hd95(truth, labels3d[box] > 0, spacing), 2),
            "hd95_mm_2d": round(hd95(truth, labels2d[box] > 0, spacing), 2),
            "dice_3d_vs_2d": round(dice(labels3d[box] > 0, labels2d[box] > 0), 4),
        }
    report["evaluate_volume_split_test"] = {
        k: round(v, 4) for k, v in evaluate_volume_split(
            model3d.predict_fn(), "brain_volume", "test", model3d.patch).items()}
    report["seconds_3d_median"] = round(t3d, 2)
    report["seconds_2d_median"] = round(t2d, 2)
    report["seconds_3d_all"] = [round(s, 2) for s in all3d]
    report["seconds_2d_all"] = [round(s, 2) for s in all2d]
    report["volume_shape"] = list(loaded.volume.shape)
    report["model_3d_patch"] = list(model3d.patch)
    report["params_3d"] = int(model3d.model.count_params())
    report["params_2d"] = int(model2d.shared.keras_model.count_params())
    report["machine"] = {**cpu_description(), "cpus": __import__("os").cpu_count(),
                         "python": platform.python_version()}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
