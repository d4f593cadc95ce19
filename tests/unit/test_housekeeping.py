"""Runs folder housekeeping: budget order, protected runs, tombstones, safe removal, compaction."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from unet_demo.cli import main
from unet_demo.training import events as ev
from unet_demo.training import housekeeping, rundir

BLOB = 100_000  # bytes of model.keras in each fake run; the other files are small
NOW = 1_800_000_000.0  # a fixed "now" for enforce_budget (fake runs ended before it)


def make_run(root: Path, run_id: str, *, ended: float, status: str = "finished",
             size: int = BLOB, label: str = "", dataset: str = "nuclei") -> Path:
    """A fake run folder: config.json, label, a blob of ``size`` bytes and its events."""
    path = root / run_id
    rundir.atomic_write_json(path / rundir.CONFIG_FILE, {"data": {"dataset": dataset}})
    if label:
        rundir.atomic_write_text(path / rundir.LABEL_FILE, label)
    (path / rundir.MODEL_FILE).write_bytes(b"x" * size)
    ev.append_event(path, ev.Started(epochs=2, batches_per_epoch=1, time=ended - 10))
    final = {"finished": ev.Finished(best_epoch=1, metrics={}, time=ended),
             "stopped": ev.Stopped(epoch=1, batch=1, time=ended),
             "failed": ev.Failed(message="boom", time=ended)}.get(status)
    if final is not None:
        ev.append_event(path, final)
    for name in (rundir.CONFIG_FILE, ev.EVENTS_FILE):  # files last changed when it ended
        os.utime(path / name, (ended, ended))
    return path


def remaining(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


@pytest.fixture
def sleeper():
    """Start ``python -c 'sleep'`` processes whose command line names a run folder."""
    processes = []

    def start(run_dir: Path) -> int:
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                                    run_dir.name])
        processes.append(process)
        deadline = time.monotonic() + 10
        while not rundir.pid_alive(process.pid, run_dir) and time.monotonic() < deadline:
            time.sleep(0.02)  # until the child has exec'd (its command line names the run)
        return process.pid

    yield start
    for process in processes:
        process.kill()
        process.wait()


def test_budget_removes_oldest_finished_runs_first_until_under(tmp_path):
    for index, run_id in enumerate(["r1", "r2", "r3", "r4"]):
        make_run(tmp_path, run_id, ended=NOW - 4000 + 1000 * index, label=f"run {index}")
    total = housekeeping.folder_size_bytes(tmp_path)
    budget = total - housekeeping.run_size_bytes(tmp_path / "r1") - 1
    removed = housekeeping.enforce_budget(tmp_path, budget, now=NOW)
    assert [r.run_id for r in removed] == ["r1", "r2"]  # one was not enough, two are
    assert remaining(tmp_path) == ["r3", "r4"]
    assert housekeeping.folder_size_bytes(tmp_path) <= budget
    # under budget: nothing more goes; no limit (0): nothing goes either
    assert housekeeping.enforce_budget(tmp_path, total, now=NOW) == []
    assert housekeeping.enforce_budget(tmp_path, 0, now=NOW) == []
    assert remaining(tmp_path) == ["r3", "r4"]


def test_a_run_opened_recently_is_removed_after_those_nobody_opened(tmp_path):
    make_run(tmp_path, "oldest-but-opened", ended=NOW - 5000)
    make_run(tmp_path, "middle", ended=NOW - 4000)
    make_run(tmp_path, "newest", ended=NOW - 3000)
    assert housekeeping.mark_opened(tmp_path / "oldest-but-opened", now=NOW - 60)
    removed = housekeeping.enforce_budget(tmp_path, 2 * BLOB + 5000, now=NOW)
    assert [r.run_id for r in removed] == ["middle"]
    removed = housekeeping.enforce_budget(tmp_path, BLOB + 5000, now=NOW)
    assert [r.run_id for r in removed] == ["newest"]  # ended NOW - 3000, before the visit
    assert remaining(tmp_path) == ["oldest-but-opened"]


def test_mark_opened_writes_at_most_once_a_minute_and_never_creates_a_run(tmp_path):
    run = make_run(tmp_path, "r", ended=NOW - 100)
    assert housekeeping.mark_opened(run, now=NOW) is True
    assert housekeeping.mark_opened(run, now=NOW + 30) is False
    assert housekeeping.last_opened(run) == NOW
    assert housekeeping.mark_opened(run, now=NOW + 61) is True
    assert housekeeping.last_opened(run) == NOW + 61
    assert housekeeping.mark_opened(tmp_path / "missing", now=NOW) is False
    assert not (tmp_path / "missing").exists()
    assert housekeeping.last_opened(tmp_path / "missing") == 0.0


def test_running_queued_pinned_protected_and_new_runs_are_never_removed(tmp_path, sleeper):
    root = tmp_path
    running = make_run(root, "running", ended=NOW - 9000, status="")
    rundir.atomic_write_json(running / rundir.WORKER_FILE, {"pid": sleeper(running)})
    queued = make_run(root, "queued-marker", ended=NOW - 9000, status="")
    (queued / housekeeping.QUEUED_FILE).write_text("1")
    requeued = make_run(root, "finished-queued-again", ended=NOW - 9000)
    (requeued / housekeeping.QUEUED_FILE).write_text("2")
    make_run(root, "queue-entry-only", ended=NOW - 9000, status="")
    (root / housekeeping.QUEUE_DIR).mkdir()
    (root / housekeeping.QUEUE_DIR / "000000000003-queue-entry-only.json").write_text("{}")
    pinned = make_run(root, "pinned", ended=NOW - 9000)
    housekeeping.set_pinned(pinned, True)
    make_run(root, "protected", ended=NOW - 9000)
    make_run(root, "just-created", ended=NOW - 30, status="")  # no final event, fresh
    hidden = make_run(root, ".hidden", ended=NOW - 9000)
    for run_id, status in (("stopped", "stopped"), ("failed", "failed"),
                           ("interrupted", ""), ("finished", "finished")):
        make_run(root, run_id, ended=NOW - 8000, status=status)
    assert rundir.load_run(running).status == "running"

    removed = housekeeping.enforce_budget(root, 1, protected_ids=["protected"], now=NOW)

    assert sorted(r.run_id for r in removed) == ["failed", "finished", "interrupted", "stopped"]
    assert {r.run_id: r.status for r in removed}["interrupted"] == "interrupted"
    assert remaining(root) == ["finished-queued-again", "just-created", "pinned", "protected",
                               "queue-entry-only", "queued-marker", "running"]
    assert hidden.is_dir()
    # unpinned, it may go
    housekeeping.set_pinned(pinned, False)
    again = housekeeping.enforce_budget(root, 1, protected_ids=["protected"], now=NOW)
    assert [r.run_id for r in again] == ["pinned"]


def test_every_removal_is_recorded_in_the_tombstone_log(tmp_path):
    make_run(tmp_path, "gone", ended=NOW - 9000, label="my first try", dataset="brain")
    make_run(tmp_path, "kept", ended=NOW - 10)
    size = housekeeping.run_size_bytes(tmp_path / "gone")
    removed = housekeeping.enforce_budget(tmp_path, BLOB + 5000, now=NOW)
    assert [r.run_id for r in removed] == ["gone"]
    record = housekeeping.removed_run(tmp_path, "gone")
    assert record == removed[0]
    assert (record.label, record.dataset, record.status, record.bytes, record.removed) == (
        "my first try", "brain", "finished", size, NOW)
    assert record.budget_bytes == BLOB + 5000 and "budget" in record.reason
    assert housekeeping.removed_run(tmp_path, "kept") is None
    lines = (tmp_path / housekeeping.REMOVED_LOG).read_text().splitlines()
    assert [json.loads(line)["run_id"] for line in lines] == ["gone"]
    # a torn last line (crash while appending) does not hide the others
    with open(tmp_path / housekeeping.REMOVED_LOG, "a") as log:
        log.write('{"run_id": "half')
    assert [r.run_id for r in housekeeping.removed_runs(tmp_path)] == ["gone"]


def test_removal_is_atomic_for_readers_and_skips_runs_that_vanish_or_will_not_move(
        tmp_path, monkeypatch):
    for index, run_id in enumerate(["vanishes", "locked", "a", "b"]):
        make_run(tmp_path, run_id, ended=NOW - 9000 + index)
    real_rename, real_rmtree = os.rename, shutil.rmtree
    seen_during_delete = []

    def rename(source, target):
        name = Path(source).name
        if name == "vanishes":
            real_rmtree(source)  # another process removed it first
        if name == "locked":
            raise PermissionError(13, "Permission denied", str(source))
        return real_rename(source, target)

    def rmtree(path, ignore_errors=False):
        # While the files are deleted, readers already see the run as gone, not half there.
        seen_during_delete.append([run.run_id for run in rundir.list_runs(tmp_path)])
        return real_rmtree(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(housekeeping.os, "rename", rename)
    monkeypatch.setattr(housekeeping.shutil, "rmtree", rmtree)
    removed = housekeeping.enforce_budget(tmp_path, 1, now=NOW)
    assert [r.run_id for r in removed] == ["a", "b"]
    assert seen_during_delete == [["b", "locked"], ["locked"]]
    assert remaining(tmp_path) == ["locked"]
    assert housekeeping.removed_run(tmp_path, "vanishes") is None
    assert list((tmp_path / housekeeping.TRASH_DIR).iterdir()) == []


def test_leftovers_in_the_trash_are_deleted_by_the_next_prune(tmp_path):
    leftover = tmp_path / housekeeping.TRASH_DIR / "old-run-1234"
    leftover.mkdir(parents=True)
    (leftover / "model.keras").write_bytes(b"x" * BLOB)
    make_run(tmp_path, "kept", ended=NOW - 10)
    assert housekeeping.enforce_budget(tmp_path, BLOB + 5000, now=NOW) == []
    assert not leftover.exists() and remaining(tmp_path) == ["kept"]


def test_after_finished_prunes_only_the_configured_runs_folder(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    make_run(root, "old", ended=time.time() - 9000)
    new = make_run(root, "new", ended=time.time())
    outside = make_run(tmp_path / "elsewhere", "cli-run", ended=time.time())
    make_run(tmp_path / "elsewhere", "other", ended=time.time() - 9000)
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(root))
    monkeypatch.setenv("UNET_DEMO_RUNS_MAX_GB", "0.000001")  # about 1 KB
    housekeeping.after_finished(outside)
    assert remaining(tmp_path / "elsewhere") == ["cli-run", "other"]
    housekeeping.after_finished(new)
    assert remaining(root) == ["new"]  # the run that just finished is protected
    monkeypatch.setenv("UNET_DEMO_RUNS_MAX_GB", "0")
    make_run(root, "older", ended=time.time() - 9000)
    housekeeping.after_finished(new)
    assert remaining(root) == ["new", "older"]


def test_runs_cli_prune_pin_and_unpin(tmp_path, capsys):
    make_run(tmp_path, "keep-me", ended=NOW - 9000)
    make_run(tmp_path, "drop-me", ended=NOW - 8000, label="drop")
    assert main(["runs", "pin", "keep-me", "--runs-dir", str(tmp_path)]) == 0
    assert "pinned keep-me" in capsys.readouterr().out
    assert housekeeping.is_pinned(tmp_path / "keep-me")
    assert main(["runs", "prune", "--max-gb", "0.000001", "--json",
                 "--runs-dir", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in report["removed"]] == ["drop-me"]
    assert report["budget_bytes"] == int(0.000001 * 1024**3)
    assert remaining(tmp_path) == ["keep-me"]
    assert main(["runs", "unpin", "keep-me", "--runs-dir", str(tmp_path)]) == 0
    assert not housekeeping.is_pinned(tmp_path / "keep-me")
    assert main(["runs", "prune", "--max-gb", "0.000001", "--runs-dir", str(tmp_path)]) == 0
    assert "removed keep-me" in capsys.readouterr().out
    assert main(["runs", "pin", "drop-me", "--runs-dir", str(tmp_path)]) == 2  # gone


@pytest.mark.slow  # two tiny trainings: about 30 s of CPU
def test_a_finished_tiny_run_keeps_only_its_best_checkpoint_and_still_loads(
        tmp_path, monkeypatch):
    pytest.importorskip("tensorflow")
    from tests.unit.training_helpers import tiny_spec
    from unet_demo.training.runner import run_training

    root = tmp_path / "runs"
    monkeypatch.setenv("UNET_DEMO_RUNS_DIR", str(root))
    run_dir = root / "20261202-010000-abc123"
    # Early stopping on (patience beyond the run), so the run keeps best weights too.
    run_training(tiny_spec(epochs=2, images=8, early_stopping_patience=5), run_dir)
    assert [p.name for p in (run_dir / rundir.CHECKPOINT_DIR).iterdir()] == [
        rundir.BEST_WEIGHTS_FILE]
    state = rundir.read_json(run_dir / rundir.STATE_FILE)
    assert state["epoch"] == 2 and state["checkpoint"] is None
    for name in (rundir.MODEL_FILE, rundir.METRICS_FILE, rundir.HISTORY_FILE,
                 rundir.CONFIG_FILE, ev.EVENTS_FILE, "snapshots/epoch_0002.npz"):
        assert (run_dir / name).is_file(), name
    assert rundir.load_run(run_dir).status == "finished"
    assert rundir.load_model(run_dir).input_shape == (None, 32, 32, 1)
    assert str(run_dir) in [spec for _label, spec in rundir.list_model_choices()]
    # A resume of the finished (compacted) run trains it again from its stored config and
    # seed instead of failing; it ends finished and compacted again.
    seen = []
    run_training(tiny_spec(epochs=2, images=8, early_stopping_patience=5), run_dir,
                 on_event=seen.append, resume=True)
    assert isinstance(seen[0], ev.Started) and seen[0].initial_epoch == 0
    assert isinstance(seen[-1], ev.Finished)
    assert rundir.load_run(run_dir).status == "finished"
    assert [row["epoch"] for row in rundir.load_history(run_dir)] == [1, 2]
    assert [p.name for p in (run_dir / rundir.CHECKPOINT_DIR).iterdir()] == [
        rundir.BEST_WEIGHTS_FILE]
