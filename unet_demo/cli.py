"""Command line: ``python -m unet_demo <command> [options]``.

Each command lives in its own module under ``unet_demo/commands/`` and exposes
``register(subparsers)``, which adds a sub-parser whose ``func(args) -> int`` runs it.
TensorFlow is imported inside the commands that need it, so ``datasets`` stays fast.

``python -m unet_demo`` calls `quiet_tensorflow_logs` first, so TensorFlow's C++ start-up
notices (oneDNN, CUDA drivers, CPU instructions, cuInit) do not come before the command's own
output. ``UNET_DEMO_DEBUG=1`` leaves TensorFlow's logging as it is.

Example:
    $ python -m unet_demo datasets --json
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
import traceback
from collections.abc import MutableMapping

from unet_demo import DISCLAIMER, __version__
from unet_demo.errors import UNetDemoError

# Order here is the order shown in --help.
COMMAND_MODULES = ("datasets", "summary", "train", "jobs", "evaluate", "predict", "export", "runs",
                   "inspect", "lessons")

DEBUG_ENV = "UNET_DEMO_DEBUG"
TF_LOG_ENV = "TF_CPP_MIN_LOG_LEVEL"
# 3 = C++ errors too: on a machine without a GPU, "failed call to cuInit" is logged as an error.
# Real failures still reach the user as Python exceptions (printed by `main`).
QUIET_TF_LOG_LEVEL = "3"
# An absl/glog line: severity letter, date, time, thread, file:line] message.
_CPP_LOG_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called"
_CPU_GUARD_TAIL = "To enable the following instructions:"


def quiet_tensorflow_logs(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Keep TensorFlow's C++ start-up notices off stderr; returns True when it changed anything.

    Sets ``TF_CPP_MIN_LOG_LEVEL`` (unless it is already set) before TensorFlow is imported, and
    filters the few lines TensorFlow's shared libraries print through absl while they load,
    which no environment variable reaches (oneDNN, "Could not find cuda drivers"). Nothing else
    changes here (``TF_ENABLE_ONEDNN_OPTS`` is set, where unset, by importing ``unet_demo``:
    `unet_demo.settings.prepare_tensorflow`). With
    ``UNET_DEMO_DEBUG=1`` (or when TensorFlow is already imported) it does nothing.

    Args:
        environ: the environment to adjust (the process environment by default).

    Example:
        >>> env = {"UNET_DEMO_DEBUG": "1"}
        >>> quiet_tensorflow_logs(env), env
        (False, {'UNET_DEMO_DEBUG': '1'})
    """
    if environ.get(DEBUG_ENV, "") not in ("", "0") or "tensorflow" in sys.modules:
        return False
    environ.setdefault(TF_LOG_ENV, QUIET_TF_LOG_LEVEL)
    if environ is os.environ and not any(isinstance(f, _QuietImportFinder)
                                         for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImportFinder())
    return True


def _dropped(line: str, min_level: int) -> bool:
    """True for a C++ log line below ``min_level`` and the absl/CPU-guard boilerplate."""
    if line.startswith((_ABSL_PREAMBLE, _CPU_GUARD_TAIL)):
        return True
    match = _CPP_LOG_LINE.match(line)
    return bool(match) and _SEVERITY[match.group(1)] < min_level


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader of ``tensorflow`` with file descriptor 2 sent to a temporary file,
    then writes back every line that is not a filtered C++ notice."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        try:
            level = int(os.environ.get(TF_LOG_ENV, QUIET_TF_LOG_LEVEL))
        except ValueError:
            level = int(QUIET_TF_LOG_LEVEL)
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile(mode="w+b") as captured:
            os.dup2(captured.fileno(), 2)
            try:
                self.loader.exec_module(module)
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                text = captured.read().decode("utf-8", errors="replace")
                kept = [line for line in text.splitlines(keepends=True)
                        if not _dropped(line, level)]
                if kept:
                    sys.stderr.write("".join(kept))
                    sys.stderr.flush()


class _QuietImportFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that wraps the loader of the top-level ``tensorflow`` package once."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path[:] = [f for f in sys.meta_path if f is not self]
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


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
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc()
        return 1
