"""Bundled datasets: every split loads with the promised shapes, labels, leak-free splits and cards."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import time
from pathlib import Path

import numpy as np
import pytest

from unet_demo.data import bundled
from unet_demo.data.bundled import (
    CARD_FIELDS,
    DATASET_NAMES,
    SOURCE_FIELDS,
    SPLITS,
    card_markdown,
    class_fractions,
    get_dataset_info,
    load_card,
    load_split,
    sample_data_dir,
)
from unet_demo.data.synthetic import generate_split
from unet_demo.errors import UNetDemoError
from unet_demo.settings import REPO_ROOT

FILE_DATASETS = ("brain_skullstrip", "brain_tissue", "nuclei")
SLICE_DATASETS = ("brain_skullstrip", "brain_tissue")
MIN_SLICE_DISTANCE = 4  # voxels between slices of different splits (3 dropped + stride 2)
SIZE_BUDGET_BYTES = 15 * 1000 * 1000
PATCH_ID = re.compile(r"^nuclei_r(\d{3})_c(\d{3})$")


def _load_build_script():
    path = REPO_ROOT / "scripts" / "build_sample_data.py"
    spec = importlib.util.spec_from_file_location("build_sample_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_every_split_loads_with_promised_shapes_dtypes_and_labels(name):
    info = get_dataset_info(name)
    seen_labels: set[int] = set()
    all_ids: list[str] = []
    for split in SPLITS:
        arrays = load_split(name, split)
        count = info.split_counts[split]
        assert count > 0
        assert arrays.images.shape == (count, *info.image_size, info.channels)
        assert arrays.images.dtype == np.float32
        assert arrays.masks.shape == (count, *info.image_size)
        assert arrays.masks.dtype == np.uint8
        assert len(arrays.ids) == count
        assert float(arrays.images.min()) >= 0.0 and float(arrays.images.max()) <= 1.0
        assert float(arrays.images.max()) > 0.5, "images should use the intensity range"
        labels = set(np.unique(arrays.masks).tolist())
        assert labels <= set(range(info.num_classes))
        seen_labels |= labels
        all_ids += arrays.ids
    assert seen_labels == set(range(info.num_classes)), "every class appears somewhere"
    assert len(set(all_ids)) == len(all_ids), "ids are unique across splits"


def test_loaded_arrays_are_read_only():
    arrays = load_split("nuclei", "val")
    with pytest.raises(ValueError):
        arrays.images[0, 0, 0, 0] = 1.0
    with pytest.raises(ValueError):
        arrays.masks[0, 0, 0] = 1


@pytest.mark.parametrize("name", SLICE_DATASETS)
def test_brain_slices_never_share_a_slice_index_across_splits(name):
    by_split = {}
    for split in SPLITS:
        arrays = load_split(name, split)
        assert all(plane in ("axial", "coronal") for plane in arrays.planes), arrays.ids[:3]
        by_split[split] = list(zip(arrays.planes, arrays.slice_indices, strict=True))
    planes = {plane for pairs in by_split.values() for plane, _ in pairs}
    assert planes == {"axial", "coronal"}
    for plane in planes:
        indices = {split: {i for p, i in pairs if p == plane} for split, pairs in by_split.items()}
        for first in SPLITS:
            assert indices[first], f"{name} {plane} has no {first} slices"
            for second in SPLITS:
                if first >= second:
                    continue
                assert not indices[first] & indices[second]
                gap = min(abs(a - b) for a in indices[first] for b in indices[second])
                assert gap >= MIN_SLICE_DISTANCE, (name, plane, first, second, gap)


@pytest.mark.parametrize("name", SLICE_DATASETS)
def test_brain_split_is_roughly_70_15_15_and_masks_are_not_empty(name):
    counts = get_dataset_info(name).split_counts
    total = sum(counts.values())
    assert 0.6 <= counts["train"] / total <= 0.8
    for split in ("val", "test"):
        assert 0.08 <= counts[split] / total <= 0.22
    for split in SPLITS:
        masks = load_split(name, split).masks
        assert (masks.reshape(len(masks), -1) > 0).any(axis=1).all(), "near-empty slices skipped"


def test_nuclei_patches_of_different_splits_never_overlap():
    boxes = {}
    for split in SPLITS:
        parsed = [PATCH_ID.match(i) for i in load_split("nuclei", split).ids]
        assert all(parsed)
        boxes[split] = [(int(m.group(1)), int(m.group(2))) for m in parsed]
        for row, col in boxes[split]:
            assert 0 <= row <= 512 - 128 and 0 <= col <= 512 - 128
    size = 128
    for first in SPLITS:
        for second in SPLITS:
            if first >= second:
                continue
            for r1, c1 in boxes[first]:
                for r2, c2 in boxes[second]:
                    overlap = (abs(r1 - r2) < size) and (abs(c1 - c2) < size)
                    assert not overlap, (first, (r1, c1), second, (r2, c2))


def test_nuclei_patches_match_the_source_position_they_claim():
    # Overlapping training patches must agree where they overlap, which only holds if the
    # ids really are the positions in one source image.
    arrays = load_split("nuclei", "train")
    position = {i: n for n, i in enumerate(arrays.ids)}
    first, second = position["nuclei_r000_c000"], position["nuclei_r000_c032"]
    np.testing.assert_array_equal(arrays.images[first, :, 32:], arrays.images[second, :, :96])
    np.testing.assert_array_equal(arrays.masks[first, :, 32:], arrays.masks[second, :, :96])


def test_synthetic_lesions_are_deterministic_fast_and_imbalanced():
    start = time.perf_counter()
    first = generate_split("train", seed=7, count=40)
    elapsed = time.perf_counter() - start
    second = generate_split("train", seed=7, count=40)
    other_seed = generate_split("train", seed=8, count=40)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], other_seed[0])
    assert elapsed < 5.0, f"40 synthetic images took {elapsed:.2f} s"
    assert 0.003 < float(first[1].mean()) < 0.05, "lesions cover a few per cent of pixels"
    # Streams are keyed by (seed, split, index): a shorter request gives the same first images.
    np.testing.assert_array_equal(generate_split("train", seed=7, count=3)[0], first[0][:3])
    val = generate_split("val", seed=7, count=40)[0]
    assert not any(np.array_equal(a, b) for a in val for b in first[0])


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_cards_have_every_field_and_match_the_arrays(name):
    card = load_card(name)
    assert set(CARD_FIELDS) <= set(card), sorted(set(CARD_FIELDS) - set(card))
    assert card["name"] == name
    assert len(card["class_names"]) == card["num_classes"]
    assert set(card["label_meaning"]) == {str(v) for v in range(card["num_classes"])}
    for text_field in ("split_rule", "split_proves", "split_does_not_prove", "modality"):
        assert len(card[text_field]) > 40, text_field
    assert card["derivation"]
    for split in SPLITS:
        masks = load_split(name, split).masks
        assert card["split_counts"][split] == len(masks)
        recomputed = class_fractions(masks, card["num_classes"])
        stored = [card["class_balance"][split][c] for c in card["class_names"]]
        np.testing.assert_allclose(stored, recomputed, atol=1e-5)
    for source in card["sources"]:
        assert set(SOURCE_FIELDS) <= set(source)
        assert source["licence"] and source["notice"]


@pytest.mark.parametrize("name", FILE_DATASETS)
def test_file_cards_record_sources_notices_and_file_hashes(name):
    card = load_card(name)
    for source in card["sources"]:
        assert re.fullmatch(r"[0-9a-f]{64}", source["sha256"]), source["file"]
        assert re.fullmatch(r"[0-9a-f]{64}", source["archive_sha256"]), source["archive"]
        assert source["version"] and source["citation"]
    text = " ".join(f"{s['licence']} {s['notice']} {s['citation']}" for s in card["sources"])
    required = {
        "brain_skullstrip": ("Montreal Neurological Institute", "McGill", "Holmes", "1998"),
        "brain_tissue": ("Montreal Neurological Institute", "McGill", "Fonov", "2009", "2011"),
        "nuclei": ("CC0", "BSD", "Caicedo", "BBBC038"),
    }[name]
    missing = [word for word in required if word not in text]
    assert not missing, f"{name} card lacks {missing}"
    assert "overstate" in card["split_does_not_prove"] or "ONE image" in card["split_does_not_prove"]
    folder = sample_data_dir() / name
    assert set(card["files"]) == {f"{split}.npz" for split in SPLITS}
    for file_name, entry in card["files"].items():
        payload = (folder / file_name).read_bytes()
        assert hashlib.sha256(payload).hexdigest() == entry["sha256"], file_name
        assert len(payload) == entry["bytes"]
    licence_file = (folder / "LICENSE.txt").read_text(encoding="utf-8")
    assert all(source["notice"] in licence_file for source in card["sources"])
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert readme == card_markdown(card) + "\n", "README.md is stale: rerun the build script"


def test_sample_data_fits_the_size_budget():
    files = [p for p in Path(sample_data_dir()).rglob("*") if p.is_file()]
    assert files
    assert sum(p.stat().st_size for p in files) <= SIZE_BUDGET_BYTES


def test_block_assignment_of_the_build_script_is_leak_free_and_70_15_15():
    script = _load_build_script()
    assigned = script.assign_slice_blocks(10, 169)
    by_split = {s: sorted(i for i, v in assigned.items() if v == s) for s in SPLITS}
    total = len(assigned)
    assert abs(len(by_split["train"]) / total - 0.70) < 0.06
    for split in ("val", "test"):
        assert abs(len(by_split[split]) / total - 0.15) < 0.05
    for first in SPLITS:
        for second in SPLITS:
            if first < second:
                gap = min(abs(a - b) for a in by_split[first] for b in by_split[second])
                assert gap > script.GAP_VOXELS


def test_unknown_names_and_missing_files_raise_project_errors(tmp_path, monkeypatch):
    with pytest.raises(UNetDemoError, match="brain_skullstrip"):
        get_dataset_info("brain")
    with pytest.raises(UNetDemoError, match="train"):
        load_split("nuclei", "training")
    monkeypatch.setenv("UNET_DEMO_SAMPLE_DATA_DIR", str(tmp_path))
    bundled._stored_card.cache_clear()
    bundled._cached_split.cache_clear()
    try:
        with pytest.raises(UNetDemoError, match="build_sample_data.py"):
            load_card("nuclei")
        with pytest.raises(UNetDemoError, match="build_sample_data.py"):
            load_split("brain_tissue", "val")
    finally:
        bundled._stored_card.cache_clear()
        bundled._cached_split.cache_clear()
