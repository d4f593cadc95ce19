"""Ray backend on a real local Ray cluster of simulated nodes (`ray.cluster_utils.Cluster`).

Two nodes of one CPU each (plus, for the node-failure test, a third one that is removed
mid-run), tiny U-Nets (`tiny_spec`): runs are placed on both nodes, events are tailed through
the run folder, the queue keeps positions while Ray holds the runs, Stop (the STOP file) and
the hard kill work across nodes, and a node that dies mid-run leaves a failed run that
resumes from its last complete epoch. The timings printed (``-s``) go into docs/scale-out.md.
"""

from __future__ import annotations

import json
import logging
import os
import time

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("tensorflow")

from tests.unit.training_helpers import tiny_spec  # noqa: E402
from tests.unit.training_helpers import wait_for as shared_wait_for  # noqa: E402
from unet_demo.errors import UNetDemoError  # noqa: E402
from unet_demo.training import events as ev  # noqa: E402
from unet_demo.training import ray_backend, rundir  # noqa: E402
from unet_demo.training.jobs import JobManager  # noqa: E402
from unet_demo.training.ray_backend import RayLauncher, launcher_for  # noqa: E402

pytestmark = pytest.mark.ray
STORE = 80 * 1024 * 1024  # object store per simulated node (the default wants far more)


def wait_for(predicate, timeout=180.0, interval=0.05):
    return shared_wait_for(predicate, timeout=timeout, interval=interval)


def worker_info(run_dir):
    return rundir.read_json(run_dir / rundir.WORKER_FILE)


def has_event(run_dir, kind, **fields):
    events, _ = ev.read_events(run_dir)
    return any(isinstance(event, kind) and all(getattr(event, key) >= value
                                               for key, value in fields.items())
               for event in events)


def process_gone(pid):
    return not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(
        ")")[-1].split()[0] == "Z"


# --------------------------------------------------------------------------- no cluster

def test_backend_choice_and_an_unreachable_cluster_never_raises(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("UNET_DEMO_RAY_ADDRESS", "10.9.9.9:6379")
    manager = JobManager(root=tmp_path)
    assert isinstance(manager.launcher, RayLauncher)
    assert manager.launcher.address == "10.9.9.9:6379"
    assert launcher_for("local", "") is None
    assert launcher_for("ray", "").address == "10.9.9.9:6379"
    assert launcher_for("RAY", "h:1").address == "h:1"
    with pytest.raises(UNetDemoError, match="Unknown backend"):
        launcher_for("slurm", "")
    monkeypatch.delenv("UNET_DEMO_RAY_ADDRESS")
    with pytest.raises(UNetDemoError, match="--ray-address"):
        launcher_for("ray", "")
    monkeypatch.delenv("UNET_DEMO_RAY_ADDRESS", raising=False)
    assert not isinstance(JobManager(root=tmp_path).launcher, RayLauncher)

    # Nothing listens at the address: answered in well under a second (ray.init alone would
    # wait a minute), with a log line, never an exception.
    monkeypatch.setitem(ray_backend._connection, "failed_at", 0.0)
    begin = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="unet_demo.training.ray_backend"):
        assert ray_backend.ray_worker_alive(tmp_path, {"backend": "ray", "actor_id": "ab",
                                                       "address": "127.0.0.1:1"}) is False
    assert time.monotonic() - begin < 2.5
    assert "Ray is unreachable" in caplog.text
    caplog.clear()

    # A head that accepts TCP but fails ray.init: False, 0 slots and one log line, and no
    # retry for RETRY_CONNECT_AFTER_S (a page polling every second stays fast).
    monkeypatch.setattr(ray_backend, "_probe", lambda address: None)
    calls = []

    def refuse(**kwargs):
        calls.append(kwargs)
        raise ConnectionError("GCS at 10.9.9.9:6379 did not answer")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setitem(ray_backend._connection, "failed_at", 0.0)
    info = {"backend": "ray", "actor": "r", "actor_id": "ab" * 16, "address": "10.9.9.9:6379"}
    with caplog.at_level(logging.WARNING, logger="unet_demo.training.ray_backend"):
        assert ray_backend.ray_worker_alive(tmp_path, info) is False
        assert RayLauncher("10.9.9.9:6379").capacity() == 0
        assert ray_backend.ray_worker_alive(tmp_path, info) is False
    assert len(calls) == 1
    assert calls[0]["namespace"] == "unet_demo" and calls[0]["log_to_driver"] is False
    assert "Ray is unreachable" in caplog.text
    monkeypatch.setitem(ray_backend._connection, "failed_at", 0.0)
    with pytest.raises(UNetDemoError, match="docs/scale-out.md"):
        RayLauncher("10.9.9.9:6379").launch(tmp_path / "run")


# --------------------------------------------------------------------------- cluster

@pytest.fixture(scope="module")
def cluster():
    """Head (1 CPU) + one node (1 CPU) on this machine; shut down after the module.

    Every node, worker and driver uses the loopback address: Ray's switch for single-machine
    clusters (the one it sets on macOS and Windows) is set here as an environment variable for
    the processes the cluster starts, and as the constant this process has already read.
    """
    import os

    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    begin = time.monotonic()
    local = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "object_store_memory": STORE})
    local.add_node(num_cpus=1, object_store_memory=STORE)
    local.wait_for_nodes()
    assert local.address.startswith("127.0.0.1:"), local.address
    print(f"\n[ray] 2-node cluster up in {time.monotonic() - begin:.1f} s at {local.address}")
    try:
        yield local
    finally:
        ray.shutdown()
        ray_backend._connection.update(address=None, failed_at=0.0, error="")
        local.shutdown()
        os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        ray_constants.ENABLE_RAY_CLUSTER = True


def alive_node_ids():
    return {node["NodeID"] for node in ray.nodes() if node["Alive"]}


@pytest.mark.timeout(420)
def test_runs_on_both_nodes_live_events_queue_stop_and_kill(cluster, tmp_path):
    manager = JobManager(root=tmp_path, launcher=RayLauncher(cluster.address))
    assert manager.max_jobs == 2  # 2 CPUs // 1 CPU per run
    begin = time.monotonic()
    first = manager.submit(tiny_spec(epochs=200), label="first")
    place_s = time.monotonic() - begin
    second = manager.submit(tiny_spec(epochs=200), label="second")
    third = manager.submit(tiny_spec(epochs=2), label="third")
    fourth = manager.submit(tiny_spec(epochs=2), label="fourth")
    ids = [first.run_id, second.run_id, third.run_id, fourth.run_id]
    dirs = [tmp_path / run_id for run_id in ids]
    try:
        # Ray holds two runs (one per node); the queue still shows positions and estimates.
        views = {view.run_id: view for view in manager.queue_view()}
        assert [views[run_id].state for run_id in ids] == ["running", "running", "queued",
                                                           "queued"]
        assert (views[ids[2]].position, views[ids[3]].position) == (1, 2)
        assert views[ids[2]].estimated_start > time.time() - 1
        assert views[ids[0]].backend == "ray" and views[ids[0]].node
        placed = [worker_info(path) for path in dirs[:2]]
        assert {info["node_id"] for info in placed} == alive_node_ids()  # both nodes
        for info, run_id in zip(placed, ids, strict=False):
            assert (info["backend"], info["actor"], info["namespace"]) == ("ray", run_id,
                                                                         "unet_demo")
            assert info["address"] == cluster.address and info["cpus"] == 1
        assert sorted(manager.running_ids()) == sorted(ids[:2])
        # Another app process (or the app after a restart) sees the same runs through Ray.
        other = JobManager(root=tmp_path, launcher=RayLauncher(cluster.address))
        assert sorted(other.running_ids()) == sorted(ids[:2])
        timer = time.monotonic()
        for _ in range(20):
            assert ray_backend.ray_worker_alive(dirs[0], placed[0])
        alive_ms = (time.monotonic() - timer) / 20 * 1000

        # Live events, tailed through the run folder as the Train page does.
        offsets = [0, 0]
        seen: list[list] = [[], []]

        def tail_until_batches():
            for index in (0, 1):
                events, offsets[index] = ev.read_events(dirs[index], offsets[index])
                seen[index] += events
            return all(any(isinstance(e, ev.BatchEnd) for e in got) for got in seen)

        assert wait_for(tail_until_batches, timeout=240)
        first_batch_s = time.monotonic() - begin
        for index in (0, 1):
            assert isinstance(seen[index][0], ev.Started)
            environment = rundir.read_json(dirs[index] / rundir.ENVIRONMENT_FILE)
            assert environment["backend"] == "ray"
            assert environment["ray_node_id"] == placed[index]["node_id"]

        # Cancel a queued run while Ray holds the others; the next one moves up.
        assert manager.cancel(ids[3])
        assert [(v.run_id, v.position) for v in manager.queue_view() if v.state == "queued"] \
            == [(ids[2], 1)]

        # Stop across nodes: the STOP file in the shared run folder, honoured after a batch.
        pressed = time.monotonic()
        manager.stop(ids[0])
        assert (dirs[0] / rundir.STOP_FILE).is_file()
        assert wait_for(lambda: has_event(dirs[0], ev.Stopped), timeout=60)
        stopped_s = time.monotonic() - pressed
        assert manager.wait(ids[0], timeout=90)  # the worker exited and its actor with it
        stop_s = time.monotonic() - pressed
        assert ray_backend._get_actor(ids[0]) is None
        assert isinstance(ev.last_event(dirs[0]), ev.Stopped)
        assert rundir.load_run(ids[0], root=tmp_path).status == "stopped"

        # The freed slot goes to the queued run.
        assert wait_for(lambda: manager.dispatch() or manager.is_running(ids[2]), timeout=30)
        third_info = worker_info(dirs[2])
        assert third_info["node_id"] == placed[0]["node_id"]  # the node that was freed

        # Hard kill across nodes: the worker process and the actor end at once.
        pressed = time.monotonic()
        manager.kill(ids[1])
        kill_s = time.monotonic() - pressed
        assert not manager.is_running(ids[1])
        assert wait_for(lambda: process_gone(placed[1]["worker_pid"]), timeout=10)
        assert ray_backend._get_actor(ids[1]) is None
        assert rundir.load_run(ids[1], root=tmp_path).status == "interrupted"  # resumable

        assert manager.running_ids() == [ids[2]] and manager.queue_view()[0].state == "running"
    finally:
        for run_id in ids:
            manager.kill(run_id)
    assert manager.running_ids() == [] and manager.queue_view() == []
    print(f"\n[ray] place a run (submit -> node known): {place_s:.2f} s; first live batch of "
          f"both runs after {first_batch_s:.1f} s; Stopped event {stopped_s:.1f} s after Stop, "
          f"worker and actor gone after {stop_s:.1f} s; hard kill "
          f"{kill_s:.2f} s; status check of a running run {alive_ms:.1f} ms; placement reported "
          f"by the launcher: "
          f"{[info.get('place_seconds') for info in placed]}")


@pytest.mark.timeout(420)
def test_a_node_lost_mid_run_fails_the_run_which_resumes_from_its_checkpoint(cluster, tmp_path):
    doomed = cluster.add_node(num_cpus=1, resources={"doomed": 1}, object_store_memory=STORE)
    cluster.wait_for_nodes()
    spec = tiny_spec(epochs=5, images=16)
    pinned = JobManager(root=tmp_path, launcher=RayLauncher(cluster.address,
                                                            resources={"doomed": 1}))
    assert pinned.max_jobs == 1
    run_id = pinned.submit(spec, label="doomed").run_id
    run_dir = tmp_path / run_id
    try:
        info = worker_info(run_dir)
        assert info["node_id"] == doomed.node_id
        assert wait_for(lambda: rundir.read_json(run_dir / rundir.STATE_FILE).get("epoch", 0)
                        >= 1, timeout=240)
        removed = time.monotonic()
        cluster.remove_node(doomed)
        assert wait_for(lambda: not pinned.is_running(run_id), timeout=60)
        noticed_s = time.monotonic() - removed
        assert wait_for(lambda: process_gone(info["worker_pid"]), timeout=15)
        run = rundir.load_run(run_id, root=tmp_path)
        assert run.status == "failed"
        assert "Ray node" in run.message and "died" in run.message
        assert "resume" in run.message
        saved = rundir.read_json(run_dir / rundir.STATE_FILE)["epoch"]
        assert 1 <= saved < spec.train.epochs

        # Started again with the same run id on the nodes that are left: resumes.
        manager = JobManager(root=tmp_path, launcher=RayLauncher(cluster.address))
        begin = time.monotonic()
        manager.submit(spec, run_id=run_id)
        assert manager.is_running(run_id)
        assert worker_info(run_dir)["node_id"] in alive_node_ids() - {doomed.node_id}
        assert manager.wait(run_id, timeout=300)
        resume_s = time.monotonic() - begin
    finally:
        pinned.kill(run_id)
    events, _ = ev.read_events(run_dir)
    starts = [event for event in events if isinstance(event, ev.Started)]
    assert starts[-1].initial_epoch == saved
    assert isinstance(events[-1], ev.Finished)
    assert [row["epoch"] for row in rundir.load_history(run_dir)] == list(range(1, 6))
    assert rundir.load_run(run_id, root=tmp_path).status == "finished"
    assert wait_for(lambda: ray_backend._get_actor(run_id) is None, timeout=10)  # it exited
    assert manager.running_ids() == []
    print(f"\n[ray] node loss noticed (run shown failed) {noticed_s:.2f} s after remove_node; "
          f"resumed from epoch {saved} and finished in {resume_s:.1f} s; "
          f"{json.dumps({'message': run.message})}")


@pytest.mark.timeout(120)
def test_a_node_that_cannot_see_the_run_folder_fails_the_run_with_the_reason(cluster, tmp_path):
    run_dir = tmp_path / "not-shared"
    run_dir.mkdir()  # no config.json: what a node sees when the runs folder is not shared
    info = RayLauncher(cluster.address).launch(run_dir)
    assert info["backend"] == "ray" and info["node"] == ""
    last = ev.last_event(run_dir)
    assert isinstance(last, ev.Failed)
    assert "cannot see the run folder" in last.message and "docs/scale-out.md" in last.message
    assert not ray_backend.ray_worker_alive(run_dir, info)
