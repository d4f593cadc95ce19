"""Keras code export: a standalone Python snippet that rebuilds a configured U-Net.

The snippet is written from the built model's own graph, one ``keras.layers`` call per layer
in execution order, with every layer's non-default arguments and its stable name. It imports
only ``keras`` (no unet_demo), so students can paste it into a notebook and read the network
line by line. Because it is generated from the model rather than from a hand-kept template,
it has the same layers, names and parameter count by construction (tests run it in a fresh
process to prove it). For the "pretrained" variant the backbone is one
``keras.applications`` call (random weights; the snippet says how to load ImageNet weights).

Example:
    >>> from unet_demo.config import UNetConfig
    >>> code = export_keras_code(UNetConfig(input_height=32, input_width=32, depth=1))
    >>> "layers.Conv2DTranspose(" in code and "import unet_demo" not in code
    True
"""

from __future__ import annotations

import inspect
import keyword
import re
from typing import Any

from unet_demo.config import UNetConfig
from unet_demo.models.checks import BACKBONES

# Config keys that are never written: handled separately or always the Keras default here.
_SKIPPED_KEYS = {"name", "trainable", "dtype", "data_format"}
_HEAD_PREFIXES = ("output", "head")


def _variable(name: str) -> str:
    """Return a Python identifier for a layer name."""
    identifier = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
    if not identifier or identifier[0].isdigit() or keyword.iskeyword(identifier):
        identifier = f"t_{identifier}"
    return identifier


def _is_serialized_object(value: Any) -> bool:
    return isinstance(value, dict) and "class_name" in value and "config" in value


def _normalize(value: Any) -> Any:
    """Make config values comparable with constructor defaults (lists -> tuples)."""
    if isinstance(value, list):
        return tuple(_normalize(v) for v in value)
    return value


def _equals_default(key: str, value: Any, default: Any) -> bool:
    import keras

    value = _normalize(value)
    if _is_serialized_object(value):
        if default is None:
            return False
        getter = {
            "initializer": keras.initializers.get,
            "regularizer": keras.regularizers.get,
            "constraint": keras.constraints.get,
        }.get(key.rsplit("_", 1)[-1])
        if getter is None:
            return False
        return keras.saving.serialize_keras_object(getter(default)) == value
    if isinstance(value, tuple) and isinstance(default, int) and not isinstance(default, bool):
        return all(v == default for v in value)
    if isinstance(default, list):
        default = _normalize(default)
    return value == default


def _initializer_name(value: dict[str, Any]) -> str | None:
    """Return e.g. "he_normal" for a default-configured initializer, else None."""
    import keras

    if value.get("module") != "keras.initializers" or any(value["config"].values()):
        return None
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", value["class_name"]).lower()
    try:
        same = type(keras.initializers.get(snake)).__name__ == value["class_name"]
    except ValueError:
        return None
    return snake if same else None


def _render(value: Any) -> str:
    """Return Python source for a config value."""
    value = _normalize(value)
    if _is_serialized_object(value):
        short = _initializer_name(value)
        if short is not None:
            return repr(short)
        module = value.get("module") or "keras"
        arguments = ", ".join(
            f"{k}={_render(v)}" for k, v in value["config"].items() if v is not None
        )
        return f"{module}.{value['class_name']}({arguments})"
    if isinstance(value, tuple):
        if len(value) > 1 and all(isinstance(v, int) and v == value[0] for v in value):
            return repr(value[0])
        inner = ", ".join(_render(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, float):
        return repr(float(value))
    return repr(value)


def _layer_call(class_name: str, config: dict[str, Any]) -> str:
    """Return ``layers.Class(arg, ..., key=value, name="...")`` with non-default arguments."""
    import keras

    cls = getattr(keras.layers, class_name)
    parameters = inspect.signature(cls.__init__).parameters
    positional, keywords = [], []
    for key, value in config.items():
        if key in _SKIPPED_KEYS:
            continue
        parameter = parameters.get(key)
        if parameter is not None and parameter.default is inspect.Parameter.empty:
            positional.append(_render(value))
            continue
        if parameter is not None and _equals_default(key, value, parameter.default):
            continue
        if key == "activation" and value == "linear":
            continue  # Keras stores activation=None as "linear"
        if key == "strides" and _normalize(value) == _normalize(config.get("pool_size")):
            continue  # pooling strides default to the pool size
        keywords.append(f"{key}={_render(value)}")
    name = config["name"]
    dtype = config.get("dtype")
    policy = dtype["config"]["name"] if _is_serialized_object(dtype) else dtype
    if policy and (policy != "float32" or name.startswith(_HEAD_PREFIXES)):
        keywords.append(f"dtype={policy!r}")
    keywords.append(f"name={name!r}")
    return f"layers.{class_name}({', '.join(positional + keywords)})"


def _inputs_of(entry: dict[str, Any]) -> list[str] | str:
    """Return the producer layer name(s) of a serialized layer's first call."""
    args = entry["inbound_nodes"][0]["args"][0]
    if isinstance(args, list):
        return [tensor["config"]["keras_history"][0] for tensor in args]
    return args["config"]["keras_history"][0]


def _first_history_name(history: list) -> str:
    """Layer name from a model config's ``input_layers``: [name, 0, 0] or [[name, 0, 0], ...]."""
    return history[0][0] if isinstance(history[0], list) else history[0]


def _header(cfg: UNetConfig, model) -> list[str]:
    options = ", ".join(f"{k}={v!r}" for k, v in cfg.to_dict().items())
    lines = [
        f'"""{cfg.variant} U-Net exported by unet-demo (education and research only).',
        "",
        "Rebuilds the configured network with plain Keras layers, one line per layer.",
        f"Expected parameters: {model.count_params():,}.",
        "",
        "Configuration:",
    ]
    line = "   "
    for word in options.split(" "):
        if len(line) + len(word) > 95:
            lines.append(line.rstrip())
            line = "   "
        line += " " + word
    lines.append(line.rstrip())
    lines += ['"""', "", "import keras", "from keras import layers", "", ""]
    return lines


def export_keras_code(cfg: UNetConfig) -> str:
    """Return a runnable standalone Python snippet that rebuilds the model of ``cfg``.

    Running the snippet as a script builds the model, prints its summary and its parameter
    count (the last line reads ``parameters: N``).

    Args:
        cfg: the model config (validated like `build_unet`).

    Example:
        >>> from unet_demo.models.builder import build_unet
        >>> cfg = UNetConfig(input_height=32, input_width=32, depth=1)
        >>> namespace = {}; exec(export_keras_code(cfg), namespace)  # defines build_model()
        >>> rebuilt = namespace["build_model"]()
        >>> rebuilt.count_params(), rebuilt.count_params() == build_unet(cfg).count_params()
        (25777, True)
    """
    from unet_demo.models.builder import build_unet

    model = build_unet(cfg, load_weights=False)
    config = model.get_config()
    backbone_done = False
    from unet_demo.models.pretrained import is_backbone_layer

    def is_backbone(name: str) -> bool:
        return cfg.variant == "pretrained" and is_backbone_layer(name)

    body: list[str] = []
    tapped: set[str] = set()

    def reference(name: str) -> str:
        if is_backbone(name) and name not in tapped:
            tapped.add(name)
            body.append(f"{_variable(name)} = backbone.get_layer({name!r}).output")
        return _variable(name)

    for entry in config["layers"]:
        name, class_name = entry["name"], entry["class_name"]
        if class_name == "InputLayer":
            shape = tuple(entry["config"]["batch_shape"][1:])
            body.append(f"{_variable(name)} = keras.Input(shape={shape!r}, name={name!r})")
            continue
        if is_backbone(name):
            if not backbone_done:
                body += _backbone_lines(cfg, _inputs_of(entry))
                backbone_done = True
            continue
        sources = _inputs_of(entry)
        if isinstance(sources, list):
            argument = "[" + ", ".join(reference(s) for s in sources) + "]"
        else:
            argument = reference(sources)
        body.append(f"{_variable(name)} = {_layer_call(class_name, entry['config'])}({argument})")

    inputs = _variable(_first_history_name(config["input_layers"]))
    outputs = _variable(_first_history_name(config["output_layers"]))
    body.append(f"return keras.Model({inputs}, {outputs}, name={model.name!r})")
    lines = _header(cfg, model)
    lines.append("def build_model():")
    lines.append('    """Build the U-Net (untrained); returns a keras.Model."""')
    lines += [f"    {line}" for line in body]
    lines += [
        "",
        "",
        'if __name__ == "__main__":',
        "    model = build_model()",
        "    model.summary()",
        '    print(f"parameters: {model.count_params()}")',
        "",
    ]
    return "\n".join(lines)


def _backbone_lines(cfg: UNetConfig, source: str) -> list[str]:
    spec = BACKBONES[cfg.backbone]
    lines = [
        "# Encoder: keras.applications backbone without its classifier. weights=None starts",
        "# from random weights; to use ImageNet weights already on disk pass their file path,",
        "# e.g. weights=\"~/.keras/models/<file>.h5\" (weights=\"imagenet\" would download).",
        f"backbone = keras.applications.{spec.application}(",
        f"    include_top=False, weights=None, input_tensor={_variable(source)},",
        f"    input_shape=({cfg.input_height}, {cfg.input_width}, 3),",
        ")",
    ]
    if cfg.freeze_encoder:
        lines += ["for layer in backbone.layers:", "    layer.trainable = False"]
    return lines
