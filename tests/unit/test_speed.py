"""Per-machine speed choice: overrides, the cached micro-benchmark, bfloat16 runs end to end."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from tests.unit.training_helpers import tiny_spec
from unet_demo.errors import UNetDemoError
from unet_demo.training import events as ev
from unet_demo.training import rundir
from unet_demo.training.live import started_facts
from unet_demo.training.runner import run_training
from unet_demo.training.speed import (
    SpeedChoice,
    candidates,
    choose_speed,
    label,
    speed_cache_path,
)

AMD_FLAGS = {"fpu", "sse2", "avx2", "fma"}
XEON_FLAGS = {"fpu", "avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
# The real micro-benchmark on a tiny network (a fraction of a second per setting).
tiny_timer = functools.partial(
    __import__("unet_demo.training.speed", fromlist=["time_setting"]).time_setting,
    size=16, filters=2, depth=1, batch=2, steps=2)


def refuse_to_time(jit_compile, policy):
    raise AssertionError(f"measured {label(jit_compile, policy)} although it should not")


def test_environment_overrides_win_without_measuring(tmp_path):
    choice = choose_speed("CPU", environ={"UNET_DEMO_XLA": "0", "UNET_DEMO_PRECISION": "bfloat16"},
                          flags=AMD_FLAGS, cache_path=tmp_path / "s.json", timer=refuse_to_time)
    assert (choice.jit_compile, choice.policy, choice.precision) == (
        False, "mixed_bfloat16", "bfloat16")
    assert choice.source == "environment" and "UNET_DEMO_PRECISION" in choice.reason
    assert not (tmp_path / "s.json").exists()


@pytest.mark.parametrize("name, value", [("UNET_DEMO_XLA", "maybe"),
                                         ("UNET_DEMO_PRECISION", "float8")])
def test_bad_override_values_are_refused_with_the_fix(name, value):
    with pytest.raises(UNetDemoError, match=f"{name} must be .*Received: '{value}'.*Fix"):
        choose_speed("CPU", environ={name: value}, flags=AMD_FLAGS)


def test_bfloat16_is_a_candidate_only_where_the_cpu_has_it():
    assert all(policy == "float32" for _, policy in candidates(AMD_FLAGS, None, "auto"))
    assert {policy for _, policy in candidates(XEON_FLAGS, None, "auto")} == {
        "float32", "mixed_bfloat16"}
    assert candidates(XEON_FLAGS, True, "float32") == [(True, "float32")]


def test_auto_measures_once_keeps_the_fastest_and_caches_it(tmp_path):
    cache = tmp_path / "speed.json"
    first = choose_speed("CPU", environ={}, flags=XEON_FLAGS, cache_path=cache,
                         timer=tiny_timer)
    assert first.source == "measured"
    assert set(first.timings) == {"XLA float32", "default graph float32",
                                  "XLA mixed_bfloat16", "default graph mixed_bfloat16"}
    assert all(speed > 0 for speed in first.timings.values())
    fastest = max(first.timings, key=first.timings.get)
    assert label(first.jit_compile, first.policy) == fastest
    assert f"{fastest} was fastest" in first.reason
    stored = json.loads(cache.read_text())
    (entry,) = stored["machines"].values()
    assert entry["images_per_s"] == first.timings
    # Second call: the cached answer, nothing measured again.
    second = choose_speed("CPU", environ={}, flags=XEON_FLAGS, cache_path=cache,
                          timer=refuse_to_time)
    assert (second.source, second.jit_compile, second.policy) == (
        "cache", first.jit_compile, first.policy)
    # A CPU without native bfloat16 needs only the float32 timings, already cached.
    amd = choose_speed("CPU", environ={}, flags=AMD_FLAGS, cache_path=cache,
                       timer=refuse_to_time)
    assert amd.policy == "float32" and "no native bfloat16" in amd.reason


def test_cache_location_follows_the_environment(tmp_path):
    assert speed_cache_path({"XDG_CACHE_HOME": str(tmp_path)}) == (
        tmp_path / "unet_demo" / "speed.json")


def test_gpu_and_multi_worker_choices():
    gpu = choose_speed("GPU", environ={}, timer=refuse_to_time)
    assert (gpu.policy, gpu.jit_compile) == ("mixed_float16", "auto")
    workers = choose_speed("CPU x2 workers", environ={"UNET_DEMO_XLA": "1"},
                           timer=refuse_to_time)
    assert workers.jit_compile is False and workers.policy == "float32"


def test_facts_line_names_precision_and_why():
    started = ev.Started(epochs=1, batches_per_epoch=2, train_images=8, val_images=2,
                         params=10, jit_compile=True, precision="bfloat16",
                         speed_reason="XLA mixed_bfloat16 was fastest on this CPU.")
    assert "XLA on, bfloat16 compute;" in started_facts(started)
    assert started_facts(started).endswith("XLA mixed_bfloat16 was fastest on this CPU.")
    assert SpeedChoice(True, "float32", "cache", "").to_dict()["precision"] == "float32"


def _trained(tmp_path, name, monkeypatch, precision):
    monkeypatch.setenv("UNET_DEMO_PRECISION", precision)
    run_dir = tmp_path / name
    run_dir.mkdir()
    seen = []
    run_training(tiny_spec(epochs=1, images=8), run_dir, on_event=seen.append)
    return run_dir, seen


def test_bfloat16_run_trains_records_its_choice_and_saves_a_float32_model(
        tmp_path, monkeypatch):
    import keras

    monkeypatch.setenv("UNET_DEMO_XLA", "1")
    run_a, seen = _trained(tmp_path, "a", monkeypatch, "bfloat16")
    run_b, _ = _trained(tmp_path, "b", monkeypatch, "bfloat16")
    assert seen[0].precision == "bfloat16" and "UNET_DEMO_PRECISION" in seen[0].speed_reason
    assert isinstance(seen[-1], ev.Finished)
    environment = json.loads((run_a / rundir.ENVIRONMENT_FILE).read_text())
    assert environment["precision"] == "bfloat16"
    assert environment["dtype_policy"] == "mixed_bfloat16"
    assert environment["speed_choice"]["source"] == "environment"
    # Same seed, same fixed setting: the same history (determinism holds in bfloat16 too).
    history_a, history_b = rundir.load_history(run_a), rundir.load_history(run_b)
    assert [row["loss"] for row in history_a] == [row["loss"] for row in history_b]
    assert np.isfinite([row["val_dice"] for row in history_a]).all()
    # The saved model computes in float32, whatever the run trained in.
    model = keras.saving.load_model(run_a / rundir.MODEL_FILE, compile=False)
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert model.output.dtype == "float32"


def test_an_xla_run_switches_op_determinism_off_after_a_run_without_xla(tmp_path, monkeypatch):
    import tensorflow as tf
    from tensorflow.python.framework import config as framework_config

    from unet_demo.training.runner import _Trainer

    # What an earlier XLA-off run in the same process (a fold, a test) leaves behind; Keras
    # would then compile the next run without XLA, silently, and its numbers would differ.
    tf.config.experimental.enable_op_determinism()
    monkeypatch.setenv("UNET_DEMO_XLA", "1")
    trainer = _Trainer(tiny_spec(), tmp_path, None, None)
    trainer.setup_device()
    assert trainer.jit_compile is True
    assert not framework_config.is_op_determinism_enabled()


# Trains in a fresh interpreter, as a queue worker does: unet_demo first, then TensorFlow.
GRAPH_RUN = """
import json, sys
from unet_demo.config import DataConfig, TrainConfig, UNetConfig
from unet_demo.training import rundir
from unet_demo.training.runner import run_training
from unet_demo.training.spec import RunSpec
spec = RunSpec(
    data=DataConfig(dataset="brain_skullstrip", image_size=64, max_train_images=16),
    model=UNetConfig(input_height=64, input_width=64, base_filters=16, depth=3),
    train=TrainConfig(epochs=2, batch_size=8, learning_rate=1e-3, seed=3))
run_training(spec, sys.argv[1])
environment = json.loads((rundir.Path(sys.argv[1]) / rundir.ENVIRONMENT_FILE).read_text())
history = [{k: v for k, v in row.items() if k not in ("seconds", "images_per_sec")}
           for row in rundir.load_history(sys.argv[1])]
print(json.dumps({"history": history, "onednn": environment["onednn"],
                  "jit_compile": environment["jit_compile"]}))
"""


def _train_in_fresh_process(run_dir, **environment):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {key: value for key, value in os.environ.items()
           if key not in ("TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTEROP_THREADS")}
    env.update(UNET_DEMO_XLA="0", UNET_DEMO_PRECISION="float32", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=str(Path(__file__).resolve().parents[2]), **environment)
    done = subprocess.run([sys.executable, "-c", GRAPH_RUN, str(run_dir)], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_onednn_graph_repeats_a_history_bit_for_bit_in_fresh_processes(tmp_path):
    # Graph ops running side by side (TensorFlow's default inter-op pool) made two runs of one
    # seed differ in the 6th digit of the loss after a few steps of this 16-filter BN net;
    # importing unet_demo sets TF_NUM_INTEROP_THREADS=1 and TF_ENABLE_ONEDNN_OPTS=1 first.
    first = _train_in_fresh_process(tmp_path / "a")
    second = _train_in_fresh_process(tmp_path / "b")
    assert (first["onednn"], first["jit_compile"]) == (True, False)
    assert len(first["history"]) == 2
    assert first["history"] == second["history"]


def test_a_users_own_onednn_setting_is_kept(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    probe = ("import os, unet_demo, json\n"
             "from unet_demo.training.speed import onednn_enabled, machine_key\n"
             "print(json.dumps([os.environ['TF_ENABLE_ONEDNN_OPTS'], "
             "os.environ['TF_NUM_INTEROP_THREADS'], onednn_enabled(), machine_key('X', 2)]))\n")
    seen = {}
    for setting in ("", "0"):
        env = {key: value for key, value in os.environ.items()
               if key not in ("TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTEROP_THREADS")}
        env.update(PYTHONPATH=str(Path(__file__).resolve().parents[2]), TF_CPP_MIN_LOG_LEVEL="3")
        if setting:
            env["TF_ENABLE_ONEDNN_OPTS"] = setting
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                              text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        seen[setting] = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen[""][:3] == ["1", "1", True]
    assert seen[""][3].endswith("| oneDNN on")
    assert seen["0"][:3] == ["0", "1", False]
    assert seen["0"][3].endswith("| oneDNN off")


def test_the_micro_benchmark_times_xla_even_after_a_seeded_graph_run():
    # A seeded graph run leaves TensorFlow's process-wide op-determinism mode on; under it Keras
    # proceeds with jit_compile=False (a UserWarning), so "XLA" would really time the graph.
    import warnings

    import tensorflow as tf
    from tensorflow.python.framework import config as framework_config

    tf.config.experimental.enable_op_determinism()
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            speed = tiny_timer(True, "float32")
        assert speed > 0
        assert not [w for w in seen if "jit_compile" in str(w.message)]
        assert framework_config.is_op_determinism_enabled()  # left as it was found
    finally:
        framework_config.disable_op_determinism()
