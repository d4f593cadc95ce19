"""What a user waits for: the augmentation gallery re-roll and upload-to-overlay segmentation.

* **Gallery**: time to re-render the Augment page's 3x3 gallery (a new seed each time, as the
  re-roll button does, so no cache helps) with a busy pipeline (flip, affine, elastic, grid
  distortion, brightness/contrast, noise), through the same function the page calls.
* **Inference**: for every bundled model, a 256x256 image: model time (one forward pass at the
  model's input size, warm) and upload-to-overlay time (PNG bytes -> byte sniffing and
  validation -> decode -> resize/pad -> model -> labels -> overlay -> PNG bytes), through the
  Segment page's `process_upload`.

Example:
    .venv/bin/python benchmarks/ui_speed.py
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import save_result  # noqa: E402


def gallery_timings(repeats: int) -> dict:
    """Median and worst seconds to re-render the 3x3 gallery with a new seed each time."""
    from unet_demo.config import AugmentConfig
    from unet_demo.ui.augment_ui import gallery_image

    busy = AugmentConfig(hflip_p=0.5, affine_p=0.7, elastic_p=0.5, grid_p=0.5,
                         brightness_contrast_p=0.5, noise_p=0.5)
    times = []
    for seed in range(repeats + 1):
        start = time.perf_counter()
        gallery_image(busy.replace(seed=1000 + seed).to_json(), "brain_skullstrip", 0, False)
        times.append(time.perf_counter() - start)
    times = times[1:]  # the first call also loads the dataset
    return {"median_s": statistics.median(times), "max_s": max(times), "repeats": repeats}


def png_256(seed: int = 0) -> bytes:
    """A 256x256 grey PNG made from a bundled test image (upscaled), as a user would upload."""
    import numpy as np
    from PIL import Image

    from unet_demo.data.bundled import load_split

    arrays = load_split("brain_skullstrip", "test")
    image = (arrays.images[seed % len(arrays.images), ..., 0] * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).resize((256, 256), Image.BILINEAR).save(buffer, format="PNG")
    return buffer.getvalue()


def inference_timings(repeats: int) -> list[dict]:
    """Model and upload-to-overlay seconds for each bundled model on a 256x256 PNG."""
    import numpy as np

    from unet_demo.inference.encoders import rgb_png_bytes
    from unet_demo.inference.registry import bundled_model_names, open_model
    from unet_demo.plots.images import overlay_rgb
    from unet_demo.ui.segment_ui import SegmentOptions, process_upload

    rows = []
    data = png_256()
    for name in bundled_model_names():
        handle = open_model(f"bundled:{name}")
        batch = np.random.default_rng(0).random((1, *handle.input_shape), dtype=np.float32)
        handle.predict(batch)  # warm-up (graph tracing)
        model_times, total_times = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            handle.predict(batch)
            model_times.append(time.perf_counter() - start)
        for _ in range(repeats):
            start = time.perf_counter()
            outcome = process_upload(data, "upload.png", handle, SegmentOptions())
            if not outcome.ok:
                raise RuntimeError(outcome.error)
            image = outcome.loaded.pixels
            overlay = overlay_rgb(image if image.ndim == 2 else image[..., 0],
                                  outcome.result.labels, max(2, handle.num_classes))
            rgb_png_bytes(overlay)
            total_times.append(time.perf_counter() - start)
        rows.append({
            "model": name, "input_shape": list(handle.input_shape),
            "model_ms": 1000 * statistics.median(model_times),
            "upload_to_overlay_ms": 1000 * statistics.median(total_times),
        })
    return rows


def main(argv: list[str] | None = None) -> dict:
    """Measure, print and save the figures; return them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    gallery = gallery_timings(args.repeats)
    print(f"augmentation gallery 3x3 re-roll: median {1000 * gallery['median_s']:.0f} ms, "
          f"worst {1000 * gallery['max_s']:.0f} ms")
    inference = inference_timings(args.repeats)
    for row in inference:
        print(f"bundled {row['model']}: model {row['model_ms']:.1f} ms, "
              f"upload-to-overlay {row['upload_to_overlay_ms']:.0f} ms (256x256 PNG)")
    result = {"gallery": gallery, "inference": inference}
    save_result("ui_speed", result)
    return result


if __name__ == "__main__":
    main()
