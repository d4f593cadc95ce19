"""Deploy a trained U-Net: convert it to other runtimes' formats, load each back, time it.

Six formats, each a file (a SavedModel folder travels as a ZIP):

=============  ===============================================================  ==============
format         what it is                                                       checked by
=============  ===============================================================  ==============
keras          the ``.keras`` file itself (Keras 3, loaded with safe_mode)      max |p - p_keras|
savedmodel     ``model.export(format="tf_saved_model")``, zipped; TF Serving    max |p - p_keras|
tflite         LiteRT flatbuffer, float32                                       max |p - p_keras|
tflite-fp16    LiteRT, weights stored as float16 (computed in float32 on CPU)   test Dice change
tflite-int8    LiteRT, int8 weights and activations, calibrated on training     test Dice change
               images (float32 input/output; normalisation statistics float32)
onnx           ``model.export(format="onnx")`` (tf2onnx inside), ONNX Runtime   max |p - p_keras|
=============  ===============================================================  ==============

The tolerances (`ExportFormat.tolerance`) are what the tests and the Export page check:
float32 formats within 1e-4 of Keras' probabilities, float16 within 0.01 test Dice, int8 within
0.03 test Dice.

`convert` writes one format, `load_predictor` opens a file this module wrote and returns a
``predict(batch) -> probabilities`` callable, `latency_ms` times one image. Comparing the
formats on a test split (Dice needs `unet_demo.evaluation`) is
`unet_demo.evaluation.deployment.compare_formats`.

Only the ``.keras`` format is ever loaded from a user's file (through
`unet_demo.models.safe_load`). A SavedModel, LiteRT or ONNX file is a graph that can call any
operation its runtime offers, so `load_predictor` is for files exported here, never uploads.

Example:
    >>> sorted(FORMATS) == sorted(FORMAT_NAMES)
    True
    >>> FORMATS["tflite-int8"].tolerance_text()
    'test Dice within 0.03 of Keras'
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from unet_demo.errors import UNetDemoError

Predictor = Callable[[np.ndarray], np.ndarray]

CALIBRATION_IMAGES = 64
"""Training images the int8 converter sees to choose its activation ranges."""
FLOAT_STATISTICS_OPS = ("MEAN", "SQUARED_DIFFERENCE", "RSQRT")
"""LiteRT ops kept in float32 in the int8 model: group normalisation's per-image mean and
variance. In int8 they cost the 4-class brain_tissue model 0.054-0.059 test Dice whatever the
calibration size (16, 64 or all 101 training images); kept in float32 the loss is 0.010, and
the weights and the convolutions stay int8 (see docs/export.md)."""
LATENCY_REPEATS = 20
LATENCY_WARMUP = 3


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    """One export format and the check an export in it must pass.

    Args:
        name: the command-line name, e.g. "tflite-fp16".
        title: human name.
        suffix: file ending of the download (".zip" for the SavedModel folder).
        runtime: what loads it.
        check: "max_abs" (probabilities within ``tolerance`` of Keras) or "dice" (test Dice
            within ``tolerance`` of Keras').
        tolerance: the bound of that check.

    Example:
        >>> FORMATS["onnx"].tolerance_text()
        'max |p - p_keras| <= 1e-04'
    """

    name: str
    title: str
    suffix: str
    runtime: str
    check: str
    tolerance: float

    def tolerance_text(self) -> str:
        """The check in words, e.g. 'test Dice within 0.01 of Keras'."""
        if self.check == "dice":
            return f"test Dice within {self.tolerance:g} of Keras"
        if self.tolerance == 0:
            return "identical to Keras (max |p - p_keras| = 0)"
        return f"max |p - p_keras| <= {self.tolerance:.0e}"

    def passes(self, max_abs_difference: float, dice_change: float) -> bool:
        """Whether measured differences are within this format's tolerance.

        Args:
            max_abs_difference: largest |probability - Keras probability| on the test images.
            dice_change: test Dice of this format minus Keras' test Dice.

        Example:
            >>> FORMATS["tflite-fp16"].passes(0.2, -0.004), FORMATS["onnx"].passes(2e-4, 0.0)
            (True, False)
        """
        value = abs(dice_change) if self.check == "dice" else max_abs_difference
        return bool(np.isfinite(value) and value <= self.tolerance)


FORMATS: dict[str, ExportFormat] = {
    "keras": ExportFormat("keras", "Keras 3 (.keras)", ".keras", "Keras 3", "max_abs", 0.0),
    "savedmodel": ExportFormat("savedmodel", "TensorFlow SavedModel (zipped folder)", ".zip",
                               "TensorFlow / TF Serving", "max_abs", 1e-4),
    "tflite": ExportFormat("tflite", "LiteRT (TFLite) float32", ".tflite", "LiteRT",
                           "max_abs", 1e-4),
    "tflite-fp16": ExportFormat("tflite-fp16", "LiteRT (TFLite) float16 weights", ".tflite",
                                "LiteRT", "dice", 0.01),
    "tflite-int8": ExportFormat("tflite-int8", "LiteRT (TFLite) int8, calibrated", ".tflite",
                                "LiteRT", "dice", 0.03),
    "onnx": ExportFormat("onnx", "ONNX (tf2onnx)", ".onnx", "ONNX Runtime", "max_abs", 1e-4),
}
FORMAT_NAMES = tuple(FORMATS)


def get_format(name: str) -> ExportFormat:
    """The `ExportFormat` called ``name``, or a UNetDemoError listing the valid names.

    Args:
        name: e.g. "onnx".

    Example:
        >>> get_format("pickle")
        Traceback (most recent call last):
        ...
        unet_demo.errors.UNetDemoError: Unknown export format 'pickle'. Expected one of: keras, savedmodel, tflite, tflite-fp16, tflite-int8, onnx.
    """
    if name not in FORMATS:
        raise UNetDemoError(f"Unknown export format {name!r}. Expected one of: "
                            f"{', '.join(FORMAT_NAMES)}.")
    return FORMATS[name]


def export_file_name(stem: str, fmt: str) -> str:
    """Download name of a model in a format, e.g. ``nuclei_tflite-int8.tflite``.

    Args:
        stem: a short model name.
        fmt: format name.

    Example:
        >>> export_file_name("nuclei", "savedmodel"), export_file_name("nuclei", "keras")
        ('nuclei_savedmodel.zip', 'nuclei.keras')
    """
    spec = get_format(fmt)
    return f"{stem}{spec.suffix}" if fmt == "keras" else f"{stem}_{fmt}{spec.suffix}"


# ------------------------------------------------------------------------------ convert


def convert(model: Any, fmt: str, folder: str | Path, *, keras_file: str | Path | None = None,
            calibration: np.ndarray | None = None) -> Path:
    """Write ``model`` in format ``fmt`` into ``folder``; return the file written.

    Args:
        model: a Keras model with a fixed (batch, H, W, C) input.
        fmt: one of `FORMAT_NAMES`.
        folder: an existing folder for the file (and temporary work).
        keras_file: for "keras", the checked ``.keras`` file to copy byte for byte (the model
            is saved again when it is None).
        calibration: for "tflite-int8", float32 model-ready training images (N, H, W, C).

    Example:
        >>> import keras
        >>> inputs = keras.Input((8, 8, 1))
        >>> tiny = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same",
        ...                                               activation="sigmoid")(inputs))
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = convert(tiny, "tflite", folder)
        ...     predict = load_predictor(path, "tflite")
        ...     x = np.random.default_rng(0).random((2, 8, 8, 1), np.float32)
        ...     bool(np.abs(predict(x) - tiny(x).numpy()).max() < 1e-4)
        True
    """
    spec = get_format(fmt)
    folder = Path(folder)
    target = folder / f"model_{fmt}{spec.suffix}"
    if fmt == "keras":
        if keras_file is not None:
            shutil.copyfile(keras_file, target)
        else:
            model.save(target)
        return target
    if fmt == "onnx":
        # Keras' ONNX exporter refuses a model that was loaded but never called.
        shape = tuple(model.input_shape)[1:]
        model(np.zeros((1, *shape), np.float32), training=False)
        _quietly(model.export, str(target), format="onnx", verbose=False)
        return target
    saved = folder / "savedmodel"
    if not (saved / "saved_model.pb").is_file():
        _quietly(model.export, str(saved), format="tf_saved_model", verbose=False)
    if fmt == "savedmodel":
        _zip_folder(saved, target)
        return target
    target.write_bytes(_tflite_bytes(saved, fmt, calibration))
    return target


def _quietly(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``function`` with its printed progress (tf2onnx, the exporters) kept off stdout."""
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args, **kwargs)


def _tflite_bytes(saved_model: Path, fmt: str, calibration: np.ndarray | None) -> bytes:
    """Convert a SavedModel to a LiteRT flatbuffer: float32, float16 weights or int8."""
    import tensorflow as tf

    if fmt == "tflite-int8" and (calibration is None or len(calibration) == 0):
        raise UNetDemoError(
            "int8 quantisation needs calibration images (model-ready training images) to "
            "choose each activation's range. Pass some, e.g. calibration_images(handle).")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if fmt == "tflite-fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif fmt == "tflite-int8":
        images = np.asarray(calibration, np.float32)

        def representative():
            for image in images:
                yield [image[None]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        # Selective quantisation (LiteRT's quantisation debugger): everything in int8 except
        # the ops of FLOAT_STATISTICS_OPS, which stay float32.
        options = tf.lite.experimental.QuantizationDebugOptions(
            denylisted_ops=list(FLOAT_STATISTICS_OPS))
    try:
        if fmt == "tflite-int8":
            debugger = _quietly(tf.lite.experimental.QuantizationDebugger, converter=converter,
                                debug_dataset=representative, debug_options=options)
            return bytes(_quietly(debugger.get_nondebug_quantized_model))
        return bytes(_quietly(converter.convert))
    except Exception as error:  # noqa: BLE001 - the converter raises many kinds; one message
        detail = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        raise UNetDemoError(
            f"The LiteRT converter could not make the {fmt} model ({type(error).__name__}: "
            f"{detail}). Try the float32 'tflite' or the 'onnx' format instead.") from None


def _zip_folder(folder: Path, target: Path) -> None:
    """ZIP every file under ``folder`` (names relative to it), in a stable order."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(folder).as_posix())


def write_export(model: Any, fmt: str, out: str | Path, *, keras_file: str | Path | None = None,
                 calibration: np.ndarray | None = None) -> Path:
    """Convert ``model`` to ``fmt`` and write it to ``out`` (checked to be writable first).

    A "savedmodel" export goes to ``out`` as a ZIP when ``out`` ends in ``.zip``, else as a
    SavedModel folder.

    Args:
        model: the Keras model.
        fmt: one of `FORMAT_NAMES`.
        out: destination file (or folder for an unzipped SavedModel).
        keras_file: see `convert`.
        calibration: see `convert`.

    Example:
        >>> write_export(None, "onnx", "/proc/no/such/place.onnx")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        unet_demo.errors.UNetDemoError: Cannot write the export to /proc/no/such/place.onnx: ...
    """
    get_format(fmt)
    out = Path(out)
    as_folder = fmt == "savedmodel" and out.suffix.lower() != ".zip"
    if as_folder and out.exists() and not (out.is_dir() and (
            (out / "saved_model.pb").is_file() or not any(out.iterdir()))):
        raise UNetDemoError(f"{out} already exists and is not an empty folder or an earlier "
                            "SavedModel export; give a new folder name, or a name ending in "
                            ".zip for a zipped SavedModel.")
    if not as_folder and out.is_dir():
        raise UNetDemoError(f"{out} is a folder; give a file name such as "
                            f"{out / export_file_name('model', fmt)}.")
    check_writable(out)
    with tempfile.TemporaryDirectory(prefix="unet_demo_export_") as work:
        made = convert(model, fmt, work, keras_file=keras_file, calibration=calibration)
        try:
            if as_folder:
                if out.exists():  # an earlier SavedModel export (or an empty folder)
                    shutil.rmtree(out)
                shutil.copytree(Path(work) / "savedmodel", out)
            else:
                shutil.copyfile(made, out)
        except OSError as error:
            raise UNetDemoError(f"Cannot write the export to {out}: {error.strerror or error}. "
                                "Pick a folder you can write to.") from None
    return out


def check_writable(out: str | Path) -> None:
    """Raise a clear UNetDemoError unless ``out`` can be created (its folder is made if needed).

    Args:
        out: the file or folder about to be written.

    Example:
        >>> check_writable(Path(tempfile.gettempdir()) / "unet_demo_ok.onnx")
    """
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=".unet_demo_probe_"):
            pass
    except OSError as error:
        raise UNetDemoError(f"Cannot write the export to {out}: {error.strerror or error}. "
                            "Pick a folder you can write to.") from None


# --------------------------------------------------------------------------------- load


def load_predictor(path: str | Path, fmt: str, *, threads: int | None = None) -> Predictor:
    """Open a file written by `convert` and return ``predict(batch) -> probabilities``.

    The callable takes float32 (N, H, W, C) model-ready images and returns float32
    (N, H, W, K) probabilities, whatever runtime is behind it. Keras files go through the
    safe loader; other formats are graphs and must come from this module (see the module
    docstring).

    Args:
        path: the exported file (a SavedModel as a ZIP or a folder).
        fmt: its format.
        threads: CPU threads for LiteRT and ONNX Runtime (default: every core).

    Example:
        >>> load_predictor("/nonexistent.onnx", "onnx")
        Traceback (most recent call last):
        ...
        unet_demo.errors.UNetDemoError: No onnx export at /nonexistent.onnx. Export the model first.
    """
    get_format(fmt)
    path = Path(path)
    if not path.exists():
        raise UNetDemoError(f"No {fmt} export at {path}. Export the model first.")
    threads = int(threads or os.cpu_count() or 1)
    if fmt == "keras":
        from unet_demo.inference.shared import SharedModel
        from unet_demo.models.safe_load import load_model_file

        shared = SharedModel(load_model_file(path))
        return lambda batch: shared.predict_probabilities(batch, batch_size=len(batch) or 1)
    if fmt == "savedmodel":
        return _savedmodel_predictor(path)
    if fmt == "onnx":
        return _onnx_predictor(path, threads)
    return _litert_predictor(path.read_bytes(), threads)


def _savedmodel_predictor(path: Path) -> Predictor:
    import tensorflow as tf

    if path.is_dir():
        loaded = tf.saved_model.load(str(path))
    else:
        work = Path(tempfile.mkdtemp(prefix="unet_demo_savedmodel_"))
        try:
            _unzip_savedmodel(path, work)
            loaded = tf.saved_model.load(str(work))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    serve = loaded.signatures["serving_default"]
    output_name = next(iter(serve.structured_outputs))

    def predict(batch: np.ndarray) -> np.ndarray:
        result = serve(tf.constant(np.asarray(batch, np.float32)))[output_name]
        return np.asarray(result, np.float32)

    predict.keep_alive = loaded  # the signature needs its object alive
    return predict


def _unzip_savedmodel(path: Path, folder: Path) -> None:
    """Unpack a zipped SavedModel through the project's ZIP guard."""
    from unet_demo.data.archive import BoundedReader, ZipLimits, open_zip

    limits = ZipLimits(max_archive_bytes=600 * 1024 * 1024, max_members=500,
                       max_member_bytes=600 * 1024 * 1024, max_total_bytes=600 * 1024 * 1024)
    name = f"SavedModel archive '{path.name}'"
    with open_zip(path.read_bytes(), limits, name) as archive:
        reader = BoundedReader(archive, limits, name)
        for info in archive.infolist():
            if info.is_dir():
                continue
            target = folder / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(reader.read(info))
    if not (folder / "saved_model.pb").is_file():
        raise UNetDemoError(f"{name} holds no saved_model.pb; export the model again.")


def _onnx_predictor(path: Path, threads: int) -> Predictor:
    import onnx
    import onnxruntime as ort

    try:
        onnx.checker.check_model(str(path))
    except Exception as error:  # noqa: BLE001 - onnx raises its own ValidationError types
        raise UNetDemoError(f"{path.name} is not a valid ONNX model ({error}). Export it "
                            "again.") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def predict(batch: np.ndarray) -> np.ndarray:
        feed = {input_name: np.ascontiguousarray(batch, np.float32)}
        return np.asarray(session.run(None, feed)[0], np.float32)

    return predict


def _litert_predictor(content: bytes, threads: int) -> Predictor:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content, num_threads=threads)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]
    state = {"batch": int(source["shape"][0])}

    def predict(batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, np.float32)
        if len(batch) != state["batch"]:
            interpreter.resize_tensor_input(source["index"], list(batch.shape))
            interpreter.allocate_tensors()
            state["batch"] = len(batch)
        interpreter.set_tensor(source["index"], batch)
        interpreter.invoke()
        return np.array(interpreter.get_tensor(target["index"]), np.float32)

    return predict


# ------------------------------------------------------------------------------ measure


def latency_ms(predict: Predictor, image: np.ndarray, *, repeats: int = LATENCY_REPEATS,
               warmup: int = LATENCY_WARMUP) -> float:
    """Median wall time (ms) of ``predict`` on one image, after a few warm-up calls.

    Args:
        predict: a `load_predictor` callable.
        image: one model-ready image (H, W, C) or a batch of one.
        repeats: timed calls.
        warmup: untimed calls first (graph tracing, allocation).

    Example:
        >>> latency_ms(lambda x: x * 2, np.zeros((8, 8, 1), np.float32), repeats=3) >= 0
        True
    """
    batch = np.asarray(image, np.float32)
    batch = batch[None] if batch.ndim == 3 else batch[:1]
    for _ in range(max(0, warmup)):
        predict(batch)
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        predict(batch)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)


def max_abs_difference(probabilities: np.ndarray, reference: np.ndarray) -> float:
    """Largest absolute difference between two probability arrays of one shape.

    Args:
        probabilities: an export's outputs.
        reference: Keras' outputs on the same images.

    Example:
        >>> max_abs_difference(np.array([0.2, 0.5]), np.array([0.25, 0.5]))
        0.05
    """
    a, b = np.asarray(probabilities, np.float64), np.asarray(reference, np.float64)
    if a.shape != b.shape:
        raise UNetDemoError(f"The export's output has shape {a.shape} but Keras' has {b.shape}; "
                            "the export is broken. Export it again.")
    return round(float(np.abs(a - b).max()), 12) if a.size else 0.0


def predict_in_batches(predict: Predictor, images: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Run ``predict`` over images in batches and join the outputs (N, H, W, K).

    Args:
        predict: a `load_predictor` callable.
        images: float32 (N, H, W, C).
        batch_size: images per call.

    Example:
        >>> predict_in_batches(lambda x: x + 1, np.zeros((3, 2, 2, 1), np.float32), 2).shape
        (3, 2, 2, 1)
    """
    step = max(1, int(batch_size))
    parts = [np.asarray(predict(images[start:start + step]), np.float32)
             for start in range(0, len(images), step)]
    out = np.concatenate(parts, axis=0)
    return out[..., None] if out.ndim == 3 else out


def model_ready_split(handle: Any, split: str, limit: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A split of the model's dataset prepared the way the model was trained (size, norm).

    Args:
        handle: an opened model (`unet_demo.inference.registry.ModelHandle`).
        split: "train", "val" or "test".
        limit: keep at most this many images, spread evenly over the split (None = all).

    Example:
        >>> from unet_demo.inference.registry import open_model
        >>> images, masks, ids = model_ready_split(open_model("bundled:nuclei"), "test", 2)
        >>> images.shape, masks.shape, len(ids)
        ((2, 128, 128, 1), (2, 128, 128), 2)
    """
    from unet_demo.data.preprocess import prepare_batch
    from unet_demo.data.sources import load_split_arrays

    if not handle.dataset:
        raise UNetDemoError(
            f"{handle.title}: its card does not say which dataset it was trained on, so there "
            "are no training or test images to calibrate and check the export with.")
    images, masks, ids = load_split_arrays(handle.dataset, split)
    if limit is not None and len(images) > limit:
        keep = np.linspace(0, len(images) - 1, int(limit)).round().astype(int)
        images, masks, ids = images[keep], masks[keep], [ids[i] for i in keep]
    if len(images) == 0:
        raise UNetDemoError(f"The {split} split of {handle.dataset!r} has no images; the export "
                            "cannot be checked on it.")
    height, width, channels = handle.input_shape
    prepared, labels = prepare_batch(images, masks, size=(height, width), channels=channels,
                                     normalization=handle.normalization)
    return prepared, labels, list(ids)


def calibration_images(handle: Any, limit: int = CALIBRATION_IMAGES) -> np.ndarray:
    """Model-ready training images for int8 calibration (at most ``limit``, spread evenly).

    Args:
        handle: an opened model.
        limit: most images used.

    Example:
        >>> from unet_demo.inference.registry import open_model
        >>> calibration_images(open_model("bundled:nuclei"), 4).shape
        (4, 128, 128, 1)
    """
    return model_ready_split(handle, "train", limit)[0]
