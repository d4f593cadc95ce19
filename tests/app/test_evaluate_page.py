"""Evaluate page: a (tiny) bundled model is scored on a split; every panel renders."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.tiny_model import BUNDLED_DIR_ENV, TINY_DATASET, shared_tiny_models_dir
from unet_demo import DISCLAIMER

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "5_Evaluate.py")
METRIC_COLUMNS = {"id", "dice", "iou", "precision", "recall", "hd95"}


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


@pytest.fixture
def app(monkeypatch, tmp_path) -> AppTest:
    monkeypatch.setenv(BUNDLED_DIR_ENV, str(shared_tiny_models_dir()))
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(tmp_path / "runs"))
    return _run(AppTest.from_file(PAGE, default_timeout=180))


def _per_image_table(at: AppTest):
    for frame in at.dataframe:
        if set(frame.value.columns) >= METRIC_COLUMNS:
            return frame.value
    raise AssertionError("no per-image metrics table on the page")


def test_metrics_table_and_panels_for_bundled_model(app):
    assert any(DISCLAIMER in c.value for c in app.caption)
    assert app.selectbox(key="evaluate.dataset").value == TINY_DATASET
    table = _per_image_table(app)
    assert table["id"].iloc[-1] == "mean"
    dice = table["dice"].iloc[:-1]
    assert ((dice >= 0) & (dice <= 1)).all()
    assert abs(table["dice"].iloc[-1] - dice.mean()) < 1e-9
    assert any(m.label == "mean Dice" for m in app.metric)
    # violin of per-image Dice, threshold explorer, confusion matrix
    assert len(app.get("plotly_chart")) >= 3
    assert any("Otsu" in c.value for c in app.caption)
    # worst-cases gallery: image, truth, prediction, overlay, error map per row
    assert sum(len(e.proto.imgs) for e in app.get("image")) >= 5


def test_postprocessing_shows_before_after_and_tta_shows_uncertainty(app):
    app.checkbox(key="evaluate.pp.fill").check()
    app.checkbox(key="evaluate.pp.largest").check()
    app.toggle(key="evaluate.tta").set_value(True)
    _run(app)
    before_after = [f.value for f in app.dataframe if "before" in f.value.columns]
    assert before_after and {"dice", "iou"} <= set(before_after[0]["metric"])
    assert any("Most uncertain image" in m.value for m in app.markdown)


def test_no_models_gives_guidance(monkeypatch, tmp_path):
    monkeypatch.setenv(BUNDLED_DIR_ENV, str(tmp_path / "none"))
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(tmp_path / "runs"))
    at = _run(AppTest.from_file(PAGE, default_timeout=60))
    assert any("No model is available yet" in i.value for i in at.info)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A real 1-epoch training run (32x32 input, 8 images) made by the training engine."""
    from unet_demo.config import DataConfig, TrainConfig, UNetConfig
    from unet_demo.training.runner import run_training
    from unet_demo.training.spec import RunSpec

    runs = tmp_path_factory.mktemp("runs")
    spec = RunSpec(
        data=DataConfig(dataset=TINY_DATASET, image_size=32, max_train_images=8),
        model=UNetConfig(input_height=32, input_width=32, depth=2, base_filters=4),
        train=TrainConfig(epochs=1, batch_size=4),
    )
    run_training(spec, runs / "run-eval-test")
    return runs


def test_finished_run_is_listed_first_and_evaluated(monkeypatch, tmp_path, finished_run):
    monkeypatch.setenv(BUNDLED_DIR_ENV, str(shared_tiny_models_dir()))
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(finished_run))
    at = _run(AppTest.from_file(PAGE, default_timeout=180))
    model = at.selectbox(key="evaluate.model")
    assert model.value.startswith("Run: run-eval-test (synthetic_lesions")
    assert any(option.startswith("Bundled") for option in model.options)
    table = _per_image_table(at)
    assert len(table) > 2 and table["id"].iloc[-1] == "mean"
    # the run's 32x32 model is scored on the split resized to its input
    assert sum(len(e.proto.imgs) for e in at.get("image")) >= 5


def test_multiclass_model_shows_confusion_matrix_without_threshold(monkeypatch, tmp_path):
    from tests.tiny_model import make_tiny_bundled_model

    root = make_tiny_bundled_model(tmp_path / "models", "brain_tissue", num_images=16)
    monkeypatch.setenv(BUNDLED_DIR_ENV, str(root))
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(tmp_path / "runs"))
    at = _run(AppTest.from_file(PAGE, default_timeout=180))
    assert at.selectbox(key="evaluate.dataset").value == "brain_tissue"
    assert "evaluate.threshold" not in [s.key for s in at.slider]
    assert any("argmax" in i.value for i in at.info)
    confusion = [c for c in at.get("plotly_chart") if "grey_matter" in c.proto.spec]
    assert confusion, "confusion matrix with the class names is missing"
    assert len(_per_image_table(at)) > 2
