"""The training queue: FIFO order, per-owner limit, full queue, restart, cancel and ownership.

The queue logic is the real one (files under the runs folder, flock); the backend here starts
real ``sleep`` processes instead of TensorFlow workers, so each test takes a fraction of a
second (tests/unit/test_jobs.py runs the same queue with real training workers).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from unet_demo.training import events as ev
from unet_demo.training import rundir
from unet_demo.training.jobs import (
    JobManager,
    NotOwnerError,
    QueueFullError,
    UserLimitError,
    measured_remaining_seconds,
    owner_key,
    queue_wait_text,
)
from unet_demo.training.spec import RunSpec


class SleepLauncher:
    """A real process per run (``sleep``, with the run folder in its command line)."""

    name = "local"

    def __init__(self, capacity: int = 1):
        self.slots = capacity
        self.launched: list[str] = []
        self.processes: dict[str, subprocess.Popen] = {}

    def capacity(self) -> int:
        return self.slots

    def launch(self, run_dir: Path) -> dict:
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                                    str(run_dir)])
        self.launched.append(run_dir.name)
        self.processes[run_dir.name] = process
        return {"backend": "local", "pid": process.pid, "node": "test"}

    def kill(self, run_dir: Path, info: dict) -> None:
        self.finish(run_dir.name)

    def finish(self, run_id: str) -> None:
        process = self.processes.pop(run_id, None)
        if process is not None:
            process.kill()
            process.wait()

    def close(self) -> None:
        for run_id in list(self.processes):
            self.finish(run_id)


@pytest.fixture()
def launcher():
    backend = SleepLauncher()
    yield backend
    backend.close()


def spec(dataset: str = "synthetic_lesions") -> RunSpec:
    return RunSpec.from_dict({"data": {"dataset": dataset}})


def test_first_in_first_out_with_positions_and_estimates(tmp_path, launcher):
    manager = JobManager(root=tmp_path, launcher=launcher)
    a = manager.submit(spec(), owner="alice-secret", preset="classroom", estimate_s=100)
    b = manager.submit(spec(), owner="bob-secret", preset="classroom", estimate_s=100)
    c = manager.submit(spec(), owner="carol-secret", preset="classroom", estimate_s=50)
    assert (a.state, b.state, c.state) == ("running", "queued", "queued")
    assert (b.position, c.position) == (1, 2)
    assert launcher.launched == [a.run_id]
    views = {view.run_id: view for view in manager.queue_view(now=a.since)}
    # One slot: B starts when A is estimated to end, C when B is.
    assert views[b.run_id].estimated_start == pytest.approx(a.since + 100, abs=1)
    assert views[c.run_id].estimated_start == pytest.approx(a.since + 200, abs=1)
    assert views[c.run_id].estimated_finish == pytest.approx(a.since + 250, abs=1)
    assert "number 2 in line" in queue_wait_text(views[c.run_id], now=a.since)
    assert rundir.load_run(b.run_id, root=tmp_path).status == "queued"
    launcher.finish(a.run_id)
    assert manager.dispatch() == [b.run_id]
    assert [(v.run_id, v.state, v.position) for v in manager.queue_view()] == [
        (b.run_id, "running", 0), (c.run_id, "queued", 1)]


def test_a_running_run_is_estimated_by_its_own_pace_once_it_has_one(tmp_path, launcher):
    # The preset's estimate (100 s) stands until the run's events show its pace; then the
    # running caption, the progress line and the queue behind it all use that pace.
    manager = JobManager(root=tmp_path, launcher=launcher)
    a = manager.submit(spec(), owner="alice-secret", preset="classroom", estimate_s=100)
    b = manager.submit(spec(), owner="bob-secret", preset="classroom", estimate_s=100)
    views = {view.run_id: view for view in manager.queue_view(now=a.since)}
    assert views[a.run_id].estimated_finish == pytest.approx(a.since + 100, abs=1)
    run_dir = tmp_path / a.run_id
    t0 = a.since
    for event in (ev.Started(epochs=4, batches_per_epoch=10, time=t0),
                  ev.EpochEnd(epoch=1, metrics={"loss": 0.9}, seconds=20.0, time=t0 + 20),
                  ev.BatchEnd(epoch=2, batch=10, num_batches=10, loss=0.8,
                              images_per_sec=4.0, time=t0 + 30),
                  ev.EpochEnd(epoch=2, metrics={"loss": 0.8}, seconds=10.0, time=t0 + 30)):
        ev.append_event(run_dir, event)
    # 10 steps in the 20 s since the first epoch ended: 2 s a step, 20 steps to go.
    now = t0 + 40
    views = {view.run_id: view for view in manager.queue_view(now=now)}
    assert views[a.run_id].estimated_finish == pytest.approx(now + 40, abs=0.01)
    assert views[b.run_id].estimated_start == pytest.approx(now + 40, abs=0.01)
    assert "about 40 s" in queue_wait_text(views[a.run_id], now=now)
    ev.append_event(run_dir, ev.Stopped(epoch=2, batch=10))
    assert measured_remaining_seconds(run_dir, now) is None  # ended: no pace to go by


def test_each_owner_gets_one_run_unless_the_limit_is_raised(tmp_path, launcher, monkeypatch):
    manager = JobManager(root=tmp_path, launcher=launcher)
    first = manager.submit(spec(), owner="alice-secret")
    manager.submit(spec(), owner="bob-secret")
    with pytest.raises(UserLimitError, match=f"run {first.run_id} is training"):
        manager.submit(spec(), owner="alice-secret")
    with pytest.raises(UserLimitError, match="queued, number 1 in line"):
        manager.submit(spec(), owner="bob-secret")
    monkeypatch.setenv("UNET_DEMO_MAX_RUNS_PER_USER", "2")
    assert manager.submit(spec(), owner="alice-secret").position == 2


def test_a_full_queue_says_how_long_until_a_place_frees(tmp_path, launcher, monkeypatch):
    monkeypatch.setenv("UNET_DEMO_MAX_QUEUE", "2")
    manager = JobManager(root=tmp_path, launcher=launcher)
    for number in range(3):
        manager.submit(spec(), owner=f"student-{number}", estimate_s=120)
    with pytest.raises(QueueFullError, match=r"queue is full \(2 runs waiting.*about 2 min"):
        manager.submit(spec(), owner="student-3")
    assert len(manager.queue_view()) == 3  # nothing half-added


def test_a_restart_keeps_the_queue_and_never_starts_a_run_twice(tmp_path, launcher):
    manager = JobManager(root=tmp_path, launcher=launcher)
    ids = [manager.submit(spec(), owner=f"student-{n}").run_id for n in range(4)]
    launcher.finish(ids[0])
    del manager  # the server goes away; the queue is files in the runs folder
    # Two app processes come back at once and both dispatch, many times over.
    managers = [JobManager(root=tmp_path, launcher=launcher) for _ in range(2)]
    threads = [threading.Thread(target=lambda m=m: [m.dispatch() for _ in range(20)])
               for m in managers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert launcher.launched == ids[:2]  # the next one, once
    assert [(v.run_id, v.position) for v in managers[0].queue_view()] == [
        (ids[1], 0), (ids[2], 1), (ids[3], 2)]


def test_a_run_that_started_before_a_crash_is_not_started_again(tmp_path, launcher):
    manager = JobManager(root=tmp_path, launcher=launcher)
    running = manager.submit(spec(), owner="a").run_id
    waiting = manager.submit(spec(), owner="b").run_id
    # The dispatcher started `waiting` and died before removing its queue entry.
    info = launcher.launch(tmp_path / waiting)
    rundir.atomic_write_json(tmp_path / waiting / rundir.WORKER_FILE, info)
    launcher.finish(running)
    assert manager.dispatch() == []
    assert launcher.launched == [running, waiting]
    assert not manager.is_queued(waiting) and manager.is_running(waiting)


def test_only_the_owner_or_the_operator_can_cancel_or_stop(tmp_path, launcher, monkeypatch):
    manager = JobManager(root=tmp_path, launcher=launcher)
    running = manager.submit(spec(), owner="alice-secret").run_id
    waiting = manager.submit(spec(), owner="bob-secret").run_id
    assert manager.owner_of(waiting) == owner_key("bob-secret")
    assert "bob-secret" not in (tmp_path / waiting / rundir.JOB_FILE).read_text()
    with pytest.raises(NotOwnerError, match="started by someone else"):
        manager.cancel(waiting, owner="alice-secret")
    with pytest.raises(NotOwnerError):
        manager.stop(running, owner="bob-secret")
    with pytest.raises(NotOwnerError):
        manager.stop(running, owner="", token="guess")  # no operator token is set
    assert not (tmp_path / running / rundir.STOP_FILE).exists()
    assert manager.is_queued(waiting)
    assert manager.cancel(waiting, owner="bob-secret")
    assert isinstance(ev.last_event(tmp_path / waiting), ev.Cancelled)
    assert rundir.load_run(waiting, root=tmp_path).status == "cancelled"
    monkeypatch.setenv("UNET_DEMO_ADMIN_TOKEN", "teacher-token")
    manager.stop(running, owner="", token="teacher-token", grace_s=0)
    assert (tmp_path / running / rundir.STOP_FILE).exists()
    assert not manager.is_running(running)


def test_estimates_come_from_recent_runs_of_the_same_preset(tmp_path, launcher):
    manager = JobManager(root=tmp_path, launcher=launcher)
    for number, seconds in enumerate((30.0, 40.0, 500.0)):
        path = tmp_path / f"done-{number}"
        rundir.atomic_write_json(path / rundir.CONFIG_FILE, {})
        rundir.atomic_write_json(path / rundir.JOB_FILE,
                                 {"preset": "classroom", "dataset": "nuclei"})
        ev.append_event(path, ev.Started(epochs=1, batches_per_epoch=1, time=1000.0))
        ev.append_event(path, ev.Finished(best_epoch=1, metrics={}, time=1000.0 + seconds))
    assert manager.recent_seconds("classroom", "nuclei") == 40.0  # the median
    assert manager.recent_seconds("quality", "nuclei") is None
    manager.submit(spec("nuclei"), owner="a", preset="classroom", estimate_s=999)
    queued = manager.submit(spec("nuclei"), owner="b", preset="classroom", estimate_s=999)
    assert queued.estimate_s == 40.0
    now = time.time()
    assert manager.queue_view(now=now)[1].estimated_finish == pytest.approx(
        manager.queue_view(now=now)[0].estimated_finish + 40.0, abs=0.01)
