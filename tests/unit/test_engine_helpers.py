"""Helpers moved out of the ui: dataset choices and fit, evaluation figures, single constants.

Real bundled datasets and real scores go in; nothing is mocked.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from unet_demo import config
from unet_demo.data import bundled, readers, sources, upload_dataset
from unet_demo.errors import UNetDemoError
from unet_demo.evaluation.scores import confusion_matrix, threshold_curve
from unet_demo.inference.registry import ModelHandle, compatible_datasets, dataset_fits
from unet_demo.plots.evaluation import (
    confusion_figure,
    dice_distribution_figure,
    threshold_figure,
    uncertainty_figure,
)

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- datasets

def test_dataset_choices_list_every_bundled_dataset_with_its_title():
    choices = sources.dataset_choices()
    assert list(choices)[:len(bundled.DATASET_NAMES)] == list(bundled.DATASET_NAMES)
    for info in bundled.list_datasets():
        assert choices[info.name] == f"{info.title} ({info.name})"


def test_dataset_choices_add_uploads(tmp_path, monkeypatch):
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(tmp_path))
    folder = tmp_path / upload_dataset.UPLOADS_DIRNAME / "0123456789abcdef"
    folder.mkdir(parents=True)
    (folder / "dataset.json").write_text(
        '{"name": "upload:0123456789abcdef", "title": "My scans", "num_classes": 2}')
    if not upload_dataset.list_uploaded_datasets():
        pytest.skip("uploads live elsewhere than UNET_DEMO_RUNS_DIR in this setup")
    assert sources.dataset_choices()["upload:0123456789abcdef"] == (
        "My scans (upload:0123456789abcdef)")


def test_is_binary_follows_the_cards():
    for info in bundled.list_datasets():
        assert sources.is_binary(info.name) is (info.num_classes == 2)
    assert sources.is_binary("nuclei") and not sources.is_binary("brain_tissue")
    with pytest.raises(UNetDemoError):
        sources.is_binary("no_such_dataset")


def test_available_datasets_and_class_balance():
    assert [info.name for info in bundled.available_datasets()] == list(bundled.DATASET_NAMES)
    for info in bundled.available_datasets():
        balance = bundled.class_balance(info.name)
        assert list(balance) == list(bundled.SPLITS)
        for shares in balance.values():
            assert len(shares) == len(info.class_names)
            assert sum(shares) == pytest.approx(1.0, abs=1e-3)


def _handle(num_classes: int, channels: int) -> ModelHandle:
    return ModelHandle(model_id="t", title="t", shared=None, input_shape=(32, 32, channels),
                       num_classes=num_classes, dataset="", card={}, fingerprint=None,
                       source=Path("."))


def test_compatible_datasets_match_classes_and_channels():
    infos = {info.name: info for info in bundled.available_datasets()}
    binary = compatible_datasets(_handle(1, 1))
    assert binary == [name for name, info in infos.items()
                      if info.num_classes == 2 and info.channels == 1]
    assert "nuclei" in binary and "brain_tissue" not in binary
    assert compatible_datasets(_handle(2, 1)) == binary  # 1 sigmoid == 2-class softmax
    assert compatible_datasets(_handle(4, 1)) == ["brain_tissue"]
    assert compatible_datasets(_handle(1, 3)) == []
    assert dataset_fits(2, 1, 1, 1) and not dataset_fits(2, 1, 1, 3)


# --------------------------------------------------------------------------- figures

def test_evaluation_figures_carry_the_data():
    rng = np.random.default_rng(0)
    truth = np.zeros((3, 16, 16), np.uint8)
    truth[:, 4:12, 4:12] = 1
    probabilities = np.clip(truth + rng.normal(0, 0.3, truth.shape), 0, 1)[..., None]
    curve = threshold_curve(probabilities, truth, 11)
    figure = threshold_figure(curve, 0.5, 0.45)
    assert [trace.name for trace in figure.data] == ["Dice", "Precision", "Recall", "best Dice"]
    assert list(figure.data[0].y) == list(curve.dice)
    assert figure.data[3].x[0] == curve.best("dice")[0]
    assert len(figure.layout.shapes) == 2  # chosen + Otsu lines
    assert len(threshold_figure(curve, 0.5, None).layout.shapes) == 1

    prediction = (probabilities[..., 0] >= 0.5).astype(np.uint8)
    counts, normalised = confusion_matrix(truth, prediction, 2)
    heat = confusion_figure(normalised, counts, ["bg", "lesion"])
    assert heat.data[0].text[1][1] == f"{normalised[1, 1]:.2f}"
    assert np.array_equal(np.asarray(heat.data[0].customdata), counts)

    rows = [{"id": f"img{i}", "dice": d} for i, d in enumerate((0.9, 0.5, 0.7))]
    violin = dice_distribution_figure(rows)
    assert list(violin.data[0].y) == [0.9, 0.5, 0.7]
    assert "3 images" in violin.layout.title.text
    assert dice_distribution_figure([{"id": "a", "hd95": 12.0}], "hd95").layout.yaxis.range is None

    variance = np.full((4, 4), 0.5)
    assert uncertainty_figure(variance).data[0].zmax == 0.5
    assert uncertainty_figure(variance / 10).data[0].zmax == 0.25


# --------------------------------------------------------------------------- one definition each

def test_loss_lists_are_one_source_and_every_listed_loss_builds():
    keras = pytest.importorskip("keras")
    from unet_demo.losses import BINARY_LOSSES, MULTICLASS_LOSSES, get_loss

    assert BINARY_LOSSES is config.BINARY_LOSSES and MULTICLASS_LOSSES is config.MULTICLASS_LOSSES
    assert set(config.BINARY_LOSSES) | set(config.MULTICLASS_LOSSES) == set(config.LOSSES)
    assert set(config.LOSS_LABELS) == set(config.LOSSES)
    assert "generalized_dice" in config.losses_for(True)
    for binary, classes in ((True, 1), (False, 3)):
        for name in config.losses_for(binary):
            assert isinstance(get_loss(config.TrainConfig(loss=name), classes),
                              keras.losses.Loss)
        for name in set(config.LOSSES) - set(config.losses_for(binary)):
            with pytest.raises(UNetDemoError, match="Pick one of"):
                get_loss(config.TrainConfig(loss=name), classes)


def test_optimizer_and_schedule_labels_cover_the_names():
    assert tuple(config.OPTIMIZER_LABELS) == config.OPTIMIZERS
    assert tuple(config.SCHEDULE_LABELS) == config.SCHEDULES


def test_ui_reads_the_engine_constants():
    # The ui modules import streamlit; read their source instead of importing them.
    train_ui = (ROOT / "unet_demo/ui/train_ui.py").read_text(encoding="utf-8")
    evaluate_ui = (ROOT / "unet_demo/ui/evaluate_ui.py").read_text(encoding="utf-8")
    for name in ("LOSS_LABELS = ", "BINARY_LOSSES = ", "OPTIMIZER_LABELS = ",
                 "SCHEDULE_LABELS = ", "_RUN_ID_PATTERN", "class LiveRun"):
        assert name not in train_ui
    assert "SPLITS = " not in evaluate_ui and "def available_datasets" not in evaluate_ui


def test_one_split_and_suffix_list():
    assert upload_dataset.SPLITS is bundled.SPLITS
    assert upload_dataset.IMAGE_SUFFIXES is readers.IMAGE_SUFFIXES
    from unet_demo.evaluation import evaluate
    from unet_demo.inference.encoders import MASK_SOURCE_SUFFIXES, mask_file_stem

    assert evaluate.IMAGE_SUFFIXES is readers.IMAGE_SUFFIXES
    assert set(readers.IMAGE_SUFFIXES) <= set(MASK_SOURCE_SUFFIXES)
    assert list(MASK_SOURCE_SUFFIXES) == sorted(MASK_SOURCE_SUFFIXES, key=len, reverse=True)
    for suffix in readers.IMAGE_SUFFIXES:
        assert mask_file_stem(f"dir/scan{suffix}") == "scan"


def test_pages_named_by_lessons_exist_with_the_same_labels():
    from unet_demo.lessons.learn import TRY_IT_PAGES

    home = (ROOT / "unet_demo/ui/home_ui.py").read_text(encoding="utf-8")
    for path, label in TRY_IT_PAGES.items():
        assert (ROOT / path).is_file()
        assert re.search(rf'"{re.escape(path)}",\s*"{re.escape(label)}"', home), path


def test_preset_names_come_from_presets():
    from unet_demo.training.presets import PRESET_NAMES

    cli = (ROOT / "unet_demo/commands/train.py").read_text(encoding="utf-8")
    assert "PRESET_NAMES" in cli and '("classroom", "quality")' not in cli
    assert PRESET_NAMES[0] == "classroom"
