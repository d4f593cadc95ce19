"""Augment page: every transform has a control with help, the gallery reacts, config is stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from unet_demo import DISCLAIMER
from unet_demo.augment import augmentation_code
from unet_demo.config import AugmentConfig
from unet_demo.ui.augment_ui import GEOMETRIC_CONTROLS, PHOTOMETRIC_CONTROLS
from unet_demo.ui.state import AUGMENT_CONFIG_KEY

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "2_Augment.py")


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _gallery_url(at: AppTest) -> str:
    images = [img for element in at.get("image") for img in element.proto.imgs]
    return next(img.url for img in images if "9 draws" in img.caption or "NOT" in img.caption)


@pytest.fixture
def app() -> AppTest:
    return _run(AppTest.from_file(PAGE, default_timeout=120))


def test_every_transform_has_a_slider_with_a_why(app):
    assert any(DISCLAIMER in c.value for c in app.caption)
    sliders = {s.key: s for s in app.slider}
    for _, controls in GEOMETRIC_CONTROLS + PHOTOMETRIC_CONTROLS:
        for field, *_ in controls:
            assert f"augment.{field}" in sliders, field
            assert sliders[f"augment.{field}"].help
    assert {b.label for b in app.button} >= {"Re-roll", "Reset"}


def test_config_is_stored_and_follows_the_sliders(app):
    app.slider(key="augment.vflip_p").set_value(0.75)
    _run(app)
    stored = app.session_state[AUGMENT_CONFIG_KEY]
    assert isinstance(stored, AugmentConfig) and stored.vflip_p == 0.75
    code = next(c.value for c in app.code if "A.Compose" in c.value)
    assert code.strip() == augmentation_code(stored).strip()
    assert "A.VerticalFlip(p=0.75)" in code


def test_slider_change_and_reroll_change_the_gallery(app):
    first = _gallery_url(app)
    app.slider(key="augment.rotate_limit").set_value(90.0)
    _run(app)
    second = _gallery_url(app)
    assert second != first
    seed = app.session_state["augment.seed"]
    next(b for b in app.button if b.label == "Re-roll").click()
    _run(app)
    assert app.session_state["augment.seed"] == seed + 1
    assert app.session_state[AUGMENT_CONFIG_KEY].seed == seed + 1
    assert _gallery_url(app) != second


def test_pitfall_toggle_warns_and_changes_the_gallery(app):
    before = _gallery_url(app)
    app.toggle(key="augment.image_only").set_value(True)
    _run(app)
    assert any("leaves the mask behind" in w.value for w in app.warning)
    assert _gallery_url(app) != before



def test_pitfall_toggle_and_image_survive_a_round_trip_to_another_page():
    home = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")
    at = AppTest.from_file(home, default_timeout=120).run()
    at.switch_page("pages/2_Augment.py").run()
    assert not at.exception, at.exception
    at.toggle(key="augment.image_only").set_value(True).run()
    at.slider(key="augment.image_index").set_value(3).run()
    at.switch_page("pages/7_Learn.py").run()
    at.switch_page("pages/2_Augment.py").run()
    assert not at.exception, at.exception
    assert at.toggle(key="augment.image_only").value is True
    assert at.slider(key="augment.image_index").value == 3
    assert any("NOT" in img.caption for element in at.get("image") for img in element.proto.imgs)
