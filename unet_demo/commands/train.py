"""``python -m unet_demo train``: train a U-Net on a bundled or uploaded dataset.

The run directory (``--out``) gets config.json, history.csv, checkpoints, snapshots,
model.keras, metrics.json and model_card.md (see `unet_demo.training.rundir`). Progress is
printed one line per epoch, in the words of the Train page (`unet_demo.training.live`); Ctrl-C
stops after the current batch, and running the same command again resumes from the last
complete epoch.

Without ``--out`` the run joins the server's training queue in the runs folder (the same queue
as the Train page: fair, first in first out, one run per person), and the command waits for it
(``--wait``, the default) or prints its id and place in line (``--no-wait``); see
``python -m unet_demo jobs``.

Example:
    $ python -m unet_demo train --dataset brain_skullstrip --preset classroom --out runs/demo
    $ python -m unet_demo train --dataset nuclei --no-wait
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from unet_demo.config import LOSSES, NORMALIZATION_MODES, OPTIMIZERS, SCHEDULES, VARIANTS
from unet_demo.errors import UNetDemoError
from unet_demo.training.presets import PRESET_NAMES

# (flag, section, field, type) of the command-line overrides.
OVERRIDES = (
    ("--epochs", "train", "epochs", int),
    ("--batch-size", "train", "batch_size", int),
    ("--learning-rate", "train", "learning_rate", float),
    ("--loss", "train", "loss", str),
    ("--optimizer", "train", "optimizer", str),
    ("--schedule", "train", "schedule", str),
    ("--patience", "train", "early_stopping_patience", int),
    ("--seed", "train", "seed", int),
    ("--workers", "train", "workers", int),
    ("--init-encoder", "train", "init_encoder", str),
    ("--frozen-epochs", "train", "frozen_epochs", int),
    ("--unfreeze-lr-factor", "train", "unfreeze_lr_factor", float),
    ("--max-train-images", "data", "max_train_images", int),
    ("--image-size", "data", "image_size", int),
    ("--variant", "model", "variant", str),
    ("--depth", "model", "depth", int),
    ("--base-filters", "model", "base_filters", int),
    ("--normalization", "model", "normalization", str),
)
CHOICES = {"loss": LOSSES, "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "variant": VARIANTS}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    parser = subparsers.add_parser("train", help="train a U-Net on a dataset",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="bundled dataset name or 'upload:<id>'")
    parser.add_argument("--preset", default=PRESET_NAMES[0], choices=PRESET_NAMES,
                        help=f"starting settings (default {PRESET_NAMES[0]})")
    parser.add_argument("--config", type=Path,
                        help="a run config.json to start from instead of a preset")
    parser.add_argument("--out", type=Path,
                        help="train now, in this process, into this run directory; leave it "
                             "out to queue the run in the server's runs folder instead")
    wait = parser.add_mutually_exclusive_group()
    wait.add_argument("--wait", dest="wait", action="store_true", default=None,
                      help="queued run: wait, printing its place in line and then its epochs "
                           "(the default without --out)")
    wait.add_argument("--no-wait", dest="wait", action="store_false",
                      help="queued run: print its id and place in line, then exit")
    parser.add_argument("--run-id", help="name of the queued run (default: a fresh id)")
    parser.add_argument("--label", default="", help="a name shown in run lists")
    parser.add_argument("--backend", choices=("local", "ray"),
                        help="where queued runs train (default: ray when "
                             "UNET_DEMO_RAY_ADDRESS is set, else local processes)")
    parser.add_argument("--ray-address", help="Ray cluster address for --backend ray")
    for flag, _, field, kind in OVERRIDES:
        parser.add_argument(flag, type=kind, choices=CHOICES.get(field), default=None,
                            help=f"override {field}")
    augment = parser.add_mutually_exclusive_group()
    augment.add_argument("--augment", dest="augment", action="store_true", default=None,
                         help="use the preset's augmentation")
    augment.add_argument("--no-augment", dest="augment", action="store_false",
                         help="train without augmentation")
    parser.add_argument("--fresh", action="store_true",
                        help="do not resume; refuse if --out already holds a run")
    parser.add_argument("--intensity", choices=NORMALIZATION_MODES, default=None,
                        help="intensity normalisation of the images (data.normalization; "
                             "'clahe' = the Data page's CLAHE preview); prediction repeats it")
    parser.add_argument("--folds", type=int, nargs="?", const=5, default=None, metavar="K",
                        help="K-fold cross-validation (K = 5 when no number is given): train K "
                             "runs on leak-free folds of the train+val images, then score each "
                             "on its fold and, with their ensemble, on the test split; with "
                             "--out the folds go to OUT/fold_1..K, else they are queued one "
                             "after another and the summary goes to runs/crossval/<id>/")
    parser.add_argument("--no-ensemble", dest="ensemble", action="store_false", default=True,
                        help="with --folds: skip scoring the ensemble of the fold models")
    parser.add_argument("--from-bundle", type=Path, metavar="ZIP",
                        help="reproduce the run in a bundle from `export --format bundle` "
                             "(its settings, seed and data check) and compare the result")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def build_spec(args: argparse.Namespace):
    """The RunSpec from --config or the preset, with the command-line overrides applied."""
    from unet_demo.training.presets import get_preset
    from unet_demo.training.spec import RunSpec

    if args.config is not None:
        try:
            spec = RunSpec.from_json(Path(args.config).read_text(encoding="utf-8"))
        except OSError as error:
            raise UNetDemoError(f"Cannot read --config {args.config}: {error}.") from None
        if args.dataset:
            spec = spec.replace(data=spec.data.replace(dataset=args.dataset))
    elif args.dataset:
        spec = get_preset(args.dataset, args.preset)
    else:
        raise UNetDemoError("Give --dataset NAME (see `python -m unet_demo datasets`) or "
                            "--config path/to/config.json.")
    changes: dict[str, dict] = {"data": {}, "model": {}, "train": {}}
    for flag, section, field, _ in OVERRIDES:
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            changes[section][field] = value
    if args.augment is not None:
        changes["train"]["augment"] = args.augment
    if getattr(args, "intensity", None):
        changes["data"]["normalization"] = args.intensity
    if changes["train"].get("init_encoder"):  # the model takes the shipped encoder's shape
        from unet_demo.models.transfer import match_encoder

        spec = spec.replace(model=match_encoder(spec.model, changes["train"]["init_encoder"]))
    return spec.replace(**{section: getattr(spec, section).replace(**values)
                           for section, values in changes.items() if values})


def event_printer(stream=None):
    """An ``on_event`` callback that prints each event's `live.event_lines` to ``stream``.

    Args:
        stream: where to print (default: ``sys.stderr`` at call time).

    Example:
        >>> import io
        >>> from unet_demo.training.events import Stopped
        >>> out = io.StringIO()
        >>> event_printer(out)(Stopped(epoch=1, batch=2))
        >>> out.getvalue().split(".")[0]
        'Stopped during epoch 1 after batch 2'
    """
    from unet_demo.training.live import LiveRun, event_lines

    live = LiveRun("cli")

    def print_event(event) -> None:
        for line in event_lines(live, [event]):
            print(line, file=stream or sys.stderr, flush=True)

    return print_event


def run(args: argparse.Namespace) -> int:
    """Train (``--out``) or queue; 0 when finished, 130 when stopped, 1 on failure."""
    if getattr(args, "from_bundle", None) is not None:
        from unet_demo.commands.reproduce import bundle_spec

        spec = bundle_spec(args)
    else:
        spec = build_spec(args)
    if getattr(args, "folds", None) is not None:
        return run_folds(args, spec)
    if args.out is None:
        return run_queued(args, spec)
    if args.wait is not None or args.run_id or args.backend:
        raise UNetDemoError("--wait/--no-wait, --run-id and --backend are for queued runs; drop "
                            "--out to queue the run, or drop them to train now into --out.")
    return run_here(args, spec)


def run_here(args: argparse.Namespace, spec) -> int:
    """Train in this process into ``--out`` (resuming it), printing one line per epoch."""
    from unet_demo.training import rundir
    from unet_demo.training.runner import run_training

    out = Path(args.out)
    if args.fresh and (out / rundir.STATE_FILE).exists():
        raise UNetDemoError(f"{out} already holds a training run; pick another --out or drop "
                            "--fresh to resume it.")
    if (out / rundir.CONFIG_FILE).is_file() and rundir.load_run(out).status == "finished":
        print(f"{out} already holds a finished run; nothing to do. Pick another --out to train "
              "again.", file=sys.stderr)
        return print_result(args, out)
    stop = {"requested": False}

    def request_stop(signum, frame):
        stop["requested"] = True

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        run_training(spec, out, should_stop=lambda: stop["requested"], on_event=event_printer(),
                     resume=not args.fresh)
    finally:
        signal.signal(signal.SIGINT, previous)
    return print_result(args, out)


def print_result(args: argparse.Namespace, out: Path) -> int:
    """Print the run's status and test Dice (or JSON); the exit code for its status."""
    from unet_demo.training import rundir

    info = rundir.load_run(out)
    reproduction = None
    if getattr(args, "from_bundle", None) is not None and info.status == "finished":
        from unet_demo.commands.reproduce import reproduction_report

        reproduction = reproduction_report(args, out)
    if args.json:
        print(json.dumps({"run_id": info.run_id, "run_dir": str(out), "status": info.status,
                          "metrics": info.metrics, **({"reproduction": reproduction}
                                                      if reproduction else {})},
                         indent=2, default=str))
    else:
        test = info.metrics.get("test") or {}
        print(f"{info.status}: {out} (test Dice {test.get('dice', float('nan')):.4f})")
        if reproduction:
            print(reproduction["summary"])
    return {"finished": 0, "stopped": 130, "cancelled": 130}.get(info.status, 1)


def job_manager(args: argparse.Namespace):
    """The job manager on the runs folder, with the backend asked for on the command line."""
    from unet_demo.training.jobs import JobManager, LocalLauncher

    backend = getattr(args, "backend", None)
    address = getattr(args, "ray_address", None)
    if backend == "local":
        return JobManager(launcher=LocalLauncher())
    if backend == "ray" or address:
        from unet_demo.training.ray_backend import launcher_for

        return JobManager(launcher=launcher_for("ray", address or ""))
    return JobManager()


def run_queued(args: argparse.Namespace, spec) -> int:
    """Queue the run; with --wait (default) follow it until it ends, Ctrl-C stops it."""
    import time

    from unet_demo.training import events as ev
    from unet_demo.training.jobs import cli_owner_secret, queue_wait_text

    manager = job_manager(args)
    owner = cli_owner_secret()
    preset = "" if args.config else args.preset
    view = manager.submit(spec, owner=owner, label=args.label, preset=preset,
                          run_id=args.run_id)
    run_dir = manager.run_dir(view.run_id)
    print(f"run {view.run_id}: {queue_wait_text(view)}", file=sys.stderr, flush=True)
    if args.wait is False:
        if args.json:
            print(json.dumps(view.to_dict(), indent=2))
        else:
            print(view.run_id)
        return 0
    stop = {"requested": False}

    def request_stop(signum, frame):
        stop["requested"] = True

    previous = signal.signal(signal.SIGINT, request_stop)
    printer, offset, last_line, stopped = event_printer(), 0, "", False
    try:
        while True:
            if stop["requested"] and not stopped:
                stopped = True
                print("stopping...", file=sys.stderr, flush=True)
                manager.stop(view.run_id, owner=owner)
            events, offset = ev.read_events(run_dir, offset)
            for event in events:
                printer(event)
            if events and isinstance(events[-1], ev.TERMINAL_TYPES):
                break
            current = manager.view(view.run_id)
            if current is None and not manager.is_running(view.run_id):
                if not events:  # ended without a final event (killed, node lost)
                    break
            elif current is not None and current.state == "queued":
                line = f"waiting: number {current.position} in line"
                if line != last_line:
                    print(f"{line}. {queue_wait_text(current)}", file=sys.stderr, flush=True)
                    last_line = line
                manager.dispatch()
            time.sleep(0.5)
    finally:
        signal.signal(signal.SIGINT, previous)
    return print_result(args, run_dir)


def run_folds(args: argparse.Namespace, spec) -> int:
    """Train one run per fold (here into OUT/fold_k, or queued one by one), then summarise.

    Returns 0 when every fold finished and the summary was written, else the first fold's
    non-zero exit code (a stopped fold stops the cross-validation; run the command again to
    resume it).
    """
    import contextlib

    from unet_demo.data.folds import check_fold_count
    from unet_demo.data.sources import fold_split_arrays
    from unet_demo.evaluation.crossval import CROSSVAL_DIR, summarize_crossval

    folds = int(args.folds)
    check_fold_count(folds)
    fold_split_arrays(spec.data.dataset, folds, 0, "val")  # enough groups? (fails early)
    if args.out is None and args.wait is False:
        raise UNetDemoError("--folds trains the folds one after another and then scores them, "
                            "so it waits; drop --no-wait.")
    if args.out is not None and (args.wait is not None or args.backend):
        raise UNetDemoError("--wait/--no-wait and --backend are for queued runs; drop --out to "
                            "queue the folds, or drop them to train the folds here.")
    if args.out is not None:
        cv_dir = Path(args.out)
    else:
        from unet_demo.settings import runs_dir
        from unet_demo.training.jobs import check_run_id, new_run_id

        cv_id = check_run_id(args.run_id or f"cv-{new_run_id()}")
        cv_dir = runs_dir() / CROSSVAL_DIR / cv_id
    fold_dirs = []
    for fold in range(folds):
        fold_spec = spec.replace(data=spec.data.replace(folds=folds, fold=fold))
        print(f"fold {fold + 1} of {folds}", file=sys.stderr, flush=True)
        fold_args = argparse.Namespace(**{**vars(args), "json": False})
        if args.out is not None:
            fold_args.out = cv_dir / f"fold_{fold + 1}"
            with contextlib.redirect_stdout(sys.stderr):  # stdout: the summary alone
                code = run_here(fold_args, fold_spec)
            fold_dirs.append(fold_args.out)
        else:
            fold_args.run_id = f"{cv_dir.name}-fold{fold + 1}"
            fold_args.label = f"{args.label or cv_dir.name} fold {fold + 1}/{folds}"
            from unet_demo.training.rundir import load_run

            existing = runs_dir() / fold_args.run_id
            if (existing / "config.json").is_file() and load_run(existing).status == "finished":
                code = 0  # a rerun of the same --run-id keeps the finished folds
            else:
                with contextlib.redirect_stdout(sys.stderr):
                    code = run_queued(fold_args, fold_spec)
                # The next fold may queue once this one's worker has left (one run per person).
                job_manager(args).wait(fold_args.run_id, timeout=300)
            fold_dirs.append(existing)
        if code != 0:
            print(f"fold {fold + 1} did not finish (exit code {code}); run the same command "
                  "again to resume.", file=sys.stderr)
            return code
    summary = summarize_crossval(
        fold_dirs, cv_dir, ensemble=args.ensemble,
        progress=lambda line: print(line, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(crossval_text(summary, cv_dir))
    return 0


def crossval_text(summary: dict, cv_dir: Path) -> str:
    """The cross-validation summary as lines of text (per fold, mean +- sd, ensemble).

    Example:
        >>> print(crossval_text({"dataset": "nuclei", "folds": 2, "val_dice_mean": 0.8,
        ...                      "val_dice_sd": 0.1, "runs": [
        ...     {"fold": 1, "val_images": 3, "val_dice": 0.7, "test_dice": 0.6},
        ...     {"fold": 2, "val_images": 4, "val_dice": 0.9, "test_dice": 0.65}]}, Path("cv")))
        2-fold cross-validation on nuclei (cv/crossval.json)
          fold 1: val Dice 0.700 on 3 images, test Dice 0.600
          fold 2: val Dice 0.900 on 4 images, test Dice 0.650
          mean val Dice 0.800 +- 0.100 (sd over folds)
    """
    lines = [f"{summary['folds']}-fold cross-validation on {summary['dataset']} "
             f"({cv_dir / 'crossval.json'})"]
    for row in summary["runs"]:
        test = row.get("test_dice")
        lines.append(f"  fold {row['fold']}: val Dice {row['val_dice']:.3f} on "
                     f"{row['val_images']} images" + (f", test Dice {test:.3f}"
                                                      if test is not None else ""))
    lines.append(f"  mean val Dice {summary['val_dice_mean']:.3f} +- "
                 f"{summary['val_dice_sd']:.3f} (sd over folds)")
    ensemble = summary.get("ensemble")
    if ensemble:
        lines.append(f"  ensemble test Dice {ensemble['test_dice']:.3f} vs best single fold "
                     f"{ensemble['best_fold_test_dice']:.3f} (fold {ensemble['best_fold']}): "
                     f"{ensemble['gain_over_best_fold']:+.3f}")
    return "\n".join(lines)
