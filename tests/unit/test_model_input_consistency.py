"""One model-input step: a z-score model gets the same masks and Dice on every path.

A tiny U-Net is trained with ``normalization="zscore"`` through the real engine. Then the same
test split is scored by ``evaluate --run`` (the training preparation), ``evaluate --model``
(the model's recorded normalisation), ``predict`` on PNG files of the same images, and the
Evaluate page (AppTest): all four must agree. A min-max preparation of the same images gives
other probabilities, so the check fails if any path ignores the model's normalisation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unet_demo.config import DataConfig, TrainConfig, UNetConfig
from unet_demo.training.runner import run_training
from unet_demo.training.spec import RunSpec

DATASET = "brain_skullstrip"
PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "5_Evaluate.py")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def zscore_run(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    spec = RunSpec(
        data=DataConfig(dataset=DATASET, image_size=128, normalization="zscore",
                        max_train_images=16),
        model=UNetConfig(depth=2, base_filters=4, normalization="group"),
        train=TrainConfig(epochs=3, batch_size=4, learning_rate=3e-3, seed=3),
    )
    return run_training(spec, runs / "zscore-run")


def _evaluate(**overrides) -> dict:
    from unet_demo.commands.evaluate import evaluate_args

    args = argparse.Namespace(run=None, model=None, dataset=None, split="test", images=None,
                              masks=None, threshold=0.5, no_distances=True, json=True)
    for key, value in overrides.items():
        setattr(args, key, value)
    return evaluate_args(args)


def test_every_path_prepares_images_with_the_models_normalisation(zscore_run, tmp_path,
                                                                  monkeypatch):
    from unet_demo.commands.predict import predict_file
    from unet_demo.data.preprocess import prepare_batch
    from unet_demo.data.sources import load_split_arrays
    from unet_demo.evaluation.scores import score_pair
    from unet_demo.inference.registry import open_model

    handle = open_model(zscore_run)
    assert handle.normalization == "zscore"

    by_run = _evaluate(run=zscore_run)
    by_model = _evaluate(model=str(zscore_run), dataset=DATASET)
    run_dice = [row["dice"] for row in by_run["rows"]]
    model_dice = [row["dice"] for row in by_model["rows"]]
    np.testing.assert_allclose(model_dice, run_dice, atol=1e-6)
    assert [r["pred_pixels"] for r in by_model["rows"]] == [r["pred_pixels"] for r in by_run["rows"]]
    assert 0.0 < by_run["mean"]["dice"] < 1.0

    # predict on PNG files of the same test images (uint8, as the split stores them).
    images, masks, ids = load_split_arrays(DATASET, "test")
    folder = tmp_path / "png"
    folder.mkdir()
    paths = []
    for image, name in zip(images, ids, strict=True):
        path = folder / f"{name}.png"
        Image.fromarray(np.rint(image[..., 0] * 255).astype(np.uint8)).save(path)
        paths.append(path)
    out = tmp_path / "masks"
    out.mkdir()
    args = argparse.Namespace(threshold=0.5, tta=False, postprocess=[], plane="axial", out=out)
    for index, path in enumerate(paths):
        summary = predict_file(handle, path, args)
        predicted = (np.asarray(Image.open(summary["output"])) > 0).astype(np.uint8)
        expected_pixels = by_run["rows"][index]["pred_pixels"]
        # PNG rounding of a [0, 1] image is exact here (the split holds uint8 levels / 255), and
        # z-scoring ignores the 0-255 vs 0-1 scale: at most a few float-rounding flips.
        assert abs(int(predicted.sum()) - expected_pixels) <= 3
        dice = score_pair(masks[index], predicted, 2, distances=False)["dice"]
        assert dice == pytest.approx(run_dice[index], abs=2e-3)

    # The Evaluate page shows the same mean Dice for the run on the same split.
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(zscore_run.parent))
    at = AppTest.from_file(PAGE, default_timeout=240)
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="evaluate.model").value.startswith("Run:")
    assert at.selectbox(key="evaluate.dataset").value == DATASET
    assert at.selectbox(key="evaluate.split").value == "test"
    table = next(f.value for f in at.dataframe if {"id", "dice"} <= set(f.value.columns))
    page_dice = table["dice"].iloc[:-1].to_numpy(dtype=float)
    np.testing.assert_allclose(page_dice, run_dice, atol=1e-6)

    # The check has teeth: min-max inputs (the old hard-coded choice) give other outputs.
    zscored, _ = prepare_batch(images[:4], size=128, normalization="zscore")
    minmaxed, _ = prepare_batch(images[:4], size=128, normalization="minmax")
    assert np.abs(handle.predict(zscored) - handle.predict(minmaxed)).max() > 0.05
    json.dumps(by_run, default=float)  # the CLI's --json output stays serialisable
