"""Evaluate page, issue 18: ROC / PR curves, ensembles of runs, A/B comparison and the
cross-validation view, on real tiny models (two differently trained ones, saved as runs)."""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.tiny_model import (
    BUNDLED_DIR_ENV,
    TINY_DATASET,
    make_tiny_bundled_model,
    shared_tiny_models_dir,
)
from unet_demo import DISCLAIMER

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "5_Evaluate.py")


@functools.cache
def _second_tiny_model() -> Path:
    """Another tiny model, trained less, so an ensemble differs from each member."""
    root = Path(tempfile.mkdtemp(prefix="unet_demo_tiny_b_"))
    make_tiny_bundled_model(root, epochs=1, base_filters=4, num_images=16)
    return root / TINY_DATASET / "model.keras"


def _fold_run(runs: Path, name: str, model_file: Path, fold: int) -> Path:
    """A finished run folder holding a real model, recorded as fold ``fold`` of 3."""
    from unet_demo.config import DataConfig, UNetConfig
    from unet_demo.training import events as ev
    from unet_demo.training.spec import RunSpec

    run_dir = runs / name
    run_dir.mkdir(parents=True)
    shutil.copy(model_file, run_dir / "model.keras")
    spec = RunSpec(data=DataConfig(dataset=TINY_DATASET, image_size=128, folds=3, fold=fold),
                   model=UNetConfig(depth=2, base_filters=4, normalization="none"))
    (run_dir / "config.json").write_text(spec.to_json())
    (run_dir / "label.txt").write_text(f"fold {fold + 1}")
    ev.append_event(run_dir, ev.Finished(best_epoch=1, metrics={"val_dice": 0.5}))
    return run_dir


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    from unet_demo.evaluation.crossval import CROSSVAL_DIR, summarize_crossval

    runs = tmp_path_factory.mktemp("runs")
    first = shared_tiny_models_dir() / TINY_DATASET / "model.keras"
    folds = [_fold_run(runs, f"run-{k}", model, k)
             for k, model in enumerate((first, _second_tiny_model(), first))]
    summarize_crossval(folds, runs / CROSSVAL_DIR / "cv-test")
    return runs


@pytest.fixture
def app(monkeypatch, runs_dir) -> AppTest:
    monkeypatch.setenv(BUNDLED_DIR_ENV, str(shared_tiny_models_dir()))
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(runs_dir))
    return _run(AppTest.from_file(PAGE, default_timeout=240))


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _chart_titles(at: AppTest) -> list[str]:
    titles = []
    for chart in at.get("plotly_chart"):
        figure = json.loads(chart.proto.spec)
        titles.append(str(figure.get("layout", {}).get("title", {}).get("text", "")))
    return titles


def _metric(at: AppTest, label: str):
    return next(m for m in at.metric if m.label == label)


def test_roc_and_precision_recall_curves_for_a_binary_model(app):
    assert any(DISCLAIMER in c.value for c in app.caption)
    titles = _chart_titles(app)
    assert "ROC curve (every pixel)" in titles and "Precision-recall curve (every pixel)" in titles
    auc = float(_metric(app, "ROC AUC (test)").value)
    ap = float(_metric(app, "average precision (test)").value)
    assert 0.0 <= auc <= 1.0 and 0.0 <= ap <= 1.0


def test_an_ensemble_of_chosen_runs_is_scored_against_its_members(app):
    app.toggle(key="evaluate.ensemble_on").set_value(True)
    _run(app)
    assert any("Pick two or more" in i.value for i in app.info)
    options = app.multiselect(key="evaluate.ensemble_members").options
    runs = [label for label in options if label.startswith("Run: fold 1")
            or label.startswith("Run: fold 2")]
    app.multiselect(key="evaluate.ensemble_members").set_value(runs)
    _run(app)
    members = next(frame.value for frame in app.dataframe
                   if list(frame.value.columns) == ["model", "Dice"])
    assert list(members["model"])[-1] == "Ensemble of 2 models" and len(members) == 3
    ensemble = _metric(app, "ensemble test Dice (threshold 0.5)")
    assert abs(float(ensemble.value) - members["Dice"].iloc[-1]) < 1e-3
    # The ensemble goes through the rest of the page like one model.
    assert any(m.label == "mean test Dice" for m in app.metric)


def test_ab_comparison_shows_a_per_image_scatter_and_the_changed_images(app):
    app.radio(key="evaluate.mode").set_value("Compare two (A/B)")
    _run(app)
    options = app.selectbox(key="evaluate.model_a").options
    app.selectbox(key="evaluate.model_a").set_value(
        next(o for o in options if o.startswith("Run: fold 1")))
    app.selectbox(key="evaluate.model_b").set_value(
        next(o for o in options if o.startswith("Run: fold 2")))
    _run(app)
    assert any(t.startswith("Per-image Dice: above the line B does better")
               for t in _chart_titles(app))
    table = next(frame.value for frame in app.dataframe if "verdict" in frame.value.columns)
    assert len(table) == 30  # the synthetic test split
    counts = sum(int(_metric(app, label).value) for label in ("B better", "A better",
                                                               "about the same"))
    assert counts == 30
    assert (table["change"] - (table["B"] - table["A"])).abs().max() < 1e-9


def test_cross_validation_view_shows_the_fold_table_and_the_ensemble_gain(app):
    app.radio(key="evaluate.mode").set_value("Cross-validation")
    _run(app)
    table = next(frame.value for frame in app.dataframe if "val Dice" in frame.value.columns)
    assert list(table["fold"]) == ["1", "2", "3", "mean ± sd", "ensemble"]
    folds = table["val Dice"].iloc[:3]
    assert abs(table["val Dice"].iloc[3] - folds.mean()) < 1e-6
    gain = _metric(app, "ensemble test Dice")
    best = table["test Dice"].iloc[:3].max()
    assert abs(float(gain.value) - table["test Dice"].iloc[4]) < 1e-3
    assert gain.delta.endswith("vs best single fold")
    assert abs(float(gain.delta.split()[0]) - (table["test Dice"].iloc[4] - best)) < 2e-3
    assert "Cross-validation: Dice per fold" in _chart_titles(app)
    # One click opens the three folds as an ensemble in the single-model view.
    app.button(key="evaluate.crossval_open").click()
    _run(app)
    assert app.radio(key="evaluate.mode").value == "One model or ensemble"
    assert len(app.multiselect(key="evaluate.ensemble_members").value) == 3
    assert any(m.label == "ensemble test Dice (threshold 0.5)" for m in app.metric)


def test_segment_page_segments_with_an_ensemble(monkeypatch, runs_dir):
    monkeypatch.setenv(BUNDLED_DIR_ENV, str(shared_tiny_models_dir()))
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(runs_dir))
    at = _run(AppTest.from_file(str(Path(PAGE).parent / "6_Segment.py"), default_timeout=240))
    at.toggle(key="segment.ensemble_on").set_value(True)
    _run(at)
    options = at.multiselect(key="segment.ensemble_members").options
    at.multiselect(key="segment.ensemble_members").set_value(
        [o for o in options if o.startswith(("Run: fold 1", "Run: fold 2"))])
    _run(at)
    assert any(c.value.startswith("Ensemble of 2 models: each pixel gets the mean")
               for c in at.caption)
    sample = at.selectbox(key="segment.sample")
    sample.select(sample.options[1])
    _run(at)
    assert any(m.label == "area of lesion" for m in at.metric)
    assert len(dict(at.session_state["segment.results"])) == 1
