"""Export page: download a model for other runtimes, and see what each format costs.

Pick a bundled model or a finished run; "Convert and measure" writes every format of
`unet_demo.inference.deploy` (Keras, SavedModel, LiteRT float32/float16/int8, ONNX), loads each
back in its own runtime and compares it with Keras on the model's test split
(`unet_demo.evaluation.deployment.compare_formats`). The table shows size, one-image CPU latency,
the largest probability difference and the test Dice change; each format gets a download
button. A finished run also offers its reproducibility bundle (`unet_demo.training.bundle`).

Conversions are cached with ``st.cache_data`` keyed by (model spec, model id) strings.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from unet_demo.errors import UNetDemoError
from unet_demo.ui.evaluate_ui import pick_model

STATE_PREFIX = "export."
MODEL_KEY = STATE_PREFIX + "model"
MEASURE_KEY = STATE_PREFIX + "measure"
MEASURED_KEY = STATE_PREFIX + "measured"
"""Session-state key (no widget): model ids measured in this session (their table is shown)."""
MIME = {".keras": "application/zip", ".zip": "application/zip",
        ".tflite": "application/octet-stream", ".onnx": "application/octet-stream"}
FORMAT_NOTES = (
    "**keras** is the file the app itself loads. **savedmodel** is a zipped TensorFlow "
    "SavedModel folder (TF Serving, TensorFlow.js converter). **tflite** (LiteRT) runs on "
    "phones and small boards; **fp16** halves the file by storing weights as float16, **int8** "
    "quarters it by storing weights and activations as 8-bit integers, with ranges chosen on "
    "training images (calibration). **onnx** runs in ONNX Runtime, in C#, C++, Java or a browser."
)


@st.cache_data(show_spinner=False, max_entries=4)
def measured_exports(model_spec: str, model_id: str) -> dict[str, Any]:
    """Every format of a model, converted, checked and read into memory (cached).

    Args:
        model_spec: "bundled:NAME" or a run folder (what `open_model` accepts).
        model_id: the handle's id (file digest inside): part of the cache key only.

    Returns:
        {"comparison": `Comparison.to_dict()`, "rows": `table_rows`, "files": {format:
        (download name, bytes)}}.
    """
    import shutil
    import tempfile

    from unet_demo.evaluation.deployment import compare_formats, table_rows
    from unet_demo.inference.deploy import export_file_name
    from unet_demo.inference.registry import open_model

    del model_id  # only keys the cache
    handle = open_model(model_spec)
    stem = download_stem(model_spec)
    folder = tempfile.mkdtemp(prefix="unet_demo_export_page_")
    try:
        comparison = compare_formats(handle, folder=folder)
        files = {name: (export_file_name(stem, name), path.read_bytes())
                 for name, path in comparison.files.items()}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"comparison": comparison.to_dict(), "rows": table_rows(comparison.reports),
            "files": files}


@st.cache_data(show_spinner=False, max_entries=4)
def run_bundle(run_dir: str, model_id: str) -> bytes:
    """The reproducibility bundle of a finished run (cached per run and model file).

    Args:
        run_dir: the run folder.
        model_id: the handle's id: part of the cache key only.
    """
    from unet_demo.training.bundle import build_bundle

    del model_id
    return build_bundle(run_dir)


def download_stem(model_spec: str) -> str:
    """A short file-name stem for a model: the bundled name or the run folder's name.

    Example:
        >>> download_stem("bundled:nuclei"), download_stem("/srv/runs/20261201-abc")
        ('nuclei', '20261201-abc')
    """
    from pathlib import Path

    if model_spec.startswith("bundled:"):
        return model_spec.removeprefix("bundled:")
    return Path(model_spec).name or "model"


def export_page() -> None:
    """Draw the whole Export page (called by pages/10_Export.py)."""
    from unet_demo.inference.registry import open_model

    spec = pick_model(MODEL_KEY, prefer="bundled")
    if spec is None:
        return
    try:
        handle = open_model(spec)
    except UNetDemoError as error:
        st.error(str(error))
        return
    height, width, channels = handle.input_shape
    st.caption(f"{handle.title} · input {height}×{width}×{channels} · trained on "
               f"{handle.dataset or 'an unknown dataset'}")
    if not spec.startswith("bundled:"):
        bundle_ui(spec, handle.model_id)
    st.markdown(FORMAT_NOTES)
    measured = st.session_state.setdefault(MEASURED_KEY, [])
    pressed = st.button("Convert and measure every format", key=MEASURE_KEY, type="primary",
                        help="Takes about half a minute: six conversions, each loaded back, run "
                             "on the test split and timed.")
    if pressed and handle.model_id not in measured:
        measured.append(handle.model_id)
    if handle.model_id not in measured:
        st.info("Press the button to convert the model; the table and the downloads appear "
                "here.")
        return
    try:
        with st.spinner("Converting to six formats, loading each back and timing it..."):
            result = measured_exports(spec, handle.model_id)
    except UNetDemoError as error:
        st.error(str(error))
        return
    results_ui(result)


def results_ui(result: dict[str, Any]) -> None:
    """The comparison table, its verdict and one download button per format.

    Args:
        result: from `measured_exports`.
    """
    comparison = result["comparison"]
    st.subheader("Formats compared with Keras")
    st.dataframe(result["rows"], hide_index=True)
    st.caption(
        f"On {comparison['test_images']} test image(s) of {comparison['dataset']} (Keras test "
        f"Dice {comparison['keras_test_dice']:.4f}). Latency: median of 20 runs on one image, "
        f"{comparison['cpu']}, a machine others may share, so take it as a rough guide. "
        "Float32 formats must stay within 1e-4 of Keras' probabilities; float16 within 0.01 "
        "and int8 within 0.03 test Dice. Keras against itself: its probabilities move by up to "
        f"{comparison['keras_batch_difference']:.2g} when only the batch size changes (8 to 1), "
        "so a float32 export cannot agree more closely than that.")
    reports = comparison["reports"]
    failed = [row["format"] for row in reports if not row["passed"]]
    # A float32 file off by no more than Keras' own batch-size wobble, with the same test Dice.
    wobble = [row["format"] for row in reports if not row["passed"]
              and row["max_abs_difference"] <= 2 * comparison["keras_batch_difference"]
              and abs(row["dice_change"]) < 1e-4]
    if failed and set(failed) == set(wobble):
        st.info(f"Outside the strict float32 bound of 1e-4: {', '.join(failed)}. Their test Dice "
                "is unchanged and they differ from Keras by no more than twice Keras' own "
                "batch-size difference, so they are usable; pick savedmodel for bit-equal "
                "probabilities.")
    elif failed:
        st.warning(f"Outside its tolerance: {', '.join(failed)}. Prefer another format.")
    else:
        st.success("Every format is within its tolerance of the Keras model.")
    columns = st.columns(3)
    for index, (name, (file_name, data)) in enumerate(result["files"].items()):
        suffix = "." + file_name.rsplit(".", 1)[-1]
        columns[index % 3].download_button(
            f"Download {name} ({len(data) / 1e6:.2f} MB)", data=data, file_name=file_name,
            mime=MIME.get(suffix, "application/octet-stream"),
            key=f"{STATE_PREFIX}download.{name}")


def bundle_ui(run_dir: str, model_id: str) -> None:
    """The reproducibility-bundle download of a finished run, with how to use it.

    Args:
        run_dir: the run folder.
        model_id: the opened model's id (cache key).
    """
    from pathlib import Path

    try:
        data = run_bundle(run_dir, model_id)
    except UNetDemoError as error:
        st.warning(str(error))
        return
    name = f"{Path(run_dir).name}_bundle.zip"
    st.download_button(f"Download the reproducibility bundle ({len(data) / 1e6:.2f} MB)",
                       data=data, file_name=name, mime="application/zip",
                       key=STATE_PREFIX + "bundle")
    st.caption("Model, settings, seed, split rule, history, metrics, environment and model card "
               f"in one ZIP. `python -m unet_demo train --from-bundle {name} --out "
               "runs/again` trains the run again and says whether it came out the same.")
