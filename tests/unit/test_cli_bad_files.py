"""Every generated bad file through ``python -m unet_demo predict``: a clear ``error:`` line and
a non-zero exit, never a traceback; a good file still segments afterwards."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.bad_files import bad_file_names, generate_bad_files
from unet_demo.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    from tests.tiny_model import TINY_DATASET, shared_tiny_models_dir

    return shared_tiny_models_dir() / TINY_DATASET  # trained once per test process


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    return {path.name: path for path, _ in generate_bad_files(folder)}


@pytest.fixture(scope="module")
def good_png(tmp_path_factory) -> Path:
    from PIL import Image

    from tests.tiny_model import TINY_DATASET
    from unet_demo.data.bundled import load_split

    image = load_split(TINY_DATASET, "test").images[0, ..., 0]
    path = tmp_path_factory.mktemp("good") / "good_case.png"
    buffer = io.BytesIO()
    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path


@pytest.mark.parametrize("name", bad_file_names())
def test_bad_file_gives_error_line_and_nonzero_exit(name, corpus, model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["predict", "--model", str(model_dir), "--input", str(corpus[name]),
                 "--out", str(out)])
    captured = capsys.readouterr()
    assert code != 0
    assert captured.err.startswith("error: "), captured.err
    assert name in captured.err and len(captured.err) > 40
    assert "Traceback" not in captured.err + captured.out
    assert not list(out.glob("*_mask*")), "no mask may be written for a refused file"


def test_good_file_still_segments_after_the_bad_ones(corpus, model_dir, good_png, tmp_path,
                                                     capsys):
    from PIL import Image

    out = tmp_path / "out"
    for path in list(corpus.values())[:5]:  # the same process just refused bad files
        assert main(["predict", "--model", str(model_dir), "--input", str(path),
                     "--out", str(out)]) != 0
    capsys.readouterr()
    assert main(["predict", "--model", str(model_dir), "--input", str(good_png),
                 "--out", str(out)]) == 0
    mask = np.asarray(Image.open(out / "good_case_mask.png"))
    assert mask.shape == Image.open(good_png).size[::-1]
    assert set(np.unique(mask)) <= {0, 255}


def test_subprocess_mixed_batch_reports_each_bad_file_and_writes_the_good_one(
        corpus, model_dir, good_png, tmp_path):
    out = tmp_path / "out"
    inputs = [str(path) for path in corpus.values()] + [str(good_png)]
    completed = subprocess.run(
        [sys.executable, "-m", "unet_demo", "predict", "--model", str(model_dir),
         "--input", *inputs, "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, check=False,
    )
    assert completed.returncode == 2, completed.stderr[-3000:]
    assert "Traceback" not in completed.stderr + completed.stdout
    error_lines = [line for line in completed.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == len(corpus) >= 30
    for name in corpus:
        assert any(name in line for line in error_lines), name
    assert (out / "good_case_mask.png").is_file()
    assert f"1 of {len(corpus) + 1} file(s) segmented" in completed.stdout
