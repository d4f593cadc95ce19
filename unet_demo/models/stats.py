"""Architecture calculator: parameters, FLOPs, memory, receptive field and per-level shapes.

The model is built once per config (configs are frozen, hence hashable, so results are cached)
and its layers are walked in graph order. Conventions, stated so that figures can be checked:

* FLOPs are per image for one forward (inference) pass; one multiply-add counts as **2 FLOPs**.
  Convolutions, transposed, depthwise and separable convolutions and dense layers count their
  multiply-adds exactly; bias adds, normalisation, activations, pooling, element-wise merges and
  bilinear resizing add small per-element costs (see ``_ELEMENTWISE_COST``). A backward pass
  costs about twice the forward pass, so one training step is about 3x ``flops`` per image.
* Activation memory (float32 unless the layer says otherwise): *training* keeps every layer's
  output for the backward pass (an upper estimate: fused kernels keep fewer); *inference*
  keeps a tensor only until its last consumer has run, so it is the peak of live tensors while
  the layers run in order (skip connections keep encoder outputs alive across the U).
  Optimizer state, gradients and framework workspace are not activations; see
  ``training_total_bytes`` for weights + gradients + two Adam moments + training activations.
* Receptive field: side, in input pixels, of the window that can influence one output pixel
  (theoretical; it may exceed the image, and a global pooling makes it the whole image).

Example:
    >>> from unet_demo.config import UNetConfig
    >>> stats = architecture_stats(UNetConfig(input_height=32, input_width=32, depth=2,
    ...                                       base_filters=4), batch_size=2)
    >>> stats.params == stats.trainable_params + stats.non_trainable_params
    True
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

from unet_demo.config import UNetConfig
from unet_demo.models.checks import BACKBONES, check_input_size

# FLOPs per output element for layers without multiply-adds (approximate, documented choices).
_ELEMENTWISE_COST = {
    "BatchNormalization": 2,  # folded into one scale and one shift at inference
    "GroupNormalization": 7,  # mean, centre, square, variance, divide, scale, shift
    "LayerNormalization": 7,
    "Normalization": 2,
    "Rescaling": 2,
}
# FLOPs per element of an activation: cheap piecewise ones 1, exponential-based ones 4.
_ACTIVATION_COST = {
    "linear": 0, None: 0, "relu": 1, "relu6": 1, "leaky_relu": 2, "elu": 4, "gelu": 8,
    "sigmoid": 4, "hard_sigmoid": 3, "softmax": 4, "swish": 5, "silu": 5, "tanh": 4,
}
# Layers that move or copy data only.
_FREE_LAYERS = {
    "InputLayer", "Concatenate", "Dropout", "SpatialDropout2D", "SpatialDropout3D", "Reshape",
    "Flatten", "ZeroPadding2D", "ZeroPadding3D", "Cropping2D", "Cropping3D", "Permute",
}
# Layers whose output is their input at inference (no new buffer).
_ALIAS_LAYERS = {"Dropout", "SpatialDropout2D", "SpatialDropout3D", "Reshape", "Flatten"}


@dataclasses.dataclass(frozen=True)
class LevelShape:
    """One level of the U for a diagram (shapes without the batch axis).

    Args:
        level: 0 is full resolution; ``depth`` is the bottleneck.
        encoder_shape: encoder output at this level (None where a backbone has no tap).
        decoder_shape: decoder output at this level (None at the bottleneck).
        filters: configured filters of this level.
        skip: how the encoder reaches the decoder: "concat", "attention gate",
            "nested dense", "backbone tap <layer>", "none" or "bottleneck".
    """

    level: int
    encoder_shape: tuple[int, ...] | None
    decoder_shape: tuple[int, ...] | None
    filters: int
    skip: str


@dataclasses.dataclass(frozen=True)
class ArchitectureStats:
    """Figures of one configured model (see the module docstring for conventions).

    Args:
        variant: the config's variant.
        params, trainable_params, non_trainable_params: weight counts.
        flops: forward FLOPs per image (multiply-add = 2 FLOPs).
        batch_size: the batch the memory figures are for.
        weights_bytes: memory of the weights.
        training_activation_bytes: activations kept for backprop, whole batch.
        inference_activation_bytes: peak live activations at inference, whole batch.
        training_total_bytes: weights, gradients, 2 Adam moments and training activations.
        receptive_field: theoretical receptive field side in input pixels.
        input_shape, output_shape: without the batch axis.
        levels: per-level shapes for a diagram.
        layer_count: layers in the model (input included).
        uncounted_layers: layer types whose FLOPs are not modelled (counted as 0).
    """

    variant: str
    params: int
    trainable_params: int
    non_trainable_params: int
    flops: int
    batch_size: int
    weights_bytes: int
    training_activation_bytes: int
    inference_activation_bytes: int
    training_total_bytes: int
    receptive_field: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    levels: tuple[LevelShape, ...]
    layer_count: int
    uncounted_layers: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (tuples become lists).

        Example:
            >>> "flops" in architecture_stats(UNetConfig(input_height=32, input_width=32)).to_dict()
            True
        """
        data = dataclasses.asdict(self)
        data["levels"] = [dataclasses.asdict(level) for level in self.levels]
        return data


@dataclasses.dataclass(frozen=True)
class _PerImage:
    params: int
    trainable_params: int
    non_trainable_params: int
    flops: int
    weight_bytes: int
    training_activation_bytes: int
    inference_activation_bytes: int
    receptive_field: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    levels: tuple[LevelShape, ...]
    layer_count: int
    uncounted_layers: tuple[str, ...]


def _as_list(tensors) -> list:
    return list(tensors) if isinstance(tensors, list | tuple) else [tensors]


def _elements(shape) -> int:
    """Elements per image of a (batch, ...) shape."""
    return int(math.prod(int(d) for d in shape[1:]))


def _spatial(shape) -> int:
    return int(math.prod(int(d) for d in shape[1:-1]))


def _nbytes(tensor) -> int:
    import numpy as np

    return _elements(tensor.shape) * np.dtype(str(tensor.dtype)).itemsize


def _activation_name(layer) -> str | None:
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    return getattr(activation, "__name__", str(activation))


def layer_flops(layer) -> int | None:
    """Return forward FLOPs per image of one layer, or None when its type is not modelled.

    Args:
        layer: a layer of a built functional model (used once, so ``input``/``output`` exist).

    Example:
        >>> import keras
        >>> x = keras.Input((8, 8, 2)); conv = keras.layers.Conv2D(4, 3, padding="same")
        >>> _ = conv(x); layer_flops(conv)  # 64 pixels * 4 * (2 * 9 * 2 MACs + bias)
        9472
    """
    kind = type(layer).__name__
    inputs = _as_list(layer.input)
    out_shape = layer.output.shape
    out_elements = _elements(out_shape)
    in_channels = int(inputs[0].shape[-1])
    bias = out_elements if getattr(layer, "use_bias", False) else 0
    activation = _ACTIVATION_COST.get(_activation_name(layer), 4) * out_elements
    if kind in ("Conv1D", "Conv2D", "Conv3D"):
        groups = getattr(layer, "groups", 1)
        macs = out_elements * math.prod(layer.kernel_size) * in_channels // groups
        return 2 * macs + bias + activation
    if kind in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        macs = _spatial(inputs[0].shape) * in_channels * math.prod(layer.kernel_size) * int(
            out_shape[-1]
        )
        return 2 * macs + bias + activation
    if kind in ("DepthwiseConv1D", "DepthwiseConv2D"):
        macs = out_elements * math.prod(layer.kernel_size)
        return 2 * macs + bias + activation
    if kind in ("SeparableConv1D", "SeparableConv2D"):
        depthwise = _spatial(out_shape) * in_channels * layer.depth_multiplier * math.prod(
            layer.kernel_size
        )
        pointwise = _spatial(out_shape) * in_channels * layer.depth_multiplier * int(
            out_shape[-1]
        )
        return 2 * (depthwise + pointwise) + bias + activation
    if kind == "Dense":
        macs = out_elements * in_channels
        return 2 * macs + bias + activation
    if kind in _ELEMENTWISE_COST:
        return _ELEMENTWISE_COST[kind] * out_elements
    if kind == "Activation":
        return activation
    if kind in ("ReLU", "LeakyReLU", "ELU", "PReLU"):
        return 2 * out_elements
    if kind == "Softmax":
        return 4 * out_elements
    if kind in ("MaxPooling2D", "MaxPooling3D", "AveragePooling2D", "AveragePooling3D"):
        return out_elements * math.prod(layer.pool_size)
    if kind.startswith("Global") and "Pooling" in kind:
        return _elements(inputs[0].shape)
    if kind in ("Add", "Subtract", "Multiply", "Maximum", "Minimum"):
        return (len(inputs) - 1) * out_elements
    if kind == "Average":
        return len(inputs) * out_elements
    if kind == "UpSampling2D":
        # Bilinear: 4 weighted neighbours per output value; nearest only copies.
        return 8 * out_elements if layer.interpolation == "bilinear" else 0
    if kind == "UpSampling3D" or kind in _FREE_LAYERS:
        return 0
    return None


def _receptive_step(layer, fields: list[tuple[float, float]], input_side: int):
    """Return (receptive field, jump) of a layer's output from those of its inputs."""
    kind = type(layer).__name__
    field = max(f for f, _ in fields)
    jump = min(j for _, j in fields)
    if hasattr(layer, "kernel_size") and "Transpose" in kind:
        kernel, stride = layer.kernel_size[0], layer.strides[0]
        return field + (math.ceil(kernel / stride) - 1) * jump, jump / stride
    if hasattr(layer, "kernel_size"):
        dilation = getattr(layer, "dilation_rate", (1,))[0]
        kernel = dilation * (layer.kernel_size[0] - 1) + 1
        return field + (kernel - 1) * jump, jump * layer.strides[0]
    if hasattr(layer, "pool_size"):
        stride = (layer.strides or layer.pool_size)[0]
        return field + (layer.pool_size[0] - 1) * jump, jump * stride
    if kind.startswith("Global"):
        return float(input_side), jump
    if kind in ("UpSampling2D", "UpSampling3D"):
        size = layer.size[0]
        extra = jump if getattr(layer, "interpolation", "nearest") == "bilinear" else 0.0
        return field + extra, jump / size
    return field, jump


def _levels(cfg: UNetConfig, model) -> tuple[LevelShape, ...]:
    filters = cfg.level_filters()
    spatial = [cfg.input_height, cfg.input_width]
    if cfg.variant == "unet3d":
        spatial = [cfg.input_depth, *spatial]
    skip_kind = {"attention": "attention gate", "unetpp": "nested dense"}.get(cfg.variant, "concat")
    levels = []
    for level in range(cfg.depth + 1):
        side = tuple(s // 2**level for s in spatial)
        encoder: tuple[int, ...] | None = (*side, filters[level])
        decoder: tuple[int, ...] | None = (*side, filters[level])
        skip = skip_kind if level in cfg.skip_levels() or level == cfg.depth else "none"
        if cfg.variant == "pretrained":
            spec = BACKBONES[cfg.backbone]
            name = spec.bottleneck_layer if level == cfg.depth else spec.skip_layers[level]
            encoder = None if name is None else tuple(model.get_layer(name).output.shape[1:])
            skip = "none" if name is None else f"backbone tap {name}"
        if level == cfg.depth:
            decoder, skip = None, "bottleneck"
        levels.append(LevelShape(level, encoder, decoder, filters[level], skip))
    return tuple(levels)


@functools.lru_cache(maxsize=64)
def _per_image(cfg: UNetConfig) -> _PerImage:
    """Build the model once and walk its layers (cached per config)."""
    from unet_demo.models.builder import build_unet

    model = build_unet(cfg, load_weights=False)
    trainable = int(sum(math.prod(w.shape) for w in model.trainable_weights))
    non_trainable = int(sum(math.prod(w.shape) for w in model.non_trainable_weights))
    weight_bytes = int(sum(math.prod(w.shape) * _itemsize(w.dtype) for w in model.weights))

    producers: dict[int, str] = {}
    consumers: dict[int, int] = {}
    for layer in model.layers:
        producers[id(layer.output)] = layer.name
        if type(layer).__name__ != "InputLayer":
            for tensor in _as_list(layer.input):
                consumers[id(tensor)] = consumers.get(id(tensor), 0) + 1
    output_ids = {id(t) for t in model.outputs}
    input_side = max(int(d) for d in model.inputs[0].shape[1:-1])

    flops = 0
    uncounted: set[str] = set()
    training_bytes = 0
    live: dict[int, int] = {}
    peak = 0
    fields: dict[int, tuple[float, float]] = {}
    for layer in model.layers:
        kind = type(layer).__name__
        output = layer.output
        if kind == "InputLayer":
            fields[id(output)] = (1.0, 1.0)
            live[id(output)] = _nbytes(output)
            training_bytes += _nbytes(output)
            peak = max(peak, sum(live.values()))
            continue
        inputs = _as_list(layer.input)
        count = layer_flops(layer)
        if count is None:
            uncounted.add(kind)
        else:
            flops += count
        fields[id(output)] = _receptive_step(
            layer, [fields.get(id(t), (1.0, 1.0)) for t in inputs], input_side
        )
        size = 0 if kind in _ALIAS_LAYERS else _nbytes(output)
        training_bytes += _nbytes(output)
        live[id(output)] = size
        peak = max(peak, sum(live.values()))
        for tensor in inputs:
            consumers[id(tensor)] -= 1
            if consumers[id(tensor)] == 0 and id(tensor) not in output_ids:
                live.pop(id(tensor), None)

    field = max(fields[id(t)][0] for t in model.outputs)
    return _PerImage(
        params=trainable + non_trainable,
        trainable_params=trainable,
        non_trainable_params=non_trainable,
        flops=int(flops),
        weight_bytes=weight_bytes,
        training_activation_bytes=int(training_bytes),
        inference_activation_bytes=int(peak),
        receptive_field=int(math.ceil(field)),
        input_shape=tuple(int(d) for d in model.inputs[0].shape[1:]),
        output_shape=tuple(int(d) for d in model.outputs[0].shape[1:]),
        levels=_levels(cfg, model),
        layer_count=len(model.layers),
        uncounted_layers=tuple(sorted(uncounted)),
    )


def _itemsize(dtype) -> int:
    import numpy as np

    return np.dtype(str(dtype)).itemsize


def architecture_stats(cfg: UNetConfig, batch_size: int = 8) -> ArchitectureStats:
    """Return parameters, FLOPs, memory, receptive field and level shapes of a configured model.

    The first call for a config builds the model (about a second for small U-Nets); later calls
    with the same config, whatever the batch size, come from a cache.

    Args:
        cfg: the model config; a bad input size raises UNetDemoError naming valid sizes.
        batch_size: images per batch for the memory figures.

    Example:
        >>> from unet_demo.models.seeds import seed_config
        >>> architecture_stats(seed_config("chapter8")).params
        1861697
    """
    check_input_size(cfg)
    if batch_size < 1:
        from unet_demo.errors import UNetDemoError

        raise UNetDemoError(f"batch_size must be at least 1. Received: {batch_size}.")
    per = _per_image(cfg)
    training_activations = per.training_activation_bytes * batch_size
    return ArchitectureStats(
        variant=cfg.variant,
        params=per.params,
        trainable_params=per.trainable_params,
        non_trainable_params=per.non_trainable_params,
        flops=per.flops,
        batch_size=batch_size,
        weights_bytes=per.weight_bytes,
        training_activation_bytes=training_activations,
        inference_activation_bytes=per.inference_activation_bytes * batch_size,
        # weights + gradients + Adam's two moment estimates, all the size of the weights
        training_total_bytes=4 * per.weight_bytes + training_activations,
        receptive_field=per.receptive_field,
        input_shape=per.input_shape,
        output_shape=per.output_shape,
        levels=per.levels,
        layer_count=per.layer_count,
        uncounted_layers=per.uncounted_layers,
    )


def format_bytes(count: int) -> str:
    """Return a byte count as a short human string (KiB, MiB, GiB).

    Args:
        count: number of bytes.

    Example:
        >>> format_bytes(3 * 1024**2)
        '3.0 MiB'
    """
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
