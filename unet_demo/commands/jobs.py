"""``python -m unet_demo jobs``: the training queue: what trains now, who waits, and control.

``jobs`` lists running and queued runs (``--json`` for scripts) with their place in line and
estimated start and finish; ``jobs cancel RUN_ID`` takes a queued run of yours out of the
queue and ``jobs stop RUN_ID`` stops a running one after its current batch. Runs queued from
the command line belong to your user (``UNET_DEMO_OWNER`` overrides the name); anyone else's
run needs the operator token (``--admin-token``, the server's ``UNET_DEMO_ADMIN_TOKEN``).

Example:
    $ python -m unet_demo jobs --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from unet_demo.errors import UNetDemoError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``jobs`` sub-command."""
    parser = subparsers.add_parser("jobs", help="list, cancel or stop queued and running runs",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("action", nargs="?", default="list", choices=("list", "cancel", "stop"),
                        help="list (default), cancel a queued run, or stop a running one")
    parser.add_argument("run_id", nargs="?", help="the run to cancel or stop")
    parser.add_argument("--admin-token", help="operator token: act on anyone's run")
    parser.add_argument("--backend", choices=("local", "ray"), help=argparse.SUPPRESS)
    parser.add_argument("--ray-address", help="Ray cluster the runs train on")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """List, cancel or stop; 0 on success, 2 when the run is not yours or not found."""
    from unet_demo.commands.train import job_manager
    from unet_demo.training.jobs import cli_owner_secret, owner_key, queue_wait_text

    manager = job_manager(args)
    owner = cli_owner_secret()
    if args.action == "list":
        manager.dispatch()  # heals a queue left behind by a stopped server
        views = manager.queue_view()
        if args.json:
            print(json.dumps({"slots": manager.max_jobs, "backend": manager.launcher.name,
                              "jobs": [view.to_dict() for view in views]}, indent=2))
            return 0
        if not views:
            print(f"No runs are training or queued (up to {manager.max_jobs} train at once).")
            return 0
        me = owner_key(owner)
        for view in views:
            place = "now" if view.state == "running" else f"#{view.position}"
            mine = " (yours)" if view.owner == me else ""
            name = view.label or view.preset or view.dataset
            print(f"{place:>4}  {view.run_id}  {name}{mine}: {queue_wait_text(view)}")
        return 0
    if not args.run_id:
        raise UNetDemoError(f"jobs {args.action} needs a RUN_ID; list them with "
                            "`python -m unet_demo jobs`.")
    run_id = args.run_id
    if not manager.run_dir(run_id).is_dir():
        raise UNetDemoError(f"No run {run_id!r} under {manager.root}; list them with "
                            "`python -m unet_demo jobs`.")
    token = args.admin_token or ""
    if args.action == "cancel":
        if not manager.cancel(run_id, owner=owner, token=token):
            raise UNetDemoError(f"Run {run_id} is not waiting in the queue (it is "
                                "training or over); use `jobs stop` for a running run.")
        print(f"cancelled {run_id}", file=sys.stderr)
        return 0
    if not manager.is_running(run_id) and not manager.is_queued(run_id):
        raise UNetDemoError(f"Run {run_id} is not running.")
    manager.stop(run_id, owner=owner, token=token)
    began = time.monotonic()
    manager.wait(run_id, timeout=90)
    print(f"stopped {run_id} after {time.monotonic() - began:.0f} s", file=sys.stderr)
    return 0
