"""``train --folds 3`` on a tiny config: three runs, disjoint validation groups, an ensemble."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tensorflow")

from unet_demo.cli import main  # noqa: E402

TINY = ["--dataset", "brain_skullstrip", "--epochs", "1", "--max-train-images", "4",
        "--image-size", "32", "--depth", "2", "--base-filters", "4", "--batch-size", "2"]


@pytest.mark.slow
def test_three_folds_give_three_runs_with_disjoint_validation_groups_and_an_ensemble(
        tmp_path, capsys, monkeypatch):
    from unet_demo.data.folds import image_groups
    from unet_demo.data.sources import load_split_arrays, prepare_split
    from unet_demo.evaluation.crossval import fold_table, load_crossval
    from unet_demo.training.runner import load_spec

    monkeypatch.setenv("UNET_DEMO_XLA", "0")  # no compile per fold: the folds are what is tested
    out = tmp_path / "cv"
    assert main(["train", *TINY, "--folds", "3", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["folds"] == 3 and len(summary["runs"]) == 3
    val_groups = []
    for fold, row in enumerate(summary["runs"]):
        run_dir = out / f"fold_{fold + 1}"
        assert (run_dir / "model.keras").is_file()
        data = load_spec(run_dir).data
        assert (data.folds, data.fold) == (3, fold)
        val_ids = prepare_split(data, "val")[2]
        train_ids = prepare_split(data, "train")[2]
        assert len(val_ids) == row["val_images"] and not set(val_ids) & set(train_ids)
        val_groups.append(set(image_groups(val_ids)))
        assert 0.0 <= row["val_dice"] <= 1.0
    assert not (val_groups[0] & val_groups[1] or val_groups[0] & val_groups[2]
                or val_groups[1] & val_groups[2])
    pool = load_split_arrays("brain_skullstrip", "train")[2] + load_split_arrays(
        "brain_skullstrip", "val")[2]
    assert sum(row["val_images"] for row in summary["runs"]) == len(pool)
    ensemble = summary["ensemble"]
    best = max(row["test_dice"] for row in summary["runs"])
    assert ensemble["best_fold_test_dice"] == pytest.approx(best)
    assert ensemble["gain_over_best_fold"] == pytest.approx(ensemble["test_dice"] - best)
    # The CV folder reloads for the Evaluate page; a second run of the command resumes
    # (every fold is finished, so it only scores again).
    loaded = load_crossval(out)
    assert [row["fold"] for row in fold_table(loaded)][-2:] == ["mean ± sd", "ensemble"]
    assert main(["train", *TINY, "--folds", "3", "--out", str(out)]) == 0
    assert "3-fold cross-validation on brain_skullstrip" in capsys.readouterr().out


def test_folds_refuse_no_wait_and_too_many_folds(capsys):
    assert main(["train", *TINY, "--folds", "3", "--no-wait"]) == 2
    assert "drop --no-wait" in capsys.readouterr().err
    assert main(["train", *TINY, "--folds", "21", "--out", "/tmp/unused"]) == 2
    assert "2 to 20 folds" in capsys.readouterr().err


@pytest.mark.slow
def test_intensity_clahe_trains_and_prediction_repeats_it(tmp_path, capsys, monkeypatch):
    import numpy as np

    from unet_demo.config import DataConfig
    from unet_demo.data.sources import prepare_split
    from unet_demo.evaluation.evaluate import predict_split
    from unet_demo.inference.registry import open_model

    monkeypatch.setenv("UNET_DEMO_XLA", "0")
    out = tmp_path / "clahe"
    tiny = [*TINY[2:], "--dataset", "synthetic_lesions"]
    assert main(["train", *tiny, "--intensity", "clahe", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "finished"
    handle = open_model(out)
    assert handle.normalization == "clahe"
    # Prediction prepares the test images exactly as training prepared them (CLAHE, 32 px).
    trained, _, _ = prepare_split(DataConfig(dataset="synthetic_lesions", image_size=32,
                                             normalization="clahe"), "test")
    predicted = predict_split(handle, "synthetic_lesions", "test", limit=4)
    np.testing.assert_allclose(predicted.images, trained[:4], atol=1e-6)
    plain, _, _ = prepare_split(DataConfig(dataset="synthetic_lesions", image_size=32), "test")
    assert np.abs(plain[:4] - trained[:4]).max() > 0.05  # CLAHE really changed the input
