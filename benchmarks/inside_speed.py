"""The Inside page's compute: all activations of one 128x128 image, receptive fields, ablation.

* **Activations**: every tensor the page shows (14 for the bundled depth-3 models) for one
  128x128 image, one forward pass through a Keras model on those layers' outputs
  (`unet_demo.inference.activations.feature_maps`), warm (the probe model built once, as the page
  keeps it per model); median of N runs. The page also caches the result per model and image.
* **Effective receptive field**: one gradient (tf.GradientTape) of the output's centre pixel.
* **Skip ablation**: mean Dice on the whole test split for the intact model, each skip off and
  all off (5 settings), as the page's bar chart computes it once per model and split.

Example:
    .venv/bin/python benchmarks/inside_speed.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine_description, save_result  # noqa: E402


def _timed(function, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), max(times)


def main(argv: list[str] | None = None) -> dict:
    """Measure and print; save benchmarks/results/inside_speed.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--model", default="brain_skullstrip")
    args = parser.parse_args(argv)

    import numpy as np

    from unet_demo.data.preprocess import prepare_batch
    from unet_demo.data.sources import load_split_arrays
    from unet_demo.evaluation.ablation import skip_ablation_scores
    from unet_demo.inference.activations import (
        effective_receptive_field,
        feature_maps,
        unet_anatomy,
    )
    from unet_demo.inference.registry import open_model

    handle = open_model(f"bundled:{args.model}")
    model = handle.shared.keras_model
    images, masks, _ = load_split_arrays(args.model, "test")
    prepared, _ = prepare_batch(images[:2], masks[:2], size=handle.input_shape[:2],
                                channels=handle.input_shape[2],
                                normalization=handle.normalization)
    image = prepared[0]
    start = time.perf_counter()
    maps = feature_maps(model, image)
    first_s = time.perf_counter() - start
    median_s, worst_s = _timed(lambda: feature_maps(model, image), args.repeats)
    effective_receptive_field(model, image, "output")
    erf_s, _ = _timed(lambda: effective_receptive_field(model, image, "output"),
                      max(3, args.repeats // 3))
    start = time.perf_counter()
    rows = skip_ablation_scores(handle, args.model, "test")
    ablation_s = time.perf_counter() - start
    result = {
        "machine": machine_description(),
        "model": args.model,
        "tensors": len(maps),
        "values": int(sum(np.asarray(a).size for a in maps.values())),
        "input_shape": list(image.shape),
        "activations_first_s": first_s,
        "activations_median_s": median_s,
        "activations_max_s": worst_s,
        "erf_output_s": erf_s,
        "ablation_split_s": ablation_s,
        "ablation_images": rows[0]["images"],
        "ablation": {row["ablated"]: row["dice"] for row in rows},
        "depth": unet_anatomy(model).depth,
        "load_average": os.getloadavg()[0],
    }
    print(f"{result['machine']}, load average {result['load_average']:.1f}")
    print(f"activations of one {'x'.join(map(str, image.shape))} image ({len(maps)} tensors): "
          f"median {1000 * median_s:.0f} ms, worst {1000 * worst_s:.0f} ms, first call "
          f"{1000 * first_s:.0f} ms (builds the probe model)")
    print(f"effective receptive field of the output centre: {1000 * erf_s:.0f} ms")
    print(f"skip ablation on {rows[0]['images']} test images (5 settings): {ablation_s:.1f} s")
    save_result("inside_speed", result)
    return result


if __name__ == "__main__":
    main()
