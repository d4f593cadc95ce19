"""The fastest correct training setting for the machine a run lands on.

Two switches decide how fast a Keras U-Net trains on a CPU, and the best position of each
depends on the CPU, not on the network: whether the training step is compiled with XLA
(``jit_compile=True``) or runs as Keras' default TensorFlow graph on oneDNN kernels, and whether
the layers compute in float32 or in ``mixed_bfloat16`` (bfloat16 compute, float32 weights).
On an AMD EPYC with AVX2 the oneDNN graph beat XLA (TensorFlow leaves oneDNN off on such CPUs
by itself; `unet_demo.settings.prepare_tensorflow` turns it on); on an Intel Xeon with AVX-512
and AMX the default graph was 1.6x faster than XLA and bfloat16 1.3x faster again.

`choose_speed` settles both once per machine:

1. ``UNET_DEMO_XLA=0|1`` and ``UNET_DEMO_PRECISION=float32|bfloat16|float16`` win when set.
2. Otherwise a cached answer for this machine (CPU model, core count, TensorFlow and Keras
   versions, oneDNN on or off) is used: the file `speed_cache_path` (``UNET_DEMO_SPEED_CACHE``
   moves it).
3. Otherwise a micro-benchmark trains a small U-Net for a few steps with every candidate
   setting (seconds; a file lock makes concurrent workers measure once) and keeps the fastest.
   bfloat16 is a candidate only where the CPU computes it natively (AVX512_BF16 or AMX-BF16
   flags); elsewhere TensorFlow emulates it and float32 is both faster and exact. On a GPU the
   choice is ``mixed_float16`` with Keras' own XLA default, without measuring.

The loss, the sigmoid/softmax output layer and the metrics stay float32 under every policy
(the builder gives the output layer ``dtype="float32"``), and the model a run saves is rebuilt
in float32, so model files never depend on the setting a run trained with.

Example:
    >>> choice = choose_speed("CPU", environ={"UNET_DEMO_XLA": "1",
    ...                                       "UNET_DEMO_PRECISION": "float32"})
    >>> (choice.jit_compile, choice.policy, choice.source)
    (True, 'float32', 'environment')
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import platform
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from unet_demo.errors import UNetDemoError
from unet_demo.settings import ONEDNN_ENV

PRECISION_NAMES = ("auto", "float32", "bfloat16", "float16")
"""Values of ``UNET_DEMO_PRECISION``."""

POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
"""Keras dtype policy for each precision name."""

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""CPU flags (``/proc/cpuinfo``) that mean the CPU computes bfloat16 natively."""

BENCH_SIZE, BENCH_FILTERS, BENCH_DEPTH, BENCH_BATCH = 128, 8, 3, 8  # the classroom preset's net
BENCH_WARMUP_STEPS, BENCH_TIMED_STEPS = 2, 4
BENCH_RUN_IMAGES = 768
"""Images of the run the choice is made for: the classroom preset (8 epochs x 96 images).

A setting's score is the time such a run would take: twice its warm-up (Keras traces, and XLA
compiles, a training and a validation step) plus 768 images at its measured speed. XLA's
compilation costs seconds that a short run never earns back where the steady speeds are close
(AMD EPYC: warm-up 7.0 s with XLA against 3.9 s for the graph, 61.3 against 54.9 img/s).
"""
CACHE_VERSION = 5  # 2: keyed by oneDNN on/off (1 timed Eigen graphs); 3: optimizer pre-built;
# 4: the runner's fused Adam (training/optimizers.py); 5: its normalisation layers (models/norm.py)


@dataclass(frozen=True)
class SpeedChoice:
    """How a run trains: the XLA switch, the dtype policy, where the choice came from and why.

    Attributes:
        jit_compile: ``True``/``False`` for XLA on/off on a CPU; ``"auto"`` leaves it to Keras.
        policy: Keras dtype policy: "float32", "mixed_bfloat16" or "mixed_float16".
        source: "environment", "cache", "measured" or "default".
        reason: one sentence for the run's facts line and environment.json.
        timings: images/s of each measured candidate ("xla float32": 80.1, ...), if measured.
    """

    jit_compile: bool | str
    policy: str
    source: str
    reason: str
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def precision(self) -> str:
        """The short name: "float32", "bfloat16" or "float16"."""
        return {value: key for key, value in POLICIES.items()}[self.policy]

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (environment.json's "speed" entry)."""
        return dict(asdict(self), precision=self.precision)


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty when it cannot be read).

    Args:
        cpuinfo: text of a cpuinfo file; read from ``/proc/cpuinfo`` when None.

    Example:
        >>> sorted(cpu_flags("flags\\t: fpu avx2 amx_bf16\\n"))
        ['amx_bf16', 'avx2', 'fpu']
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


CPU_FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
"""CPU flags that change which oneDNN kernels run (and so the last bits of a float result)."""


def cpu_description() -> dict[str, object]:
    """The CPU a run trained on: model name and the vector features that decide its kernels.

    Two runs of one spec repeat exactly on the same kind of CPU; on another (e.g. AMD EPYC
    with AVX2 against Intel Xeon with AVX-512) they agree only up to float round-off.

    Example:
        >>> sorted(cpu_description())
        ['cpu_features', 'cpu_model']
    """
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == (platform.processor()
                                                          or platform.machine()):
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    return {"cpu_model": model, "cpu_features": [f for f in CPU_FEATURES if f in flags]}


def native_bfloat16(flags: set[str]) -> bool:
    """True when the CPU flags promise native bfloat16 arithmetic (AVX512_BF16 or AMX-BF16).

    Args:
        flags: CPU feature flags, as from `cpu_flags`.

    Example:
        >>> native_bfloat16({"avx2"}), native_bfloat16({"avx512f", "amx_bf16"})
        (False, True)
    """
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def _parse_environment(environ: Mapping[str, str]) -> tuple[bool | None, str]:
    """(XLA override or None, precision name) from the environment; errors name the variable."""
    xla_text = environ.get("UNET_DEMO_XLA", "").strip().lower()
    xla: bool | None
    if xla_text in ("", "auto"):
        xla = None
    elif xla_text in ("1", "true", "on", "yes"):
        xla = True
    elif xla_text in ("0", "false", "off", "no"):
        xla = False
    else:
        raise UNetDemoError(
            f"UNET_DEMO_XLA must be 1 (XLA on), 0 (off) or auto. Received: {xla_text!r}. "
            "Fix: set it to one of those or unset it.")
    precision = environ.get("UNET_DEMO_PRECISION", "").strip().lower() or "auto"
    if precision not in PRECISION_NAMES:
        raise UNetDemoError(
            f"UNET_DEMO_PRECISION must be one of {', '.join(PRECISION_NAMES)}. Received: "
            f"{precision!r}. Fix: set it to one of those or unset it.")
    return xla, precision


def onednn_enabled() -> bool:
    """True when TensorFlow runs its graph ops on oneDNN kernels in this process.

    TensorFlow decides once, when it loads (``TF_ENABLE_ONEDNN_OPTS``, else by CPU), so a
    process that imported TensorFlow before ``unet_demo`` may have them off.

    Example:
        >>> isinstance(onednn_enabled(), bool)
        True
    """
    try:
        from tensorflow.python.util import _pywrap_util_port  # TensorFlow's own test helper

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return os.environ.get(ONEDNN_ENV, "").strip() in ("1", "true", "True")


def machine_key(cpu_model: str | None = None, cores: int | None = None) -> str:
    """The cache key of this machine: CPU model, cores, TensorFlow, Keras, oneDNN on/off.

    Args:
        cpu_model: CPU model name (read from the machine when None).
        cores: logical core count (``os.cpu_count()`` when None).

    Example:
        >>> machine_key("AMD EPYC", 2).startswith("AMD EPYC | 2 cores | tensorflow ")
        True
    """
    import keras
    import tensorflow as tf

    if cpu_model is None:
        cpu_model = str(cpu_description()["cpu_model"])
    cores = os.cpu_count() if cores is None else cores
    return (f"{cpu_model} | {cores} cores | tensorflow {tf.__version__} | "
            f"keras {keras.__version__} | oneDNN {'on' if onednn_enabled() else 'off'}")


def speed_cache_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where measured choices are cached (``UNET_DEMO_SPEED_CACHE``, else the user cache dir).

    Args:
        environ: environment mapping (``os.environ`` when None).

    Example:
        >>> speed_cache_path({"UNET_DEMO_SPEED_CACHE": "/tmp/s.json"}).name
        's.json'
    """
    environ = os.environ if environ is None else environ
    if environ.get("UNET_DEMO_SPEED_CACHE", "").strip():
        return Path(environ["UNET_DEMO_SPEED_CACHE"].strip())
    base = environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "unet_demo" / "speed.json"


def candidates(flags: set[str], xla: bool | None, precision: str) -> list[tuple[bool, str]]:
    """The (XLA, policy) settings worth measuring on a CPU, given the overrides.

    Args:
        flags: CPU feature flags.
        xla: forced XLA setting, or None to measure both.
        precision: "auto" or a forced precision name.

    Example:
        >>> candidates({"avx2"}, None, "auto")
        [(True, 'float32'), (False, 'float32')]
        >>> candidates({"amx_bf16"}, False, "auto")
        [(False, 'float32'), (False, 'mixed_bfloat16')]
    """
    if precision == "auto":
        policies = ["float32"] + (["mixed_bfloat16"] if native_bfloat16(flags) else [])
    else:
        policies = [POLICIES[precision]]
    switches = [True, False] if xla is None else [xla]
    return [(switch, policy) for policy in policies for switch in switches]


def label(jit_compile: bool | str, policy: str) -> str:
    """Human name of a setting, e.g. "XLA float32" or "default graph mixed_bfloat16".

    The default graph's kernels (oneDNN or Eigen) are a property of the process, named in
    `machine_key` and in a run's environment.json, not in the label.

    Example:
        >>> label(False, "mixed_bfloat16")
        'default graph mixed_bfloat16'
    """
    kind = {True: "XLA", False: "default graph"}.get(jit_compile, "Keras' XLA default")
    return f"{kind} {policy}"


@contextlib.contextmanager
def op_determinism_off() -> Iterator[None]:
    """TensorFlow's op-determinism mode off inside the block, as it was after it.

    The mode is process-wide: a seeded graph run earlier in the process (a fold, a test) leaves
    it on, and under it Keras drops XLA, so the micro-benchmark would time the graph twice.

    Example:
        >>> import tensorflow as tf
        >>> from tensorflow.python.framework import config as framework_config
        >>> tf.config.experimental.enable_op_determinism()
        >>> with op_determinism_off():
        ...     inside = framework_config.is_op_determinism_enabled()
        >>> inside, framework_config.is_op_determinism_enabled()
        (False, True)
        >>> framework_config.disable_op_determinism()
    """
    from tensorflow.python.framework import config as framework_config  # no public "off"

    was_on = framework_config.is_op_determinism_enabled()
    if was_on:
        framework_config.disable_op_determinism()
    try:
        yield
    finally:
        if was_on:
            framework_config.enable_op_determinism()


@contextlib.contextmanager
def dtype_policy(policy: str) -> Iterator[None]:
    """Build layers under ``policy`` inside the block; the previous global policy after it.

    Args:
        policy: a Keras dtype policy name.

    Example:
        >>> import keras
        >>> with dtype_policy("mixed_bfloat16"):
        ...     inside = keras.config.dtype_policy().name
        >>> inside, keras.config.dtype_policy().name
        ('mixed_bfloat16', 'float32')
    """
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def time_setting(jit_compile: bool, policy: str, *, size: int = BENCH_SIZE,
                 filters: int = BENCH_FILTERS, depth: int = BENCH_DEPTH,
                 batch: int = BENCH_BATCH, steps: int = BENCH_TIMED_STEPS,
                 with_warmup: bool = False) -> float | dict[str, float]:
    """Training images/s of a small U-Net with one setting (0.0 when it fails to compile).

    Args:
        jit_compile: XLA on or off.
        policy: Keras dtype policy name.
        size, filters, depth, batch: the benchmark network and batch.
        steps: timed steps after `BENCH_WARMUP_STEPS` warm-up steps (which compile).
        with_warmup: return {"images_per_s", "warmup_s"} (the warm-up steps' seconds) instead.

    Example:
        >>> time_setting(False, "float32", size=16, filters=2, depth=1, batch=2, steps=1) > 0
        True
    """
    import keras

    from unet_demo.config import UNetConfig
    from unet_demo.models.builder import build_unet
    from unet_demo.training.optimizers import fused_adam_class

    cfg = UNetConfig(input_height=size, input_width=size, base_filters=filters, depth=depth)
    with dtype_policy(policy), op_determinism_off():
        model = build_unet(cfg, load_weights=False)
        model.compile(optimizer=fused_adam_class()(1e-3),  # the runner's Adam
                      loss=keras.losses.BinaryCrossentropy(), jit_compile=jit_compile)
        model.optimizer.build(model.trainable_variables)  # as the runner does (compile_model)
        return _time_steps(model, batch, size, steps, with_warmup)


def _time_steps(model, batch: int, size: int, steps: int, with_warmup: bool):
    """The timing loop of `time_setting` (warm-up steps, then ``steps`` timed steps)."""
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.random((batch, size, size, 1), dtype=np.float32)
    masks = (rng.random((batch, size, size, 1)) > 0.5).astype("float32")
    try:
        start = time.perf_counter()
        for _ in range(BENCH_WARMUP_STEPS):
            model.train_on_batch(images, masks)
        warmup = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(images, masks)
    except Exception:  # noqa: BLE001  (a setting that cannot compile here is not a candidate)
        return {"images_per_s": 0.0, "warmup_s": 0.0} if with_warmup else 0.0
    speed = steps * batch / (time.perf_counter() - start)
    return {"images_per_s": speed, "warmup_s": warmup} if with_warmup else speed


def run_seconds(images_per_s: float, warmup_s: float, images: int = BENCH_RUN_IMAGES) -> float:
    """Estimated seconds of a run of ``images`` images: two warm-ups plus the steady part.

    Args:
        images_per_s: the setting's steady training speed (0 when it failed: infinite time).
        warmup_s: seconds of its first steps (tracing, and with XLA compiling).
        images: the run's training images over all epochs.

    Example:
        >>> round(run_seconds(50.0, 11.0), 1), round(run_seconds(45.0, 7.0), 1)
        (37.4, 31.1)
    """
    return 2.0 * warmup_s + images / images_per_s if images_per_s > 0 else float("inf")


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("version") == CACHE_VERSION else {}


def _write_cache(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _timed(timer, jit: bool, policy: str) -> tuple[float, float]:
    """(images/s, warm-up s) from a timer that returns either images/s or both in a dict.

    ``timer`` None is the micro-benchmark, `time_setting`.
    """
    if timer is None:
        timer = functools.partial(time_setting, with_warmup=True)
    result = timer(jit, policy)
    if isinstance(result, dict):
        return round(float(result["images_per_s"]), 2), round(float(result["warmup_s"]), 2)
    return round(float(result), 2), 0.0


def measure_and_cache(settings: list[tuple[bool, str]], key: str, path: Path,
                      timer=None,
                      ) -> tuple[dict[str, float], dict[str, float], str]:
    """Timings of ``settings`` for machine ``key``: from the cache, else measured and stored.

    A lock file beside the cache makes concurrent workers wait for the first one's answer
    instead of measuring at the same time (which would also spoil the figures).

    Args:
        settings: (XLA, policy) pairs to time.
        key: `machine_key` of this machine.
        path: the cache file.
        timer: times one setting: images/s, or {"images_per_s", "warmup_s"} (None:
            `time_setting`).

    Returns:
        ({label: images/s}, {label: warm-up s}, "cache" or "measured").
    """
    wanted = {label(jit, policy): (jit, policy) for jit, policy in settings}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            cache = _read_cache(path)
            entry = cache.get("machines", {}).get(key, {})
            known, warmups = entry.get("images_per_s", {}), entry.get("warmup_s", {})
            if all(name in known for name in wanted):
                return ({name: float(known[name]) for name in wanted},
                        {name: float(warmups.get(name, 0.0)) for name in wanted}, "cache")
            timings, warmups = dict(known), dict(warmups)
            for name, (jit, policy) in wanted.items():
                if name not in timings:
                    timings[name], warmups[name] = _timed(timer, jit, policy)
            cache = _read_cache(path) or {"version": CACHE_VERSION, "machines": {}}
            cache["machines"][key] = {
                "images_per_s": timings,
                "warmup_s": warmups,
                "measured_at": time.strftime("%Y-%m-%d %H:%M"),
                "platform": platform.platform(),
                "benchmark": (f"U-Net {BENCH_SIZE}px, {BENCH_FILTERS} filters, depth "
                              f"{BENCH_DEPTH}, batch {BENCH_BATCH}, {BENCH_TIMED_STEPS} timed "
                              "training steps"),
            }
            _write_cache(path, cache)
            return ({name: timings[name] for name in wanted},
                    {name: warmups.get(name, 0.0) for name in wanted}, "measured")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def choose_speed(device: str, *, environ: Mapping[str, str] | None = None,
                 flags: set[str] | None = None, cache_path: Path | None = None,
                 timer=None) -> SpeedChoice:
    """Pick XLA on/off and the dtype policy for a run on ``device`` (see the module docstring).

    Args:
        device: the runner's device string ("CPU", "GPU", "GPU x2", "CPU x2 workers").
        environ: environment mapping (``os.environ`` when None).
        flags: CPU feature flags (read from the machine when None).
        cache_path: the speed cache file (`speed_cache_path` when None).
        timer: times one setting: images/s, or {"images_per_s", "warmup_s"} (the
            micro-benchmark; replaceable for tests).

    Example:
        >>> choose_speed("CPU x2 workers", environ={"UNET_DEMO_PRECISION": "float32"}).reason
        'float32 (UNET_DEMO_PRECISION); XLA off: it cannot compile the multi-worker all-reduce.'
    """
    environ = os.environ if environ is None else environ
    xla, precision = _parse_environment(environ)
    kind = device.split(" ")[0]
    if device.endswith("workers"):
        policy = POLICIES["float32" if precision == "auto" else precision]
        said = "(UNET_DEMO_PRECISION)" if precision != "auto" else "(the safe default here)"
        return SpeedChoice(False, policy, "environment" if precision != "auto" else "default",
                           f"{policy} {said}; XLA off: it cannot compile the multi-worker "
                           "all-reduce.")
    if kind != "CPU":
        policy = POLICIES["float16" if precision == "auto" else precision]
        jit: bool | str = "auto" if xla is None else xla
        why = ("float16 tensor cores on the GPU" if precision == "auto"
               else "UNET_DEMO_PRECISION")
        xla_said = {True: "on", False: "off"}.get(jit, "Keras' default")
        return SpeedChoice(jit, policy, "default" if precision == "auto" else "environment",
                           f"{policy} ({why}); XLA {xla_said}.")
    flags = cpu_flags() if flags is None else flags
    settings = candidates(flags, xla, precision)
    if len(settings) == 1:
        jit, policy = settings[0]
        return SpeedChoice(jit, policy, "environment",
                           f"{label(jit, policy)}, as set by UNET_DEMO_XLA / "
                           "UNET_DEMO_PRECISION.")
    path = speed_cache_path(environ) if cache_path is None else cache_path
    try:
        timings, warmups, source = measure_and_cache(settings, machine_key(), path, timer)
    except OSError as error:  # an unwritable cache: measure without caching
        measured = {label(j, p): _timed(timer, j, p) for j, p in settings}
        timings = {name: pair[0] for name, pair in measured.items()}
        warmups = {name: pair[1] for name, pair in measured.items()}
        source = f"measured (not cached: {error.strerror or error})"
    seconds = {name: run_seconds(timings[name], warmups[name]) for name in timings}
    best = min(settings, key=lambda setting: seconds[label(*setting)])
    ranked = sorted(timings, key=seconds.get)
    others = ", ".join(
        f"{name} {timings[name]:.1f} img/s" + (f" after {warmups[name]:.1f} s warm-up"
                                               if warmups[name] else "")
        for name in ranked)
    bf16_note = ("" if native_bfloat16(flags) or precision != "auto"
                 else " bfloat16 not tried: this CPU has no native bfloat16 (AVX512_BF16/AMX).")
    kernels = (" The graph runs on oneDNN kernels." if onednn_enabled()
               else " The graph runs on Eigen kernels (oneDNN is off).")
    reason = (f"{label(*best)} was fastest on this CPU for a classroom-sized run ({others}, "
              f"{'cached' if source == 'cache' else 'measured at first use'})."
              f"{kernels if best[0] is False else ''}{bf16_note}")
    return SpeedChoice(best[0], best[1], source.split(" ")[0], reason, timings)
