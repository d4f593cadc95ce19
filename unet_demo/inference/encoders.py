"""Mask file encoders: label masks as PNG, RGB pictures as PNG, label volumes as NIfTI (on the
input's own affine), masks of DICOM input as DICOM SEG (highdicom).

Shared by the Segment page downloads and ``python -m unet_demo predict``.

Example:
    >>> import numpy as np
    >>> mask_png_bytes(np.eye(4, dtype=np.uint8), 1)[:4]
    b'\\x89PNG'
"""

from __future__ import annotations

import gzip
import io

import numpy as np

from unet_demo.data.readers import IMAGE_SUFFIXES


def mask_png_bytes(labels: np.ndarray, num_classes: int) -> bytes:
    """Encode a label mask as PNG: binary masks as 0/255, multi-class as label numbers 0..C-1.

    Args:
        labels: (H, W) integer labels.
        num_classes: label count (1 or 2 = binary).

    Example:
        >>> mask_png_bytes(np.eye(4, dtype=np.uint8), 1)[:4]
        b'\\x89PNG'
    """
    from PIL import Image

    array = np.asarray(labels).astype(np.uint8)
    if num_classes <= 2:
        array = np.where(array > 0, 255, 0).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def rgb_png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an (H, W, 3) image (uint8, or float in [0, 1]) as PNG bytes.

    Example:
        >>> rgb_png_bytes(np.zeros((2, 2, 3)))[:4]
        b'\\x89PNG'
    """
    from PIL import Image

    array = np.asarray(rgb)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def nifti_mask_bytes(labels_ras: np.ndarray, source_bytes: bytes, source_name: str) -> bytes:
    """Encode a label volume as .nii.gz on the source NIfTI's own voxel grid, affine and header.

    The readers reorient volumes to RAS+; this undoes that reorientation so the mask has the
    same array order, shape, affine (qform/sform) and voxel size as the uploaded file and
    overlays on it in any viewer.

    Args:
        labels_ras: (X, Y, Z) labels in RAS+ order (as produced by `segment_volume`).
        source_bytes: the original .nii/.nii.gz bytes.
        source_name: its file name (for messages).

    Example:
        >>> from pathlib import Path
        >>> import nibabel as nib
        >>> from nibabel.testing import data_path
        >>> source = (Path(data_path) / "anatomical.nii").read_bytes()  # 33x41x25 voxels
        >>> mask = nifti_mask_bytes(np.ones((33, 41, 25), np.uint8), source, "anatomical.nii")
        >>> written = nib.Nifti1Image.from_bytes(gzip.decompress(mask))
        >>> same_grid = np.allclose(written.affine, nib.Nifti1Image.from_bytes(source).affine)
        >>> written.shape, written.get_data_dtype(), bool(same_grid)
        ((33, 41, 25), dtype('uint8'), True)
    """
    import nibabel as nib
    from nibabel import orientations

    from unet_demo.data import validation

    checked = validation.check_nifti(source_bytes, source_name)
    image_class = nib.Nifti2Image if checked.header.sizeof_hdr == 540 else nib.Nifti1Image
    source = image_class.from_bytes(checked.raw)
    labels = np.asarray(labels_ras, dtype=np.uint8)
    ornt = orientations.io_orientation(source.affine)
    if not np.isnan(ornt).any():
        inverse = np.zeros_like(ornt)
        for stored_axis, (ras_axis, flip) in enumerate(ornt):
            inverse[int(ras_axis)] = (stored_axis, flip)
        labels = orientations.apply_orientation(labels, inverse)
    stored_shape = tuple(int(v) for v in checked.shape[:3])
    labels = labels.reshape(stored_shape) if labels.size == int(np.prod(stored_shape)) else labels
    header = source.header.copy()
    header.set_data_dtype(np.uint8)
    header.set_slope_inter(1.0, 0.0)
    mask = image_class(labels, source.affine, header=header)
    mask.header["descrip"] = b"unet-demo mask; not for diagnosis"
    return gzip.compress(mask.to_bytes(), compresslevel=6, mtime=0)


MASK_SOURCE_SUFFIXES = tuple(sorted((*IMAGE_SUFFIXES, ".gz"), key=len, reverse=True))
"""Endings stripped from an image file name to name its mask (the readable image endings of
`unet_demo.data.readers.IMAGE_SUFFIXES` plus a bare ".gz", longest first)."""


def mask_file_stem(name: str) -> str:
    """The name of an image file without folders and its image ending, to name its mask.

    Args:
        name: an uploaded or command-line file name.

    Example:
        >>> mask_file_stem("scans/brain.nii.gz"), mask_file_stem(".png")
        ('brain', 'image')
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    for suffix in MASK_SOURCE_SUFFIXES:
        if base.lower().endswith(suffix):
            return base[: -len(suffix)] or "image"
    stem = base.rsplit(".", 1)[0] if "." in base[1:] else base
    return stem or "image"


SEG_MANUFACTURER = "unet-demo"
SEG_SERIES_NUMBER = 9001


def dicom_seg_bytes(
    sources: list,
    labels: np.ndarray,
    num_classes: int,
    *,
    class_names: list[str] | None = None,
    model_name: str = "unet-demo U-Net",
    source_name: str = "the DICOM file",
) -> bytes:
    """Encode a label mask as a DICOM Segmentation object (highdicom) on the source images.

    The SEG references every source instance (so 3D Slicer and OHIF place it on them), has one
    segment per foreground class and one frame per source frame and segment (empty frames kept);
    each frame names its source instance (DerivationImageSequence), and for a series highdicom
    orders the frames along the slice normal.

    Args:
        sources: the source datasets (`unet_demo.data.dicom.read_dataset`): one file (single- or
            multi-frame), or the ordered slices of a series.
        labels: (rows, cols) for one single-frame source, else (frames, rows, cols) labels.
        num_classes: label count (1 or 2 = binary).
        class_names: names per label (index 0 = background); default "class k".
        model_name: recorded as the segmentation algorithm.
        source_name: the upload's name, for messages.

    Raises:
        UNetDemoError: the source cannot carry a SEG (e.g. no Frame of Reference in a file that
            needs one); the message says so in one sentence.

    Example:
        >>> from pathlib import Path
        >>> import pydicom
        >>> from pydicom.data import get_testdata_file
        >>> from unet_demo.data.dicom import read_dataset
        >>> ct = read_dataset(Path(get_testdata_file("CT_small.dcm")).read_bytes(), "ct.dcm")
        >>> mask = np.zeros((128, 128), np.uint8); mask[40:80, 30:90] = 1
        >>> seg = pydicom.dcmread(io.BytesIO(dicom_seg_bytes([ct], mask, 1)))
        >>> seg.Modality, bool((seg.pixel_array == mask).all())
        ('SEG', True)
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from unet_demo.errors import UNetDemoError

    array = np.asarray(labels).astype(np.uint8)
    if array.ndim == 2:
        array = array[None]
    foreground = [1] if num_classes <= 2 else list(range(1, int(num_classes)))
    if num_classes <= 2:
        array = (array > 0).astype(np.uint8)
    names = list(class_names or [])
    algorithm = hd.AlgorithmIdentificationSequence(
        name=model_name[:64], family=codes.DCM.ArtificialIntelligence, version="1")
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=(names[number] if number < len(names) else f"class {number}")[:64],
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
        )
        for number in foreground
    ]
    for ds in sources:
        missing = [key for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                                   "SOPClassUID") if not ds.get(key)]
        if missing:
            raise UNetDemoError(f"{source_name} has no {' or '.join(missing)}, which a DICOM SEG "
                                "must reference, so no SEG can be made; download the PNG mask "
                                "instead.")
    frames = int(sum(int(ds.get("NumberOfFrames", 1) or 1) for ds in sources))
    if len(array) != frames:
        raise UNetDemoError(f"The mask has {len(array)} frame(s) but {source_name} has {frames}; "
                            "segment every frame before saving a DICOM SEG.")
    pixel_array = array[0] if frames == 1 else array
    try:
        segmentation = hd.seg.Segmentation(
            source_images=list(sources), pixel_array=pixel_array,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions, series_instance_uid=hd.UID(),
            series_number=SEG_SERIES_NUMBER, sop_instance_uid=hd.UID(), instance_number=1,
            manufacturer=SEG_MANUFACTURER, manufacturer_model_name=model_name[:64],
            software_versions="unet-demo", device_serial_number="0",
            series_description="unet-demo mask; not for diagnosis",
            content_description="Education and research only", omit_empty_frames=False,
        )
    except (ValueError, TypeError, AttributeError, KeyError) as error:
        reason = str(error).rstrip(".")
        raise UNetDemoError(
            f"{source_name} cannot carry a DICOM SEG ({reason[:200]}); download the PNG mask "
            "instead.") from None
    buffer = io.BytesIO()
    segmentation.save_as(buffer)
    return buffer.getvalue()
