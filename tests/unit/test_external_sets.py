"""The external test sets (benchmarks/external/): they load, carry labels and licences, share no
image with sample_data, are out of the training loaders' reach, and the model cards quote them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from unet_demo.data.bundled import list_datasets, load_split, sample_data_dir
from unet_demo.errors import UNetDemoError
from unet_demo.evaluation.external import (
    external_dir,
    external_sets_for,
    list_external_sets,
    load_external_set,
    merge_foreground,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_DIR = REPO_ROOT / "models" / "bundled"
SETS = list_external_sets()
FILE_DATASETS = ("brain_skullstrip", "brain_tissue", "nuclei")  # the file-backed sample_data


def _sample_images() -> np.ndarray:
    return np.concatenate([load_split(name, split).images[..., 0]
                           for name in FILE_DATASETS for split in ("train", "val", "test")])


def test_the_three_sets_exist_and_name_the_models_they_score():
    assert SETS == ["mni152_fsl_brain", "mni152_fsl_head", "stardist_nuclei3d"]
    assert external_sets_for("brain_skullstrip") == ["mni152_fsl_head"]
    assert external_sets_for("brain_tissue") == ["mni152_fsl_brain"]
    assert external_sets_for("nuclei") == ["stardist_nuclei3d"]
    assert external_sets_for("synthetic_lesions") == []


@pytest.mark.parametrize("name", SETS)
def test_set_loads_with_binary_labels_and_its_files_match_the_card(name):
    data = load_external_set(name)
    assert data.images.shape[1:] == (128, 128, 1) and data.images.dtype == np.float32
    assert data.images.min() >= 0.0 and data.images.max() <= 1.0
    assert data.masks.shape == data.images.shape[:3] and len(set(data.ids)) == len(data.ids)
    assert set(np.unique(data.masks)) == {0, 1}
    assert (data.masks.reshape(len(data.masks), -1).max(axis=1) == 1).all()  # every image labelled
    assert data.card["num_images"] == len(data.ids) >= 16
    for file, entry in data.card["files"].items():
        payload = (external_dir() / name / file).read_bytes()
        assert hashlib.sha256(payload).hexdigest() == entry["sha256"]
    assert "never used for training" in data.card["use"]
    for source in data.card["sources"]:
        assert source["licence"] and source["notice"] and source["citation"]
    licence = (external_dir() / name / "LICENSE.txt").read_text(encoding="utf-8")
    assert all(source["sha256"] in licence for source in data.card["sources"])


def test_sets_share_no_image_with_sample_data():
    sample = _sample_images()
    sample_hashes = {hashlib.sha256(np.ascontiguousarray(im).tobytes()).hexdigest()
                     for im in sample}
    small = sample.reshape(len(sample), 32, 4, 32, 4).mean(axis=(2, 4)).reshape(len(sample), -1)
    for name in SETS:
        images = load_external_set(name).images[..., 0]
        hashes = {hashlib.sha256(np.ascontiguousarray(im).tobytes()).hexdigest() for im in images}
        assert not hashes & sample_hashes, name
        # Nearest sample_data image (4x4-pooled mean absolute difference) relative to the
        # external image's own mean: near-copies (a resampled or re-scaled slice) would be ~0.
        pooled = images.reshape(len(images), 32, 4, 32, 4).mean(axis=(2, 4)).reshape(len(images), -1)
        nearest = np.abs(pooled[:, None, :] - small[None]).mean(axis=-1).min(axis=1)
        assert (nearest / images.reshape(len(images), -1).mean(axis=1) > 0.1).all(), name


def test_training_data_cannot_reach_the_external_sets():
    assert not set(SETS) & {info.name for info in list_datasets()}
    root = external_dir().resolve()
    assert sample_data_dir().resolve() not in (root, *root.parents)
    assert not any(p.name in SETS for p in sample_data_dir().iterdir())


def test_merge_foreground_and_unknown_set_error():
    assert merge_foreground(np.array([[0, 3], [2, 1]])).tolist() == [[0, 1], [1, 1]]
    with pytest.raises(UNetDemoError, match="card.json is missing"):
        load_external_set("no_such_set")


@pytest.mark.parametrize("dataset", ["brain_skullstrip", "brain_tissue", "nuclei"])
def test_model_card_carries_the_external_figure(dataset):
    card = json.loads((BUNDLED_DIR / dataset / "card.json").read_text(encoding="utf-8"))
    rows = card["external_metrics"]
    assert [row["set"] for row in rows] == external_sets_for(dataset)
    for row in rows:
        assert 0.0 < row["dice"] <= 1.0
        assert row["num_images"] == load_external_set(row["set"]).card["num_images"]
    readme = (BUNDLED_DIR / dataset / "README.md").read_text(encoding="utf-8")
    assert f"External set `{rows[0]['set']}`" in readme and f"{rows[0]['dice']:.3f}" in readme


def test_a_model_without_an_external_set_says_so_on_its_card():
    readme = (BUNDLED_DIR / "synthetic_lesions" / "README.md").read_text(encoding="utf-8")
    assert "none available offline" in readme


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["brain_skullstrip", "brain_tissue", "nuclei"])
def test_rescoring_the_bundled_model_gives_the_card_external_figure(dataset, monkeypatch):
    pytest.importorskip("tensorflow")
    from unet_demo.evaluation.external import score_external
    from unet_demo.inference.registry import open_model

    monkeypatch.setenv("UNET_DEMO_BUNDLED_MODELS_DIR", str(BUNDLED_DIR))
    card = json.loads((BUNDLED_DIR / dataset / "card.json").read_text(encoding="utf-8"))
    handle = open_model(f"bundled:{dataset}")
    for row in card["external_metrics"]:
        score = score_external(handle, row["set"])
        assert round(score["dice"], 3) == round(row["dice"], 3)
