"""Lessons: the catalogue, the committed recordings, the answer sentences and `lessons --json`."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from unet_demo.cli import main
from unet_demo.data.bundled import DATASET_NAMES
from unet_demo.lessons import recordings
from unet_demo.lessons.catalogue import (
    MEASURES,
    get_experiment,
    list_experiments,
    spec_differences,
)
from unet_demo.lessons.class_plan import CLASS_PLAN
from unet_demo.lessons.recordings import (
    ExperimentRecording,
    compact_run,
    load_experiment,
    load_run,
    recordings_size,
)
from unet_demo.lessons.replay import (
    TIE,
    answer_sentence,
    best_run,
    format_measure,
    margin,
    runner_up_margin,
    verdict,
)
from unet_demo.settings import REPO_ROOT
from unet_demo.training import events as ev

EXPERIMENTS = list_experiments()
RECORDED = [e for e in EXPERIMENTS if load_experiment(e).runs]


def test_catalogue_has_twelve_questions_each_run_changes_one_setting():
    assert len(EXPERIMENTS) >= 12
    assert len({e.key for e in EXPERIMENTS}) == len(EXPERIMENTS)
    for experiment in EXPERIMENTS:
        assert 2 <= len(experiment.runs) <= 5, experiment.key
        assert len({run.key for run in experiment.runs}) == len(experiment.runs)
        assert all(re.fullmatch(r"[a-z0-9_]+", run.key) for run in experiment.runs)
        base = experiment.runs[0].spec
        for run in experiment.runs[1:]:
            changed = spec_differences(base, run.spec)
            assert len(changed) == 1 and changed[0] in experiment.varies, (experiment.key,
                                                                           run.key, changed)
        assert experiment.expected in ("", *[run.key for run in experiment.runs])
        assert set(experiment.measures) <= set(MEASURES)
        for run in experiment.runs:
            assert run.spec.data.dataset in DATASET_NAMES
            assert run.spec.train.deterministic and run.spec.train.seed == 42


def test_class_plan_is_45_minutes_of_existing_pages_and_lessons():
    assert sum(step.minutes for step in CLASS_PLAN) == 45
    for step in CLASS_PLAN:
        assert (REPO_ROOT / step.page).is_file(), step.page
        if step.lesson:
            get_experiment(step.lesson)


def test_learn_sections_link_to_existing_lessons():
    from unet_demo.lessons import learn

    sections = {section.key for section in learn.SECTIONS}
    assert set(learn.LESSON_LINKS) <= sections
    for lesson, label in learn.LESSON_LINKS.values():
        get_experiment(lesson)
        assert label
    assert (REPO_ROOT / learn.LESSONS_PAGE).is_file()


def test_every_experiment_is_recorded_with_its_catalogue_spec():
    missing = {e.key: load_experiment(e).missing for e in EXPERIMENTS if load_experiment(e).missing}
    assert not missing, f"record them: scripts/record_lessons.py ({missing})"


@pytest.mark.parametrize("experiment", RECORDED, ids=[e.key for e in RECORDED])
def test_recordings_load_and_match_the_catalogue(experiment):
    recording = load_experiment(experiment)
    for key, run in recording.runs.items():
        spec = experiment.run(key).spec
        assert run.spec == spec, f"{experiment.key}/{key} is stale: record it again"
        assert [row["epoch"] for row in run.history] == list(range(1, spec.train.epochs + 1))
        assert run.epochs == tuple(i + 1 for i in recordings.kept_frames(spec.train.epochs))
        frames, count, side = run.probability.shape[:3]
        assert frames == len(run.epochs) and side == spec.data.image_size
        assert run.labels.shape == run.probability.shape
        assert run.images.shape == run.masks.shape == (count, side, side)
        assert 0.0 <= run.test_dice <= 1.0
        assert run.environment["deterministic"] is True
        assert run.environment["device"] == "CPU"
        assert run.train_gflop > 0 and run.receptive_field > 0, "run --costs"
        assert run.cost["params"] > 0


def test_recordings_stay_within_the_size_budget():
    assert recordings_size() <= recordings.MAX_TOTAL_BYTES
    per_file = max(p.stat().st_size for p in recordings.lessons_dir().rglob("*") if p.is_file())
    assert per_file < 1_000_000


@pytest.mark.parametrize("experiment", RECORDED, ids=[e.key for e in RECORDED])
def test_answer_sentence_quotes_the_recorded_numbers(experiment):
    recording = load_experiment(experiment)
    sentence = answer_sentence(recording)
    for key, run in recording.runs.items():
        for name in experiment.measures:
            assert f"{experiment.run(key).label} {format_measure(name, run.measure(name))}" \
                in sentence
    winner = best_run(recording)
    name = experiment.measures[0]
    values = {k: (abs if name == "gap" else float)(r.measure(name))
              for k, r in recording.runs.items()}
    lower = experiment.measures[0] in ("gap", "train_seconds")
    assert values[winner] == (min if lower else max)(values.values())
    judged = verdict(recording)
    if experiment.expected in recording.runs and len(recording.runs) > 1:
        assert judged.agrees is not None
        if judged.agrees is False:
            assert "contradicts the guide" in judged.text
            assert experiment.run(winner).label in judged.text
        assert (winner == experiment.expected) <= bool(judged.agrees)
        # The verdict's own figure is the recorded lead, and the tie rule decides its wording.
        lead = runner_up_margin(recording) if winner == experiment.expected \
            else margin(recording)
        if lead <= TIE:
            assert judged.agrees and f"{lead:.3f}" in judged.text, judged.text
        else:
            assert judged.agrees == (winner == experiment.expected), judged.text
            assert format_measure(name, lead) in judged.text, judged.text


def test_empty_recording_says_so():
    empty = ExperimentRecording(get_experiment("depth"), {}, ("d1", "d2"))
    assert "Not recorded" in answer_sentence(empty)
    assert verdict(empty).agrees is None


def test_compact_run_round_trip(tmp_path):
    """A fake finished run folder compacts to the five files and reads back."""
    run_dir = tmp_path / "run"
    (run_dir / "snapshots").mkdir(parents=True)
    experiment = get_experiment("upsampling")
    spec = experiment.runs[0].spec
    ev.append_event(run_dir, ev.Started(epochs=2, batches_per_epoch=3))
    for epoch in (1, 2):
        ev.append_event(run_dir, ev.BatchEnd(epoch=epoch, batch=1, num_batches=3, loss=0.5,
                                             images_per_sec=10.0))
        ev.append_event(run_dir, ev.EpochEnd(epoch=epoch, seconds=1.0, metrics={
            "loss": 1.0 / epoch, "val_loss": 1.1 / epoch, "dice": 0.3 * epoch,
            "val_dice": 0.25 * epoch}))
        probability = np.full((2, 8, 8), 100 * epoch, np.uint8)
        np.savez_compressed(run_dir / "snapshots" / f"epoch_{epoch:04d}.npz",
                            images=np.zeros((2, 8, 8, 1), np.uint8),
                            masks=np.ones((2, 8, 8), np.uint8),
                            labels=(probability > 127).astype(np.uint8),
                            probability=probability, ids=np.asarray(["a", "b"]))
    (run_dir / "metrics.json").write_text(json.dumps({"test": {"dice": 0.5},
                                                      "train_seconds": 3.0}))
    (run_dir / "environment.json").write_text(json.dumps({"argv": ["x"], "device": "CPU"}))
    dest = compact_run(run_dir, tmp_path / "lessons" / "upsampling" / "transpose", spec)
    assert sorted(p.name for p in dest.iterdir()) == sorted(recordings.RUN_FILES)
    assert "BatchEnd" not in (dest / "events.jsonl").read_text()
    run = load_run(dest)
    assert run.spec == spec and [r["val_dice"] for r in run.history] == [0.25, 0.5]
    assert run.epochs == (1, 2) and run.probability.shape == (2, 2, 8, 8)
    assert math.isclose(run.gap, 0.1) and run.test_dice == 0.5
    assert run.frame(1) == 0 and run.frame(9) == 1
    assert "argv" not in run.environment
    recording = load_experiment(experiment, root=tmp_path / "lessons")
    assert list(recording.runs) == ["transpose"] and recording.missing == ("bilinear",)


def test_lessons_json_cli_lists_every_experiment_with_recorded_dice(capsys):
    assert main(["lessons", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [item["key"] for item in listed] == [e.key for e in EXPERIMENTS]
    for item in listed:
        recording = load_experiment(get_experiment(item["key"]))
        for run in item["runs"]:
            recorded = recording.runs.get(run["key"])
            assert run["recorded"] is bool(recorded)
            if recorded:
                assert run["test_dice"] == round(recorded.test_dice, 4)
        assert item["answer"] == answer_sentence(recording)
    assert main(["lessons"]) == 0
    text = capsys.readouterr().out
    assert "skip_connections:" in text and "test Dice" in text


def test_lessons_cli_reads_recordings_without_tensorflow():
    import subprocess
    import sys

    check = ("import sys\nfrom unet_demo.cli import main\ncode = main(['lessons', '--json'])\n"
             "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
             "sys.exit(code)\n")
    result = subprocess.run([sys.executable, "-c", check], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
def test_recording_again_gives_the_committed_history(tmp_path, monkeypatch):
    """Deterministic on a CPU: the cheapest run trained again matches its recording."""
    import importlib.util

    path = REPO_ROOT / "scripts" / "record_lessons.py"
    module_spec = importlib.util.spec_from_file_location("record_lessons", path)
    recorder = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(recorder)
    experiment = get_experiment("input_size")
    committed = load_experiment(experiment).runs.get("px64")
    if committed is None:
        pytest.skip("input_size/px64 is not recorded yet")
    # Trained again with the recording's own speed setting (XLA or the graph).
    monkeypatch.setenv("UNET_DEMO_XLA", "1" if committed.environment.get("jit_compile") else "0")
    recorder.record_run(experiment.run("px64").spec, tmp_path / "px64")
    again = load_run(tmp_path / "px64")
    # The same kind of CPU repeats the run to float precision. Another kind (AVX2 against
    # AVX-512 kernels) agrees only up to round-off that grows over the epochs (seen: 8e-5 in
    # one epoch's Dice between an AMD EPYC and an Intel Xeon); an older recording does not
    # name its CPU.
    same_cpu = all(committed.environment.get(key) == again.environment.get(key)
                   for key in ("cpu_model", "cpu_features")) \
        and "cpu_model" in committed.environment
    tolerance = {"rel": 1e-4, "abs": 1e-5} if same_cpu else {"rel": 0, "abs": 5e-3}
    for old, new in zip(committed.history, again.history, strict=True):
        for key in ("loss", "val_loss", "dice", "val_dice"):
            assert new[key] == pytest.approx(old[key], **tolerance), (old["epoch"], key)
    assert again.test_dice == pytest.approx(committed.test_dice,
                                            abs=1e-4 if same_cpu else 5e-3)
    if same_cpu:
        np.testing.assert_array_equal(again.labels[-1], committed.labels[-1])
    else:
        assert np.mean(again.labels[-1] != committed.labels[-1]) < 0.01
