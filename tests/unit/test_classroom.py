"""The teacher's class file (`unet_demo.training.classroom`): parsing, checks and limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from unet_demo.config import VARIANTS, TrainConfig, UNetConfig
from unet_demo.errors import UNetDemoError
from unet_demo.settings import class_file
from unet_demo.training.classroom import (
    ClassSettings,
    apply_class_settings,
    load_class_settings,
    parse_class_settings,
)
from unet_demo.training.spec import RunSpec

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "class.example.yaml"


def test_the_example_file_sets_every_key():
    settings = load_class_settings(EXAMPLE)
    assert settings.default_dataset == "nuclei"
    assert settings.preset == "classroom"
    assert settings.allowed_variants == ("classic", "attention", "lightweight")
    assert settings.epoch_cap == 10
    assert settings.banner.startswith("Week 3")
    assert settings.pinned()


def test_an_empty_file_or_no_variable_pins_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("UNET_DEMO_CLASS_FILE", raising=False)
    assert class_file() is None
    assert load_class_settings(None) == ClassSettings()
    empty = tmp_path / "class.yaml"
    empty.write_text("# nothing pinned yet\n")
    assert load_class_settings(empty) == ClassSettings()
    assert ClassSettings().allowed_variants == VARIANTS
    assert not ClassSettings().pinned()


def test_one_variant_may_be_written_without_a_list_and_repeats_collapse():
    assert parse_class_settings("allowed_variants: classic").allowed_variants == ("classic",)
    settings = parse_class_settings("allowed_variants: [classic, unetpp, classic]")
    assert settings.allowed_variants == ("classic", "unetpp")
    assert parse_class_settings("banner: 2026").banner == "2026"
    assert parse_class_settings("default_dataset: upload:ab12").default_dataset == "upload:ab12"


BAD_FILES = {
    "not yaml": ("epoch_cap: [1, 2\nbanner: x", "is not valid YAML (line"),
    "a list": ("- classic\n- attention", "must hold 'key: value' lines"),
    "a string": ("just some words", "must hold 'key: value' lines"),
    "unknown key": ("epochs_cap: 5", "unknown key 'epochs_cap'"),
    "bad dataset": ("default_dataset: cats", "default_dataset 'cats' is not a dataset"),
    "dataset not text": ("default_dataset: 3", "is not a dataset"),
    "bad preset": ("preset: fast", "preset 'fast' is not a preset"),
    "bad variant": ("allowed_variants: [classic, vit]", "unknown variant(s) 'vit'"),
    "no variants": ("allowed_variants: []", "at least one variant"),
    "variants a mapping": ("allowed_variants: {a: 1}", "at least one variant"),
    "cap zero": ("epoch_cap: 0", "at least 1"),
    "cap negative": ("epoch_cap: -3", "at least 1"),
    "cap text": ("epoch_cap: ten", "at least 1"),
    "cap float": ("epoch_cap: 2.5", "at least 1"),
    "cap bool": ("epoch_cap: yes", "at least 1"),
    "banner list": ("banner: [a, b]", "banner must be one line of text"),
    "banner too long": ("banner: " + "x" * 600, "keep it under 500"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_file_gives_one_sentence_saying_what_to_fix(name, tmp_path):
    text, words = BAD_FILES[name]
    path = tmp_path / "class.yaml"
    path.write_text(text)
    with pytest.raises(UNetDemoError) as caught:
        load_class_settings(path)
    message = str(caught.value)
    assert words in message, message
    assert str(path) in message and "\n" not in message


def test_a_missing_file_or_a_folder_is_named(tmp_path):
    with pytest.raises(UNetDemoError, match="does not exist: fix the path or unset"):
        load_class_settings(tmp_path / "nope.yaml")
    with pytest.raises(UNetDemoError, match="is not a small YAML file"):
        load_class_settings(tmp_path)
    binary = tmp_path / "class.yaml"
    binary.write_bytes(b"\xff\xfe\x00banner")
    with pytest.raises(UNetDemoError, match="cannot be read as UTF-8 text"):
        load_class_settings(binary)


def test_an_edit_of_the_file_is_read_on_the_next_call(tmp_path):
    path = tmp_path / "class.yaml"
    path.write_text("epoch_cap: 5\n")
    assert load_class_settings(path).epoch_cap == 5
    path.write_text("epoch_cap: 12\n")  # different size, so a new cache key even within a tick
    assert load_class_settings(path).epoch_cap == 12


def test_apply_caps_epochs_and_refuses_a_barred_variant():
    settings = ClassSettings(allowed_variants=("classic", "attention"), epoch_cap=6)
    spec = RunSpec(train=TrainConfig(epochs=20))
    capped = apply_class_settings(spec, settings)
    assert capped.train.epochs == 6
    assert capped.replace(train=spec.train) == spec  # nothing else changes
    short = RunSpec(train=TrainConfig(epochs=3))
    assert apply_class_settings(short, settings) is short
    barred = RunSpec(model=UNetConfig(variant="unetpp"))
    with pytest.raises(UNetDemoError, match="allows only the classic, attention U-Net variant"):
        apply_class_settings(barred, settings)
    assert apply_class_settings(barred, ClassSettings()) is barred


def test_every_page_starts_on_the_class_default_dataset(tmp_path, monkeypatch):
    from unet_demo.ui.state import DEFAULT_DATASET, get_dataset

    assert get_dataset({}) == DEFAULT_DATASET
    class_yaml = tmp_path / "class.yaml"
    class_yaml.write_text("default_dataset: nuclei\n")
    monkeypatch.setenv("UNET_DEMO_CLASS_FILE", str(class_yaml))
    assert get_dataset({}) == "nuclei"  # Data, Augment, Build and Train read it this way
    assert get_dataset({"dataset": "brain_tissue"}) == "brain_tissue"  # a choice wins
    class_yaml.write_text("default_dataset: [not, a, name]\n")
    assert get_dataset({}) == DEFAULT_DATASET  # a broken file: the app's own default
