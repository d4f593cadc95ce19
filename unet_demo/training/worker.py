"""Worker process entry: ``python -m unet_demo.training.worker RUN_DIR``.

Reads RUN_DIR/config.json, trains (resuming from the last complete epoch when the folder holds
a checkpoint), and writes every event to RUN_DIR/events.jsonl. A stop is requested by creating
RUN_DIR/STOP (or sending SIGTERM); it is honoured right after the current batch. The job
manager starts this module in its own process so that a crash or a hard kill cannot take the
app server down, and the memory is returned when training ends. A run with
``train.workers > 1`` starts that many training processes from here
(`unet_demo.training.distributed.run_local`); this process stays the one the job manager
watches and stops, and its children die with it.

Example:
    $ python -m unet_demo.training.worker runs/20261123-101500-a1b2c3
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Train the run in ``argv[0]``; 0 finished or stopped, 1 failed, 2 bad usage."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m unet_demo.training.worker RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(args[0])
    from unet_demo.errors import UNetDemoError
    from unet_demo.training import rundir
    from unet_demo.training.runner import load_spec, run_training

    terminate = {"requested": False}

    def on_sigterm(signum, frame):
        terminate["requested"] = True

    signal.signal(signal.SIGTERM, on_sigterm)
    stop_file = run_dir / rundir.STOP_FILE

    def should_stop() -> bool:
        return terminate["requested"] or stop_file.exists()

    try:
        run_training(load_spec(run_dir), run_dir, should_stop=should_stop, resume=True)
    except UNetDemoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - recorded as a Failed event by run_training
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        start_next_queued_run(run_dir)
    return 0


def start_next_queued_run(run_dir: Path) -> None:
    """Hand this worker's slot to the next queued run (local backend; Ray's app dispatches).

    Args:
        run_dir: the run that is ending (not counted as busy).
    """
    import os

    if os.environ.get("UNET_DEMO_WORKER_BACKEND", "local") != "local":
        return
    from unet_demo.training.jobs import JobManager

    try:
        JobManager(root=run_dir.parent).dispatch(exclude=run_dir.name)
    except Exception as error:  # noqa: BLE001 - the app's dispatcher retries in 2 s
        print(f"warning: could not start the next queued run: {error}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
