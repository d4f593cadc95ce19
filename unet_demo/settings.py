"""Process-wide settings read from environment variables (with safe defaults).

Example:
    >>> runs_dir().name
    'runs'
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def runs_dir() -> Path:
    """Folder holding training run directories (``UNET_DEMO_RUNS_DIR``, default ``./runs``)."""
    return Path(os.environ.get("UNET_DEMO_RUNS_DIR", REPO_ROOT / "runs"))


def max_concurrent_jobs() -> int:
    """How many trainings may run at once (``UNET_DEMO_MAX_JOBS``, default half the CPUs, >= 1)."""
    value = os.environ.get("UNET_DEMO_MAX_JOBS")
    if value:
        return max(1, int(value))
    return max(1, (os.cpu_count() or 2) // 2)


def _positive_int(name: str, default: int) -> int:
    """An integer setting >= 1 from the environment, or a UNetDemoError naming the variable."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        from unet_demo.errors import UNetDemoError

        raise UNetDemoError(f"{name}={value!r} is not valid. Expected a whole number >= 1, e.g. "
                            f"{name}={default}; unset it for the default ({default}).")
    return number


def max_runs_per_user() -> int:
    """Running plus queued runs one browser session may have (``UNET_DEMO_MAX_RUNS_PER_USER``, 1)."""
    return _positive_int("UNET_DEMO_MAX_RUNS_PER_USER", 1)


def max_queue_length() -> int:
    """How many runs may wait in the training queue (``UNET_DEMO_MAX_QUEUE``, default 60)."""
    return _positive_int("UNET_DEMO_MAX_QUEUE", 60)


def admin_token() -> str:
    """The operator token that may stop or cancel anyone's run (``UNET_DEMO_ADMIN_TOKEN``; "" = none)."""
    return os.environ.get("UNET_DEMO_ADMIN_TOKEN", "").strip()


def ray_address() -> str:
    """Ray cluster to train on (``UNET_DEMO_RAY_ADDRESS``, e.g. ``10.0.0.5:6379``; "" = local)."""
    return os.environ.get("UNET_DEMO_RAY_ADDRESS", "").strip()


def runs_max_gb() -> float:
    """Disk budget of the runs folder in GB (``UNET_DEMO_RUNS_MAX_GB``; 0 = no limit, the default)."""
    value = os.environ.get("UNET_DEMO_RUNS_MAX_GB", "").strip()
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        from unet_demo.errors import UNetDemoError

        raise UNetDemoError(f"UNET_DEMO_RUNS_MAX_GB={value!r} is not a number. Expected GB, e.g. "
                            "UNET_DEMO_RUNS_MAX_GB=5; unset it for no limit.") from None


def class_file() -> Path | None:
    """The teacher's class settings YAML (``UNET_DEMO_CLASS_FILE``), or None when unset."""
    value = os.environ.get("UNET_DEMO_CLASS_FILE", "").strip()
    return Path(value) if value else None


ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
INTEROP_THREADS_ENV = "TF_NUM_INTEROP_THREADS"
TENSORFLOW_START_DEFAULTS = {ONEDNN_ENV: "1", INTEROP_THREADS_ENV: "1"}
"""TensorFlow switches that only count when set before TensorFlow is imported.

- ``TF_ENABLE_ONEDNN_OPTS=1``: TensorFlow turns its oneDNN kernels on by itself only on CPUs with
  AVX-512 deep-learning features (Intel Xeon); on an AMD EPYC with AVX2 it left them off, and
  the graph's convolutions then ran on Eigen, 1.4x slower (benchmarks/train_throughput.py).
- ``TF_NUM_INTEROP_THREADS=1``: ops of one graph run one after another (each still uses every
  core). With several at once, two runs of one seed drifted apart in the 6th digit of the loss
  after a few steps, op-determinism mode or not; one at a time they repeat bit for bit. The
  U-Net is a chain, so little runs side by side anyway.
"""


def prepare_tensorflow(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Put `TENSORFLOW_START_DEFAULTS` into the environment where the user has not set them.

    Called when ``unet_demo`` is imported, so it counts in every process that imports the
    package before TensorFlow (the app, the CLI, training workers); a value already set wins.

    Args:
        environ: the environment to fill (the process environment when None).

    Returns:
        The variables it set (empty when all were set already).

    Example:
        >>> env = {"TF_ENABLE_ONEDNN_OPTS": "0"}
        >>> prepare_tensorflow(env)
        {'TF_NUM_INTEROP_THREADS': '1'}
        >>> env["TF_ENABLE_ONEDNN_OPTS"]
        '0'
    """
    environ = os.environ if environ is None else environ
    added = {name: value for name, value in TENSORFLOW_START_DEFAULTS.items()
             if not environ.get(name, "").strip()}
    environ.update(added)
    return added
