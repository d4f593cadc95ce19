"""Record the Lessons page's experiments: train every run of the catalogue and keep it compact.

Each run trains through the normal engine (`unet_demo.training.runner.run_training`) on
bundled data with the catalogue's `RunSpec` (fixed seeds, deterministic), in a scratch folder;
`unet_demo.lessons.recordings.compact_run` then copies what a replay needs into
``lessons/<experiment>/<run>/``. A run whose recording already holds the same spec is skipped,
so the script can be stopped and started again.

Usage:
    .venv/bin/python scripts/record_lessons.py                       # everything not recorded
    .venv/bin/python scripts/record_lessons.py --only skip_connections --force
    .venv/bin/python scripts/record_lessons.py --list                # experiments and runs
    .venv/bin/python scripts/record_lessons.py --costs               # add missing cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unet_demo.lessons.catalogue import list_experiments  # noqa: E402
from unet_demo.lessons.recordings import (  # noqa: E402
    COST_FILE,
    SPEC_FILE,
    compact_run,
    lessons_dir,
    recordings_size,
    run_folder,
    started_event,
    training_cost,
)
from unet_demo.training.spec import RunSpec  # noqa: E402


def is_recorded(folder: Path, spec: RunSpec) -> bool:
    """True when ``folder`` holds a complete recording of exactly ``spec``."""
    path = folder / SPEC_FILE
    if not path.is_file() or not (folder / "snapshots.npz").is_file():
        return False
    return RunSpec.from_json(path.read_text(encoding="utf-8")) == spec


def same_spec_recorded(spec: RunSpec, root: Path, exclude: Path) -> Path | None:
    """Another recorded run folder under ``root`` that holds exactly ``spec``, if any."""
    for spec_file in sorted(root.glob(f"*/*/{SPEC_FILE}")):
        folder = spec_file.parent
        if folder != exclude and is_recorded(folder, spec):
            return folder
    return None


def write_cost(folder: Path, spec: RunSpec) -> None:
    """Add cost.json (parameters, FLOPs, training GFLOP, receptive field) to a recording."""
    started = started_event(folder)
    cost = training_cost(spec, started.train_images if started else 0)
    (folder / COST_FILE).write_text(json.dumps(cost, indent=2, sort_keys=True) + "\n",
                                    encoding="utf-8")


def record_run(spec: RunSpec, dest: Path) -> float:
    """Train ``spec`` in a scratch folder and compact it into ``dest``; seconds taken."""
    from unet_demo.training.runner import run_training

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lesson-") as scratch:
        run_dir = run_training(spec, Path(scratch) / "run", resume=False)
        compact_run(run_dir, dest, spec)
    write_cost(dest, spec)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="experiment keys to record")
    parser.add_argument("--force", action="store_true", help="record again even if up to date")
    parser.add_argument("--list", action="store_true", help="list experiments and runs, exit")
    parser.add_argument("--costs", action="store_true",
                        help="only add the missing cost.json files (no training)")
    parser.add_argument("--out", type=Path, default=None, help="recordings folder (./lessons)")
    args = parser.parse_args(argv)
    root = args.out or lessons_dir()
    experiments = list(list_experiments())
    if args.only:  # in the order given (cheap ones first, say)
        experiments = [next(e for e in experiments if e.key == key) for key in args.only]
    for experiment in experiments:
        for run in experiment.runs:
            folder = run_folder(experiment.key, run.key, root)
            if args.costs:
                if is_recorded(folder, run.spec) and not (folder / COST_FILE).is_file():
                    write_cost(folder, run.spec)
                    print(f"{experiment.key}/{run.key}: cost added", flush=True)
                continue
            if args.list:
                print(f"{experiment.key}/{run.key}: "
                      f"{'recorded' if is_recorded(folder, run.spec) else 'missing'}")
                continue
            if not args.force and is_recorded(folder, run.spec):
                print(f"{experiment.key}/{run.key}: up to date", flush=True)
                continue
            twin = same_spec_recorded(run.spec, root, exclude=folder)
            if twin is not None:  # e.g. the shared baseline: the same spec trains the same run
                shutil.rmtree(folder, ignore_errors=True)
                shutil.copytree(twin, folder)
                print(f"{experiment.key}/{run.key}: copied from {twin.relative_to(root)}",
                      flush=True)
                continue
            lock = folder.with_name(f".{folder.name}.lock")  # several recorders may share out
            try:                                             # the work: one takes each run
                lock.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                print(f"{experiment.key}/{run.key}: another recorder has it", flush=True)
                continue
            try:
                seconds = record_run(run.spec, folder)
            finally:
                lock.unlink(missing_ok=True)
            print(f"{experiment.key}/{run.key}: recorded in {seconds:.0f} s", flush=True)
    if not args.list and not args.costs:
        print(f"recordings: {recordings_size(root) / 1e6:.2f} MB in {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
