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


HOME = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")


def _menu_app() -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=120).run()
    at.switch_page("pages/1_Data.py").run()
    assert not at.exception, at.exception
    return at


def test_settings_survive_a_round_trip_to_another_page():
    at = _menu_app()
    at.selectbox(key="data.dataset").set_value("brain_tissue").run()
    image_key = "data.image.brain_tissue.train"
    at.slider(key=image_key).set_value(5).run()
    at.slider(key="data.opacity").set_value(0.8).run()
    at.selectbox(key="data.norm").set_value("zscore").run()
    at.toggle(key="data.clahe").set_value(True).run()
    at.switch_page("pages/7_Learn.py").run()
    at.switch_page("pages/1_Data.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="data.dataset").value == "brain_tissue"
    assert at.slider(key=image_key).value == 5
    assert at.slider(key="data.opacity").value == 0.8
    assert at.selectbox(key="data.norm").value == "zscore"
    assert at.toggle(key="data.clahe").value is True
    assert any(c.value.startswith("Image 5 of ") for c in at.caption)


def test_image_slider_and_caption_count_from_one_and_a_new_dataset_opens_on_foreground(app):
    from unet_demo.data.bundled import load_split
    from unet_demo.data.representative import foreground_shares

    app.selectbox(key="data.dataset").set_value("brain_tissue")
    _run(app)
    slider = app.slider(key="data.image.brain_tissue.train")
    assert slider.min == 1
    caption = next(c.value for c in app.caption if c.value.startswith("Image "))
    assert caption.startswith(f"Image {slider.value} of {int(slider.max)} in train"), caption
    shares = foreground_shares(load_split("brain_tissue", "train").masks)
    # the first image shown is no near-empty slice: at least the median foreground
    assert shares[slider.value - 1] >= float(sorted(shares)[len(shares) // 2])


def test_dataset_card_hides_the_maintainers_note(app):
    card = " ".join(m.value for m in app.markdown if "Split rule" in m.value)
    assert card and "Education and research only" in card
    assert "edit the script" not in card
