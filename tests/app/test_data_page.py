"""Data page: runs for every dataset; opacity, preprocessing and dataset choice change the output."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from unet_demo import DISCLAIMER
from unet_demo.data.bundled import DATASET_NAMES, get_dataset_info
from unet_demo.ui.state import DATASET_KEY

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "1_Data.py")


def _image_urls(at: AppTest) -> list[str]:
    return [img.url for element in at.get("image") for img in element.proto.imgs]


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


@pytest.fixture
def app() -> AppTest:
    return _run(AppTest.from_file(PAGE, default_timeout=120))


def test_data_page_shows_widgets_figures_card_and_disclaimer(app):
    assert any(DISCLAIMER in c.value for c in app.caption)
    labels = {s.label for s in app.slider} | {s.label for s in app.selectbox}
    assert {"Dataset", "Image", "Mask opacity", "Normalisation", "Denoise"} <= labels
    assert len(app.get("plotly_chart")) == 3  # class balance, split sizes, histogram
    assert any("Split rule" in m.value for m in app.markdown)
    assert app.session_state[DATASET_KEY] == app.selectbox(key="data.dataset").value


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_every_dataset_renders_with_its_classes_in_the_legend(app, name):
    app.selectbox(key="data.dataset").set_value(name)
    _run(app)
    assert app.session_state[DATASET_KEY] == name
    legend = " ".join(img.caption for element in app.get("image") for img in element.proto.imgs
                      if img.caption.startswith("Legend:"))
    for class_name in get_dataset_info(name).class_names[1:]:
        assert class_name in legend


def test_opacity_slider_changes_only_the_overlay(app):
    before = _image_urls(app)
    app.slider(key="data.opacity").set_value(0.9)
    after = _image_urls(_run(app))
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert changed == [1], "only the overlay (second image) should change"


def test_preprocessing_target_size_is_reported(app):
    app.select_slider(key="data.height").set_value(96)
    app.select_slider(key="data.target_width").set_value(160)
    app.selectbox(key="data.norm").set_value("zscore")
    _run(app)
    captions = [img.caption for element in app.get("image") for img in element.proto.imgs]
    assert any(c.startswith("preprocessed 96x160") for c in captions), captions
