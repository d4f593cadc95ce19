"""One run on several data-parallel workers (``tf.distribute.MultiWorkerMirroredStrategy``).

A run asks for N workers with `TrainConfig.workers`. Every worker runs the same
`unet_demo.training.runner` hooks on its own process; the strategy keeps one copy of the
weights per worker and sums the gradients of each step over all workers (a collective
all-reduce), so the copies never drift apart.

The rule for batch and learning rate: the *global* batch stays ``batch_size`` (each worker
trains on ``batch_size / N`` images of it, so ``batch_size`` must divide by N) and the learning
rate is unchanged. Worker i gets the i-th slice of every global batch (tf.data ``DATA``
sharding after the strategy's rebatching), the loss of each slice is divided by N and the
gradients are summed, so an N-worker step is the step of one worker on the whole batch: exact
for per-pixel terms (cross-entropy), while batch-Dice terms are computed per slice and
averaged (as on several GPUs). Reported metrics are the mean over workers.

The chief rule: task 0 (the chief) writes events, checkpoints, snapshots, history, model and
metrics into the run folder; the other workers run the very same code (saving a model reads
the replicated variables, so every worker must do it) into a temporary folder that is deleted
when they end. The Train page and `rundir` therefore see one normal run.

Stop: only the chief polls ``should_stop`` (after every batch); it decides a batch two batches
ahead and shares it through a file in the run folder (`StepStop`), so every worker stops after
the same batch and no collective op is left waiting. A worker that dies ends the run: the local
launcher (`run_local`) kills the others after a short grace and writes a `Failed` event; Ray
Train fails the whole worker group. Collective ops also time out
(``UNET_DEMO_COLLECTIVE_TIMEOUT`` seconds, default 600) so a hung peer cannot block forever.

Two ways to start the workers:

* `run_local`: N processes on this machine (``python -m unet_demo.training.multiworker``),
  ``TF_CONFIG`` on free loopback ports, each with its share of the CPU threads.
  `unet_demo.training.runner.run_training` calls it when ``spec.train.workers > 1``.
* `unet_demo.training.multiworker.run_on_ray_train`: Ray Train's ``TensorflowTrainer`` (it sets
  ``TF_CONFIG``), the run folder on storage that every node can read.

This module holds the cluster helpers and the local launcher and never imports the runner (the
runner imports it); what subclasses the runner's trainer for one worker (`train_worker`, the
chief rule, the worker entry point and the Ray Train loop) lives in
`unet_demo.training.multiworker`.

Example:
    >>> parse_tf_config('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"index": 1}}')
    (1, 2)
    >>> parse_tf_config("")
    (0, 1)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unet_demo.errors import UNetDemoError

MAX_WORKERS = 8
"""The most workers `TrainConfig.workers` accepts."""
GRACE_SECONDS = 10.0
"""How long the launcher waits for the other workers after one failed, before killing them."""
COLLECTIVE_TIMEOUT_ENV = "UNET_DEMO_COLLECTIVE_TIMEOUT"
THREADS_ENV = "UNET_DEMO_WORKER_THREADS"
FAULT_ENV = "UNET_DEMO_TEST_FAULT_WORKER"
"""Test hook: ``"i"`` makes worker i exit hard (code 3) after its first batch."""
SCRATCH_ENV = "UNET_DEMO_WORKER_SCRATCH"
"""Where the non-chief workers put their temporary run folders (default: the temp dir)."""
STOP_FLAG = "stop"
STOP_AT_FILE = ".workers-stop-at"
"""In the run folder: the batch (counted over the run) after which all workers stop."""

_STRATEGY: Any = None


# --------------------------------------------------------------------------- TF_CONFIG

def parse_tf_config(text: str | None) -> tuple[int, int]:
    """(this task's index, number of workers) of a ``TF_CONFIG`` value; (0, 1) when unset.

    Args:
        text: the JSON text of ``TF_CONFIG`` (or None / "").
    """
    if not text:
        return 0, 1
    try:
        config = json.loads(text)
        workers = len(config.get("cluster", {}).get("worker", []))
        index = int(config.get("task", {}).get("index", 0))
    except (ValueError, TypeError, AttributeError):
        raise UNetDemoError(f"TF_CONFIG is not valid JSON for MultiWorkerMirroredStrategy: "
                            f"{text[:200]!r}.") from None
    return index, max(1, workers)


def cluster_task() -> tuple[int, int]:
    """(index, workers) of this process from the ``TF_CONFIG`` environment variable."""
    return parse_tf_config(os.environ.get("TF_CONFIG"))


def in_multi_worker_cluster() -> bool:
    """True when ``TF_CONFIG`` describes more than one worker."""
    return cluster_task()[1] > 1


def tf_config(addresses: list[str], index: int) -> str:
    """The ``TF_CONFIG`` JSON of worker ``index`` in a cluster of ``addresses``.

    Example:
        >>> json.loads(tf_config(["127.0.0.1:1", "127.0.0.1:2"], 1))["task"]
        {'type': 'worker', 'index': 1}
    """
    return json.dumps({"cluster": {"worker": list(addresses)},
                       "task": {"type": "worker", "index": int(index)}})


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on the loopback interface."""
    sockets, ports = [], []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
            ports.append(sock.getsockname()[1])
    finally:
        for sock in sockets:
            sock.close()
    return ports


def thread_share(workers: int, cpus: int | None = None) -> int:
    """CPU threads per worker when ``workers`` processes share this machine (at least 1).

    Example:
        >>> thread_share(2, cpus=8), thread_share(4, cpus=2)
        (4, 1)
    """
    cpus = cpus or os.cpu_count() or 1
    return max(1, cpus // max(1, workers))


def check_workers(workers: int, batch_size: int) -> None:
    """Refuse a worker count out of range or one that does not divide the global batch.

    Raises:
        UNetDemoError: with what to change.

    Example:
        >>> check_workers(2, 8)
        >>> check_workers(3, 8)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        unet_demo.errors.UNetDemoError: batch_size (8) must be divisible by workers (3): ...
    """
    if not 1 <= workers <= MAX_WORKERS:
        raise UNetDemoError(f"workers must be between 1 and {MAX_WORKERS}. Received: "
                            f"{workers!r}.")
    if batch_size % workers:
        raise UNetDemoError(
            f"batch_size ({batch_size}) must be divisible by workers ({workers}): the global "
            f"batch is split evenly, each worker trains on batch_size / workers images. Pick a "
            f"batch size such as {workers * max(1, round(batch_size / workers))} or another "
            "worker count.")


# --------------------------------------------------------------------------- strategy

def multi_worker_strategy():
    """This process's ``MultiWorkerMirroredStrategy`` (created once, from ``TF_CONFIG``).

    Create it before any other TensorFlow op runs (TensorFlow configures its collective ops
    when the eager context starts); `train_worker` does. Thread limits from
    ``UNET_DEMO_WORKER_THREADS`` are applied first.
    """
    global _STRATEGY
    if _STRATEGY is None:
        import tensorflow as tf

        threads = int(os.environ.get(THREADS_ENV, "0") or 0)
        if threads > 0:
            with contextlib.suppress(RuntimeError):  # the context may already be running
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(max(2, threads))
        timeout = float(os.environ.get(COLLECTIVE_TIMEOUT_ENV, "600") or 0)
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=timeout if timeout > 0 else None,
            implementation=tf.distribute.experimental.CommunicationImplementation.RING)
        _STRATEGY = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        _skip_initial_broadcast(_STRATEGY)
        _patch_keras_reduce()
    return _STRATEGY


def _patch_keras_reduce() -> None:
    """Work around Keras 3.15's ``reduce_per_replica`` under MultiWorkerMirroredStrategy.

    For ``fit`` logs it calls ``strategy.reduce("MEAN", value, axis=0)``, which fails for the
    scalar loss and metric values ("Invalid reduction dimension 0 for input with 0
    dimensions"). Here the "auto"/"mean" reduction of a multi-worker strategy is the mean over
    the workers (``axis=None``); every other case is Keras' own. Patched in worker processes
    only (the strategy exists there).
    """
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica
    if getattr(original, "unet_demo_patch", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and \
                tf_trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica.unet_demo_patch = True
    tf_trainer.reduce_per_replica = reduce_per_replica


def all_sum(strategy) -> Callable[[float], float]:
    """A function (this worker's number -> the sum over all workers): one all-reduce.

    Every worker must call it the same number of times, in the same order.
    """
    import tensorflow as tf

    @tf.function
    def summed(value):
        local = strategy.run(tf.identity, args=(value,))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, local, axis=None)

    def total(value: float) -> float:
        return float(summed(tf.constant(value, tf.float32)))

    return total


class StepStop:
    """The shared stop of a multi-worker run: every worker stops after the same batch.

    Called by every worker after each batch with its own answer (only the chief polls
    ``should_stop``; the others pass False). When the chief says True after its batch ``n``
    (counted over the whole run), it writes ``n + margin`` to ``path`` and stops there; the
    others read the file and stop after that batch too. This is safe because the workers run
    in lockstep: no worker can finish batch ``n + 1`` before the chief has finished batch
    ``n``'s callback (each step's gradient all-reduce needs every worker), so the file is
    written before anyone passes the agreed batch; ``margin`` batches leave time for a shared
    filesystem to show it. (An all-reduce of the flag inside a Keras callback collided with
    the next step's collectives on TF 2.21, so no extra collective op runs during ``fit``.)

    Args:
        path: a file every worker can read (the run folder is shared storage).
        chief: True on task 0.
        margin: batches between the decision and the stop.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "stop_at"
        >>> chief, other = StepStop(path, True), StepStop(path, False)
        >>> [chief(False), other(False), chief(True), other(False)]
        [False, False, False, False]
        >>> [chief(False), other(False), chief(False), other(False)]
        [False, False, True, True]
    """

    def __init__(self, path: str | Path, chief: bool, margin: int = 2):
        self.path = Path(path)
        self.chief = chief
        self.margin = max(1, int(margin))
        self.count = 0
        self.stop_at: int | None = None
        if chief:
            with contextlib.suppress(OSError):
                self.path.unlink()  # a stale decision of an earlier attempt

    def __call__(self, local: bool) -> bool:
        self.count += 1
        if self.stop_at is None:
            if self.chief and local:
                self.stop_at = self.count + self.margin
                tmp = self.path.with_name(f".tmp-{os.getpid()}-{self.path.name}")
                tmp.write_text(str(self.stop_at), encoding="utf-8")
                os.replace(tmp, self.path)
            elif not self.chief and self.path.is_file():
                with contextlib.suppress(OSError, ValueError):
                    self.stop_at = int(self.path.read_text(encoding="utf-8").strip())
                if self.stop_at is not None and self.count > self.stop_at:
                    print(f"warning: saw the stop for batch {self.stop_at} only after batch "
                          f"{self.count}", file=sys.stderr)
        return self.stop_at is not None and self.count >= self.stop_at


def _skip_initial_broadcast(strategy) -> None:
    """Create variables from each worker's own initial value, without the chief's broadcast.

    MultiWorkerMirroredStrategy normally broadcasts every new variable's initial value from
    the chief, one eager collective per variable; on TF 2.21 / Keras 3.15 these broadcasts
    sometimes hung for good on a loaded 2-core machine (chief in ``broadcast_send``, worker in
    ``broadcast_recv`` of the same key). Every worker seeds Keras with the run's seed and builds
    the same model (or loads the same checkpoint), so the initial values are equal anyway;
    `check_same_weights` verifies it with one all-reduce after the build.
    """
    from tensorflow.python.distribute import mirrored_strategy

    extended = strategy.extended
    extended._get_variable_creator_initial_value = (  # the one-worker (Mirrored) behaviour
        lambda replica_id, device, primary_var, **kwargs:
        mirrored_strategy.MirroredExtended._get_variable_creator_initial_value(
            extended, replica_id, device, primary_var, **kwargs))


def weights_checksum(model) -> float:
    """A float that changes with any weight: sum of each weight tensor times its position."""
    import numpy as np

    total = 0.0
    for position, weight in enumerate(model.get_weights(), start=1):
        values = np.asarray(weight, np.float64).ravel()
        total += position * float(np.dot(values, np.linspace(1.0, 2.0, len(values))))
    return total


def check_same_weights(model, strategy, workers: int) -> None:
    """Raise when the workers' models do not start from the same weights (one all-reduce)."""
    mine = weights_checksum(model)
    summed = all_sum(strategy)(mine)
    if abs(summed - workers * mine) > 1e-4 * max(1.0, abs(workers * mine)):
        raise UNetDemoError(
            f"The {workers} workers built models with different starting weights (checksum "
            f"{mine:.6g} here, mean {summed / workers:.6g}); they must use the same seed and "
            "code.")


# --------------------------------------------------------------------------- one worker

def _patch_symbolic_build(model, strategy) -> None:
    """Work around Keras 3's ``_maybe_symbolic_build`` under MultiWorkerMirroredStrategy.

    Keras 3.15 reduces the whole first (x, y) batch with ``strategy.reduce("MEAN", batch)``,
    which MultiWorkerMirroredStrategy refuses for a tuple of PerReplica values ("Attempt to
    convert a value (PerReplica...) to a Tensor"). The batch only gives the shapes to build
    the model symbolically, so this takes the local replica's part instead (no collective).
    """
    import tensorflow as tf
    from keras.src import tree

    def local_part(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tree.map_structure(local_part, next(it))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = maybe_symbolic_build


def replica_loss_weight(loss, output_classes: int, workers: int) -> float:
    """The loss weight that makes the summed gradients of ``workers`` replicas a mean.

    Keras divides a loss by the number of replicas only when the loss hands it per-pixel
    values (``reduce_values``); the batch losses of `unet_demo.losses` (BCE + Dice, Dice,
    Tversky, ...) return one number, which Keras leaves as it is, so the gradients summed over
    N workers would be N times one worker's (and the logged loss N times too). Those get the
    weight 1/N here (Keras multiplies the logged loss back by N); per-pixel losses get 1.

    Example:
        >>> from unet_demo.config import TrainConfig
        >>> from unet_demo.losses import get_loss
        >>> [replica_loss_weight(get_loss(TrainConfig(loss=name), 1), 1, 2)
        ...  for name in ("bce_dice", "bce")]
        [0.5, 1.0]
    """
    import numpy as np
    from keras import ops

    if output_classes == 1:
        truth, guess = np.ones((1, 4, 4, 1), np.float32), np.full((1, 4, 4, 1), 0.5, np.float32)
    else:
        truth = np.ones((1, 4, 4), np.int32)
        guess = np.full((1, 4, 4, output_classes), 1.0 / output_classes, np.float32)
    scalar = tuple(ops.shape(loss.call(truth, guess))) == ()
    return 1.0 / workers if scalar else 1.0


# --------------------------------------------------------------------------- local launcher

def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child gets SIGKILL when the launcher dies (no orphaned workers)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _log_tail(path: Path, chars: int = 1500) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(lines)[-chars:]


def run_local(spec, run_dir: str | Path, *, should_stop: Callable[[], bool] | None = None,
              on_event=None, resume: bool = True, poll_seconds: float = 0.2) -> Path:
    """Train ``spec`` on ``spec.train.workers`` processes of this machine; return ``run_dir``.

    Each process gets ``TF_CONFIG`` (free loopback ports) and ``cpu_count / workers`` threads.
    This process stays the run's owner: it polls ``should_stop`` and passes a stop to the
    chief (a flag file), hands the chief's events to ``on_event`` as they are written, and
    when a worker fails it stops the others (SIGTERM, then SIGKILL after `GRACE_SECONDS`) and
    makes sure the run ends with a `Failed` event.

    Raises:
        UNetDemoError: a worker failed (after the `Failed` event is written).
    """
    import unet_demo
    from unet_demo.training import events as ev

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    workers = int(spec.train.workers)
    check_workers(workers, spec.train.batch_size)
    control = Path(tempfile.mkdtemp(prefix="unet-demo-workers-"))
    spec_path = control / "spec.json"
    spec_path.write_text(spec.to_json(), encoding="utf-8")
    addresses = [f"127.0.0.1:{port}" for port in free_ports(workers)]
    threads = thread_share(workers)
    package_root = str(Path(unet_demo.__file__).resolve().parents[1])
    _, offset = ev.read_events(run_dir) if run_dir.is_dir() else ([], 0)
    processes: list[subprocess.Popen] = []
    logs: list[Path] = []
    try:
        for index in range(workers):
            env = dict(os.environ)
            env.update({
                "TF_CONFIG": tf_config(addresses, index),
                THREADS_ENV: str(threads),
                SCRATCH_ENV: str(control),  # removed by this launcher even after a hard kill
                "OMP_NUM_THREADS": str(threads),
                "TF_NUM_INTRAOP_THREADS": str(threads),
                # One hash seed for all workers: anything that orders by hash then creates
                # variables in the same order on every worker (their broadcasts must match).
                "PYTHONHASHSEED": env.get("PYTHONHASHSEED", "0"),
                "PYTHONPATH": os.pathsep.join(
                    [package_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                      if p]),
            })
            env.pop("TF_USE_LEGACY_KERAS", None)
            log = control / f"worker-{index}.log"
            logs.append(log)
            with open(log, "wb") as handle:
                command = [sys.executable, "-m", "unet_demo.training.multiworker",
                           str(spec_path), str(run_dir), str(control)]
                processes.append(subprocess.Popen(
                    command + ([] if resume else ["--fresh"]), env=env, stdout=handle,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    preexec_fn=_die_with_parent if sys.platform == "linux" else None))
        failed: tuple[int, int] | None = None
        failed_at = 0.0
        stop_sent = False
        while True:
            if on_event is not None:
                new, offset = ev.read_events(run_dir, offset)
                for event in new:
                    on_event(event)
            codes = [process.poll() for process in processes]
            if all(code is not None for code in codes):
                break
            if failed is None:
                for index, code in enumerate(codes):
                    if code not in (None, 0):
                        failed, failed_at = (index, code), time.monotonic()
                        break
            if failed is not None and time.monotonic() - failed_at > GRACE_SECONDS:
                for process in processes:
                    if process.poll() is None:
                        process.kill()
            if not stop_sent and should_stop is not None and should_stop():
                (control / STOP_FLAG).touch()
                stop_sent = True
            time.sleep(poll_seconds)
        if on_event is not None:
            new, offset = ev.read_events(run_dir, offset)
            for event in new:
                on_event(event)
        codes = [process.returncode for process in processes]
        bad = [(index, code) for index, code in enumerate(codes) if code != 0]
        if not bad:
            return run_dir
        index, code = failed if failed is not None else bad[0]
        last = ev.last_event(run_dir)
        tail = _log_tail(logs[index])
        message = (f"Training failed: worker {index} of {workers} ended with exit code {code}"
                   + (f":\n{tail}" if tail else "."))
        if isinstance(last, ev.Failed) and index == 0:
            message = last.message  # the chief said why itself
        elif not isinstance(last, ev.Failed):
            failure = ev.Failed(message=message[:4000])
            ev.append_event(run_dir, failure)
            if on_event is not None:
                on_event(failure)
        for number, log in enumerate(logs):  # the workers' own words, for the job's log
            print(f"--- worker {number} of {workers} (exit code {codes[number]}):\n"
                  f"{_log_tail(log, 6000)}", file=sys.stderr)
        raise UNetDemoError(message)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                with contextlib.suppress(Exception):
                    process.wait(timeout=10)
        shutil.rmtree(control, ignore_errors=True)


# --------------------------------------------------------------------------- Ray Train

__all__ = ["MAX_WORKERS", "check_workers", "cluster_task", "in_multi_worker_cluster",
           "multi_worker_strategy", "parse_tf_config", "run_local", "StepStop", "tf_config",
           "thread_share"]

