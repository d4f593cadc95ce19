"""Dataset ZIP upload: archive refusals, per-file rows, arrays, split, save and load."""

from __future__ import annotations

import io
import stat
import zipfile

import numpy as np
import pytest
from PIL import Image

from unet_demo.data.upload_dataset import (
    SPLITS,
    deterministic_split,
    inspect_zip,
    list_uploaded_datasets,
    load_uploaded_info,
    load_uploaded_split,
    save_uploaded_dataset,
)
from unet_demo.errors import UNetDemoError


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def tiff_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="TIFF")
    return buffer.getvalue()


def pair(seed: int, size: tuple[int, int] = (32, 40)) -> tuple[bytes, bytes]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=size, dtype=np.uint8)
    mask = np.zeros(size, np.uint8)
    mask[4:20, 6:30] = 255  # binary mask saved as 0/255
    return png_bytes(image), png_bytes(mask)


def make_zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def good_members(count: int = 6, prefix: str = "") -> dict[str, bytes]:
    members = {}
    for index in range(count):
        image, mask = pair(index)
        members[f"{prefix}images/case{index:02d}.png"] = image
        members[f"{prefix}masks/case{index:02d}.png"] = mask
    return members


def refused(data: bytes, match: str, **options) -> None:
    with pytest.raises(UNetDemoError, match=match):
        inspect_zip(data, name="data.zip", **options)


# ------------------------------------------------------------------------------- good zips


def test_good_pairs_give_arrays_rows_and_split():
    members = good_members(6, prefix="mydata/")
    members["__MACOSX/mydata/images/._case00.png"] = b"junk"
    members["mydata/.DS_Store"] = b"junk"
    members["mydata/README.txt"] = b"notes"
    report = inspect_zip(make_zip(members), name="data.zip", image_size=32)
    assert report.num_valid == 6 and report.num_skipped == 0
    assert report.images.shape == (6, 32, 32, 1) and report.images.dtype == np.float32
    assert report.images.min() >= 0.0 and report.images.max() <= 1.0
    assert report.masks.shape == (6, 32, 32) and report.masks.dtype == np.uint8
    assert set(np.unique(report.masks)) == {0, 1}  # 0/255 read as binary labels
    assert report.num_classes == 1
    assert report.ids == [f"case{i:02d}" for i in range(6)]
    assert sorted(sum(report.splits.values(), [])) == report.ids
    assert any("macOS" in entry for entry in report.ignored)
    assert any(".DS_Store" in entry for entry in report.ignored)
    assert all(row["status"] == "ok" for row in report.table())


def test_mixed_formats_per_side_are_accepted():
    image = np.random.default_rng(1).integers(0, 256, (24, 24), dtype=np.uint8)
    mask = np.zeros((24, 24), np.uint8)
    mask[2:10, 2:10] = 1
    members = {"images/a.tif": tiff_bytes(image), "masks/a.png": png_bytes(mask)}
    report = inspect_zip(make_zip(members), image_size=16)
    assert report.ids == ["a"] and report.images.shape == (1, 16, 16, 1)


def test_split_is_deterministic_and_grouped():
    stems = [f"case{i:02d}" for i in range(20)]
    first = deterministic_split(stems)
    assert first == deterministic_split(list(reversed(stems)))
    assert [len(first[s]) for s in SPLITS] == [14, 3, 3]
    slices = [f"p{p}_{s:02d}" for p in range(8) for s in range(5)]
    grouped = deterministic_split(slices, group_separator="_")
    for patient in range(8):
        homes = {s for s in SPLITS for stem in grouped[s] if stem.startswith(f"p{patient}_")}
        assert len(homes) == 1


# -------------------------------------------------------------------------- refusals


def test_path_traversal_refused():
    members = good_members(2)
    members["images/../../etc/evil.png"] = b"x"
    refused(make_zip(members), r"'\.\.'")


def test_absolute_path_and_drive_letter_refused():
    refused(make_zip({**good_members(2), "/etc/passwd.png": b"x"}), "absolute path")
    refused(make_zip({**good_members(2), "C:/windows/a.png": b"x"}), "drive letter")
    refused(make_zip({**good_members(2), "images\\..\\a.png": b"x"}), "backslash")


def test_symlink_member_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in good_members(2).items():
            archive.writestr(name, data)
        link = zipfile.ZipInfo("images/link.png")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    refused(buffer.getvalue(), "symbolic link")


def test_encrypted_flag_and_nested_zip_refused():
    data = bytearray(make_zip(good_members(1)))
    central = data.find(b"PK\x01\x02")  # zipfile cannot write encrypted members: set the flag
    data[central + 8] |= 0x1
    refused(bytes(data), "encrypted")
    nested = make_zip({**good_members(2), "images/more.zip": make_zip(good_members(1))})
    refused(nested, "another archive")


def test_zip_bomb_refused_from_central_directory():
    buffer = io.BytesIO()
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("images/bomb.png", "w") as member:
            for _ in range(200):  # 200 MB of zeros, written 1 MB at a time (~200 KB stored)
                member.write(chunk)
        archive.writestr("masks/bomb.png", b"x")
    data = buffer.getvalue()
    assert len(data) < 1_000_000
    refused(data, "expands")


def test_member_lying_about_its_size_refused():
    image, mask = pair(0)
    data = bytearray(make_zip({"images/a.png": image, "masks/a.png": mask},
                              compression=zipfile.ZIP_STORED))
    # Shrink the declared size of images/a.png in its central-directory record.
    archive = zipfile.ZipFile(io.BytesIO(bytes(data)))
    info = archive.getinfo("images/a.png")
    central = data.find(b"PK\x01\x02")
    size_offset = central + 24  # uncompressed size field of the first central record
    assert int.from_bytes(data[size_offset:size_offset + 4], "little") == info.file_size
    data[size_offset:size_offset + 4] = (info.file_size - 10).to_bytes(4, "little")
    refused(bytes(data), "declares|corrupt")


def test_too_many_files_and_total_size_refused():
    refused(make_zip(good_members(6)), "holds 12 files", max_files=10)
    refused(make_zip(good_members(2)), "unpack to", max_total_uncompressed=100)
    refused(b"not a zip at all", "Allowed here: ZIP")


def test_missing_folders_refused():
    image, mask = pair(0)
    refused(make_zip({"a.png": image, "b.png": mask}), "no images/ and masks/")


# ------------------------------------------------------------------------- per-file rows


def test_problem_rows_and_valid_pairs_still_returned():
    members = good_members(4)
    image, _ = pair(10)
    members["images/lonely.png"] = image  # no mask
    members["masks/orphan.png"] = pair(11)[1]  # no image
    big_image, _ = pair(12, size=(48, 48))
    members["images/mismatch.png"] = big_image
    members["masks/mismatch.png"] = pair(12, size=(32, 32))[1]
    labels = np.zeros((32, 40), np.uint8)
    labels[:5] = 1
    labels[5:10] = 2
    members["images/multi.png"] = pair(13)[0]
    members["masks/multi.png"] = png_bytes(labels)
    members["images/broken.png"] = b"\x89PNG\r\n\x1a\n" + b"garbage" * 10
    members["masks/broken.png"] = pair(14)[1]
    report = inspect_zip(make_zip(members), image_size=32, num_classes=1)
    reasons = {row["stem"]: row["reason"] for row in report.rows}
    assert reasons["lonely"] == "missing mask"
    assert reasons["orphan"] == "missing image"
    assert reasons["mismatch"] == "size mismatch"
    assert reasons["multi"] == "unexpected labels"
    assert reasons["broken"] == "unreadable image"
    assert report.ids == [f"case{i:02d}" for i in range(4)]
    assert report.images.shape[0] == 4 and report.num_skipped == 5
    skipped = [row for row in report.rows if row["status"] == "skipped"]
    assert all(row["detail"] for row in skipped)


def test_labels_inferred_and_out_of_range_skipped_without_num_classes():
    labels = np.zeros((32, 40), np.uint8)
    labels[:5], labels[5:10] = 1, 2
    too_many = np.zeros((32, 40), np.uint8)
    too_many[:5] = 200
    members = {
        "images/a.png": pair(0)[0], "masks/a.png": png_bytes(labels),
        "images/b.png": pair(1)[0], "masks/b.png": png_bytes(too_many),
    }
    report = inspect_zip(make_zip(members), image_size=32)
    assert report.ids == ["a"] and report.num_classes == 3
    assert {row["stem"]: row["reason"] for row in report.rows}["b"] == "unexpected labels"


def test_nothing_usable_is_an_archive_error():
    members = {"images/a.png": pair(0)[0], "masks/b.png": pair(1)[1]}
    refused(make_zip(members), "none of its 2")


# ---------------------------------------------------------------------- save and load


def test_save_and_load_round_trip(tmp_path):
    report = inspect_zip(make_zip(good_members(8)), image_size=32)
    dataset_id = save_uploaded_dataset(report, tmp_path)
    assert (tmp_path / "uploads" / dataset_id / "train.npz").is_file()
    assert save_uploaded_dataset(report, tmp_path) == dataset_id  # idempotent
    total = 0
    for split in SPLITS:
        arrays = load_uploaded_split("upload:" + dataset_id, split, root=tmp_path)
        assert arrays.images.dtype == np.float32 and arrays.masks.dtype == np.uint8
        assert arrays.ids == report.splits[split]
        expected = report.split_arrays(split)
        np.testing.assert_array_equal(arrays.images, expected.images)
        np.testing.assert_array_equal(arrays.masks, expected.masks)
        total += len(arrays.ids)
    assert total == 8
    info = load_uploaded_info(dataset_id, root=tmp_path)
    assert info["num_classes"] == 1 and sum(info["split_counts"].values()) == 8
    assert [card["dataset_id"] for card in list_uploaded_datasets(tmp_path)] == [dataset_id]
    with np.load(tmp_path / "uploads" / dataset_id / "val.npz", allow_pickle=False) as npz:
        assert npz["ids"].dtype.kind == "U"  # plain strings, no object arrays


def test_load_refuses_bad_ids(tmp_path):
    with pytest.raises(UNetDemoError, match="not an uploaded dataset id"):
        load_uploaded_split("upload:../../etc", "train", root=tmp_path)
    with pytest.raises(UNetDemoError, match="No uploaded dataset"):
        load_uploaded_split("upload:0123456789abcdef", "train", root=tmp_path)
    with pytest.raises(UNetDemoError, match="split must be"):
        load_uploaded_split("upload:0123456789abcdef", "holdout", root=tmp_path)
