"""One tiny finished training run per test process, shared by the export and bundle tests."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

RUN_NAME = "run-export-test"


@functools.cache
def shared_tiny_run() -> Path:
    """A real 1-epoch run (32x32 synthetic lesions, 8 images) in its own runs folder.

    Returns the run directory; its parent is a runs folder holding only this run.
    """
    from tests.unit.training_helpers import tiny_spec
    from unet_demo.training.runner import run_training

    runs = Path(tempfile.mkdtemp(prefix="unet_demo_export_runs_"))
    atexit.register(shutil.rmtree, runs, ignore_errors=True)
    return run_training(tiny_spec(epochs=1, images=8), runs / RUN_NAME)
