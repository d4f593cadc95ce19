"""`python -m unet_demo summary`: JSON and text reports, seed models, refused options."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from unet_demo.cli import main
from unet_demo.settings import REPO_ROOT


def _json(capsys, *args: str) -> dict:
    assert main(["summary", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_seed_model_json_has_the_documented_keys_and_count(capsys) -> None:
    data = _json(capsys, "--seed-model", "chapter8", "--batch-size", "4")
    assert data["params"] == 1_861_697
    assert data["trainable_params"] == 1_861_697 and data["non_trainable_params"] == 0
    assert data["variant"] == "classic"
    assert data["flops"] > 12e9  # 12.6 GFLOPs of convolutions alone
    assert data["memory"]["batch_size"] == 4
    assert data["memory"]["training_activation_bytes"] > data["memory"]["inference_activation_bytes"]
    assert data["receptive_field"] == 44
    assert data["config"]["normalization"] == "none"
    assert [level["filters"] for level in data["levels"]] == [64, 128, 256]


def test_options_override_defaults(capsys) -> None:
    data = _json(capsys, "--variant", "attention", "--depth", "2", "--base-filters", "4",
                 "--input-size", "32", "--classes", "3", "--norm", "group", "--dropout", "0.2",
                 "--upsampling", "upsample_conv", "--activation", "elu",
                 "--initializer", "glorot_normal", "--l2", "0.0001")
    config = data["config"]
    assert (config["variant"], config["depth"], config["base_filters"]) == ("attention", 2, 4)
    assert config["input_height"] == config["input_width"] == 32
    assert (config["num_classes"], config["normalization"]) == (3, "group")
    assert (config["upsampling"], config["activation"]) == ("upsample_conv", "elu")
    assert data["output_shape"] == [32, 32, 3]


def test_text_report_and_export_code(capsys) -> None:
    assert main(["summary", "--depth", "1", "--base-filters", "4", "--input-size", "16"]) == 0
    text = capsys.readouterr().out
    assert "parameters" in text and "receptive field" in text and "bottleneck" in text
    assert main(["summary", "--depth", "1", "--base-filters", "4", "--input-size", "16",
                 "--export-code"]) == 0
    code = capsys.readouterr().out
    assert "def build_model():" in code and "import keras" in code


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input-size", "100", "--depth", "3"], "nearest valid: 96 or 104"),
        (["--norm", "weird"], "normalization must be one of"),
        (["--variant", "pretrained", "--depth", "3"], "Set depth=5"),
        (["--seed-model", "chapter9"], "Unknown seed model"),
        (["--depth", "9"], "depth must be between 1 and 5"),
    ],
)
def test_bad_options_exit_non_zero_with_a_message(capsys, args, message) -> None:
    assert main(["summary", *args]) == 2
    assert message in capsys.readouterr().err


def test_subprocess_error_path_needs_no_tensorflow() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "unet_demo", "summary", "--input-size", "30", "--depth", "2"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: input_height must be a multiple of 2**depth = 4")
    assert "28 or 32" in result.stderr
