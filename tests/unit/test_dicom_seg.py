"""DICOM SEG out: pydicom reads it back, its frames equal the mask, it references the source."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from unet_demo.data import dicom
from unet_demo.errors import UNetDemoError
from unet_demo.inference.encoders import dicom_seg_bytes


def _source(name):
    return dicom.read_dataset(Path(get_testdata_file(name)).read_bytes(), name)


def _frames_by_segment(seg):
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    numbers = [int(f.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
               for f in seg.PerFrameFunctionalGroupsSequence]
    return frames, numbers


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_jp2klossless.dcm", "SC_rgb_jpeg.dcm"])
def test_binary_seg_reads_back_equal_to_the_mask_and_references_the_source(name):
    source = _source(name)
    rng = np.random.default_rng(0)
    mask = (rng.random((source.Rows, source.Columns)) > 0.7).astype(np.uint8)
    seg = pydicom.dcmread(io.BytesIO(dicom_seg_bytes([source], mask, 1,
                                                     class_names=["background", "brain"])))
    assert seg.Modality == "SEG" and seg.SegmentSequence[0].SegmentLabel == "brain"
    assert np.array_equal(seg.pixel_array, mask)
    referenced = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert referenced.ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert seg.StudyInstanceUID == source.StudyInstanceUID


def test_multi_class_seg_has_one_segment_per_foreground_class():
    source = _source("CT_small.dcm")
    mask = np.zeros((128, 128), np.uint8)
    mask[10:40, 10:40], mask[50:90, 50:90], mask[100:120, 5:60] = 1, 2, 3
    seg = pydicom.dcmread(io.BytesIO(dicom_seg_bytes([source], mask, 4)))
    assert len(seg.SegmentSequence) == 3
    frames, numbers = _frames_by_segment(seg)
    for frame, number in zip(frames, numbers, strict=True):
        assert np.array_equal(frame, (mask == number).astype(np.uint8))


def test_a_series_seg_has_one_frame_per_slice_each_equal_to_its_slice_mask():
    from tests.unit.test_dicom_decoding import _series_zip

    series = dicom.read_series_zip(_series_zip([0.0, 10.0, 5.0]), "series.zip")
    labels = np.zeros((3, 128, 128), np.uint8)
    for index in range(3):
        labels[index, 10 * index:10 * index + 20, 20:60] = 1
    seg = pydicom.dcmread(io.BytesIO(dicom_seg_bytes(series.datasets, labels, 1)))
    assert seg.NumberOfFrames == 3
    by_uid = {ds.SOPInstanceUID: labels[i] for i, ds in enumerate(series.datasets)}
    for group, frame in zip(seg.PerFrameFunctionalGroupsSequence, seg.pixel_array, strict=True):
        source = group.DerivationImageSequence[0].SourceImageSequence[0]
        assert np.array_equal(frame, by_uid[source.ReferencedSOPInstanceUID])
    uids = [item.ReferencedSOPInstanceUID
            for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence]
    assert set(uids) == {ds.SOPInstanceUID for ds in series.datasets}


def test_a_source_that_cannot_carry_a_seg_is_one_sentence():
    source = _source("examples_ybr_color.dcm")  # 30 frames, no Frame of Reference
    with pytest.raises(UNetDemoError, match="cannot carry a DICOM SEG .*PNG mask"):
        dicom_seg_bytes([source], np.zeros((30, source.Rows, source.Columns), np.uint8), 1,
                        source_name="'us.dcm'")
    with pytest.raises(UNetDemoError, match="segment every frame"):
        dicom_seg_bytes([source], np.zeros((source.Rows, source.Columns), np.uint8), 1)
