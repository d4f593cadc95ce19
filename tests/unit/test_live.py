"""training/live.py: real events written to events.jsonl, folded into progress, ETA, best epoch.

Also the one run-id rule (training/jobs.py) and the CLI printer, which must say what the page says.
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from unet_demo.errors import UNetDemoError
from unet_demo.training import rundir
from unet_demo.training.events import (
    BatchEnd,
    EpochEnd,
    Failed,
    Finished,
    Started,
    Stopped,
    ValidationSnapshot,
    append_event,
)
from unet_demo.training.jobs import JobManager, check_run_id, new_run_id, valid_run_id
from unet_demo.training.live import (
    LiveRun,
    best_epoch,
    clock,
    end_message,
    epoch_text,
    event_lines,
    job_active,
    load_snapshot,
    progress_text,
    run_dir_of,
    run_row,
    started_facts,
)


def _write(run_dir, events):
    for event in events:
        append_event(run_dir, event)


def test_update_reads_only_new_lines_and_resume_replaces_epochs(tmp_path):
    live = LiveRun("r")
    _write(tmp_path, [Started(epochs=3, batches_per_epoch=4, time=0.0),
                      BatchEnd(epoch=1, batch=4, num_batches=4, loss=0.9, images_per_sec=10.0,
                               time=1.0),
                      EpochEnd(epoch=1, metrics={"loss": 0.9, "val_dice": 0.4}, seconds=1.0,
                               time=2.0),
                      ValidationSnapshot(epoch=1, path="snapshots/epoch_0001.npz"),
                      EpochEnd(epoch=2, metrics={"loss": 0.7, "val_dice": 0.5}, seconds=1.0)])
    assert len(live.update(tmp_path)) == 5
    assert live.update(tmp_path) == []  # nothing new: the offset moved past the lines read
    assert [row["epoch"] for row in live.history] == [1, 2]
    assert live.snapshots == {1: "snapshots/epoch_0001.npz"}
    assert live.first_epoch_end == 2.0 and live.status == "running"
    _write(tmp_path, [Started(epochs=3, batches_per_epoch=4, initial_epoch=1, time=5.0),
                      EpochEnd(epoch=2, metrics={"loss": 0.6, "val_dice": 0.55}, seconds=1.0),
                      Finished(best_epoch=2, metrics={"val_dice": 0.55}, epochs_run=2)])
    assert len(live.update(tmp_path)) == 3
    assert [row["epoch"] for row in live.history] == [1, 2]
    assert live.history[1]["loss"] == 0.6
    assert live.status == "finished"


@pytest.mark.parametrize(("terminal", "status", "kind", "start"), [
    (Finished(best_epoch=2, metrics={}, epochs_run=3, stopped_early=True), "finished",
     "success", "Finished after 3 epoch(s) (early stopping). Kept: epoch 2"),
    (Stopped(epoch=3, batch=5), "stopped", "warning", "Stopped during epoch 3 after batch 5."),
    (Failed(message="out of memory"), "failed", "error", "Training failed: out of memory"),
])
def test_terminal_events_set_status_and_end_message(terminal, status, kind, start):
    live = LiveRun("r")
    live.apply([Started(epochs=3, batches_per_epoch=2), terminal])
    assert live.status == status
    message = end_message(live)
    assert message[0] == kind and message[1].startswith(start)


def test_end_message_while_running_and_after_a_crash():
    live = LiveRun("r")
    assert live.status == "waiting" and end_message(live) is None
    live.apply([Started(epochs=2, batches_per_epoch=2)])
    assert live.status == "running" and end_message(live) is None
    kind, text = end_message(live, "interrupted")
    assert kind == "warning" and "without a final event" in text


def test_progress_text_leaves_the_compiling_first_epoch_out_of_the_eta():
    live = LiveRun("r")
    fraction, text = progress_text(live)
    assert fraction == 0.0 and text.startswith("Waiting")
    live.apply([Started(epochs=4, batches_per_epoch=5, time=100.0),
                EpochEnd(epoch=1, metrics={}, seconds=10.0, time=110.0),
                BatchEnd(epoch=2, batch=5, num_batches=5, loss=0.5, images_per_sec=8.0,
                         time=120.0)])
    fraction, text = progress_text(live, now=120.0)
    assert fraction == pytest.approx(0.5)
    # 5 steps since the first epoch took 10 s, 10 steps remain: 20 s.
    assert text == "Epoch 2/4 · batch 5/5 · ETA 0:20 · 8.0 images/s"


def test_progress_text_says_compiling_until_the_first_batch_with_a_real_rate():
    # Before the first BatchEnd the worker builds and XLA-compiles the model: the page used
    # to say "batch 12/12" there (the epoch's last batch), which was not true.
    live = LiveRun("r")
    live.apply([Started(epochs=8, batches_per_epoch=12, time=10.0)])
    fraction, text = progress_text(live, now=12.0)
    assert fraction == 0.0
    assert text == "Epoch 1/8 · compiling the model… (the first batch waits for it)"
    assert "12/12" not in text and "images/s" not in text
    live.apply([BatchEnd(epoch=1, batch=1, num_batches=12, loss=0.9, images_per_sec=0.0,
                         time=30.0)])
    assert "compiling the model" in progress_text(live, now=30.0)[1]  # no real rate yet
    live.apply([BatchEnd(epoch=1, batch=2, num_batches=12, loss=0.8, images_per_sec=16.0,
                         time=31.0)])
    assert progress_text(live, now=31.0)[1].startswith("Epoch 1/8 · batch 2/12 · ETA ")
    # A resumed run compiles again.
    resumed = LiveRun("r")
    resumed.apply([Started(epochs=2, batches_per_epoch=3, initial_epoch=1, time=10.0)])
    fraction, text = progress_text(resumed, now=12.0)
    assert fraction == pytest.approx(0.5) and "Epoch 2/2 · compiling" in text


def test_one_kept_wording_when_the_last_epoch_is_not_the_best():
    # The run of the issue: BatchNorm, val Dice 0.687 at epoch 3, last epoch 8 kept.
    from unet_demo.training.live import kept_weights_text

    dice = [0.478, 0.495, 0.687, 0.591, 0.661, 0.6, 0.64, 0.615]
    history = [{"epoch": e, "val_dice": d} for e, d in enumerate(dice, start=1)]
    live = LiveRun("r")
    live.apply([Started(epochs=8, batches_per_epoch=12)]
               + [EpochEnd(epoch=r["epoch"], metrics={"val_dice": r["val_dice"]}, seconds=1.0)
                  for r in history]
               + [Finished(best_epoch=8, metrics={}, epochs_run=8)])
    kind, text = end_message(live)
    expected = ("Kept: epoch 8 (last epoch, validation Dice 0.615); best validation Dice "
                "0.687 at epoch 3.")
    assert kind == "success" and text == "Finished after 8 epoch(s). " + expected
    assert "best epoch 8" not in text
    assert kept_weights_text(8, history) == expected
    assert kept_weights_text(3, history) == "Kept: epoch 3 (best validation Dice 0.687 of 8 " \
        "epochs)."


def test_time_estimate_and_warnings_before_a_start():
    from unet_demo.training.live import estimate_run_seconds, training_warnings
    from unet_demo.training.presets import get_preset

    classroom = get_preset("brain_skullstrip", "classroom")
    estimate = estimate_run_seconds(classroom, 101)
    assert 45 < estimate.seconds < 90 and training_warnings(classroom, estimate) == []
    # The issue's run: BatchNorm, base 16: four times the convolution cost, and BatchNorm
    # with batches of 8.
    issue = classroom.replace(model=classroom.model.replace(normalization="batch",
                                                            base_filters=16))
    estimate = estimate_run_seconds(issue, 101)
    warnings = training_warnings(issue, estimate)
    assert estimate.seconds > 120 and len(warnings) == 2
    assert warnings[0].startswith("BatchNorm with batches of 8")
    assert "estimated to take about" in warnings[1]
    # Past runs of the same model on this server take precedence over the reference.
    history = [{"epoch": 1, "images_per_sec": 2.0}] + [
        {"epoch": e, "images_per_sec": 50.0} for e in (2, 3, 4)]
    learned = estimate_run_seconds(issue, 100, [(issue.to_dict(), history)])
    assert learned.images_per_sec == 50.0 and "past runs" in learned.method
    other = classroom.to_dict()
    assert estimate_run_seconds(issue, 100, [(other, history)]).images_per_sec != 50.0
    big_batches = issue.replace(train=issue.train.replace(batch_size=16))
    assert not any("BatchNorm" in text for text in training_warnings(big_batches))


def test_settings_diff_lists_only_what_differs():
    from unet_demo.training.live import settings_diff
    from unet_demo.training.presets import get_preset

    a = get_preset("brain_skullstrip", "classroom")
    b = a.replace(train=a.train.replace(loss="bce"))
    assert settings_diff({"A": a.to_dict(), "B": b.to_dict()}) == [
        {"setting": "train.loss", "A": "bce_dice", "B": "bce"}]
    assert settings_diff({"A": a.to_dict(), "B": a.to_dict()}) == []


def test_clock_and_best_epoch():
    assert clock(0) == "0:00" and clock(59.6) == "1:00" and clock(3600) == "1:00:00"
    rows = [{"epoch": 1, "val_dice": 0.3}, {"epoch": 2, "val_dice": math.nan},
            {"epoch": 3, "val_dice": 0.9}, {"epoch": 4, "val_dice": "0.99"},
            {"epoch": 5}, {"epoch": 6, "val_dice": 0.5}]
    assert best_epoch(rows) == (3, 0.9)
    assert best_epoch([{"epoch": 1, "val_dice": None}]) == (None, None)


def test_texts_the_page_and_the_cli_share():
    started = Started(epochs=2, batches_per_epoch=3, train_images=24, val_images=8,
                      params=1234, jit_compile=True, deterministic=False, note="GPU note.")
    assert started_facts(started) == (
        "24 training / 8 validation images, 1,234 parameters, 3 batches per epoch, XLA on; "
        "not seeded for repeatability. GPU note.")
    assert epoch_text({"epoch": 2, "seconds": 1.25, "loss": 0.5, "dice": 0.25,
                       "val_loss": None, "val_dice": 0.125}) == (
        "epoch 2: loss 0.5000 dice 0.2500 val_loss nan val_dice 0.1250 (1.2 s)")
    live = LiveRun("r")
    lines = event_lines(live, [
        started,
        BatchEnd(epoch=1, batch=1, num_batches=3, loss=0.5, images_per_sec=1.0),
        EpochEnd(epoch=1, metrics={"loss": 0.5}, seconds=1.0),
        Stopped(epoch=2, batch=1),
    ])
    assert len(lines) == 3  # batches print nothing
    assert lines[0] == "Started epochs 1..2 on CPU: " + started_facts(started)
    assert lines[1].startswith("epoch 1: loss 0.5000")
    assert lines[2] == end_message(live)[1]
    assert live.status == "stopped"


def test_cli_printer_prints_the_live_lines():
    from unet_demo.commands.train import event_printer

    out = io.StringIO()
    printer = event_printer(out)
    events = [EpochEnd(epoch=1, metrics={"loss": 0.25, "dice": 0.5}, seconds=2.0),
              Finished(best_epoch=1, metrics={}, epochs_run=1)]
    for event in events:
        printer(event)
    assert out.getvalue().splitlines() == event_lines(LiveRun("x"), events)


def test_load_snapshot_reads_inside_the_run_only(tmp_path):
    (tmp_path / "snapshots").mkdir()
    np.savez(tmp_path / "snapshots" / "epoch_0001.npz", images=np.zeros((2, 4, 4, 1)),
             labels=np.ones((2, 4, 4), np.uint8))
    snapshot = load_snapshot(tmp_path, "snapshots/epoch_0001.npz")
    assert sorted(snapshot) == ["images", "labels"] and snapshot["labels"].sum() == 32
    assert load_snapshot(tmp_path, "snapshots/epoch_0002.npz") is None  # not written yet
    assert load_snapshot(tmp_path / "snapshots", "../snapshots/../../x.npz") is None
    (tmp_path / "snapshots" / "bad.npz").write_bytes(b"not a zip")
    assert load_snapshot(tmp_path, "snapshots/bad.npz") is None


def _fake_run(root, run_id, history, dataset="nuclei"):
    from tests.unit.training_helpers import tiny_spec

    spec = tiny_spec()
    spec = spec.replace(data=spec.data.replace(dataset=dataset))
    folder = root / run_id
    folder.mkdir(parents=True)
    (folder / rundir.CONFIG_FILE).write_text(spec.to_json(), encoding="utf-8")
    (folder / rundir.LABEL_FILE).write_text("my label", encoding="utf-8")
    rundir.write_history_csv(folder, history)
    append_event(folder, Finished(best_epoch=2, metrics={}, epochs_run=2))
    return folder


def test_run_row_and_run_dir_of(tmp_path, monkeypatch):
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(tmp_path))
    folder = _fake_run(tmp_path, "20261123-101500-ab12cd", [
        {"epoch": 1, "seconds": 30.0, "loss": 0.9, "val_dice": 0.41234},
        {"epoch": 2, "seconds": 45.0, "loss": 0.7, "val_dice": 0.61236},
    ])
    assert run_dir_of("20261123-101500-ab12cd") == folder
    assert run_dir_of("not-there") == tmp_path / "not-there"
    row = run_row(rundir.load_run(folder))
    assert row["run"] == "20261123-101500-ab12cd" and row["label"] == "my label"
    assert row["status"] == "finished" and row["dataset"] == "nuclei"
    assert row["epochs"] == 2 and row["best val Dice"] == 0.6124
    assert row["duration"] == "1:15" and row["model"].endswith("d2")
    json.dumps(row)  # plain values: the table and the CLI can show it


def test_job_active_is_false_without_a_live_worker(tmp_path):
    folder = _fake_run(tmp_path, "r1", [])
    assert job_active(JobManager(root=tmp_path), "r1", folder) is False


def test_one_run_id_rule_for_jobs_and_links():
    for good in (new_run_id(), "20261123-101500-ab12cd", "killed", "exp.v2", "A_b-1"):
        assert valid_run_id(good) == good and check_run_id(good) == good
    for bad in ("../x", "/etc/passwd", "", None, "a/b", "x" * 200, ".hidden", "-flag",
                "a..b", "a b", 7):
        assert valid_run_id(bad) is None
        with pytest.raises(UNetDemoError, match="is not valid. Expected a letter or digit"):
            check_run_id(bad)
    with pytest.raises(UNetDemoError, match="not valid"):
        JobManager().run_dir("../escape")
