"""Deployment formats and the reproducibility bundle, on a tiny real model and a tiny real run.

One tiny U-Net (trained for a few seconds by tests/tiny_model.py) is converted to every format
once per module; each format must load in its own runtime and predict within its tolerance of
Keras. A tiny training run is bundled and trained again from the bundle: the history and the
weights must come out bit for bit the same on the CPU.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert")

from tests.tiny_model import BUNDLED_DIR_ENV, TINY_DATASET, shared_tiny_models_dir  # noqa: E402
from tests.unit.export_helpers import shared_tiny_run  # noqa: E402
from unet_demo.errors import UNetDemoError  # noqa: E402
from unet_demo.inference import deploy  # noqa: E402


@pytest.fixture(scope="module")
def tiny_handle():
    from unet_demo.inference.registry import open_model

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(BUNDLED_DIR_ENV, str(shared_tiny_models_dir()))
        yield open_model(f"bundled:{TINY_DATASET}")


@pytest.fixture(scope="module")
def comparison(tiny_handle, tmp_path_factory):
    from unet_demo.evaluation.deployment import compare_formats

    return compare_formats(tiny_handle, folder=tmp_path_factory.mktemp("exports"),
                           calibration_limit=16, test_limit=12, repeats=2)


def test_every_format_is_within_its_tolerance(comparison):
    reports = {r.format: r for r in comparison.reports}
    assert list(reports) == list(deploy.FORMAT_NAMES)
    assert reports["keras"].max_abs_difference == 0.0
    for name in ("savedmodel", "tflite", "onnx"):
        assert reports[name].max_abs_difference <= 1e-4, name
    assert abs(reports["tflite-fp16"].dice_change) <= 0.01
    assert abs(reports["tflite-int8"].dice_change) <= 0.03
    assert all(r.passed for r in comparison.reports), [r.to_dict() for r in comparison.reports]
    # quantised files really are smaller, and every latency was measured
    assert reports["tflite-int8"].size_bytes < reports["tflite-fp16"].size_bytes \
        < reports["tflite"].size_bytes
    assert all(r.latency_ms > 0 and r.size_bytes > 0 for r in comparison.reports)
    assert comparison.test_images == 12 and 0.0 <= comparison.keras_test_dice <= 1.0
    assert 0.0 <= comparison.keras_batch_difference < 1e-2  # Keras' own float32 wobble


def test_int8_is_quantised_and_differs_from_float(comparison, tiny_handle):
    from ai_edge_litert.interpreter import Interpreter

    content = comparison.files["tflite-int8"].read_bytes()
    kinds = {d["dtype"] for d in Interpreter(model_content=content).get_tensor_details()}
    assert np.int8 in kinds
    images = deploy.model_ready_split(tiny_handle, "test", 4)[0]
    int8 = deploy.predict_in_batches(deploy.load_predictor(comparison.files["tflite-int8"],
                                                           "tflite-int8"), images)
    assert deploy.max_abs_difference(int8, tiny_handle.predict(images)) > 1e-4


def test_savedmodel_folder_and_zip_load_alike(comparison, tiny_handle):
    zipped = comparison.files["savedmodel"]
    folder = zipped.parent / "savedmodel"  # the folder the ZIP was made from
    assert zipfile.is_zipfile(zipped) and (folder / "saved_model.pb").is_file()
    images = deploy.model_ready_split(tiny_handle, "test", 2)[0]
    a = deploy.load_predictor(folder, "savedmodel")(images)
    b = deploy.load_predictor(zipped, "savedmodel")(images)
    np.testing.assert_array_equal(a, b)


def test_bad_inputs_are_clear(tmp_path):
    with pytest.raises(UNetDemoError, match="Unknown export format 'h5'"):
        deploy.get_format("h5")
    with pytest.raises(UNetDemoError, match="calibration images"):
        deploy._tflite_bytes(tmp_path, "tflite-int8", None)
    blocked = tmp_path / "file"
    blocked.write_text("x")
    with pytest.raises(UNetDemoError, match="Cannot write the export"):
        deploy.check_writable(blocked / "inside" / "m.onnx")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UNetDemoError, match="already exists and is not an empty folder"):
        deploy.write_export(None, "savedmodel", tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(UNetDemoError, match="is a folder; give a file name"):
        deploy.write_export(None, "onnx", tmp_path / "mine")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    with pytest.raises(UNetDemoError, match="not a valid ONNX model"):
        deploy.load_predictor(broken, "onnx")


def test_malicious_keras_file_is_refused(tmp_path):
    import keras

    inputs = keras.Input((8, 8, 1))
    evil = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    evil.save(tmp_path / "evil.keras")
    with pytest.raises(UNetDemoError, match="Lambda"):
        deploy.load_predictor(tmp_path / "evil.keras", "keras")


# --------------------------------------------------------------------------- bundle

@pytest.fixture(scope="module")
def tiny_run():
    return shared_tiny_run()


def test_bundle_reproduces_a_tiny_run_exactly(tiny_run, tmp_path):
    from unet_demo.training import bundle
    from unet_demo.training.runner import run_training

    data = bundle.build_bundle(tiny_run)
    repro = bundle.read_bundle(data)
    assert repro.spec.train.seed == 7 and repro.manifest["seed"] == 7
    assert repro.split["splits"]["train"]["count"] == 8
    bundle.check_split(repro)
    again = run_training(repro.spec, tmp_path / "again")
    report = bundle.compare_runs(repro, again)
    assert report["identical"], report
    assert report["max_weight_difference"] == 0.0 and report["epochs"] == [1, 1]
    assert report["test_dice"][0] == report["test_dice"][1]


def test_bundle_is_checked(tiny_run):
    from unet_demo.training import bundle

    data = bundle.build_bundle(tiny_run)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert set(names) == bundle.MEMBERS
    # the bundled model loads through the safe loader and equals the run's model
    from unet_demo.training.rundir import load_model

    kept = bundle.bundle_model(bundle.read_bundle(data)).get_weights()
    for a, b in zip(kept, load_model(tiny_run).get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    def rewrite(change):
        source = zipfile.ZipFile(io.BytesIO(data))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as target:
            for name in source.namelist():
                target.writestr(name, change(name, source.read(name)))
        return out.getvalue()

    tampered = rewrite(lambda name, raw: raw.replace(b'"seed": 7', b'"seed": 8')
                       if name == "config.json" else raw)
    with pytest.raises(UNetDemoError, match="does not match its SHA-256"):
        bundle.read_bundle(tampered)
    old_manifest = rewrite(lambda name, raw: json.dumps({"kind": "other"}).encode()
                           if name == "manifest.json" else raw)
    with pytest.raises(UNetDemoError, match="not a version-1 unet-demo bundle"):
        bundle.read_bundle(old_manifest)
    other_data = bundle.read_bundle(data)
    other_data.split["splits"]["train"]["sha256"] = "0" * 64
    with pytest.raises(UNetDemoError, match="cannot be reproduced exactly"):
        bundle.check_split(other_data)
