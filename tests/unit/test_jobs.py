"""Job manager: real worker processes, the queue beyond the cap, stop, and kill -9 then resume."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("tensorflow")

from tests.unit.training_helpers import tiny_spec, wait_for  # noqa: E402
from unet_demo.training import events as ev  # noqa: E402
from unet_demo.training import rundir  # noqa: E402
from unet_demo.training.jobs import JobManager, trained_since_start  # noqa: E402
from unet_demo.training.runner import run_training  # noqa: E402

TIMING_KEYS = {"seconds", "images_per_sec"}


def comparable(history):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


def test_a_start_beyond_the_cap_is_queued_at_once_and_starts_when_the_slot_frees(tmp_path):
    manager = JobManager(root=tmp_path, max_jobs=1)
    run_id = manager.start(tiny_spec(epochs=200, images=8), label="first")
    second = None
    try:
        assert manager.is_running(run_id) and manager.running_ids() == [run_id]
        started = time.monotonic()
        second = manager.start(tiny_spec(epochs=1), label="second")
        assert time.monotonic() - started < 1.0
        assert manager.is_queued(second) and not manager.is_running(second)
        assert rundir.load_run(second, root=tmp_path).status == "queued"
        assert [(v.run_id, v.state, v.position) for v in manager.queue_view()] == [
            (run_id, "running", 0), (second, "queued", 1)]
        assert manager.start(tiny_spec(), run_id=run_id) == run_id  # a double click
        assert manager.start(tiny_spec(), run_id=second) == second  # still one entry
        assert len(manager.queue_view()) == 2
        # Another manager (another app process) sees the same worker and queue.
        other = JobManager(root=tmp_path, max_jobs=1)
        assert other.running_ids() == [run_id] and other.is_queued(second)
        assert wait_for(lambda: any(isinstance(e, ev.BatchEnd)
                                    for e in ev.read_events(tmp_path / run_id)[0]))
        manager.stop(run_id)
        assert manager.wait(run_id, timeout=120)
        # The ending worker handed its slot over: the queued run starts without the app.
        assert wait_for(lambda: manager.is_running(second) or not manager.is_queued(second),
                        timeout=60)
        assert manager.wait(second, timeout=240)
    finally:
        manager.kill(run_id)
        if second:
            manager.kill(second)
    info = rundir.load_run(run_id, root=tmp_path)
    assert info.status == "stopped" and info.label == "first"
    assert isinstance(ev.last_event(tmp_path / run_id), ev.Stopped)
    assert rundir.load_run(second, root=tmp_path).status == "finished"
    starts = [e for e in ev.read_events(tmp_path / second)[0] if isinstance(e, ev.Started)]
    assert len(starts) == 1  # started exactly once
    assert manager.running_ids() == [] and manager.queue_view() == []


def test_stop_while_the_worker_is_still_starting_ends_it_within_seconds(tmp_path):
    manager = JobManager(root=tmp_path, max_jobs=1)
    run_id = manager.start(tiny_spec(epochs=200, images=8), label="early stop")
    try:
        assert not trained_since_start(tmp_path / run_id)  # TensorFlow is still importing
        pressed = time.monotonic()
        manager.stop(run_id)
        assert manager.wait(run_id, timeout=30)
        assert time.monotonic() - pressed < 15
    finally:
        manager.kill(run_id)
    assert isinstance(ev.last_event(tmp_path / run_id), ev.Stopped)
    assert rundir.load_run(run_id, root=tmp_path).status == "stopped"
    assert manager.running_ids() == []


def test_killed_worker_resumes_from_last_complete_epoch(tmp_path):
    spec = tiny_spec(epochs=6, images=48, batch_size=4)
    reference = run_training(spec, tmp_path / "reference")
    manager = JobManager(root=tmp_path / "runs", max_jobs=1)
    run_id = manager.start(spec, run_id="killed")
    run_dir = tmp_path / "runs" / run_id

    def mid_second_epoch_or_later():
        events, _ = ev.read_events(run_dir)
        done = [e.epoch for e in events if isinstance(e, ev.EpochEnd)]
        return bool(done) and any(isinstance(e, ev.BatchEnd) and e.epoch > done[-1]
                                  for e in events)

    try:
        assert wait_for(mid_second_epoch_or_later)
    finally:
        manager.kill(run_id)
    assert not manager.is_running(run_id)
    assert rundir.load_run(run_dir).status == "interrupted"
    done = rundir.read_json(run_dir / rundir.STATE_FILE)["epoch"]
    assert 1 <= done < 6
    assert len(rundir.load_history(run_dir)) == done

    seen = []
    run_training(spec, run_dir, on_event=seen.append, resume=True)
    assert isinstance(seen[0], ev.Started) and seen[0].initial_epoch == done
    resumed = rundir.load_history(run_dir)
    assert [row["epoch"] for row in resumed] == [1, 2, 3, 4, 5, 6]
    # Same seed, same per-epoch data order: identical numbers show that the weights and the
    # optimizer state were restored exactly from the checkpoint.
    assert comparable(resumed) == comparable(rundir.load_history(reference))
    assert rundir.load_run(run_dir).status == "finished"
