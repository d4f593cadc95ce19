"""`python -m unet_demo datasets`: through a real subprocess and through cli.main."""

from __future__ import annotations

import json
import subprocess
import sys

from unet_demo.cli import main
from unet_demo.data import bundled
from unet_demo.data.bundled import DATASET_NAMES, load_split
from unet_demo.settings import REPO_ROOT

NO_TENSORFLOW_CHECK = (
    "import sys\n"
    "from unet_demo.cli import main\n"
    "code = main(['datasets', '--json'])\n"
    "assert 'tensorflow' not in sys.modules, 'datasets imported TensorFlow'\n"
    "assert 'keras' not in sys.modules, 'datasets imported Keras'\n"
    "sys.exit(code)\n"
)


def test_subprocess_json_lists_four_datasets_with_real_split_counts():
    result = subprocess.run(
        [sys.executable, "-m", "unet_demo", "datasets", "--json"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [d["name"] for d in listed] == list(DATASET_NAMES)
    for entry in listed:
        for split in ("train", "val", "test"):
            assert entry["split_counts"][split] == len(load_split(entry["name"], split))
        assert entry["image_size"] == [128, 128]
        assert len(entry["class_names"]) == entry["num_classes"]
        assert entry["total_images"] == sum(entry["split_counts"].values())
    tissue = next(d for d in listed if d["name"] == "brain_tissue")
    assert tissue["class_names"] == ["background", "csf_other", "grey_matter", "white_matter"]


def test_datasets_command_does_not_import_tensorflow():
    result = subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW_CHECK],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 4


def test_main_prints_a_table_with_every_dataset(capsys):
    assert main(["datasets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["dataset", "train", "val", "test", "size"]
    for name in DATASET_NAMES:
        row = next(line for line in lines if line.startswith(name + " "))
        counts = [len(load_split(name, split)) for split in ("train", "val", "test")]
        assert row.split()[1:4] == [str(c) for c in counts]
        assert "128x128x1" in row


def test_main_json_matches_the_table_counts(capsys):
    assert main(["datasets", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {d["name"]: d["num_classes"] for d in listed} == {
        "brain_skullstrip": 2, "brain_tissue": 4, "nuclei": 2, "synthetic_lesions": 2,
    }


def test_missing_sample_data_gives_error_and_exit_code_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("UNET_DEMO_SAMPLE_DATA_DIR", str(tmp_path))
    bundled._stored_card.cache_clear()
    try:
        assert main(["datasets"]) == 2
    finally:
        bundled._stored_card.cache_clear()
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "build_sample_data.py" in error


def test_unexpected_error_is_one_message_line_and_exit_1(monkeypatch, capsys):
    from unet_demo.commands import datasets as datasets_command

    def broken() -> list:
        raise RuntimeError("disk went away")

    monkeypatch.setattr(datasets_command, "dataset_summaries", broken)
    monkeypatch.delenv("UNET_DEMO_DEBUG", raising=False)
    assert main(["datasets"]) == 1
    error = capsys.readouterr().err
    assert "unexpected RuntimeError: disk went away" in error
    assert "Traceback" not in error and "UNET_DEMO_DEBUG" in error
