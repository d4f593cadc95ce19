"""`python -m unet_demo train` and `evaluate` through unet_demo.cli.main."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from unet_demo.cli import main  # noqa: E402

TINY = ["--dataset", "synthetic_lesions", "--epochs", "1", "--max-train-images", "8",
        "--image-size", "32", "--depth", "2", "--base-filters", "4", "--batch-size", "4"]


def test_train_then_evaluate_run_and_folders(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "finished" and result["metrics"]["epochs_run"] == 1
    assert (out / "model.keras").is_file()

    assert main(["evaluate", "--run", str(out), "--split", "test", "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert len(scored["rows"]) == 30 and 0.0 <= scored["mean"]["dice"] <= 1.0

    from PIL import Image

    from unet_demo.data.bundled import load_split

    split = load_split("synthetic_lesions", "test")
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for index in range(3):
        pixels = (np.asarray(split.images[index, ..., 0]) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / "images" / f"case{index}.png")
        Image.fromarray(split.masks[index] * 255).save(tmp_path / "masks" / f"case{index}.png")
    assert main(["evaluate", "--model", str(out), "--images", str(tmp_path / "images"),
                 "--masks", str(tmp_path / "masks")]) == 0
    text = capsys.readouterr().out
    assert "case0.png" in text and "mean" in text


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["evaluate"]) == 2
    assert "Give --run DIR" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "x")]) == 2
    assert "--dataset" in capsys.readouterr().err
    assert main(["train", "--dataset", "no_such_data", "--out", str(tmp_path / "y")]) == 2
    assert "No presets" in capsys.readouterr().err
