"""Bundled-model registry and `open_model`: listing, safe loading, clear errors, one shared copy."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tiny_model import BUNDLED_DIR_ENV, TINY_DATASET, shared_tiny_models_dir
from unet_demo.errors import UNetDemoError
from unet_demo.inference.registry import (
    bundled_model_path,
    list_bundled_models,
    open_model,
)
from unet_demo.training.rundir import list_model_choices


@pytest.fixture
def tiny_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(BUNDLED_DIR_ENV, str(shared_tiny_models_dir()))
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(tmp_path / "no_runs"))
    return shared_tiny_models_dir()


def test_listing_and_choices_use_the_configured_folder(tiny_dir):
    infos = list_bundled_models()
    assert [info.name for info in infos] == [TINY_DATASET]
    assert infos[0].dataset == TINY_DATASET and infos[0].size_bytes > 1000
    assert list_model_choices() == [(f"Bundled: {infos[0].title}", f"bundled:{TINY_DATASET}")]


def test_open_model_is_shared_and_predicts(tiny_dir):
    handle = open_model(f"bundled:{TINY_DATASET}")
    assert open_model(f"bundled:{TINY_DATASET}") is handle  # one copy per process
    assert open_model(tiny_dir / TINY_DATASET) is handle  # same file by path: same copy
    assert handle.model_id.startswith(f"bundled:{TINY_DATASET}@")
    assert handle.input_shape == (128, 128, 1) and handle.num_classes == 1
    assert handle.fingerprint and handle.fingerprint["normalization"] == "minmax"
    probabilities = handle.predict(np.zeros((3, 128, 128, 1), np.float32))
    assert probabilities.shape == (3, 128, 128, 1)
    assert float(probabilities.min()) >= 0.0 and float(probabilities.max()) <= 1.0


def test_a_model_keeps_its_name_whoever_opened_it_first(monkeypatch, tmp_path):
    import shutil

    folder = tmp_path / "models"  # a copy: a file no other test in this process has opened
    shutil.copytree(shared_tiny_models_dir(), folder)
    by_path = open_model(folder / TINY_DATASET)  # not the bundled folder yet
    assert by_path.model_id.startswith(f"file:{folder.resolve()}")
    monkeypatch.setenv(BUNDLED_DIR_ENV, str(folder))
    handle = open_model(f"bundled:{TINY_DATASET}")
    assert handle.model_id.startswith(f"bundled:{TINY_DATASET}@")
    assert handle.model_id.rsplit("@", 1)[1] == by_path.model_id.rsplit("@", 1)[1]
    assert handle.shared is by_path.shared  # the file was loaded once
    assert open_model(folder / TINY_DATASET) is handle  # its own path, now a bundled model
    assert open_model(f"bundled:{TINY_DATASET}") is handle


@pytest.mark.parametrize("name", ["no_such_model", "../synthetic_lesions", ".hidden"])
def test_unknown_or_unsafe_bundled_names_are_refused(tiny_dir, name):
    with pytest.raises(UNetDemoError, match="No bundled model named"):
        bundled_model_path(name)


def test_non_keras_files_are_refused(tiny_dir, tmp_path):
    legacy = tmp_path / "model.h5"
    legacy.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    with pytest.raises(UNetDemoError, match="keras"):
        open_model(legacy)
    with pytest.raises(UNetDemoError, match="No model found"):
        open_model(tmp_path / "missing")
