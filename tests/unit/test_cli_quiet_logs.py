"""``python -m unet_demo`` keeps TensorFlow's C++ start-up notices off stderr (unless debugging).

TensorFlow 2.21 prints oneDNN / CUDA-driver / CPU-instruction notices and "failed call to
cuInit" on stderr when it loads; `unet_demo.cli.quiet_tensorflow_logs` (called by
``unet_demo/__main__.py`` before any command runs) sets ``TF_CPP_MIN_LOG_LEVEL`` and filters the
lines no environment variable reaches. ``UNET_DEMO_DEBUG=1`` leaves everything as it is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTICE_WORDS = ("onednn", "cuinit", "cuda", "tensorflow binary is optimized", "absl::")
ENV_KEYS = ("TF_CPP_MIN_LOG_LEVEL", "UNET_DEMO_DEBUG", "TF_ENABLE_ONEDNN_OPTS")


def _env(**changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(changes)
    return env


def test_summary_stderr_has_no_tensorflow_notices():
    completed = subprocess.run(
        [sys.executable, "-m", "unet_demo", "summary", "--seed-model", "chapter8"],
        cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.startswith("U-Net variant classic"), completed.stdout[:500]
    assert "1,861,697" in completed.stdout  # TensorFlow really was imported and used
    noisy = [line for line in completed.stderr.splitlines()
             if any(word in line.lower() for word in NOTICE_WORDS)]
    assert noisy == []


def test_errors_still_reach_stderr():
    completed = subprocess.run(
        [sys.executable, "-m", "unet_demo", "summary", "--seed-model", "no_such_seed"],
        cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert completed.returncode != 0
    assert "no_such_seed" in completed.stderr


# (environment before, environment after): what __main__ does to the variables.
ENV_CASES = [
    ("default", {}, {"TF_CPP_MIN_LOG_LEVEL": "3"}),
    ("debug-left-alone", {"UNET_DEMO_DEBUG": "1"}, {"UNET_DEMO_DEBUG": "1"}),
    ("debug-keeps-user-level", {"UNET_DEMO_DEBUG": "1", "TF_CPP_MIN_LOG_LEVEL": "0"},
     {"UNET_DEMO_DEBUG": "1", "TF_CPP_MIN_LOG_LEVEL": "0"}),
    ("user-level-respected", {"TF_CPP_MIN_LOG_LEVEL": "1"}, {"TF_CPP_MIN_LOG_LEVEL": "1"}),
    ("debug-0-is-off", {"UNET_DEMO_DEBUG": "0"},
     {"UNET_DEMO_DEBUG": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}),
    ("onednn-choice-untouched", {"TF_ENABLE_ONEDNN_OPTS": "0"},
     {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}),
]
# Importing unet_demo turns oneDNN on where the user has not chosen (unet_demo.settings).
for _name, _before, _after in ENV_CASES:
    _after.setdefault("TF_ENABLE_ONEDNN_OPTS", _before.get("TF_ENABLE_ONEDNN_OPTS", "1"))


@pytest.mark.parametrize(("before", "after"), [c[1:] for c in ENV_CASES],
                         ids=[c[0] for c in ENV_CASES])
def test_entry_point_sets_log_level_unless_debugging(before, after):
    # A fresh interpreter, exactly like unet_demo/__main__.py: TensorFlow is not imported yet.
    probe = ("import json, os\n"
             "from unet_demo.cli import quiet_tensorflow_logs\n"
             "changed = quiet_tensorflow_logs()\n"
             f"print(json.dumps([changed, {{k: os.environ[k] for k in {list(ENV_KEYS)!r} "
             "if k in os.environ}]))\n")
    completed = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, env=_env(**before),
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    changed, seen = json.loads(completed.stdout)
    assert seen == after
    assert changed is (before.get("UNET_DEMO_DEBUG", "0") == "0")
