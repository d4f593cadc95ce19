"""Every test file pydicom and nibabel ship, through ``predict`` with the bundled brain model:
no traceback, every refusal one sentence-ish naming its file, every compressed DICOM image
decoded and segmented except the known undecodable ones (see benchmarks/sweep_test_files.py)."""

from __future__ import annotations

import pytest

from benchmarks.sweep_test_files import summarise, sweep

pytestmark = pytest.mark.slow  # one predict over ~210 files: about 30 s on 2 cores

# Compressed files pylibjpeg cannot decode (non-conforming JPEG / J2K streams; GDCM reads them).
# A new name here means a compressed file stopped decoding: that must fail.
KNOWN_UNDECODABLE = {"JPEG-lossy.dcm", "JPEG2000-embedded-sequence-delimiter.dcm"}
MIN_SIZE = 8  # the CLI's smallest image side


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return sweep(work=tmp_path_factory.mktemp("sweep"))


@pytest.fixture(scope="module")
def summary(records):
    return summarise(records)


def test_no_traceback_and_every_file_has_an_outcome(records, summary):
    broken = {r["name"]: r.get("message") for r in records if r["status"] == "traceback"}
    assert not broken, broken
    assert {r["status"] for r in records} <= {"segmented", "refused"}
    assert summary["files"] == summary["segmented"] + summary["refused"]
    assert summary["pydicom_files"] >= 150 and summary["nibabel_nifti_files"] >= 5


def test_every_refusal_names_its_file_in_one_short_message(records):
    refused = [r for r in records if r["status"] == "refused"]
    assert refused
    for record in refused:
        message = record["message"]
        assert record["name"] in message, message
        assert "\n" not in message and "Traceback" not in message, message
        assert 20 < len(message) < 600, message


def test_every_compressed_dicom_image_is_decoded_and_segmented(records, summary):
    compressed = [r for r in records if r["dicom"] and r["pixel_data"] and r["compressed"]]
    # The sweep did find them (a header-reading bug would make this list empty).
    assert len(compressed) >= 30
    syntaxes = " / ".join(summary["compressed_transfer_syntaxes"])
    for family in ("RLE Lossless", "JPEG Baseline", "JPEG 2000", "JPEG-LS", "JPEG Lossless"):
        assert family in syntaxes, syntaxes
    for record in compressed:
        if record["status"] == "segmented":
            continue
        message = record["message"]
        if record["name"] in KNOWN_UNDECODABLE:
            assert "could not be decoded" in message and "gdcm" in message.lower(), message
        else:  # only an image too small for any model may be refused
            assert min(record["rows"] or 0, record["columns"] or 0) < MIN_SIZE, message
            assert f"at least {MIN_SIZE}x{MIN_SIZE}" in message, message
    assert summary["compressed_segmented"] >= 30


def test_images_segment_and_files_without_an_image_are_refused(records, summary):
    assert summary["segmented"] >= 30
    assert summary["nifti_segmented"] >= 5
    for record in records:
        if record["source"] == "pydicom" and not record["pixel_data"]:
            assert record["status"] == "refused", record["name"]
    # Every segmented file is foreign to a brain skull-strip model trained on one subject.
    assert summary["segmented_ood_flagged"] == summary["segmented"]
