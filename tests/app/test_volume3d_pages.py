"""The 3D option on the Train page (volume dataset, 3D preset) and on the Segment page (3D path).

The Segment case uses a tiny untrained 3D U-Net (depth 1, 2 filters) as the bundled 3D model and
the suite's tiny 2D models, so it checks the page's wiring and figures, not their quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.tiny_model import BUNDLED_DIR_ENV, shared_tiny_models_dir
from unet_demo import DISCLAIMER
from unet_demo.config import UNetConfig

ROOT = Path(__file__).resolve().parents[2]
TRAIN = str(ROOT / "pages" / "4_Train.py")
SEGMENT = str(ROOT / "pages" / "6_Segment.py")


def test_train_page_offers_the_volume_dataset_with_a_3d_preset(tmp_path, monkeypatch):
    from unet_demo.ui.state import DATASET_KEY
    from unet_demo.ui.train_ui import spec_from_state

    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(TRAIN, default_timeout=60)
    at.session_state[DATASET_KEY] = "synthetic_lesions"
    at.run()
    assert any(label.endswith("(brain_volume, 3D)")
               for label in at.selectbox(key="train.dataset").options)
    at.selectbox(key="train.dataset").set_value("brain_volume").run()
    assert not at.exception, at.exception
    assert any("**unet3d** U-Net" in c.value for c in at.caption)
    assert at.selectbox(key="train.loss").value == "bce_dice"
    assert at.session_state[DATASET_KEY] == "synthetic_lesions"  # 2-D pages keep theirs
    keys = [key for key in at.session_state if key.startswith("train.")]
    spec = spec_from_state({key: at.session_state[key] for key in keys})
    assert (spec.data.dataset, spec.model.variant, spec.data.image_size) == (
        "brain_volume", "unet3d", 32)


@pytest.fixture
def tiny_3d_models(tmp_path) -> Path:
    from unet_demo.models.builder import build_unet

    folder = tmp_path / "volumetric" / "brain_volume"
    folder.mkdir(parents=True)
    cfg = UNetConfig(variant="unet3d", input_depth=32, input_height=32, input_width=32, depth=1,
                     base_filters=2, normalization="none")
    build_unet(cfg).save(folder / "model.keras")
    card = {"title": "tiny 3D", "config": {"data": {"dataset": "brain_volume"},
                                           "model": cfg.to_dict()}}
    (folder / "card.json").write_text(json.dumps(card))
    return folder.parent


def test_segment_page_3d_path_segments_a_nifti_volume_and_compares_with_2d(
        tmp_path, monkeypatch, tiny_3d_models):
    from nibabel.testing import data_path

    monkeypatch.setenv(BUNDLED_DIR_ENV, str(shared_tiny_models_dir()))
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("UNET_DEMO_VOLUME_MODELS_DIR", str(tiny_3d_models))
    at = AppTest.from_file(SEGMENT, default_timeout=180)
    at.run()
    at.toggle(key="segment.mode3d").set_value(True).run()
    assert not at.exception, at.exception
    assert any(DISCLAIMER in c.value for c in at.caption)
    assert at.selectbox(key="segment3d.model").value == "bundled 3D: brain_volume"
    assert at.checkbox(key="segment3d.sample").value  # the bundled head volume is offered
    # A small real NIfTI (33x41x25 voxels of 2 mm) keeps the test fast; the bundled volume's
    # test-box scores are checked in tests/unit/test_volume3d.py.
    nifti = (Path(data_path) / "anatomical.nii").read_bytes()
    at.file_uploader(key="segment3d.upload").set_value(
        ("anatomical.nii", nifti, "application/octet-stream")).run()
    at.button(key="segment3d.run").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    labels = [metric.label for metric in at.metric]
    assert labels == ["3D time", "3D foreground volume", "2D slice-by-slice time",
                      "Dice 3D vs 2D"]
    assert at.slider(key="segment3d.slice").max == 24
    assert sum(len(image.proto.imgs) for image in at.get("image")) == 2
    assert "3D mask (NIfTI)" in [button.label for button in at.get("download_button")]


@pytest.mark.slow
def test_a_3d_run_started_on_the_train_page_draws_live_curves(tmp_path, monkeypatch):
    import time

    from unet_demo.ui.state import DATASET_KEY

    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("UNET_DEMO_XLA", "0")  # compiling a 3D step costs more than one epoch
    at = AppTest.from_file(TRAIN, default_timeout=60)
    at.session_state[DATASET_KEY] = "synthetic_lesions"
    at.run()
    at.selectbox(key="train.dataset").set_value("brain_volume").run()
    at.number_input(key="train.max_train_images").set_value(8)
    at.number_input(key="train.epochs").set_value(1)
    at.number_input(key="train.batch_size").set_value(4)
    at.button(key="train.start").click().run()
    assert not at.exception, at.exception
    run_id = at.session_state["train.run_id"]
    deadline = time.time() + 300
    while time.time() < deadline:
        time.sleep(2.0)
        at.run()
        assert not at.exception, at.exception
        if any("Finished after" in str(s.value) for s in at.success):
            break
    else:
        pytest.fail("the 3D run did not finish in time")
    curves = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert [trace["x"] for trace in curves[:2]] == [[1], [1]]
    metrics = json.loads((tmp_path / "runs" / run_id / "metrics.json").read_text())
    assert metrics["test_images"] == 1 and metrics["test"]["hd95_mm"] > 0
