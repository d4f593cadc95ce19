"""Pytest set-up shared by tests/ and the doctests under unet_demo/.

Training in the suite uses one fixed speed setting, so histories and tolerances do not depend
on which setting the per-machine micro-benchmark would pick (unet_demo/training/speed.py):
TensorFlow's graph on oneDNN kernels in float32, which is what that benchmark picks on both
kinds of CPU seen (AMD EPYC, Intel Xeon), and which skips XLA's compilation in each of the
suite's many short runs. Tests of XLA, of the choice and of recordings made with XLA set their
own environment.
"""

import os

import unet_demo  # noqa: F401  (sets TensorFlow's start-up switches before a test imports it)

os.environ.setdefault("UNET_DEMO_XLA", "0")
os.environ.setdefault("UNET_DEMO_PRECISION", "float32")
