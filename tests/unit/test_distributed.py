"""One run on several workers: TF_CONFIG, the batch rule, the shared stop, the local launcher."""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

import pytest

from tests.unit.training_helpers import tiny_spec
from unet_demo.commands import train as train_command
from unet_demo.config import TrainConfig
from unet_demo.errors import UNetDemoError
from unet_demo.training import distributed, multiworker
from unet_demo.training import events as ev


def two_workers(spec):
    return spec.replace(train=spec.train.replace(workers=2))


# --------------------------------------------------------------------------- no TensorFlow

def test_tf_config_round_trip_and_cluster_task(monkeypatch):
    text = distributed.tf_config(["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"], 2)
    assert distributed.parse_tf_config(text) == (2, 3)
    monkeypatch.setenv("TF_CONFIG", text)
    assert distributed.cluster_task() == (2, 3) and distributed.in_multi_worker_cluster()
    monkeypatch.delenv("TF_CONFIG")
    assert distributed.cluster_task() == (0, 1) and not distributed.in_multi_worker_cluster()
    with pytest.raises(UNetDemoError, match="TF_CONFIG"):
        distributed.parse_tf_config("{not json")


def test_free_ports_are_distinct_and_threads_are_shared():
    ports = distributed.free_ports(4)
    assert len(set(ports)) == 4 and all(port > 0 for port in ports)
    assert distributed.thread_share(2, cpus=2) == 1
    assert distributed.thread_share(3, cpus=16) == 5


def test_train_config_checks_the_worker_count_and_the_batch_rule():
    assert TrainConfig().workers == 1
    assert TrainConfig(batch_size=8, workers=4).workers == 4
    with pytest.raises(UNetDemoError, match="workers must be between 1 and 8"):
        TrainConfig(workers=9)
    with pytest.raises(UNetDemoError, match="workers must be between 1 and 8"):
        TrainConfig(workers=0)
    with pytest.raises(UNetDemoError, match=r"batch_size \(8\) must be divisible by workers"):
        TrainConfig(batch_size=8, workers=3)
    with pytest.raises(UNetDemoError, match="divisible"):
        distributed.check_workers(3, 8)


def test_cli_has_a_workers_override():
    assert ("--workers", "train", "workers", int) in train_command.OVERRIDES
    import argparse

    parser = argparse.ArgumentParser()
    train_command.register(parser.add_subparsers())
    args = parser.parse_args(["train", "--dataset", "synthetic_lesions", "--out", "x",
                              "--workers", "2"])
    assert train_command.build_spec(args).train.workers == 2


def test_step_stop_makes_every_worker_stop_after_the_same_batch(tmp_path):
    path = tmp_path / distributed.STOP_AT_FILE
    path.write_text("1")  # stale: the chief removes it
    chief = distributed.StepStop(path, chief=True, margin=2)
    others = [distributed.StepStop(path, chief=False, margin=2) for _ in range(3)]
    stopped_at = {}
    for batch in range(1, 10):
        # lockstep: the chief's callback of batch n runs before anyone finishes batch n + 1
        wants = batch == 3
        for name, worker in [("chief", chief)] + [(f"w{i}", w) for i, w in enumerate(others)]:
            if worker(wants if worker is chief else False) and name not in stopped_at:
                stopped_at[name] = batch
    assert set(stopped_at.values()) == {5} and len(stopped_at) == 4
    assert json.loads(path.read_text()) == 5


# --------------------------------------------------------------------------- real workers

pytest.importorskip("tensorflow")


def _only_run_files(run_dir: Path) -> set[str]:
    return {path.name for path in run_dir.iterdir()}


def test_two_workers_match_one_worker_and_write_one_normal_run(tmp_path):
    from unet_demo.training import rundir
    from unet_demo.training.runner import run_training

    before = set(Path(tempfile.gettempdir()).glob("unet-demo-worker*"))
    spec = tiny_spec(epochs=2, images=8, batch_size=4)
    one, two = tmp_path / "one", tmp_path / "two"
    run_training(spec, one)
    seen = []
    run_training(two_workers(spec), two, on_event=seen.append)

    kinds = [type(event).__name__ for event in seen]
    per_epoch = ["BatchEnd", "BatchEnd", "EpochEnd", "ValidationSnapshot"]
    assert kinds == ["Started", *per_epoch, *per_epoch, "Finished"]
    assert [type(e).__name__ for e in ev.read_events(two)[0]] == kinds  # one writer: the chief
    assert seen[0].device == "CPU x2 workers" and seen[0].batches_per_epoch == 2
    assert rundir.load_run(two).status == "finished"
    assert _only_run_files(two) >= {"config.json", "events.jsonl", "model.keras",
                                    "metrics.json", "history.csv", "environment.json"}
    assert rundir.read_json(two / "environment.json")["workers"] == 2
    assert json.loads((two / "config.json").read_text())["train"]["workers"] == 2
    assert rundir.load_model(two).output_shape[-1] == 1

    h1, h2 = rundir.load_history(one), rundir.load_history(two)
    assert [row["epoch"] for row in h2] == [1, 2]
    for a, b in zip(h1, h2, strict=True):
        # same global batches, same learning rate: the same steps up to round-off (one worker
        # uses XLA, batch-Dice terms are averaged over the two halves of each batch)
        assert math.isclose(a["loss"], b["loss"], rel_tol=0.05, abs_tol=0.02)
        assert abs(a["val_dice"] - b["val_dice"]) < 0.05
    d1 = rundir.read_json(one / "metrics.json")["test"]["dice"]
    d2 = rundir.read_json(two / "metrics.json")["test"]["dice"]
    assert abs(d1 - d2) < 0.05
    assert set(Path(tempfile.gettempdir()).glob("unet-demo-worker*")) <= before  # cleaned up


@pytest.mark.slow
def test_stop_reaches_every_worker_at_the_same_batch(tmp_path):
    from unet_demo.training import rundir
    from unet_demo.training.runner import run_training

    started = time.monotonic()
    run_training(two_workers(tiny_spec(epochs=3, images=8, batch_size=4)), tmp_path,
                 should_stop=lambda: True)
    events = ev.read_events(tmp_path)[0]
    stopped = events[-1]
    # the chief sees the stop after batch 1 and all workers stop two batches later
    assert isinstance(stopped, ev.Stopped) and (stopped.epoch, stopped.batch) == (2, 1)
    assert rundir.load_run(tmp_path).status == "stopped"
    assert (tmp_path / "model.keras").is_file()
    assert time.monotonic() - started < 400


@pytest.mark.slow
def test_a_dying_worker_ends_the_run_with_failed_not_a_hang(tmp_path, monkeypatch):
    from unet_demo.training.runner import run_training

    monkeypatch.setenv(distributed.FAULT_ENV, "1")  # worker 1 exits hard after its 1st batch
    monkeypatch.setattr(distributed, "GRACE_SECONDS", 2.0)
    started = time.monotonic()
    with pytest.raises(UNetDemoError, match="worker 1 of 2 ended with exit code 3"):
        run_training(two_workers(tiny_spec(epochs=2, images=8, batch_size=4)), tmp_path)
    last = ev.read_events(tmp_path)[0][-1]
    assert isinstance(last, ev.Failed) and "worker 1 of 2" in last.message
    assert time.monotonic() - started < 400


@pytest.mark.slow
@pytest.mark.skipif(not __import__("os").environ.get("UNET_DEMO_RAY_TESTS"),
                    reason="opt-in (UNET_DEMO_RAY_TESTS=1): a local Ray cluster, 1-5 min on 2 shared cores")
def test_ray_train_runs_two_workers_into_one_normal_run(tmp_path):
    import os

    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.train.tensorflow")
    from unet_demo.training import rundir

    root = Path(__file__).resolve().parents[2]
    ray.init(address="local", num_cpus=2, include_dashboard=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(root)}})
    try:
        run_dir = tmp_path / "runs" / "r1"
        multiworker.run_on_ray_train(two_workers(tiny_spec(epochs=2, images=8, batch_size=4)),
                                     run_dir, 2)
    finally:
        ray.shutdown()
    kinds = [type(e).__name__ for e in ev.read_events(run_dir)[0]
             if not isinstance(e, ev.BatchEnd)]
    assert kinds == ["Started", "EpochEnd", "ValidationSnapshot", "EpochEnd",
                     "ValidationSnapshot", "Finished"]
    assert rundir.load_run(run_dir).status == "finished"
    assert rundir.load_model(run_dir).output_shape[-1] == 1
    assert os.listdir(tmp_path / "runs") and rundir.list_runs(tmp_path / "runs")[0].run_id == "r1"
