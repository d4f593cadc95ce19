"""``train`` without ``--out`` joins the queue; ``jobs`` lists, cancels and stops (real CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.unit.training_helpers import tiny_spec
from unet_demo.training import rundir
from unet_demo.training.jobs import JobManager

pytest.importorskip("tensorflow")

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unet_demo", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.fixture()
def env(tmp_path):
    values = dict(os.environ, UNET_DEMO_RUNS_DIR=str(tmp_path / "runs"), UNET_DEMO_MAX_JOBS="1",
                  UNET_DEMO_OWNER="student-a")
    values.pop("UNET_DEMO_ADMIN_TOKEN", None)
    return values


TINY = ("--dataset", "synthetic_lesions", "--image-size", "32", "--max-train-images", "8",
        "--depth", "2", "--base-filters", "4", "--normalization", "group", "--batch-size", "4",
        "--no-augment")


def test_train_queues_behind_a_running_run_and_waits_for_it(env, tmp_path):
    runs = tmp_path / "runs"
    manager = JobManager(root=runs, max_jobs=1)
    blocker = manager.submit(tiny_spec(epochs=200), owner="someone-else").run_id
    try:
        queued = cli("train", *TINY, "--epochs", "1", "--no-wait", "--json", env=env)
        assert queued.returncode == 0, queued.stderr
        view = json.loads(queued.stdout)
        assert view["state"] == "queued" and view["position"] == 1
        assert "number 1 in line" in queued.stderr
        # Same person again: refused with the reason, nothing added.
        again = cli("train", *TINY, "--no-wait", env=env)
        assert again.returncode == 2 and "each person may have 1" in again.stderr
        listing = json.loads(cli("jobs", "--json", env=env).stdout)
        assert [(job["run_id"], job["state"]) for job in listing["jobs"]] == [
            (blocker, "running"), (view["run_id"], "queued")]
        text = cli("jobs", env=env).stdout
        assert "(yours)" in text and f"#1  {view['run_id']}" in text
        # Not yours: cancel and stop are refused.
        refused = cli("jobs", "stop", blocker, env=env)
        assert refused.returncode == 2 and "started by someone else" in refused.stderr
        assert manager.is_running(blocker)
        # Another student waits in line (--wait is the default) while the blocker is stopped.
        other_env = dict(env, UNET_DEMO_OWNER="student-b")
        waiting = subprocess.Popen([sys.executable, "-m", "unet_demo", "train", *TINY,
                                    "--epochs", "1", "--json"], cwd=REPO, env=other_env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while len(manager.queue_view()) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [v.position for v in manager.queue_view()] == [0, 1, 2]
        cancelled = cli("jobs", "cancel", view["run_id"], env=env)
        assert cancelled.returncode == 0, cancelled.stderr
        assert rundir.load_run(runs / view["run_id"]).status == "cancelled"
        manager.stop(blocker, grace_s=0)
        out, err = waiting.communicate(timeout=300)
        assert waiting.returncode == 0, err
        result = json.loads(out)
        assert result["status"] == "finished"
        assert "Queued: number 2 in line" in err and "Finished after 1 epoch" in err
    finally:
        manager.kill(blocker)


def test_train_with_out_and_wait_flags_is_refused_with_the_fix(env, tmp_path):
    result = cli("train", *TINY, "--out", str(tmp_path / "x"), "--no-wait", env=env, timeout=60)
    assert result.returncode == 2 and "drop --out to queue the run" in result.stderr
    assert not (tmp_path / "x").exists()
