"""Command line: ``python -m unet_demo <command> [options]``.

Each command lives in its own module under ``unet_demo/commands/`` and exposes
``register(subparsers)``, which adds a sub-parser whose ``func(args) -> int`` runs it.
TensorFlow is imported inside the commands that need it, so ``datasets`` stays fast.

Example:
    $ python -m unet_demo datasets --json
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from unet_demo import DISCLAIMER, __version__
from unet_demo.errors import UNetDemoError

# Order here is the order shown in --help.
COMMAND_MODULES = ("datasets", "summary", "train", "evaluate", "predict")


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="python -m unet_demo",
        description=f"U-Net segmentation demo engine. {DISCLAIMER}",
    )
    parser.add_argument("--version", action="version", version=f"unet-demo {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"unet_demo.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code (0 ok, 2 bad usage or input, 1 failure).

    Args:
        argv: arguments without the program name; defaults to ``sys.argv[1:]``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UNetDemoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(
            "error: ran out of memory. Use a smaller input, batch size or model, "
            "or free memory and try again.",
            file=sys.stderr,
        )
        return 1
    except Exception as error:  # noqa: BLE001 - last line of defence: a message, not a traceback
        print(
            f"error: unexpected {type(error).__name__}: {error}\n"
            "This is a bug in unet-demo, not in your input. Set UNET_DEMO_DEBUG=1 to see the "
            "traceback and include it when you report it.",
            file=sys.stderr,
        )
        if os.environ.get("UNET_DEMO_DEBUG"):
            traceback.print_exc()
        return 1
