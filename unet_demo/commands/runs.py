"""``python -m unet_demo runs``: keep the runs folder under its disk budget; pin runs.

``runs prune`` removes the least recently used finished, stopped, failed, cancelled and
interrupted runs until the runs folder is under the budget (``--max-gb``, default
``UNET_DEMO_RUNS_MAX_GB``); running, queued and pinned runs are never removed, and every removal
is logged to ``<runs>/.removed.jsonl`` (see `unet_demo.training.housekeeping`). ``runs pin`` and
``runs unpin`` keep a run from being removed, or allow it again. Never imports TensorFlow.

Example:
    $ python -m unet_demo runs prune --max-gb 5 --json
    $ python -m unet_demo runs pin 20261123-093000-1a2b3c
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from unet_demo.errors import UNetDemoError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``runs`` sub-command with ``prune``, ``pin`` and ``unpin``.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers``.

    Example:
        >>> from unet_demo.cli import build_parser
        >>> args = build_parser().parse_args(["runs", "prune", "--max-gb", "2", "--json"])
        >>> args.action, args.max_gb, args.json
        ('prune', 2.0, True)
    """
    parser = subparsers.add_parser(
        "runs",
        help="keep the runs folder under its disk budget (prune), pin or unpin runs",
        description=__doc__.splitlines()[0],
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    prune = actions.add_parser("prune", help="remove the oldest unpinned runs beyond the budget")
    prune.add_argument("--max-gb", type=float, default=None,
                       help="budget in GB (default: UNET_DEMO_RUNS_MAX_GB; 0 = no limit)")
    prune.add_argument("--json", action="store_true", help="print JSON instead of lines")
    for name, text in (("pin", "never remove this run to save space"),
                       ("unpin", "let this run be removed again when space is short")):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("run_id", metavar="RUN_ID", help="run id (folder name) or run folder")
    for sub in actions.choices.values():
        sub.add_argument("--runs-dir", default=None,
                         help="runs folder (default: UNET_DEMO_RUNS_DIR or ./runs)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, stream=None) -> int:
    """Run ``runs prune|pin|unpin``; 0 on success (also when nothing had to be removed).

    Args:
        args: the parsed arguments.
        stream: where to print (default stdout).
    """
    out = stream or sys.stdout
    if args.action == "prune":
        return _prune(args, out)
    return _pin(args, args.action == "pin", out)


def _prune(args: argparse.Namespace, out) -> int:
    from unet_demo.settings import runs_dir, runs_max_gb
    from unet_demo.training import housekeeping

    root = Path(args.runs_dir) if args.runs_dir else runs_dir()
    max_gb = runs_max_gb() if args.max_gb is None else float(args.max_gb)
    if max_gb < 0:
        raise UNetDemoError(f"--max-gb {args.max_gb} is negative. Expected a size in GB, e.g. "
                            "--max-gb 5 (0 = no limit).")
    budget = int(max_gb * housekeeping.GB)
    removed = housekeeping.enforce_budget(root, budget)
    size = housekeeping.folder_size_bytes(root)
    if args.json:
        print(json.dumps({"runs_dir": str(root), "budget_bytes": budget, "size_bytes": size,
                          "removed": [dataclasses.asdict(r) for r in removed]}, indent=2),
              file=out)
        return 0
    if budget <= 0:
        print(f"No budget set (UNET_DEMO_RUNS_MAX_GB or --max-gb); nothing removed. {root} holds "
              f"{size / 1024**2:.1f} MB.", file=out)
        return 0
    for record in removed:
        details = ", ".join(part for part in (record.label, record.dataset, record.status) if part)
        print(f"removed {record.run_id} ({details}, {record.bytes / 1024**2:.1f} MB)", file=out)
    freed = sum(record.bytes for record in removed)
    print(f"{len(removed)} run(s) removed ({freed / 1024**2:.1f} MB); {root} holds "
          f"{size / 1024**2:.1f} MB of its {max_gb:g} GB budget.", file=out)
    if size > budget:
        print("Still over the budget: the rest is running, queued, pinned or just started.",
              file=out)
    return 0


def _pin(args: argparse.Namespace, pinned: bool, out) -> int:
    from unet_demo.training import housekeeping, rundir

    info = rundir.load_run(args.run_id, root=args.runs_dir)
    housekeeping.set_pinned(info.path, pinned)
    print(f"{'pinned' if pinned else 'unpinned'} {info.run_id}"
          + (" (never removed to save space)" if pinned else ""), file=out)
    return 0
