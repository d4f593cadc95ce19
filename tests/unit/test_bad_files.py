"""Every generated bad file is refused with a UNetDemoError and a useful message."""

from __future__ import annotations

import time

import pytest

from tests.bad_files import BAD_FILE_BUILDERS, bad_file_names, build_bad_file, generate_bad_files
from unet_demo.data.readers import read_image_bytes, read_image_file, read_mask_file
from unet_demo.errors import UNetDemoError


def test_generator_makes_at_least_30_distinct_files(tmp_path):
    written = generate_bad_files(tmp_path)
    assert len(written) >= 30
    assert len({path.name for path, _ in written}) == len(written)
    assert all(path.exists() and why for path, why in written)
    contents = {path.read_bytes() for path, _ in written}
    assert len(contents) == len(written)


@pytest.mark.parametrize("name", bad_file_names())
def test_bad_file_is_refused_with_a_message(name):
    data, why = build_bad_file(name)
    start = time.perf_counter()
    with pytest.raises(UNetDemoError) as caught:
        read_image_bytes(data, name)
    assert time.perf_counter() - start < 2.0, why
    message = str(caught.value)
    assert len(message) > 30 and name in message, message
    assert "Traceback" not in message


@pytest.mark.parametrize("name", bad_file_names())
def test_bad_file_is_refused_as_mask_too(name):
    data, _ = build_bad_file(name)
    with pytest.raises(UNetDemoError):
        read_mask_file(data, name)


def test_bad_files_from_disk(tmp_path):
    for path, why in generate_bad_files(tmp_path):
        with pytest.raises(UNetDemoError):
            read_image_file(path)
        assert why


def test_builders_table_is_consistent():
    names = [name for name, _, _ in BAD_FILE_BUILDERS]
    assert len(names) == len(set(names))


def _valid_samples() -> dict[str, bytes]:
    import gzip
    import io

    import nibabel as nib
    import numpy as np
    import tifffile
    from PIL import Image

    from tests.bad_files import _dicom_bytes

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, (24, 24), dtype=np.uint8)
    samples = {}
    for fmt, ext in (("PNG", "png"), ("JPEG", "jpg")):
        buffer = io.BytesIO()
        Image.fromarray(grey).save(buffer, fmt)
        samples[ext] = buffer.getvalue()
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, grey.astype(np.uint16) * 200)
    samples["tif"] = buffer.getvalue()
    samples["dcm"] = _dicom_bytes(24, 24)
    nii = nib.Nifti1Image(rng.random((12, 12, 12)).astype(np.float32), np.eye(4)).to_bytes()
    samples["nii"] = nii
    samples["nii.gz"] = gzip.compress(nii)
    return samples


@pytest.mark.parametrize("ext", ["png", "jpg", "tif", "dcm", "nii", "nii.gz"])
def test_mutated_valid_files_never_escape_as_other_errors(ext):
    """Bit flips and truncations of valid files: decoded or refused, never a traceback."""
    import numpy as np

    original = _valid_samples()[ext]
    rng = np.random.default_rng(42)
    for trial in range(40):
        data = bytearray(original)
        if trial % 3 == 0:
            data = data[: int(rng.integers(1, len(data)))]
        else:
            for _ in range(int(rng.integers(1, 8))):
                at = int(rng.integers(0, len(data)))
                data[at] = int(rng.integers(0, 256))
        try:
            loaded = read_image_bytes(bytes(data), f"mutant.{ext}")
        except UNetDemoError as error:
            assert str(error)
        else:
            assert loaded.pixels.dtype == np.float32 and loaded.pixels.ndim == 3
