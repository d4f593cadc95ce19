"""Segment page: a bundled test image and real uploads are segmented; bad files are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.bad_files import bad_file_names, build_bad_file, png_bytes
from tests.tiny_model import BUNDLED_DIR_ENV, shared_tiny_models_dir
from unet_demo import DISCLAIMER

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "6_Segment.py")


@pytest.fixture
def app(monkeypatch, tmp_path) -> AppTest:
    monkeypatch.setenv(BUNDLED_DIR_ENV, str(shared_tiny_models_dir()))
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def _lesion_png(size: int = 96) -> bytes:
    """A grey image with one bright disc, like the synthetic lesions."""
    rows, cols = np.mgrid[:size, :size]
    image = np.full((size, size), 60, np.uint8)
    image[(rows - size // 2) ** 2 + (cols - size // 3) ** 2 < (size // 6) ** 2] = 200
    return png_bytes(image)


def _image_count(at: AppTest) -> int:
    return sum(len(element.proto.imgs) for element in at.get("image"))


def _download_labels(at: AppTest) -> list[str]:
    return [button.label for button in at.get("download_button")]


def test_page_offers_model_uploader_and_samples(app):
    assert any(DISCLAIMER in c.value for c in app.caption)
    assert app.selectbox(key="segment.model").value.startswith("Bundled")
    assert len(app.get("file_uploader")) == 1
    assert not app.error
    assert any("Upload one or more images" in i.value for i in app.info)


def test_bundled_test_image_is_segmented_with_downloads(app):
    sample = app.selectbox(key="segment.sample")
    sample.select(sample.options[1]).run()
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    assert _image_count(app) >= 3  # input, overlay, probability map
    assert {"Mask (PNG)", "Overlay (PNG)"} <= set(_download_labels(app))
    # areas carry the class name from the dataset card, not "class 1"
    assert any(m.label == "area of lesion" for m in app.metric), [m.label for m in app.metric]
    assert any("output binary (foreground/background)" in c.value for c in app.caption)


def test_uploaded_png_is_segmented_and_opacity_does_not_rerun_model(app):
    app.file_uploader(key="segment.uploader").set_value(
        ("lesion.png", _lesion_png(), "image/png")).run()
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    assert "Mask (PNG)" in _download_labels(app)
    cached = dict(app.session_state["segment.results"])
    assert len(cached) == 1
    app.slider(key="segment.opacity").set_value(0.9).run()
    assert dict(app.session_state["segment.results"]).keys() == cached.keys()


def test_bad_uploads_are_refused_and_good_file_still_segmented(app):
    bad_names = bad_file_names()
    files = [(name, build_bad_file(name)[0], "application/octet-stream") for name in bad_names]
    files.append(("good.png", _lesion_png(), "image/png"))
    app.file_uploader(key="segment.uploader").set_value(files).run()
    assert not app.exception, app.exception
    assert len(app.error) == len(bad_names), [e.value for e in app.error]
    for error in app.error:
        assert "Traceback" not in error.value and len(error.value) > 20
    assert "Mask (PNG)" in _download_labels(app)
    summary = app.dataframe[0].value
    assert list(summary["status"]).count("ok") == 1
    assert list(summary["status"]).count("refused") == len(bad_names)


def _ct_dicom(size: int = 64) -> bytes:
    """A CT slice in Hounsfield units with a known pixel size (0.5 mm)."""
    import io

    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("ct.dcm", {}, file_meta=meta, preamble=b"\x00" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, generate_uid()
    ds.Modality = "CT"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel = 15, 0, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.PixelSpacing = [0.5, 0.5]
    pixels = np.full((size, size), 1024 + 40, np.uint16)
    pixels[20:40, 20:40] = 1024 + 300
    ds.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_dicom_offers_ct_windows_and_reports_mm2(app):
    app.file_uploader(key="segment.uploader").set_value(
        ("ct.dcm", _ct_dicom(), "application/dicom")).run()
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    window = app.selectbox(key="segment.window.0")
    assert "CT brain" in window.options
    window.select("CT brain").run()
    assert not app.exception and not app.error
    assert all("mm²" in m.value for m in app.metric if m.label.startswith("area of"))


def test_nifti_slice_picker_and_whole_volume_download(app):
    import nibabel as nib

    volume = np.zeros((48, 40, 6), np.float32)
    volume[10:30, 10:25] = 500.0
    data = nib.Nifti1Image(volume, np.diag([1.0, 1.0, 3.0, 1.0])).to_bytes()
    app.file_uploader(key="segment.uploader").set_value(
        ("vol.nii", data, "application/octet-stream")).run()
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    assert app.radio(key="segment.plane.0").value == "axial"
    assert app.slider(key="segment.slice.0.axial").max == 5
    app.radio(key="segment.plane.0").set_value("coronal").run()
    assert app.slider(key="segment.slice.0.coronal").max == 39
    app.button(key="segment.volume.0").click().run()
    assert not app.exception, app.exception
    assert "Mask (NIfTI)" in _download_labels(app)
    assert any(c.value.startswith("Volume: lesion") for c in app.caption)


def test_out_of_distribution_upload_gets_a_warning(app):
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 255, (400, 300, 3), dtype=np.uint8)  # RGB noise, 3x the size
    app.file_uploader(key="segment.uploader").set_value(
        ("photo.png", png_bytes(colour), "image/png")).run()
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    warnings = [w.value for w in app.warning]
    assert any("channel" in w for w in warnings) and any("400x300" in w for w in warnings)
    assert "Mask (PNG)" in _download_labels(app)


def test_uploads_tta_and_opacity_survive_a_round_trip_and_can_be_removed(monkeypatch, tmp_path):
    from unet_demo.ui.segment_ui import UPLOADS_KEY

    monkeypatch.setenv(BUNDLED_DIR_ENV, str(shared_tiny_models_dir()))
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(tmp_path / "runs"))
    home = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")
    at = AppTest.from_file(home, default_timeout=120).run()
    at.switch_page("pages/6_Segment.py").run()
    at.file_uploader(key="segment.uploader").set_value(
        [("lesion.png", _lesion_png(), "image/png"), ("small.png", _lesion_png(64), "image/png")]
    ).run()
    at.slider(key="segment.opacity").set_value(0.8).run()
    at.toggle(key="segment.tta").set_value(True).run()
    assert not at.exception, at.exception
    at.switch_page("pages/7_Learn.py").run()
    at.switch_page("pages/6_Segment.py").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    # the uploader is empty again (a browser cannot refill it) but the files are still here
    assert [f["name"] for f in at.session_state[UPLOADS_KEY]] == ["lesion.png", "small.png"]
    assert any("Your uploads" in m.value for m in at.markdown)
    assert [s.value for s in at.subheader][:2] == ["lesion.png", "small.png"]
    assert "Mask (PNG)" in _download_labels(at)
    assert at.slider(key="segment.opacity").value == 0.8
    assert at.toggle(key="segment.tta").value is True
    assert any("dark where the mirrored predictions agree" in c.value for c in at.caption)
    # remove one, then all
    remove = [b for b in at.button if b.label == "Remove"]
    assert len(remove) == 2
    remove[0].click().run()
    assert [f["name"] for f in at.session_state[UPLOADS_KEY]] == ["small.png"]
    assert [s.value for s in at.subheader][:1] == ["small.png"]
    next(b for b in at.button if b.label == "Remove all").click().run()
    assert not at.session_state[UPLOADS_KEY]
    assert any("Upload one or more images" in i.value for i in at.info)


def test_kept_uploads_are_bounded_and_deduplicated():
    from unet_demo.ui.segment_ui import keep_uploads

    kept, dropped = keep_uploads([], [(f"{i}.png", bytes([i]) * 10) for i in range(5)],
                                 max_files=3)
    assert [f["name"] for f in kept] == ["2.png", "3.png", "4.png"]
    assert dropped == ["0.png", "1.png"]
    again, dropped = keep_uploads(kept, [("copy.png", bytes([4]) * 10)])
    assert again == kept and not dropped
    small, dropped = keep_uploads([], [("a", b"x" * 60), ("b", b"y" * 60)], max_bytes=100)
    assert [f["name"] for f in small] == ["b"] and dropped == ["a"]


def test_a_removed_upload_stays_removed_while_the_uploader_still_holds_it(app):
    app.file_uploader(key="segment.uploader").set_value(
        ("lesion.png", _lesion_png(), "image/png")).run()
    assert [s.value for s in app.subheader][:1] == ["lesion.png"]
    next(b for b in app.button if b.label == "Remove").click().run()
    assert not app.exception, app.exception
    assert "lesion.png" not in [s.value for s in app.subheader]
