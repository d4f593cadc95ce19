"""One worker of a multi-worker run: the runner's trainer with the chief rule, and its entries.

`train_worker` trains this process's part of a ``TF_CONFIG`` cluster (see
`unet_demo.training.distributed` for the rules: global batch, chief, shared stop);
``python -m unet_demo.training.multiworker SPEC_JSON RUN_DIR CONTROL_DIR`` is what the local
launcher `distributed.run_local` starts N times, and `run_on_ray_train` hands the same function
to Ray Train's ``TensorflowTrainer``. It imports the runner; the runner never imports it.

Example:
    >>> callable(train_worker), callable(run_on_ray_train)
    (True, True)
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unet_demo.errors import UNetDemoError
from unet_demo.training.distributed import (
    FAULT_ENV,
    SCRATCH_ENV,
    STOP_AT_FILE,
    STOP_FLAG,
    THREADS_ENV,
    StepStop,
    _patch_symbolic_build,
    check_same_weights,
    check_workers,
    cluster_task,
    multi_worker_strategy,
    replica_loss_weight,
)


def _worker_trainer_class():
    from unet_demo.training.runner import _Trainer

    class WorkerTrainer(_Trainer):
        """`_Trainer` for one worker of a multi-worker run (the chief rule, sharded data)."""

        def __init__(self, *args, index: int, workers: int, **kwargs):
            super().__init__(*args, **kwargs)
            self.worker_index = index
            self.worker_count = workers

        def build(self) -> None:
            super().build()
            check_same_weights(self.model, self.strategy, self.worker_count)
            _patch_symbolic_build(self.model, self.strategy)

        def compile(self, optimizer) -> None:
            from unet_demo.losses import get_loss
            from unet_demo.training.runner import training_metrics

            data = self.data
            loss = get_loss(self.spec.train, data.output_classes)
            with self.strategy.scope():
                self.model.compile(
                    optimizer=optimizer, loss=loss,
                    loss_weights=replica_loss_weight(loss, data.output_classes,
                                                     self.worker_count),
                    metrics=training_metrics(data.output_classes, data.label_count),
                    jit_compile=self.jit_compile)

        def datasets(self):
            import tensorflow as tf

            training, validation = super().datasets()
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = (
                tf.data.experimental.AutoShardPolicy.DATA)
            return training.with_options(options), validation.with_options(options)

        def record_environment(self) -> None:
            super().record_environment()
            self.environment.update({"workers": self.worker_count,
                                     "worker_threads": int(os.environ.get(THREADS_ENV, "0")
                                                           or 0)})
            from unet_demo.training import rundir

            rundir.atomic_write_json(self.run_dir / rundir.ENVIRONMENT_FILE, self.environment)

        def on_batch_end(self, batch, logs, seconds):
            fault = os.environ.get(FAULT_ENV, "")
            if fault and int(fault) == self.worker_index:
                os._exit(3)  # test hook: a worker that dies without cleaning up
            super().on_batch_end(batch, logs, seconds)

        def score_test(self, model):
            if self.worker_index != 0:  # local model, no collectives: only the chief scores
                return {}, 0
            return super().score_test(model)

    return WorkerTrainer


def _copy_resume_state(run_dir: Path, target: Path) -> None:
    """Copy what a resume reads (config, state, checkpoints) from the run folder."""
    from unet_demo.training import rundir

    for name in (rundir.CONFIG_FILE, rundir.STATE_FILE):
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, target / name)
    if (run_dir / rundir.CHECKPOINT_DIR).is_dir():
        shutil.copytree(run_dir / rundir.CHECKPOINT_DIR, target / rundir.CHECKPOINT_DIR,
                        dirs_exist_ok=True)


def train_worker(spec, run_dir: str | Path, *, should_stop: Callable[[], bool] | None = None,
                 on_event=None, resume: bool = True) -> Path:
    """Train this process's part of a multi-worker run (``TF_CONFIG`` describes the cluster).

    The chief (task 0) trains into ``run_dir`` with ``should_stop`` and ``on_event``; the
    others train into a temporary copy (the resume state of ``run_dir`` copied in) that is
    deleted afterwards, and never poll a stop themselves.

    Args:
        spec: the RunSpec (``spec.train.workers`` is informative; TF_CONFIG decides).
        run_dir: the run folder (shared storage when the workers are on several machines).
        should_stop: the chief's stop poll.
        on_event: the chief's event callback.
        resume: continue from the last complete epoch of ``run_dir``.

    Returns:
        ``run_dir``.
    """
    from unet_demo.training import events as ev

    run_dir = Path(run_dir)
    index, workers = cluster_task()
    multi_worker_strategy()  # first: before any other TensorFlow op
    chief = index == 0
    scratch = None
    if chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        target = run_dir
    else:
        scratch = Path(tempfile.mkdtemp(prefix=f"unet-demo-worker{index}-",
                                        dir=os.environ.get(SCRATCH_ENV) or None))
        target = scratch
        if resume and run_dir.is_dir():
            _copy_resume_state(run_dir, target)
    trainer = _worker_trainer_class()(spec, target, should_stop if chief else None,
                                      on_event if chief else None, index=index,
                                      workers=workers)
    trainer.agree_stop = StepStop(run_dir / STOP_AT_FILE, chief)
    try:
        trainer.run(resume)
    except Exception as error:
        if chief:
            message = str(error) if isinstance(error, UNetDemoError) else (
                f"Training failed on worker {index} of {workers}: {type(error).__name__}: "
                f"{error}")
            trainer.emit(ev.Failed(message=message[:4000]))
        raise
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return run_dir


def _main(argv: list[str] | None = None) -> int:
    """``python -m unet_demo.training.multiworker SPEC_JSON RUN_DIR CONTROL_DIR [--fresh]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (3, 4):
        print("usage: python -m unet_demo.training.multiworker SPEC_JSON RUN_DIR CONTROL_DIR "
              "[--fresh]", file=sys.stderr)
        return 2
    import faulthandler

    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 PID` prints where a worker is waiting
    multi_worker_strategy()  # before anything else touches TensorFlow
    from unet_demo.training.spec import RunSpec

    spec = RunSpec.from_json(Path(args[0]).read_text(encoding="utf-8"))
    control = Path(args[2])
    terminate = {"requested": False}
    signal.signal(signal.SIGTERM, lambda signum, frame: terminate.update(requested=True))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the launcher, which stops us

    def should_stop() -> bool:
        return terminate["requested"] or (control / STOP_FLAG).exists()

    try:
        train_worker(spec, Path(args[1]), should_stop=should_stop, resume=len(args) == 3)
    except Exception:  # noqa: BLE001 - the chief recorded it as a Failed event
        import traceback

        traceback.print_exc(file=sys.stderr)
        return 1
    return 0




def _ray_train_loop(config: dict[str, Any]) -> None:
    """``train_loop_per_worker`` of `run_on_ray_train`: the same runner code, chief rule."""
    os.environ.setdefault(THREADS_ENV, os.environ.get("OMP_NUM_THREADS", "1"))
    multi_worker_strategy()  # Ray Train set TF_CONFIG; create the strategy first
    from unet_demo.training import rundir
    from unet_demo.training.spec import RunSpec

    run_dir = Path(config["run_dir"])
    stop_file = run_dir / rundir.STOP_FILE
    train_worker(RunSpec.from_json(config["spec"]), run_dir,
                 should_stop=stop_file.exists, resume=bool(config.get("resume", True)))


def run_on_ray_train(spec, run_dir: str | Path, workers: int | None = None, *,
                     storage_path: str | Path | None = None, cpus_per_worker: float = 1,
                     resume: bool = True) -> Path:
    """Train ``spec`` on ``workers`` Ray Train workers (``TensorflowTrainer``); ``run_dir``.

    Ray Train starts the workers, sets ``TF_CONFIG`` for ``MultiWorkerMirroredStrategy`` and
    runs `train_worker` on each: the chief (world rank 0) writes the run folder, so
    ``run_dir`` must be on storage every node can read and write (a shared filesystem). A stop
    is the usual RUN_DIR/STOP file, read by the chief. Ray must be reachable (``ray.init`` done
    or ``RAY_ADDRESS`` set); ``ray.train`` is imported only here.

    Args:
        spec: what to train.
        run_dir: the run folder (shared storage).
        workers: how many workers (default ``spec.train.workers``).
        storage_path: Ray Train's ``RunConfig.storage_path`` (default: the run folder's parent,
            which is shared storage already); the experiment folder is ``.ray-train-<run>``.
        cpus_per_worker: CPUs each worker asks Ray for (also its thread count).
        resume: continue from the last complete epoch of ``run_dir``.

    Raises:
        UNetDemoError: the run failed (a `Failed` event is written when the chief did not).
    """
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    from unet_demo.training import events as ev

    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    workers = int(workers or spec.train.workers)
    check_workers(workers, spec.train.batch_size)
    if workers != spec.train.workers:
        spec = spec.replace(train=spec.train.replace(workers=workers))
    storage = Path(storage_path).resolve() if storage_path else run_dir.parent
    trainer = TensorflowTrainer(
        _ray_train_loop,
        train_loop_config={"spec": spec.to_json(), "run_dir": str(run_dir),
                           "resume": bool(resume)},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=False,
                                     resources_per_worker={"CPU": cpus_per_worker}),
        run_config=RunConfig(name=f".ray-train-{run_dir.name}", storage_path=str(storage),
                             failure_config=FailureConfig(max_failures=0)),
    )
    try:
        trainer.fit()
    except Exception as error:  # noqa: BLE001 - Ray wraps the worker's error
        last = ev.last_event(run_dir)
        message = (last.message if isinstance(last, ev.Failed) else
                   f"Training failed on Ray Train ({workers} workers): "
                   f"{type(error).__name__}: {str(error)[:2000]}")
        if not isinstance(last, ev.Failed):
            ev.append_event(run_dir, ev.Failed(message=message[:4000]))
        raise UNetDemoError(message) from error
    return run_dir




if __name__ == "__main__":
    sys.exit(_main())
