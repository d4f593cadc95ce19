"""Shareable links and the class file on the real pages (AppTest).

Each link test sets widgets, reads the link the page wrote into ``?x=``, opens a fresh session
with only that link and checks every widget of the page shows the same value. On the Train page
the fresh session's `spec_from_state` must equal the first one's, and training both specs gives
the same curve (same spec + same seed = same history on a CPU).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from unet_demo.config import AugmentConfig, UNetConfig
from unet_demo.training.links import LINK_PARAM, BuildLink, decode_link, encode_link
from unet_demo.ui.state import AUGMENT_CONFIG_KEY, DATASET_KEY, UNET_CONFIG_KEY

PAGES = Path(__file__).resolve().parents[2] / "pages"
BUILD, AUGMENT, TRAIN = (str(PAGES / name) for name in ("3_Build.py", "2_Augment.py",
                                                        "4_Train.py"))
TINY_MODEL = UNetConfig(variant="residual", input_height=64, input_width=64, depth=2,
                        base_filters=4, normalization="group")
WIDGET_KINDS = ("selectbox", "slider", "select_slider", "radio", "number_input", "toggle",
                "checkbox", "text_input")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("UNET_DEMO_CLASS_FILE", raising=False)


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _token(at: AppTest) -> str:
    value = at.query_params[LINK_PARAM]
    return value[0] if isinstance(value, list) else value


def _widgets(at: AppTest, prefix: str) -> dict[str, object]:
    return {w.key: w.value for kind in WIDGET_KINDS for w in getattr(at, kind)
            if w.key and w.key.startswith(prefix)}


def _opened(page: str, token: str, timeout: float = 120) -> AppTest:
    at = AppTest.from_file(page, default_timeout=timeout)
    at.query_params[LINK_PARAM] = token
    return _run(at)


def _shown_link(at: AppTest) -> str:
    return next(c.value for c in at.code if f"?{LINK_PARAM}=" in c.value)


# --------------------------------------------------------------------------- Build

def test_build_link_restores_every_widget():
    at = AppTest.from_file(BUILD, default_timeout=180)
    at.session_state[UNET_CONFIG_KEY] = TINY_MODEL
    _run(at)
    at.selectbox(key="build.activation").set_value("gelu")
    at.slider(key="build.dropout_rate").set_value(0.2)
    at.radio(key="build.upsampling").set_value("upsample_conv")
    at.select_slider(key="build.batch_size").set_value(16)
    _run(at)
    token = _token(at)
    assert _shown_link(at) == f"?{LINK_PARAM}={token}"  # no browser here: a relative link
    link = decode_link(token, "build")
    expected = TINY_MODEL.replace(activation="gelu", dropout_rate=0.2, upsampling="upsample_conv")
    assert link == BuildLink(expected, 16)
    fresh = _opened(BUILD, token, 180)
    assert _widgets(fresh, "build.") == _widgets(at, "build.")
    assert fresh.session_state[UNET_CONFIG_KEY] == expected
    assert _token(fresh) == token


def test_a_garbled_link_warns_and_the_page_shows_its_defaults():
    at = _opened(BUILD, "1.thisIsNotALink", 180)
    assert any("garbled" in w.value for w in at.warning)
    default = AppTest.from_file(BUILD, default_timeout=180)
    _run(default)
    assert _widgets(at, "build.") == _widgets(default, "build.")
    newer = _opened(BUILD, "7." + encode_link(BuildLink())[2:], 180)
    assert any("newer version of the app" in w.value for w in newer.warning)


# --------------------------------------------------------------------------- Augment

def test_augment_link_restores_sliders_seed_image_and_toggle():
    at = AppTest.from_file(AUGMENT, default_timeout=120)
    at.session_state[DATASET_KEY] = "nuclei"
    _run(at)
    at.slider(key="augment.vflip_p").set_value(0.35)
    at.slider(key="augment.noise_p").set_value(0.2)
    at.radio(key="augment.border_mode").set_value("constant")
    at.number_input(key="augment.seed").set_value(11)
    at.slider(key="augment.image_index").set_value(5)
    at.toggle(key="augment.image_only").set_value(True)
    _run(at)
    _run(at)  # the kept image number and toggle settle into the link on the next run
    token = _token(at)
    link = decode_link(token, "augment")
    assert (link.dataset, link.image_index, link.image_only) == ("nuclei", 4, True)
    fresh = _opened(AUGMENT, token)
    assert _widgets(fresh, "augment.") == _widgets(at, "augment.")
    assert fresh.session_state[AUGMENT_CONFIG_KEY] == at.session_state[AUGMENT_CONFIG_KEY]
    assert fresh.session_state[AUGMENT_CONFIG_KEY].noise_p == 0.2
    assert fresh.session_state[DATASET_KEY] == "nuclei"


# --------------------------------------------------------------------------- Train

def _train_app() -> AppTest:
    at = AppTest.from_file(TRAIN, default_timeout=120)
    at.session_state[UNET_CONFIG_KEY] = TINY_MODEL
    at.session_state[AUGMENT_CONFIG_KEY] = AugmentConfig(hflip_p=0.5, seed=3)
    at.session_state[DATASET_KEY] = "synthetic_lesions"
    return _run(at)


def _set_train_widgets(at: AppTest) -> None:
    at.radio(key="train.model_source").set_value("Build page model")
    at.number_input(key="train.max_train_images").set_value(8)
    at.checkbox(key="train.augment").set_value(True)
    at.selectbox(key="train.loss").set_value("dice")
    at.selectbox(key="train.optimizer").set_value("adamw")
    at.select_slider(key="train.learning_rate").set_value(1e-2)
    at.selectbox(key="train.schedule").set_value("exponential")
    at.number_input(key="train.epochs").set_value(2)
    at.number_input(key="train.batch_size").set_value(4)
    at.number_input(key="train.early_stopping_patience").set_value(5)
    at.number_input(key="train.seed").set_value(1234)
    at.text_input(key="train.label").set_value("dice, adamw 1e-2")
    _run(at)


def test_train_link_restores_every_widget_and_the_same_run_spec():
    from unet_demo.ui.train_ui import spec_from_state

    at = _train_app()
    _set_train_widgets(at)
    token = _token(at)
    assert len(token) < 600
    spec = spec_from_state(at.session_state)
    assert spec.model == TINY_MODEL and spec.augment == AugmentConfig(hflip_p=0.5, seed=3)
    fresh = _opened(TRAIN, token)  # a new browser: no Build model, no Augment pipeline
    assert _widgets(fresh, "train.") == _widgets(at, "train.")
    assert spec_from_state(fresh.session_state) == spec
    assert fresh.session_state[UNET_CONFIG_KEY] == TINY_MODEL
    assert _token(fresh) == token
    assert not fresh.warning
    assert not any("no widget for" in i.value for i in fresh.info)


def test_run_link_and_settings_link_live_side_by_side():
    at = _train_app()
    token = _token(at)
    at.query_params["run"] = "20261123-101500-ab12cd"  # a run that does not exist here
    _run(at)
    assert _token(at) == token  # the settings link is kept; an unknown run id is dropped
    assert "run" not in at.query_params
    link = decode_link(token, "train")
    assert link.preset == "classroom" and link.spec.data.dataset == "synthetic_lesions"


def test_a_link_for_another_page_is_ignored_quietly_on_train():
    fresh = _opened(TRAIN, encode_link(BuildLink(TINY_MODEL)))
    assert not fresh.warning
    assert decode_link(_token(fresh), "train").preset == "classroom"


@pytest.mark.slow  # two real trainings: about 20 s alone, 90 s on 2 busy cores (XLA compile)
def test_the_restored_spec_trains_the_same_curve(tmp_path):
    """Same spec + same seed = same history: the link's run repeats the original's curve."""
    from unet_demo.training.rundir import load_history
    from unet_demo.training.runner import run_training
    from unet_demo.ui.train_ui import spec_from_state

    at = _train_app()
    _set_train_widgets(at)
    fresh = _opened(TRAIN, _token(at))
    small = dataclasses.replace  # 32-pixel images keep two runs within seconds on a CPU
    histories = []
    for name, session in (("original", at), ("from_link", fresh)):
        spec = spec_from_state(session.session_state)
        spec = spec.replace(data=small(spec.data, image_size=32),
                            model=small(spec.model, input_height=32, input_width=32))
        history = load_history(run_training(spec, tmp_path / name))
        timing = ("seconds", "images_per_sec")  # wall-clock figures differ between any runs
        histories.append([{k: v for k, v in row.items() if k not in timing} for row in history])
    assert len(histories[0]) == 2 and "val_dice" in histories[0][-1]
    assert histories[0] == histories[1]


# --------------------------------------------------------------------------- class file

CLASS_YAML = """\
default_dataset: nuclei
preset: quality
allowed_variants: [classic, attention]
epoch_cap: 6
banner: "Week 3: attention gates"
"""


@pytest.fixture
def class_yaml(tmp_path, monkeypatch):
    path = tmp_path / "class.yaml"
    path.write_text(CLASS_YAML)
    monkeypatch.setenv("UNET_DEMO_CLASS_FILE", str(path))
    return path


def test_class_file_banner_defaults_and_epoch_cap_on_train(class_yaml):
    at = _run(AppTest.from_file(TRAIN, default_timeout=120))
    assert any("Week 3: attention gates" in i.value for i in at.info)
    assert at.selectbox(key="train.dataset").value == "nuclei"
    assert at.radio(key="train.preset").value == "quality"
    epochs = at.number_input(key="train.epochs")
    assert epochs.value == 6  # the quality preset's 40, lowered to the cap
    assert epochs.max == 6
    from unet_demo.ui.train_ui import spec_from_state

    assert spec_from_state(at.session_state).train.epochs == 6


def test_class_file_limits_the_build_variants(class_yaml):
    at = AppTest.from_file(BUILD, default_timeout=180)
    at.session_state[UNET_CONFIG_KEY] = TINY_MODEL  # residual: not allowed in this class
    _run(at)
    variant = at.selectbox(key="build.variant")
    assert variant.options == ["classic", "attention"]
    assert variant.value == "classic"
    assert any("Week 3: attention gates" in i.value for i in at.info)
    barred = _opened(BUILD, encode_link(BuildLink(TINY_MODEL.replace(variant="unetpp"))), 180)
    assert any("allows only classic, attention" in w.value for w in barred.warning)


def test_a_train_link_over_the_cap_is_lowered(class_yaml):
    from unet_demo.training.links import TrainLink
    from unet_demo.training.presets import get_preset

    spec = get_preset("nuclei", "classroom")
    token = encode_link(TrainLink(spec.replace(train=spec.train.replace(epochs=15))))
    at = _opened(TRAIN, token)
    assert at.number_input(key="train.epochs").value == 6
    assert any("stops runs at 6" in i.value for i in at.info)


def test_a_broken_class_file_shows_the_problem_and_the_app_runs_on_defaults(class_yaml):
    class_yaml.write_text("epochs_cap: 6\n")
    at = AppTest.from_file(TRAIN, default_timeout=120)
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] and "unknown key 'epochs_cap'" in at.error[0].value
    assert at.radio(key="train.preset").value == "classroom"
    assert at.number_input(key="train.epochs").max == 1000
    assert not at.button(key="train.start").disabled
