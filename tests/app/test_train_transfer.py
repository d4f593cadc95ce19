"""Train page: the transfer-learning control (a shipped encoder and the guide's schedule)."""

from __future__ import annotations

from pathlib import Path

import pytest

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "4_Train.py")
SHIPPED = "brain_tissue_classic16"


@pytest.fixture()
def app(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from unet_demo.ui.state import DATASET_KEY

    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state[DATASET_KEY] = "brain_skullstrip"
    return at


def _captions(at) -> str:
    return "\n".join(str(c.value) for c in at.caption)


def test_the_encoder_control_says_random_then_forms_a_transfer_run(app):
    from unet_demo.ui.train_ui import spec_from_state

    at = app.run()
    assert not at.exception, at.exception
    choice = at.selectbox(key="train.init_encoder")
    assert choice.value == "" and SHIPPED in choice.options[1:]
    assert choice.help and at.number_input(key="train.frozen_epochs").help
    assert "random weights" in _captions(at)
    assert spec_from_state(at.session_state).model.base_filters == 8  # the classroom preset

    choice.set_value(SHIPPED)
    at.number_input(key="train.frozen_epochs").set_value(3)
    at.run()
    assert not at.exception, at.exception
    assert "pretrained on **brain_tissue**" in _captions(at)
    assert "random weights" not in _captions(at)
    spec = spec_from_state(at.session_state)
    assert (spec.train.init_encoder, spec.train.frozen_epochs) == (SHIPPED, 3)
    assert (spec.model.base_filters, spec.model.normalization) == (16, "group")
    # Picking a preset again resets the transfer settings with the rest of the form.
    at.radio(key="train.preset").set_value("quality").run()
    assert at.selectbox(key="train.init_encoder").value == ""
    assert at.number_input(key="train.frozen_epochs").value == 0
