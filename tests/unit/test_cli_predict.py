"""``python -m unet_demo predict``: masks for PNG and NIfTI input, JSON summary, partial failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.bad_files import png_bytes
from tests.tiny_model import BUNDLED_DIR_ENV, TINY_DATASET, shared_tiny_models_dir
from unet_demo.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bundled(monkeypatch) -> str:
    monkeypatch.setenv(BUNDLED_DIR_ENV, str(shared_tiny_models_dir()))
    return f"bundled:{TINY_DATASET}"


@pytest.fixture
def test_png(tmp_path) -> Path:
    from unet_demo.data.bundled import load_split

    image = load_split(TINY_DATASET, "test").images[0, ..., 0]
    path = tmp_path / "case one.png"
    path.write_bytes(png_bytes(np.round(image * 255).astype(np.uint8)[:100, :90]))
    return path


@pytest.fixture
def nifti_file(tmp_path) -> Path:
    import nibabel as nib

    volume = np.zeros((40, 36, 5), np.int16)
    volume[10:30, 8:20, :] = 800
    affine = np.diag([-0.8, 0.8, 2.5, 1.0])  # LAS, anisotropic voxels
    path = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), path)
    return path


def test_png_gives_binary_mask_of_input_size_and_json(bundled, test_png, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["predict", "--model", bundled, "--input", str(test_png), "--out", str(out),
                 "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["failed"] == 0 and report["model"].startswith(bundled + "@")
    entry = report["files"][0]
    mask_path = out / "case one_mask.png"
    assert entry["ok"] and entry["output"] == str(mask_path)
    mask = np.asarray(Image.open(mask_path))
    assert mask.shape == (100, 90)
    assert set(np.unique(mask)) <= {0, 255}
    assert entry["foreground_pixels"]["1"] == int((mask == 255).sum())


def test_threshold_changes_mask_monotonically(bundled, test_png, tmp_path):
    sizes = []
    for threshold in ("0.05", "0.95"):
        out = tmp_path / threshold
        assert main(["predict", "--model", bundled, "--input", str(test_png), "--out", str(out),
                     "--threshold", threshold, "--tta", "--postprocess", "fill_holes"]) == 0
        sizes.append(int((np.asarray(Image.open(out / "case one_mask.png")) > 0).sum()))
    assert sizes[0] >= sizes[1]
    # Far-apart cuts must differ: an ignored --threshold would give two equal masks.
    assert sizes[0] > sizes[1], sizes


def test_nifti_input_gives_nifti_mask_on_same_grid(bundled, nifti_file, tmp_path, capsys):
    import nibabel as nib

    out = tmp_path / "out"
    assert main(["predict", "--model", bundled, "--input", str(nifti_file), "--out", str(out),
                 "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)["files"][0]
    mask = nib.load(out / "vol_mask.nii.gz")
    source = nib.load(nifti_file)
    assert mask.shape == source.shape
    assert np.allclose(mask.affine, source.affine)
    assert entry["volume_mm3"] is not None
    voxels = int(np.asarray(mask.dataobj).astype(bool).sum())
    assert entry["volume_mm3"]["1"] == pytest.approx(voxels * 0.8 * 0.8 * 2.5)


def test_bad_file_is_reported_and_others_still_processed(bundled, test_png, tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is plain text, not an image")
    out = tmp_path / "out"
    code = main(["predict", "--model", bundled, "--input", str(bad), str(test_png),
                 "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith("error: ") and "notes.png" in captured.err
    assert "1 of 2 file(s) segmented" in captured.out
    assert (out / "case one_mask.png").is_file() and not (out / "notes_mask.png").exists()


@pytest.mark.parametrize(("model", "message"), [
    ("bundled:no_such_model", "No bundled model named"),
    ("/nonexistent/model.keras", "No model found"),
])
def test_unknown_model_is_a_clear_error(bundled, test_png, tmp_path, capsys, model, message):
    code = main(["predict", "--model", model, "--input", str(test_png), "--out",
                 str(tmp_path / "o")])
    assert code == 2
    assert message in capsys.readouterr().err


def test_subprocess_run(bundled, test_png, tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    completed = subprocess.run(
        [sys.executable, "-m", "unet_demo", "predict", "--model", bundled, "--input",
         str(test_png), "--out", str(out)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "1 of 1 file(s) segmented" in completed.stdout
    assert "not for diagnosis" in completed.stdout
    assert (out / "case one_mask.png").is_file()
