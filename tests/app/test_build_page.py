"""Build page: widgets for every option, live figures equal to Keras', size warning, seed table."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from unet_demo import DISCLAIMER
from unet_demo.config import UNetConfig
from unet_demo.models.seeds import SEED_PARAM_COUNTS
from unet_demo.ui.state import UNET_CONFIG_KEY

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "3_Build.py")
SMALL = UNetConfig(input_height=64, input_width=64, depth=3, base_filters=4)


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state[UNET_CONFIG_KEY] = SMALL  # a small model keeps the test fast
    return _run(at)


def test_every_config_field_has_a_widget_and_the_figures_show(app):
    assert any(DISCLAIMER in c.value for c in app.caption)
    keys = {w.key for kind in ("selectbox", "slider", "select_slider", "radio", "number_input",
                               "toggle") for w in getattr(app, kind)}
    for field in UNetConfig.__dataclass_fields__:
        assert f"build.{field}" in keys, field
    labels = {m.label for m in app.metric}
    assert {"Parameters", "Receptive field"} <= labels
    assert any(label.startswith("Training memory") for label in labels)
    assert len(app.get("plotly_chart")) == 1
    assert app.session_state[UNET_CONFIG_KEY] == SMALL


def test_depth_change_shows_the_parameter_count_keras_gives(app):
    from unet_demo.models.builder import build_unet

    before = _metric(app, "Parameters")
    app.slider(key="build.depth").set_value(2)
    _run(app)
    expected = build_unet(SMALL.replace(depth=2)).count_params()
    assert _metric(app, "Parameters") == f"{expected:,}"
    assert _metric(app, "Parameters") != before
    assert app.session_state[UNET_CONFIG_KEY] == SMALL.replace(depth=2)


def test_input_size_not_divisible_warns_with_valid_sizes(app):
    app.number_input(key="build.input_height").set_value(100)
    _run(app)
    warning = " ".join(w.value for w in app.warning)
    assert "100" in warning and "96 or 104" in warning
    assert app.session_state[UNET_CONFIG_KEY] == SMALL  # the invalid config is not stored


def test_seed_table_lists_the_seed_models(app):
    table = app.dataframe[0].value
    assert list(table["model"]) == [*SEED_PARAM_COUNTS, "yours"]
    assert list(table["parameters"][:3]) == list(SEED_PARAM_COUNTS.values())


def test_variant_switch_marks_the_variant_and_code_export_exists(app):
    app.selectbox(key="build.variant").set_value("attention")
    _run(app)
    diagram = app.get("plotly_chart")[0].proto.spec
    assert "AG" in diagram
    assert any("def build_model" in c.value or "keras" in c.value for c in app.code)
    downloads = [element.proto.label for element in app.get("download_button")]
    assert "Download unet_model.py" in downloads


PRETRAINED = UNetConfig(variant="pretrained", backbone="mobilenetv2", depth=5, input_height=64,
                        input_width=64, base_filters=4)


@pytest.mark.parametrize(("weights", "expected"), [
    ("imagenet", "No local ImageNet weights for mobilenetv2"),
    ("none", "Encoder weights: none"),
])
def test_pretrained_encoder_says_it_starts_from_random_weights(tmp_path, monkeypatch, weights,
                                                               expected):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_keras_home"))
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state[UNET_CONFIG_KEY] = PRETRAINED.replace(encoder_weights=weights)
    _run(at)
    warnings = [str(w.value) for w in at.warning]
    assert any(expected in text and "starts from random weights" in text for text in warnings), \
        warnings


def test_invalid_size_diagram_draws_the_real_shapes_and_the_failing_concatenation(app):
    import json

    app.number_input(key="build.input_height").set_value(100)
    _run(app)
    warning = " ".join(w.value for w in app.warning)
    assert "12 -> 24" in warning and "25" in warning and "concatenation fails" in warning
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    texts = " ".join(a.get("text", "") for a in spec["layout"]["annotations"])
    assert "up-sampled 24×16<br>≠ skip 25×16" in texts and "concatenation<br>fails" in texts
    red = [s for s in spec["layout"]["shapes"] if s.get("name") == "mismatch"]
    assert len(red) == 1 and red[0]["line"]["color"] == "#d00000"


def test_reset_gives_the_classroom_preset_model_groupnorm_base_8(app):
    from unet_demo.training.presets import get_preset

    app.selectbox(key="build.normalization").set_value("batch")
    app.select_slider(key="build.base_filters").set_value(32)
    _run(app)
    app.button(key="build.reset").click()
    _run(app)
    assert app.selectbox(key="build.normalization").value == "group"
    assert app.select_slider(key="build.base_filters").value == 8
    stored = app.session_state[UNET_CONFIG_KEY]
    preset = get_preset("brain_skullstrip", "classroom").model
    assert stored == preset.replace(input_height=128, input_width=128, num_classes=1)
    assert stored.normalization == "group" and stored.base_filters == 8


def test_output_classes_help_says_binary_foreground_background(app):
    assert "binary (foreground/background)" in app.number_input(key="build.num_classes").help
