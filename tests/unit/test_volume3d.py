"""3D U-Net for real: the bundled volume dataset, 3D patches, a tiny run, 3D scores, 3D segmenting.

The run trains on 16-voxel cubes with 4 base filters for 2 epochs (XLA off: compiling a 3D step
costs more than these few steps), so the file stays well under a minute on two cores.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from unet_demo.config import DataConfig, TrainConfig, UNetConfig
from unet_demo.data.bundled import SPLITS, sample_data_dir
from unet_demo.data.volumes import (
    grid_starts,
    load_volume,
    load_volume_card,
    prepare_volume_split,
    region_patches,
)
from unet_demo.errors import UNetDemoError
from unet_demo.settings import REPO_ROOT
from unet_demo.training.spec import RunSpec


def _boxes() -> dict[str, tuple[tuple[int, int], ...]]:
    return load_volume("brain_volume").regions


# --------------------------------------------------------------------------- the dataset

def test_split_boxes_do_not_overlap_and_keep_a_gap():
    boxes = _boxes()
    shape = load_volume("brain_volume").image.shape
    for first in SPLITS:
        for second in SPLITS:
            if first >= second:
                continue
            # Boxes are apart along at least one axis by a gap of 4 voxels (8 mm) or more.
            gaps = [max(b[0] - a[1], a[0] - b[1]) for a, b in zip(boxes[first], boxes[second],
                                                                    strict=True)]
            assert max(gaps) >= 4, (first, second, gaps)
    for box in boxes.values():
        assert all(0 <= a < b <= s for (a, b), s in zip(box, shape, strict=True))


def test_patch_ids_stay_inside_their_own_box():
    boxes = _boxes()
    for split in SPLITS:
        images, masks, ids = region_patches("brain_volume", split, 16)
        assert images.shape[1:] == (16, 16, 16, 1) and masks.shape == images.shape[:-1]
        for tag in ids:
            corner = [int(part[1:]) for part in tag.split("_")[1:4]]
            for start, (low, high) in zip(corner, boxes[split], strict=True):
                assert low <= start and start + 16 <= high, (split, tag)


def test_volume_files_match_the_card_and_the_build_script():
    card = load_volume_card("brain_volume")
    folder = sample_data_dir() / "brain_volume"
    for name, entry in card["files"].items():
        payload = (folder / name).read_bytes()
        assert hashlib.sha256(payload).hexdigest() == entry["sha256"]
        assert len(payload) == entry["bytes"] < 800_000
    spec = importlib.util.spec_from_file_location(
        "build_volume_data", REPO_ROOT / "scripts" / "build_volume_data.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert {k: [list(p) for p in v] for k, v in script.REGIONS.items()} == card["regions"]
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert readme == script.volume_card_markdown(card) + "\n"
    assert "Montreal Neurological Institute" in (folder / "LICENSE.txt").read_text()
    volume = load_volume("brain_volume")
    assert volume.spacing == (2.0, 2.0, 2.0) and 0.15 < float(volume.mask.mean()) < 0.4


def test_training_patches_come_with_mirrors_and_can_be_cut():
    images, masks, ids = prepare_volume_split("brain_volume", "train", 16)
    assert ids[1] == ids[0] + "_flip"
    np.testing.assert_array_equal(images[1], images[0][::-1])
    np.testing.assert_array_equal(masks[1], masks[0][::-1])
    few = prepare_volume_split("brain_volume", "train", 16, max_images=6, seed=1)
    assert len(few[2]) == 6 and set(few[2]) <= set(ids)
    with pytest.raises(UNetDemoError, match="does not fit"):
        grid_starts(10, 16, 8)


# --------------------------------------------------------------------------- 3D inference

def test_sliding_window_reproduces_an_identity_model_and_pads_small_volumes():
    from unet_demo.inference.volume3d import sliding_window_probabilities

    rng = np.random.default_rng(0)
    volume = rng.random((21, 10, 17)).astype(np.float32)  # 10 < the 16-voxel cube
    probs = sliding_window_probabilities(lambda cubes: cubes, volume, (16, 16, 16))
    np.testing.assert_allclose(probs[..., 0], volume, atol=1e-6)


def test_segment_volume_3d_resamples_to_the_model_spacing_and_back():
    from unet_demo.inference.volume3d import segment_volume_3d

    seen = []

    def model(cubes):
        seen.append(cubes.shape)
        return cubes

    volume = np.zeros((40, 40, 20), np.float32)
    volume[10:30, 10:30, 5:15] = 100.0
    labels, mm3 = segment_volume_3d(model, volume, patch=(8, 8, 8), num_classes=1,
                                    zooms=(1.0, 1.0, 2.0), model_spacing=(2.0, 2.0, 2.0))
    assert labels.shape == volume.shape and seen[0][1:] == (8, 8, 8, 1)
    assert mm3[1] == pytest.approx(20 * 20 * 10 * 2.0, rel=0.15)


# --------------------------------------------------------------------------- a tiny 3D run

def _tiny_spec(**train) -> RunSpec:
    return RunSpec(
        data=DataConfig(dataset="brain_volume", image_size=16, max_train_images=8),
        model=UNetConfig(variant="unet3d", depth=2, base_filters=4, normalization="group"),
        train=TrainConfig(loss="bce_dice", learning_rate=3e-3, epochs=2, batch_size=4,
                          **train))


def test_a_tiny_3d_run_trains_and_is_scored_in_3d(tmp_path, monkeypatch, capsys):
    from unet_demo.training.events import read_events
    from unet_demo.training.runner import run_training

    monkeypatch.setenv("UNET_DEMO_XLA", "0")
    run_dir = run_training(_tiny_spec(augment=True), tmp_path / "run")
    kinds = [type(event).__name__ for event in read_events(run_dir)[0]]
    assert kinds[0] == "Started" and kinds.count("EpochEnd") == 2 and kinds[-1] == "Finished"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"]["input_depth"] == config["model"]["input_width"] == 16
    assert config["train"]["augment"] is False  # 2-D augmentation does not apply to cubes
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = metrics["test"]
    assert metrics["test_images"] == 1, test
    assert 0.0 <= test["dice"] <= 1.0 and test["hd95_mm"] > 0.0 and test["spacing_mm"] == 2.0
    box = load_volume("brain_volume").region("test")[1]
    assert test["voxels"] == box.size
    with np.load(run_dir / "snapshots" / "epoch_0002.npz") as snapshot:
        assert snapshot["images"].shape[1:] == (16, 16, 1) and snapshot["labels"].ndim == 3
    from unet_demo.inference.volume3d import list_volume_models, open_volume_model

    found = list_volume_models(tmp_path, REPO_ROOT)
    assert found[f"run: {run_dir.name}"] == run_dir
    model = open_volume_model(run_dir)
    assert model.patch == (16, 16, 16) and model.spacing == (2.0, 2.0, 2.0)
    from unet_demo.cli import main

    capsys.readouterr()
    assert main(["evaluate", "--run", str(run_dir), "--split", "val"]) == 0
    printed = capsys.readouterr().out
    assert "brain_volume/val in 3D" in printed and "hd95_mm" in printed


@pytest.mark.parametrize(("dataset", "variant"), [("brain_volume", "classic"),
                                                   ("nuclei", "unet3d")])
def test_2d_and_3d_do_not_mix(tmp_path, dataset, variant):
    from unet_demo.training.runner import run_training

    spec = RunSpec(data=DataConfig(dataset=dataset, image_size=16),
                   model=UNetConfig(variant=variant, depth=1, base_filters=2),
                   train=TrainConfig(epochs=1, batch_size=2))
    with pytest.raises(UNetDemoError, match="volume datasets"):
        run_training(spec, Path(tmp_path) / "run")


def test_3d_and_slice_by_slice_2d_are_timed_and_scored_on_the_same_volume(tmp_path):
    import keras

    from unet_demo.evaluation.volume import compare_3d_with_slices
    from unet_demo.inference.registry import open_model
    from unet_demo.inference.volume3d import open_volume_model
    from unet_demo.models.builder import build_unet

    cfg = UNetConfig(variant="unet3d", input_depth=16, input_height=16, input_width=16,
                     depth=1, base_filters=2, normalization="none")
    keras.utils.set_random_seed(0)
    build_unet(cfg).save(tmp_path / "model.keras")
    (tmp_path / "config.json").write_text(json.dumps(
        {"data": {"dataset": "brain_volume"}, "model": cfg.to_dict()}))
    volume = load_volume("brain_volume")
    crop = (slice(None), slice(None), slice(40, 46))  # six whole axial slices
    result = compare_3d_with_slices(
        open_volume_model(tmp_path), open_model("bundled:brain_skullstrip"),
        volume.image[crop], (2.0, 2.0, 2.0), reference=volume.mask[crop])
    assert result.labels_3d.shape == result.labels_2d.shape == (90, 108, 6)
    assert result.seconds_3d > 0 and result.seconds_2d > 0
    assert 0.0 <= result.agreement_dice <= 1.0
    assert result.dice_2d > 0.8  # the trained 2D model finds the brain in these slices
    assert result.hd95_2d_mm >= 0.0 and result.dice_3d is not None


def test_volume_splits_come_through_the_one_data_door():
    from unet_demo.data.sources import declared_label_count, is_binary, prepare_split

    images, masks, ids = prepare_split(DataConfig(dataset="brain_volume", image_size=32), "val")
    assert images.shape[1:] == (32, 32, 32, 1) and len(ids) == len(masks)
    assert is_binary("brain_volume") and declared_label_count("brain_volume") == 2
    with pytest.raises(UNetDemoError, match="minmax"):
        prepare_split(DataConfig(dataset="brain_volume", normalization="zscore"), "val")
