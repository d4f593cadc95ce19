"""``predict --json`` carries the OOD score; ``--seg`` writes a DICOM SEG; frames; refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.data import get_testdata_file

from tests.bad_files import png_bytes
from unet_demo.cli import main


def _run(capsys, *args):
    code = main(["predict", *args, "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_ct_slice_on_the_brain_model_is_flagged_and_gets_a_seg(tmp_path, capsys):
    out = tmp_path / "out"
    code, report, _ = _run(capsys, "--model", "bundled:brain_skullstrip", "--input",
                           get_testdata_file("CT_small.dcm"), "--out", str(out), "--seg")
    assert code == 0
    entry = report["files"][0]
    assert entry["ood"]["flagged"] and entry["ood"]["score"] > 1
    assert "expect nonsense" in entry["ood"]["verdict"]
    seg = pydicom.dcmread(out / "CT_small_seg.dcm")
    mask = np.asarray(Image.open(out / "CT_small_mask.png")) > 0
    assert entry["seg"] == str(out / "CT_small_seg.dcm")
    assert np.array_equal(seg.pixel_array.astype(bool), mask)


def test_an_in_domain_slice_passes(tmp_path, capsys):
    from unet_demo.data.bundled import load_split

    image = load_split("brain_skullstrip", "test").images[3, ..., 0]
    path = tmp_path / "slice.png"
    path.write_bytes(png_bytes(np.round(image * 255).astype(np.uint8)))
    code, report, _ = _run(capsys, "--model", "bundled:brain_skullstrip", "--input", str(path),
                           "--out", str(tmp_path / "out"))
    assert code == 0 and report["files"][0]["ood"]["flagged"] is False


def test_every_frame_of_a_multi_frame_file_and_a_refusal(tmp_path, capsys):
    out = tmp_path / "out"
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(Path(get_testdata_file("JPEG-lossy.dcm")).read_bytes())
    code, report, err = _run(capsys, "--model", "bundled:nuclei", "--input",
                             get_testdata_file("SC_rgb_rle_2frame.dcm"), str(bad),
                             "--out", str(out), "--all-frames")
    assert code == 2 and report["failed"] == 1
    frames = report["files"][0]
    assert frames["frames"] == 2 and len(frames["output"]) == 2
    assert all(Path(p).is_file() for p in frames["output"])
    refused = report["files"][1]
    assert not refused["ok"] and "broken.dcm" in refused["error"]
    assert "Traceback" not in err and "could not be decoded" in err


def test_a_series_zip_is_segmented_as_a_volume_with_one_seg(tmp_path, capsys):
    from tests.unit.test_dicom_decoding import _series_zip

    archive = tmp_path / "series.zip"
    archive.write_bytes(_series_zip([5.0, 0.0, 10.0]))
    out = tmp_path / "out"
    code, report, _ = _run(capsys, "--model", "bundled:brain_skullstrip", "--input",
                           str(archive), "--out", str(out), "--seg")
    assert code == 0
    entry = report["files"][0]
    assert entry["kind"] == "dicom series" and entry["shape"] == [3, 128, 128]
    assert entry["slices"] == ["slice1.dcm", "slice0.dcm", "slice2.dcm"]
    assert entry["spacing_mm"][2] == 5.0 and entry["ood"]["flagged"]
    seg = pydicom.dcmread(out / "series_seg.dcm")
    assert seg.NumberOfFrames == 3
    broken = tmp_path / "broken.zip"
    broken.write_bytes(_series_zip([0.0, 5.0, 20.0]))
    code, report, err = _run(capsys, "--model", "bundled:brain_skullstrip", "--input",
                             str(broken), "--out", str(out))
    assert code == 2 and "unevenly spaced" in report["files"][0]["error"]
