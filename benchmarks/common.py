"""Shared helpers for the benchmark scripts: compute ceiling, timing, and the results file.

Every script prints its figures and returns a dict that `run_all.py` writes into
docs/performance.md. Ratios are taken within one run, because these machines are noisy.

Example:
    >>> gflops = matmul_gflops(size=256, repeats=2)
    >>> gflops > 0
    True
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Best-of-N float32 matrix-multiply throughput (GFLOP/s) with numpy: the practical ceiling.

    Args:
        size: side of the square matrices (2048 keeps BLAS in its fast regime).
        repeats: timed repetitions; the best one is reported.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9


def machine_description() -> str:
    """One line naming the CPU, core count and Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def save_result(name: str, result: dict) -> Path:
    """Write one benchmark's figures to benchmarks/results/<name>.json and return the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = dict(result, machine=machine_description(), measured_at=time.strftime("%Y-%m-%d %H:%M"))
    path.write_text(json.dumps(payload, indent=2))
    return path
