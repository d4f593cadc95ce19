"""Segment page with the bundled models: the OOD verdict, DICOM uploads, frames, SEG download."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from streamlit.testing.v1 import AppTest

from tests.bad_files import png_bytes

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "6_Segment.py")


@pytest.fixture
def app(monkeypatch, tmp_path) -> AppTest:
    monkeypatch.delenv("UNET_DEMO_BUNDLED_MODELS_DIR", raising=False)
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    assert "brain extraction" in at.selectbox(key="segment.model").value.lower()
    return at


def _upload(at, name, data, mime="application/octet-stream"):
    at.file_uploader(key="segment.uploader").set_value((name, data, mime)).run()
    assert not at.exception, at.exception


def test_a_foreign_photograph_gets_the_plain_verdict(app):
    import skimage.data

    _upload(app, "camera.png", png_bytes(skimage.data.camera()), "image/png")
    assert any("OOD score" in e.value and "expect nonsense" in e.value for e in app.error), \
        [e.value for e in app.error]


def test_a_dicom_upload_is_segmented_flagged_and_offers_a_seg(app):
    _upload(app, "CT_small.dcm", Path(get_testdata_file("CT_small.dcm")).read_bytes())
    assert any("expect nonsense" in e.value for e in app.error)
    labels = [b.label for b in app.get("download_button")]
    assert {"Mask (PNG)", "Mask (DICOM SEG)"} <= set(labels), labels


def test_an_in_domain_slice_passes(app):
    from unet_demo.data.bundled import load_split

    image = load_split("brain_skullstrip", "test").images[5, ..., 0]
    _upload(app, "slice.png", png_bytes(np.round(image * 255).astype(np.uint8)), "image/png")
    assert any("OOD score" in s.value for s in app.success), [s.value for s in app.success]
    assert not any("OOD score" in e.value for e in app.error)


def test_a_multi_frame_dicom_offers_a_frame_picker_and_segments_all_frames(app):
    _upload(app, "us.dcm", Path(get_testdata_file("SC_rgb_rle_2frame.dcm")).read_bytes())
    frame = app.slider(key="segment.frame.0")
    assert frame.max == 2
    frame.set_value(2).run()
    assert not app.exception, app.exception
    app.button(key="segment.frames.0").click().run()
    assert not app.exception, app.exception
    assert "Mask (DICOM SEG)" in [b.label for b in app.get("download_button")]
    assert any("2 frames segmented" in c.value for c in app.caption)


def test_a_series_zip_is_segmented_and_a_broken_one_refused(app):
    from tests.unit.test_dicom_decoding import _series_zip

    _upload(app, "series.zip", _series_zip([5.0, 0.0, 10.0]), "application/zip")
    assert any("3 slices" in c.value for c in app.caption)
    app.button(key="segment.series.0").click().run()
    assert not app.exception, app.exception
    assert "Mask (DICOM SEG)" in [b.label for b in app.get("download_button")]
    assert any("expect nonsense" in e.value for e in app.error)  # CT slices, brain model
    _upload(app, "gaps.zip", _series_zip([0.0, 5.0, 20.0]), "application/zip")
    assert any("unevenly spaced" in e.value for e in app.error)
