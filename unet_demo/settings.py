"""Process-wide settings read from environment variables (with safe defaults).

Example:
    >>> runs_dir().name
    'runs'
"""

from __future__ import annotations

import os
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
