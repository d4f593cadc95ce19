"""`python -m unet_demo export` and `train --from-bundle` through unet_demo.cli.main."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnxruntime")
pytest.importorskip("ai_edge_litert")

from tests.tiny_model import BUNDLED_DIR_ENV, TINY_DATASET, shared_tiny_models_dir  # noqa: E402
from tests.unit.export_helpers import shared_tiny_run  # noqa: E402
from unet_demo.cli import main  # noqa: E402

MODEL = f"bundled:{TINY_DATASET}"


@pytest.fixture(autouse=True)
def tiny_models(monkeypatch):
    monkeypatch.setenv(BUNDLED_DIR_ENV, str(shared_tiny_models_dir()))


@pytest.fixture(scope="module")
def tiny_run():
    return shared_tiny_run()


def test_export_onnx_is_written_and_checked(tmp_path, capsys):
    out = tmp_path / "model.onnx"
    assert main(["export", "--model", MODEL, "--format", "onnx", "--out", str(out),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert out.is_file() and result["within_tolerance"] is True
    (report,) = result["reports"]
    assert report["format"] == "onnx" and report["max_abs_difference"] <= 1e-4
    assert report["size_bytes"] == out.stat().st_size  # the very file written was checked


def test_export_int8_from_a_run_prints_the_table(tiny_run, tmp_path, capsys):
    out = tmp_path / "deep" / "m.tflite"
    assert main(["export", "--run", str(tiny_run), "--format", "tflite-int8", "--out", str(out),
                 "--calibration-images", "4"]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and "| tflite-int8 |" in text and "not for diagnosis" in text


@pytest.mark.parametrize(("argv", "message"), [
    (["--model", MODEL, "--format", "h5", "--out", "m.h5"], "Unknown export format 'h5'"),
    (["--run", "no_such_run", "--format", "onnx", "--out", "m.onnx"], "No training run found"),
    (["--model", MODEL, "--format", "onnx"], "Give --out"),
    (["--format", "onnx", "--out", "m.onnx"], "Give --model"),
    (["--model", MODEL, "--format", "bundle", "--out", "b.zip"], "needs --run"),
    (["--model", "bundled:nope", "--format", "onnx", "--out", "m.onnx"], "No bundled model"),
    (["--model", MODEL, "--format", "tflite-int8", "--out", "m.tflite",
      "--calibration-images", "0"], "at least 1"),
])
def test_bad_input_gives_a_message_and_exit_code_2(argv, message, capsys, tmp_path,
                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["export", *argv]) == 2
    assert message in capsys.readouterr().err


def test_unwritable_out_and_malicious_model(tmp_path, capsys):
    import keras

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert main(["export", "--model", MODEL, "--format", "tflite",
                 "--out", str(blocker / "m.tflite")]) == 2
    assert "Cannot write the export" in capsys.readouterr().err
    inputs = keras.Input((8, 8, 1))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x + 1)(inputs)).save(tmp_path / "e.keras")
    assert main(["export", "--model", str(tmp_path / "e.keras"), "--format", "onnx",
                 "--out", str(tmp_path / "e.onnx")]) == 2
    assert "'Lambda' object" in capsys.readouterr().err
    assert not (tmp_path / "e.onnx").exists()


def test_bundle_then_train_from_bundle_reproduces(tiny_run, tmp_path, capsys):
    bundle = tmp_path / "run_bundle.zip"
    assert main(["export", "--run", str(tiny_run), "--format", "bundle",
                 "--out", str(bundle)]) == 0
    assert "--from-bundle" in capsys.readouterr().out
    assert main(["train", "--from-bundle", str(bundle), "--epochs", "3",
                 "--out", str(tmp_path / "x")]) == 2
    assert "cannot be combined with --epochs" in capsys.readouterr().err
    assert main(["train", "--from-bundle", str(tmp_path / "missing.zip"),
                 "--out", str(tmp_path / "y")]) == 2
    assert "Cannot read the bundle" in capsys.readouterr().err
    assert main(["train", "--from-bundle", str(bundle), "--out", str(tmp_path / "again"),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "finished"
    assert result["reproduction"]["identical"] is True, result["reproduction"]
