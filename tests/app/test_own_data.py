"""Own data, issue 18 item 6: a dataset uploaded as a ZIP is browsed on Data, augmented on
Augment and evaluated on Evaluate (its test split) like a bundled one."""

from __future__ import annotations

import contextlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.tiny_model import BUNDLED_DIR_ENV, shared_tiny_models_dir
from unet_demo import DISCLAIMER
from unet_demo.ui.state import DATASET_KEY

PAGES = Path(__file__).resolve().parents[2] / "pages"


def _zip_of_synthetic_images(count: int = 12) -> bytes:
    """A ZIP of real images and masks (synthetic lesions, 0/255 PNG masks)."""
    from unet_demo.data.bundled import load_split

    split = load_split("synthetic_lesions", "val")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(count):
            for folder, array in (("images", split.images[index, ..., 0] * 255),
                                  ("masks", split.masks[index] * 255)):
                png = io.BytesIO()
                Image.fromarray(np.asarray(array).astype(np.uint8)).save(png, "PNG")
                archive.writestr(f"{folder}/case{index:02d}.png", png.getvalue())
    return buffer.getvalue()


@pytest.fixture
def upload(monkeypatch, tmp_path) -> str:
    from unet_demo.data.upload_dataset import inspect_zip, save_uploaded_dataset

    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(tmp_path / "runs"))
    report = inspect_zip(_zip_of_synthetic_images(), name="my_lesions.zip", image_size=128)
    return "upload:" + save_uploaded_dataset(report)


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def test_an_upload_is_browsed_on_data_and_augmented_on_augment(upload):
    from unet_demo.data.sources import load_split

    at = _run(AppTest.from_file(str(PAGES / "1_Data.py"), default_timeout=120))
    options = at.selectbox(key="data.dataset").options  # shown as "title (name)"
    assert options[-1] == f"Uploaded: my_lesions.zip ({upload})"
    at.selectbox(key="data.dataset").set_value(upload)
    _run(at)
    assert any(DISCLAIMER in c.value for c in at.caption)
    train = load_split(upload, "train")
    assert any(f"of {len(train)} in train" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 3  # class balance, split sizes, histogram
    assert any("my_lesions.zip" in m.value for m in at.markdown)  # the upload's card
    assert at.session_state[DATASET_KEY] == upload  # the choice the other pages read
    # The Augment page's gallery then starts from the upload's training images.
    at = AppTest.from_file(str(PAGES / "2_Augment.py"), default_timeout=120)
    at.session_state[DATASET_KEY] = upload
    _run(at)
    assert at.slider(key="augment.image_index").max == len(train)
    assert any(caption.startswith("original · case") for element in at.get("image")
               for caption in [img.caption for img in element.proto.imgs])


def test_preview_choices_are_offered_for_training(upload):
    from unet_demo.ui.data_ui import TRAINING_INPUT_KEY

    at = _run(AppTest.from_file(str(PAGES / "1_Data.py"), default_timeout=120))
    at.selectbox(key="data.dataset").set_value(upload)
    _run(at)
    at.select_slider(key="data.height").set_value(96)
    at.toggle(key="data.clahe").set_value(True)
    _run(at)
    assert any(f"--dataset {upload} --image-size 96 --intensity clahe" in code.value
               for code in at.code)
    at.button(key="data.use_for_training").click()
    _run(at)
    assert at.session_state[TRAINING_INPUT_KEY] == {
        "dataset": upload, "image_size": 96, "normalization": "clahe"}
    at.toggle(key="data.clahe").set_value(False)
    at.selectbox(key="data.norm").set_value("zscore")
    _run(at)
    assert any("--image-size 96 --intensity zscore" in code.value for code in at.code)


def test_a_model_is_evaluated_on_the_upload_test_split(upload, monkeypatch):
    from unet_demo.data.sources import load_split

    monkeypatch.setenv(BUNDLED_DIR_ENV, str(shared_tiny_models_dir()))
    at = _run(AppTest.from_file(str(PAGES / "5_Evaluate.py"), default_timeout=180))
    assert upload in at.selectbox(key="evaluate.dataset").options
    at.selectbox(key="evaluate.dataset").set_value(upload)
    _run(at)
    table = next(frame.value for frame in at.dataframe if "dice" in frame.value.columns)
    test_ids = load_split(upload, "test").ids
    assert list(table["id"].iloc[:-1]) == test_ids and table["id"].iloc[-1] == "mean"
    assert any(m.label == "mean test Dice" for m in at.metric)


def _form_state(at) -> dict:
    """The Train form's and the Data page's session keys as a plain dict."""
    state = {}
    for key in at._session_state.filtered_state:  # noqa: SLF001  (AppTest has no key list)
        if key.startswith(("train.", "data.", "build.", "augment.", "state.")):
            with contextlib.suppress(KeyError):
                state[key] = at.session_state[key]
    return state


def test_the_train_page_trains_with_the_data_page_input(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    from unet_demo.ui.data_ui import TRAINING_INPUT_KEY
    from unet_demo.ui.state import DATASET_KEY
    from unet_demo.ui.train_ui import spec_from_state

    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(PAGES / "4_Train.py"), default_timeout=120)
    at.session_state[DATASET_KEY] = "synthetic_lesions"
    at.session_state[TRAINING_INPUT_KEY] = {"dataset": "synthetic_lesions", "image_size": 96,
                                            "normalization": "clahe"}
    _run(at)
    box = at.checkbox(key="train.use_data_input")
    assert box.value and "96 px, intensity clahe" in box.label
    spec = spec_from_state(_form_state(at))
    assert (spec.data.image_size, spec.data.normalization) == (96, "clahe")
    box.uncheck()
    _run(at)
    assert spec_from_state(_form_state(at)).data.image_size != 96
