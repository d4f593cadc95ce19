"""Every bundled model in every export format: size, one-image CPU latency, differences.

For each model in models/bundled/ this runs `unet_demo.evaluation.deployment.compare_formats`
(convert, load back in the format's own runtime, predict the whole test split, time one image)
and prints one Markdown table per model, the tables of docs/export.md. Figures are saved to
benchmarks/results/export_formats.json. Latencies depend on the CPU and on what else runs on
it; the script names the CPU and the load average.

Example:
    .venv/bin/python benchmarks/export_formats.py
    .venv/bin/python benchmarks/export_formats.py --models nuclei --repeats 50
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine_description, save_result  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    """Measure and print; save benchmarks/results/export_formats.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None,
                        help="bundled model names (default: all)")
    parser.add_argument("--repeats", type=int, default=20, help="timed one-image calls")
    args = parser.parse_args(argv)

    from unet_demo.evaluation.deployment import compare_formats, markdown_table
    from unet_demo.inference.registry import bundled_model_names, open_model

    names = args.models or bundled_model_names()
    result = {"machine": machine_description(), "load_before": os.getloadavg(), "models": {}}
    print(f"# Export formats on {result['machine']} (load {os.getloadavg()[0]:.1f})\n")
    for name in names:
        handle = open_model(f"bundled:{name}")
        with tempfile.TemporaryDirectory(prefix="export_bench_") as folder:
            comparison = compare_formats(handle, folder=folder, repeats=args.repeats)
        result["models"][name] = comparison.to_dict()
        print(f"## {name} ({comparison.test_images} test images, Keras test Dice "
              f"{comparison.keras_test_dice:.4f}, Keras batch 1 vs 8: max |dp| "
              f"{comparison.keras_batch_difference:.2g})\n")
        print(markdown_table(comparison.reports) + "\n", flush=True)
    result["load_after"] = os.getloadavg()
    save_result("export_formats", result)
    return result


if __name__ == "__main__":
    main()
