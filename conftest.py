"""Pytest set-up shared by tests/ and the doctests under unet_demo/.

Training in the suite uses one fixed speed setting (XLA on, float32), so recorded histories
and tolerances do not depend on which setting the per-machine micro-benchmark would pick
(unet_demo/training/speed.py); tests of that choice set their own environment.
"""

import os

import unet_demo  # noqa: F401  (sets TensorFlow's start-up switches before a test imports it)

os.environ.setdefault("UNET_DEMO_XLA", "1")
os.environ.setdefault("UNET_DEMO_PRECISION", "float32")
