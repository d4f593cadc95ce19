"""Compare a model's exports with Keras: file size, latency, probability and Dice changes.

For each format of `unet_demo.inference.deploy` the model is converted, loaded back in its own
runtime, run on the model's test split (prepared as the model was trained) and scored. A row
says how big the file is, how long one image takes on this CPU, the largest probability
difference from Keras on the test images, the test Dice and its change from Keras', and
whether the format's tolerance holds.

This lives in ``evaluation`` (not ``inference``) because it scores Dice, and the engine's
imports run evaluation -> inference.

Example:
    >>> row = FormatReport("onnx", "ONNX", "m.onnx", 2_000_000, 3.1, 2e-7, 0.9, 0.0, True,
    ...                    "max |p - p_keras| <= 1e-04")
    >>> table_rows([row])[0]["size (MB)"]
    2.0
"""

from __future__ import annotations

import dataclasses
import platform
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unet_demo.evaluation.evaluate import evaluate_predictions
from unet_demo.inference import deploy


@dataclasses.dataclass(frozen=True)
class FormatReport:
    """One format's measured figures on one model.

    Attributes:
        format: format name ("onnx", ...).
        title: human name of the format.
        file_name: the exported file's name.
        size_bytes: its size.
        latency_ms: median time for one image on this CPU.
        max_abs_difference: largest |probability - Keras probability| on the test images.
        test_dice: mean test Dice of the export.
        dice_change: ``test_dice`` minus Keras' test Dice.
        passed: whether the format's tolerance holds.
        tolerance: the tolerance in words.
    """

    format: str
    title: str
    file_name: str
    size_bytes: int
    latency_ms: float
    max_abs_difference: float
    test_dice: float
    dice_change: float
    passed: bool
    tolerance: str

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Comparison:
    """Every format's report for one model, and where the exported files are.

    Attributes:
        model_id: the handle's id.
        title: the model's title.
        dataset: the dataset whose test split was used.
        test_images: how many test images were scored.
        keras_test_dice: Keras' mean test Dice (the reference).
        keras_batch_difference: max |p_keras(batch of 1) - p_keras(batch of 8)| on the test
            images: how far Keras' own float32 outputs move when only the batch size changes
            (the floor below which no export can be expected to agree).
        reports: one `FormatReport` per format, in `deploy.FORMAT_NAMES` order.
        files: format -> path of the exported file (in the caller's folder).
        cpu: the processor the latencies were measured on.
    """

    model_id: str
    title: str
    dataset: str
    test_images: int
    keras_test_dice: float
    keras_batch_difference: float
    reports: list[FormatReport]
    files: dict[str, Path]
    cpu: str

    def to_dict(self) -> dict[str, Any]:
        """Plain dict without the file paths (JSON-ready)."""
        return {"model_id": self.model_id, "title": self.title, "dataset": self.dataset,
                "test_images": self.test_images, "keras_test_dice": self.keras_test_dice,
                "keras_batch_difference": self.keras_batch_difference,
                "cpu": self.cpu, "reports": [r.to_dict() for r in self.reports]}


def cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux), else the platform's word.

    Example:
        >>> isinstance(cpu_name(), str)
        True
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def split_dice(probabilities: np.ndarray, masks: np.ndarray, num_classes: int,
              ids: Sequence[str] | None = None) -> float:
    """Mean per-image test Dice of probabilities against truth (threshold 0.5 or argmax).

    Args:
        probabilities: (N, H, W, K) outputs.
        masks: (N, H, W) integer truth.
        num_classes: the model's class count (1 = one sigmoid channel).
        ids: image names.

    Example:
        >>> p = np.zeros((1, 4, 4, 1)); p[0, :2] = 0.9
        >>> split_dice(p, (p[..., 0] > 0.5).astype(np.uint8), 1)
        1.0
    """
    result = evaluate_predictions(probabilities, masks, max(2, int(num_classes)), ids=ids,
                                  distances=False)
    return float(result.mean["dice"])


def compare_formats(
    handle: Any,
    formats: Sequence[str] = deploy.FORMAT_NAMES,
    *,
    folder: str | Path | None = None,
    calibration_limit: int = deploy.CALIBRATION_IMAGES,
    test_limit: int | None = None,
    repeats: int = deploy.LATENCY_REPEATS,
    on_progress: Callable[[str], None] | None = None,
    exported: Mapping[str, str | Path] | None = None,
) -> Comparison:
    """Export ``handle``'s model to every format, load each back and compare it with Keras.

    Args:
        handle: an opened model (`unet_demo.inference.registry.open_model`).
        formats: which formats to measure.
        folder: where the exported files stay (a fresh temporary folder when None; the caller
            removes it).
        calibration_limit: training images for int8 calibration.
        test_limit: score at most this many test images (None = the whole split).
        repeats: timed one-image calls per format.
        on_progress: called with a short line before each format (for a progress display).
        exported: format -> a file already written by `deploy.write_export`; that very file
            is checked instead of a fresh conversion.

    Example:
        >>> from unet_demo.inference.registry import open_model
        >>> result = compare_formats(open_model("bundled:nuclei"), ["keras"], test_limit=2,
        ...                          repeats=1)  # doctest: +SKIP
        >>> result.reports[0].max_abs_difference  # doctest: +SKIP
        0.0
    """
    names = [deploy.get_format(name).name for name in formats]
    folder = Path(folder) if folder is not None else Path(
        tempfile.mkdtemp(prefix="unet_demo_exports_"))
    folder.mkdir(parents=True, exist_ok=True)
    images, masks, ids = deploy.model_ready_split(handle, "test", test_limit)
    reference = handle.predict(images, batch_size=8)
    one_by_one = handle.predict(images, batch_size=1)
    batch_difference = deploy.max_abs_difference(one_by_one, reference)
    keras_dice = split_dice(reference, masks, handle.num_classes, ids)
    calibration = (deploy.calibration_images(handle, calibration_limit)
                   if "tflite-int8" in names and "tflite-int8" not in (exported or {}) else None)
    model = handle.shared.keras_model
    keras_file = source_keras_file(handle)
    reports, files = [], {}
    for name in names:
        spec = deploy.FORMATS[name]
        if on_progress is not None:
            on_progress(f"{spec.title}: converting, loading and timing")
        if exported and name in exported:
            path = Path(exported[name])
        else:
            path = deploy.convert(model, name, folder, keras_file=keras_file,
                                  calibration=calibration)
        predict = deploy.load_predictor(path, name)
        probabilities = deploy.predict_in_batches(predict, images)
        difference = deploy.max_abs_difference(probabilities, reference)
        dice = split_dice(probabilities, masks, handle.num_classes, ids)
        change = round(dice - keras_dice, 12)
        files[name] = path
        reports.append(FormatReport(
            format=name, title=spec.title, file_name=path.name, size_bytes=_size(path),
            latency_ms=deploy.latency_ms(predict, images[0], repeats=repeats),
            max_abs_difference=difference, test_dice=dice, dice_change=change,
            passed=spec.passes(difference, change), tolerance=spec.tolerance_text()))
    return Comparison(model_id=handle.model_id, title=handle.title, dataset=handle.dataset,
                      test_images=len(images), keras_test_dice=keras_dice,
                      keras_batch_difference=batch_difference, reports=reports,
                      files=files, cpu=cpu_name())


def _size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (an unzipped SavedModel)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def source_keras_file(handle: Any) -> Path | None:
    """The ``model.keras`` the handle was loaded from, when its digest matches the handle's id.

    Args:
        handle: an opened model; its id ends in ``@<first 12 hex digits of the file's SHA-256>``.

    Example:
        >>> from unet_demo.inference.registry import open_model
        >>> source_keras_file(open_model("bundled:nuclei")).name
        'model.keras'
    """
    from unet_demo.models.safe_load import sha256_of

    candidate = Path(handle.source) / "model.keras"
    digest = str(handle.model_id).rsplit("@", 1)[-1]
    if candidate.is_file() and digest and sha256_of(candidate).startswith(digest):
        return candidate
    return None


def table_rows(reports: Sequence[FormatReport]) -> list[dict[str, Any]]:
    """One display row per format: size, latency, differences, tolerance and verdict.

    Args:
        reports: from `compare_formats`.

    Example:
        >>> row = FormatReport("tflite-int8", "int8", "m.tflite", 600_000, 4.0, 0.1, 0.93,
        ...                    -0.004, True, "test Dice within 0.03 of Keras")
        >>> table_rows([row])[0]["within tolerance"]
        'yes'
    """
    return [{
        "format": r.format,
        "size (MB)": round(r.size_bytes / 1e6, 3),
        "latency (ms, 1 image)": round(r.latency_ms, 2),
        "max |Δp| vs Keras": float(f"{r.max_abs_difference:.3g}"),
        "test Dice": round(r.test_dice, 4),
        "Δ test Dice": float(f"{r.dice_change:+.2g}") if r.dice_change else 0.0,
        "tolerance": r.tolerance,
        "within tolerance": "yes" if r.passed else "NO",
    } for r in reports]


def markdown_table(reports: Sequence[FormatReport]) -> str:
    """The `table_rows` as a Markdown table (for docs and the CLI).

    Args:
        reports: from `compare_formats`.

    Example:
        >>> row = FormatReport("onnx", "ONNX", "m.onnx", 2_000_000, 3.1, 2e-7, 0.9, 0.0, True,
        ...                    "max |p - p_keras| <= 1e-04")
        >>> print(markdown_table([row]).splitlines()[2])
        | onnx | 2.0 | 3.1 | 2e-07 | 0.9 | 0.0 | max \\|p - p_keras\\| <= 1e-04 | yes |
    """
    rows = table_rows(reports)
    if not rows:
        return ""
    columns = list(rows[0])

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(c) for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
