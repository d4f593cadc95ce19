"""``python -m unet_demo inspect``: PNG grids per tensor and the --json summary with ablation Dice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.bad_files import png_bytes
from unet_demo.cli import main


@pytest.fixture
def slice_png(tmp_path) -> Path:
    from unet_demo.data.sources import load_split_arrays

    image = load_split_arrays("brain_skullstrip", "test")[0][3, ..., 0]
    scaled = (image - image.min()) / (image.max() - image.min())
    path = tmp_path / "slice.png"
    path.write_bytes(png_bytes(np.round(scaled * 255).astype(np.uint8)))
    return path


def test_inspect_json_lists_layers_and_skip_ablation_dice(slice_png, tmp_path, capsys):
    out = tmp_path / "inside"
    code = main(["inspect", "--model", "bundled:brain_skullstrip", "--input", str(slice_png),
                 "--out", str(out), "--json", "--channels", "4", "--limit", "6"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["depth"] == 3 and summary["attention"] is False
    layers = {(layer["role"], layer["level"]): layer for layer in summary["layers"]}
    assert layers[("bottleneck", 3)]["shape"] == [16, 16, 128]
    assert layers[("encoder", 0)]["name"] == "enc0_act2"
    assert layers[("output", 0)]["receptive_field"] > layers[("encoder", 2)]["receptive_field"]
    for layer in summary["layers"]:
        assert (out / layer["png"]).is_file()
        assert len(layer["channels_shown"]) == min(4, layer["shape"][-1])
    assert (out / "input.png").is_file()
    ablation = summary["skip_ablation"]
    assert (ablation["dataset"], ablation["split"], ablation["mode"]) == (
        "brain_skullstrip", "test", "zeros")
    dice = {row["ablated"]: row["dice"] for row in ablation["rows"]}
    assert list(dice) == ["none", "level 0", "level 1", "level 2", "all"]
    assert dice["all"] < dice["none"]


def test_inspect_text_output_and_bad_input(slice_png, tmp_path, capsys):
    code = main(["inspect", "--model", "bundled:brain_skullstrip", "--input", str(slice_png),
                 "--out", str(tmp_path / "o"), "--split", "none"])
    text = capsys.readouterr().out
    assert code == 0 and "bottleneck" in text and "not for diagnosis" in text
    assert "Skip ablation not run" in text
    assert main(["inspect", "--run", str(tmp_path / "no_run"), "--input", str(slice_png),
                 "--out", str(tmp_path / "o")]) == 2
    assert "No model found" in capsys.readouterr().err
