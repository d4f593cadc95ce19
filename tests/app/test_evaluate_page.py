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
    # every Dice says which split it is from
    assert any(m.label == "mean test Dice" for m in app.metric)
    assert any(m.value.startswith("**") and "(test) — test Dice" in m.value
               for m in app.markdown)
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


HOME = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")


def _menu_app(monkeypatch, tmp_path, models_dir: Path) -> AppTest:
    monkeypatch.setenv(BUNDLED_DIR_ENV, str(models_dir))
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(HOME, default_timeout=180).run()
    at.switch_page("pages/5_Evaluate.py")
    return _run(at)


def test_threshold_postprocessing_and_tta_survive_a_round_trip(monkeypatch, tmp_path):
    at = _menu_app(monkeypatch, tmp_path, shared_tiny_models_dir())
    at.slider(key="evaluate.threshold").set_value(0.3)
    at.checkbox(key="evaluate.pp.fill").check()
    at.toggle(key="evaluate.tta").set_value(True)
    at.selectbox(key="evaluate.split").set_value("val")
    _run(at)
    at.switch_page("pages/7_Learn.py").run()
    at.switch_page("pages/5_Evaluate.py")
    _run(at)
    assert at.slider(key="evaluate.threshold").value == 0.3
    assert at.checkbox(key="evaluate.pp.fill").value is True
    assert at.toggle(key="evaluate.tta").value is True
    assert at.selectbox(key="evaluate.split").value == "val"
    assert any(m.label == "mean val Dice" for m in at.metric)
    assert any("Most uncertain image" in m.value for m in at.markdown)
    _assert_uncertainty_dark_to_bright(at)


def _assert_uncertainty_dark_to_bright(at: AppTest) -> None:
    """The variance map: black at 0, pale at the top, a colour bar saying so, no theme."""
    import json

    charts = [c for c in at.get("plotly_chart") if "flip variance" in c.proto.spec]
    assert charts, "no uncertainty map"
    assert charts[0].proto.theme != "streamlit"
    trace = json.loads(charts[0].proto.spec)["data"][0]
    assert trace["colorscale"][0][1] == "#000000" and trace["colorscale"][-1][1] == "#fcfdbf"
    # Streamlit's browser code repaints #000001.. (theme placeholders), e.g. Magma's #000004
    assert not [c for _, c in trace["colorscale"] if c.startswith("#0000") and c != "#000000"]
    assert not trace.get("reversescale")
    assert "dark = sure" in trace["colorbar"]["ticktext"][0]
    assert "bright = unsure" in trace["colorbar"]["ticktext"][-1]
    assert any("dark where the mirrored predictions agree" in c.value for c in at.caption)


@pytest.fixture(scope="module")
def two_models(tmp_path_factory) -> Path:
    from tests.tiny_model import make_tiny_bundled_model

    root = tmp_path_factory.mktemp("two_models")
    for dataset in ("synthetic_lesions", "nuclei"):
        make_tiny_bundled_model(root, dataset, epochs=1, num_images=8)
    return root


def test_dataset_follows_the_model_unless_picked_on_purpose(monkeypatch, tmp_path, two_models):
    at = _menu_app(monkeypatch, tmp_path, two_models)
    model = at.selectbox(key="evaluate.model")
    label = {dataset: next(o for o in model.options if dataset in o)
             for dataset in ("synthetic_lesions", "nuclei")}
    first = "nuclei" if "nuclei" in model.value else "synthetic_lesions"
    other = "synthetic_lesions" if first == "nuclei" else "nuclei"
    assert at.selectbox(key="evaluate.dataset").value == first
    # a new model brings its own dataset (not the previous model's)
    at.selectbox(key="evaluate.model").set_value(label[other])
    _run(at)
    assert at.selectbox(key="evaluate.dataset").value == other
    assert not at.warning, [w.value for w in at.warning]
    # picked on purpose: kept for that model only
    at.selectbox(key="evaluate.dataset").set_value("brain_skullstrip")
    _run(at)
    assert any("transfers" in w.value for w in at.warning)
    at.selectbox(key="evaluate.model").set_value(label[first])
    _run(at)
    assert at.selectbox(key="evaluate.dataset").value == first
    at.selectbox(key="evaluate.model").set_value(label[other])
    _run(at)
    assert at.selectbox(key="evaluate.dataset").value == "brain_skullstrip"
    # and after a trip to another page
    at.switch_page("pages/7_Learn.py").run()
    at.switch_page("pages/5_Evaluate.py")
    _run(at)
    assert at.selectbox(key="evaluate.model").value == label[other]
    assert at.selectbox(key="evaluate.dataset").value == "brain_skullstrip"
