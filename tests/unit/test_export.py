"""Keras code export: the snippet runs in a fresh process without unet_demo and rebuilds the model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

keras = pytest.importorskip("keras")

from unet_demo.config import UNetConfig  # noqa: E402
from unet_demo.models.builder import build_unet  # noqa: E402
from unet_demo.models.export import export_keras_code  # noqa: E402
from unet_demo.models.seeds import seed_config  # noqa: E402

EXPORT_CASES = {
    "classic_dropout_l2_leaky": UNetConfig(
        input_height=32, input_width=32, depth=2, base_filters=4, l2=1e-4, dropout_rate=0.2,
        dropout_where="all", activation="leaky_relu"),
    "attention_group_upconv": UNetConfig(
        variant="attention", input_height=32, input_width=32, depth=2, base_filters=4,
        normalization="group", upsampling="upsample_conv"),
    "residual_instance_gelu": UNetConfig(
        variant="residual", input_height=32, input_width=32, depth=2, base_filters=4,
        normalization="instance", activation="gelu", kernel_initializer="he_uniform"),
    "dense_batch_3convs_dropout": UNetConfig(
        variant="dense", input_height=32, input_width=32, depth=2, base_filters=4,
        convs_per_block=3, dropout_rate=0.1),
    "unetpp_layer_deep_3cls": UNetConfig(
        variant="unetpp", input_height=32, input_width=32, depth=3, base_filters=4,
        normalization="layer", deep_supervision=True, num_classes=3),
    "lightweight_l1": UNetConfig(
        variant="lightweight", input_height=32, input_width=32, depth=2, base_filters=4,
        l1=1e-5, kernel_initializer="glorot_normal"),
    "unet3d_upconv_elu": UNetConfig(
        variant="unet3d", input_depth=8, input_height=16, input_width=16, depth=2,
        base_filters=4, upsampling="upsample_conv", activation="elu"),
    "pretrained_frozen": UNetConfig(
        variant="pretrained", input_height=32, input_width=32, depth=5, base_filters=4,
        freeze_encoder=True),
    "seed_chapter8": seed_config("chapter8"),
}

RUNNER = r'''
import json, runpy, sys
try:
    import unet_demo  # noqa: F401
    raise SystemExit("unet_demo must not be importable here")
except ImportError:
    pass
results = {}
for name in sys.argv[1:]:
    model = runpy.run_path(name + ".py", run_name="exported")["build_model"]()
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    results[name] = [model.count_params(), trainable, [layer.name for layer in model.layers],
                     list(model.output_shape)]
print(json.dumps(results))
'''


def _trainable(model) -> int:
    return sum(int(w.numpy().size) for w in model.trainable_weights)


def test_exported_code_rebuilds_the_same_models_in_a_fresh_process(tmp_path) -> None:
    expected = {}
    for name, cfg in EXPORT_CASES.items():
        code = export_keras_code(cfg)
        assert "unet_demo" not in code.split('"""', 2)[2]  # no import beyond the docstring
        (tmp_path / f"{name}.py").write_text(code)
        model = build_unet(cfg, load_weights=False)
        expected[name] = [model.count_params(), _trainable(model),
                          [layer.name for layer in model.layers], list(model.output_shape)]
    (tmp_path / "runner.py").write_text(RUNNER)
    # -I: isolated mode, so neither the repository nor PYTHONPATH is on sys.path
    done = subprocess.run(
        [sys.executable, "-I", "runner.py", *EXPORT_CASES], cwd=tmp_path, capture_output=True,
        text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for name, (params, trainable, names, output_shape) in expected.items():
        got = results[name]
        assert got[0] == params, name
        assert got[1] == trainable, name
        assert got[3] == output_shape, name
        if not name.startswith("pretrained"):
            assert got[2] == names, name
        else:  # backbone layers are built by keras.applications; ours keep their names
            assert set(got[2]) == set(names), name
    assert expected["seed_chapter8"][0] == 1_861_697
    assert expected["pretrained_frozen"][1] < expected["pretrained_frozen"][0]


def test_exported_script_prints_its_parameter_count(tmp_path) -> None:
    cfg = UNetConfig(input_height=16, input_width=16, depth=1, base_filters=2)
    script = tmp_path / "unet.py"
    script.write_text(export_keras_code(cfg))
    done = subprocess.run([sys.executable, "-I", str(script)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    count = build_unet(cfg).count_params()
    assert done.stdout.strip().splitlines()[-1] == f"parameters: {count}"


def test_export_reads_like_keras_code() -> None:
    code = export_keras_code(seed_config("notebook"))
    assert code.count("layers.UpSampling2D(") == 4
    assert "layers.Conv2D(64, 3, padding='same', activation='relu', " in code
    assert "Expected parameters: 31,031,745." in code
    assert "def build_model():" in code
    compile(code, "<export>", "exec")
    backbone = export_keras_code(UNetConfig(variant="pretrained", depth=5, input_height=32,
                                            input_width=32, backbone="resnet50"))
    assert "keras.applications.ResNet50(" in backbone and "weights=None" in backbone
    assert 'backbone.get_layer(\'conv4_block6_out\').output' in backbone
