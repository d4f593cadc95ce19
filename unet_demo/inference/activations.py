"""Inside a U-Net: feature maps, skip-connection ablation, attention gates, receptive fields.

Everything here reads a trained model through its stable layer names (see
`unet_demo.models.blocks`): ``enc{L}_pool`` takes the encoder output of level L, ``dec{L}_up``
gives the up-sampled tensor that ``dec{L}_concat`` joins with the skip, ``attn{L}_resample``
holds an attention gate's coefficients at the skip's size, and ``output`` is the head. Level 0
is the full-resolution level. Variants built on that skeleton (classic, attention, residual,
lightweight) are supported; U-Net++ and pretrained encoders have other wiring and are refused.

- `unet_anatomy(model)` lists the tensors to show, level by level down the U and back up.
- `feature_maps(model, image)` runs the image once and returns every one of them (one Keras
  model on those layers' outputs, compiled once per model and kept).
- `ablated_model(model, levels, mode)` is the same network with the chosen skip connections
  replaced by zeros, or by each channel's spatial mean, at inference (weights shared).
- `effective_receptive_field(model, image, name)` is the gradient of one pixel of a tensor
  with respect to the input (``tf.GradientTape``); `theoretical_receptive_fields(model)` is
  the calculator's answer for every tensor (`unet_demo.models.stats`).

Example:
    >>> import numpy as np
    >>> from unet_demo.inference.registry import open_model
    >>> model = open_model("bundled:brain_skullstrip").shared.keras_model
    >>> anatomy = unet_anatomy(model)
    >>> anatomy.depth, [t.name for t in anatomy.level_taps("encoder")]
    (3, ['enc0_act2', 'enc1_act2', 'enc2_act2'])
    >>> maps = feature_maps(model, np.zeros((128, 128, 1), np.float32))
    >>> maps["bottleneck_act2"].shape
    (16, 16, 128)
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

from unet_demo.errors import UNetDemoError

ABLATION_MODES = ("zeros", "mean")
"""How a switched-off skip is replaced: all zeros, or each channel's spatial mean."""
ROLES = ("encoder", "bottleneck", "upsampled", "skip", "decoder", "attention", "output")
ERF_MASS = 0.95
"""`effective_size` reports the square around the pixel that holds this share of the gradient."""

_LOCK = threading.Lock()
_FUNCTIONS: dict[tuple, Any] = {}
_MAX_FUNCTIONS = 32


@dataclasses.dataclass(frozen=True)
class Tap:
    """One tensor of the network shown on the Inside page.

    Attributes:
        name: the layer whose output it is (e.g. "enc1_act2").
        role: one of `ROLES`.
        level: U level (0 = full resolution; the bottleneck is level ``depth``).
        shape: (height, width, channels) for one image.
    """

    name: str
    role: str
    level: int
    shape: tuple[int, int, int]

    def label(self) -> str:
        """Short human label, e.g. "encoder level 1" or "skip into decoder level 0"."""
        words = {"encoder": "encoder level {}", "bottleneck": "bottleneck (level {})",
                 "upsampled": "up-sampled into decoder level {}",
                 "skip": "skip into decoder level {}", "decoder": "decoder level {}",
                 "attention": "attention gate, level {}", "output": "output (level {})"}
        return words[self.role].format(self.level)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (the CLI's ``--json``)."""
        return {"name": self.name, "role": self.role, "level": self.level,
                "shape": list(self.shape)}


@dataclasses.dataclass(frozen=True)
class UNetAnatomy:
    """The tensors of an encoder-decoder U-Net, in the order down the U and back up.

    Attributes:
        depth: number of pooling steps.
        taps: encoder 0..depth-1, bottleneck, then per decoder level (depth-1..0) the up-sampled
            tensor, the skip, the attention coefficients (attention U-Nets) and the block
            output; the model output last.
        input_shape: (height, width, channels) of the model input.
    """

    depth: int
    taps: tuple[Tap, ...]
    input_shape: tuple[int, int, int]

    @property
    def has_attention(self) -> bool:
        """True for attention U-Nets (gates on the skips)."""
        return any(t.role == "attention" for t in self.taps)

    def level_taps(self, role: str) -> list[Tap]:
        """Taps with this role, in U order."""
        return [t for t in self.taps if t.role == role]

    def tap(self, role: str, level: int) -> Tap | None:
        """The tap with this role at this level, or None."""
        return next((t for t in self.taps if t.role == role and t.level == level), None)

    @property
    def names(self) -> list[str]:
        """Layer names of every tap."""
        return [t.name for t in self.taps]


def _producers(model) -> dict[int, str]:
    return {id(layer.output): layer.name for layer in model.layers}


def _layer(model, name: str):
    try:
        return model.get_layer(name)
    except ValueError:
        return None


def _shape(tensor) -> tuple[int, int, int]:
    return tuple(int(d) for d in tensor.shape[1:])  # type: ignore[return-value]


def unet_anatomy(model) -> UNetAnatomy:
    """Find the encoder, bottleneck, decoder, skip and attention tensors by layer name.

    Args:
        model: a Keras U-Net built by `unet_demo.models.builder.build_unet` (2-D, one of the
            variants on the encoder-decoder skeleton).

    Example:
        >>> from unet_demo.config import UNetConfig
        >>> from unet_demo.models.builder import build_unet
        >>> cfg = UNetConfig(variant="attention", input_height=32, input_width=32, depth=2,
        ...                  base_filters=4)
        >>> anatomy = unet_anatomy(build_unet(cfg))
        >>> [(t.role, t.level, t.name) for t in anatomy.taps if t.level == 0]  # doctest: +NORMALIZE_WHITESPACE
        [('encoder', 0, 'enc0_act2'), ('upsampled', 0, 'dec0_up'), ('skip', 0, 'attn0_gate'),
         ('attention', 0, 'attn0_resample'), ('decoder', 0, 'dec0_act2'), ('output', 0, 'output')]
    """
    depth = 0
    while _layer(model, f"enc{depth}_pool") is not None:
        depth += 1
    if depth == 0 or _layer(model, "dec0_concat") is None or _layer(model, "output") is None:
        raise UNetDemoError(
            f"The Inside page reads U-Nets with the encoder-decoder layer names of this app "
            f"(enc0_pool, dec0_concat, output); {model.name!r} has other wiring (U-Net++ and "
            "pretrained-encoder models are not supported). Pick a classic, attention, residual "
            "or lightweight U-Net."
        )
    producers = _producers(model)

    def tap_for(tensor, role: str, level: int) -> Tap:
        name = producers.get(id(tensor))
        if name is None:
            raise UNetDemoError(f"Could not find the layer that makes the {role} tensor of "
                                f"level {level} in {model.name!r}.")
        return Tap(name, role, level, _shape(tensor))

    def up_entry(level: int):
        # UpSampling + conv ("upsample") or a transposed conv ("up") starts decoder level L.
        return _layer(model, f"dec{level}_upsample") or model.get_layer(f"dec{level}_up")

    taps = [tap_for(model.get_layer(f"enc{level}_pool").input, "encoder", level)
            for level in range(depth)]
    taps.append(tap_for(up_entry(depth - 1).input, "bottleneck", depth))
    for level in reversed(range(depth)):
        concat = _layer(model, f"dec{level}_concat")
        if concat is None:
            raise UNetDemoError(f"{model.name!r} has no skip connection at level {level} "
                                f"(no layer dec{level}_concat).")
        upsampled, skip = concat.input
        taps.append(tap_for(upsampled, "upsampled", level))
        taps.append(tap_for(skip, "skip", level))
        gate = _layer(model, f"attn{level}_resample")
        if gate is not None:
            taps.append(Tap(gate.name, "attention", level, _shape(gate.output)))
        block_end = up_entry(level - 1).input if level > 0 else model.get_layer("output").input
        taps.append(tap_for(block_end, "decoder", level))
    out = model.get_layer("output")
    taps.append(Tap(out.name, "output", 0, _shape(out.output)))
    return UNetAnatomy(depth, tuple(taps), _shape(model.inputs[0]))


# --------------------------------------------------------------------------- running the model

def _remember(key: tuple, make):
    with _LOCK:
        cached = _FUNCTIONS.get(key)
        if cached is None:
            if len(_FUNCTIONS) >= _MAX_FUNCTIONS:
                _FUNCTIONS.pop(next(iter(_FUNCTIONS)))
            cached = make()
            _FUNCTIONS[key] = cached
        return cached


def _compiled(model, outputs_of: tuple[str, ...] | None = None):
    """(function, lock): ``batch -> list of arrays``, one Keras model per model and layer set.

    The model is kept in the cache entry, so its id stays valid while the entry lives.
    """

    def make():
        import keras

        if outputs_of is None:
            probe = model
        else:
            probe = keras.Model(model.inputs[0], [model.get_layer(n).output for n in outputs_of],
                                name=f"{model.name}_taps")

        def run(batch):
            result = probe(batch, training=False)
            return list(result) if isinstance(result, list | tuple) else [result]

        if outputs_of is not None:
            # The feature-map probe runs for every image: one graph trace pays for itself. The
            # ablated networks run eagerly (a trace per ablation setting would cost more).
            import tensorflow as tf

            signature = [tf.TensorSpec((None, *tuple(model.input_shape)[1:]), tf.float32)]
            graph = tf.function(run, input_signature=signature, reduce_retracing=True)
            return model, probe, lambda batch: graph(tf.convert_to_tensor(batch)), \
                threading.Lock()
        return model, probe, run, threading.Lock()

    _, _, run, lock = _remember(("taps", id(model), outputs_of), make)
    return run, lock


def _as_batch(image: np.ndarray, model) -> np.ndarray:
    batch = np.asarray(image, np.float32)
    if batch.ndim == 3:
        batch = batch[None]
    want = tuple(model.input_shape)[1:]
    if batch.ndim != 4 or tuple(batch.shape[1:]) != tuple(want):
        raise UNetDemoError(
            f"The model expects images of shape {want} (height, width, channels); prepare the "
            f"image with prepare_image first. Received: shape {np.shape(image)}."
        )
    return batch


def feature_maps(model, image: np.ndarray, names: Iterable[str] | None = None
                 ) -> dict[str, np.ndarray]:
    """Outputs of the named layers (default: every `unet_anatomy` tap) for one prepared image.

    One forward pass through a Keras model built on those layers' outputs, so every map is
    exactly what the trained network computes inside (inference mode: dropout off).

    Args:
        model: the Keras U-Net.
        image: one model input (H, W, C) from `unet_demo.data.preprocess.prepare_image`.
        names: layer names; default all taps of `unet_anatomy(model)`.

    Returns:
        layer name -> float32 array (h, w, channels).

    Example:
        >>> from unet_demo.inference.registry import open_model
        >>> model = open_model("bundled:nuclei").shared.keras_model
        >>> feature_maps(model, np.zeros((128, 128, 1)), ["enc1_act2"])["enc1_act2"].shape
        (64, 64, 32)
    """
    wanted = tuple(dict.fromkeys(names if names is not None else unet_anatomy(model).names))
    batch = _as_batch(image, model)
    run, lock = _compiled(model, wanted)
    with lock:
        outputs = run(batch)
    return {name: np.asarray(out)[0].astype(np.float32) for name, out in zip(wanted, outputs,
                                                                              strict=True)}


def rank_channels(activation: np.ndarray) -> np.ndarray:
    """Channel indices, most active first (mean absolute activation over the map).

    Args:
        activation: (h, w, channels).

    Example:
        >>> a = np.zeros((4, 4, 3)); a[..., 2] = 5; a[..., 0] = -1
        >>> rank_channels(a).tolist()
        [2, 0, 1]
    """
    strength = np.abs(np.asarray(activation, np.float64)).mean(axis=(0, 1))
    return np.argsort(-strength, kind="stable")


# --------------------------------------------------------------------------- skip ablation

def _ablation_layer_class():
    import keras

    @keras.saving.register_keras_serializable(package="unet_demo_inside")
    class SkipAblation(keras.layers.Layer):
        """Replaces a skip tensor by zeros, or by each channel's spatial mean (per image)."""

        def __init__(self, mode: str = "zeros", **kwargs):
            super().__init__(**kwargs)
            self.mode = mode

        def call(self, x):
            ops = keras.ops
            if self.mode == "zeros":
                return ops.zeros_like(x)
            return ops.broadcast_to(ops.mean(x, axis=(1, 2), keepdims=True), ops.shape(x))

        def get_config(self):
            return {**super().get_config(), "mode": self.mode}

    return SkipAblation


_SKIP_ABLATION: list = []


def _check_ablation(levels: Iterable[int], mode: str, depth: int) -> tuple[int, ...]:
    if mode not in ABLATION_MODES:
        raise UNetDemoError(f"Ablation mode must be one of {list(ABLATION_MODES)}. "
                            f"Received: {mode!r}.")
    chosen = tuple(sorted({int(level) for level in levels}))
    bad = [level for level in chosen if not 0 <= level < depth]
    if bad:
        raise UNetDemoError(f"This U-Net has skip connections at levels 0..{depth - 1}. "
                            f"Received: {bad}.")
    return chosen


def ablated_model(model, levels: Iterable[int], mode: str = "zeros"):
    """The same network (shared weights) with the skips at ``levels`` switched off.

    The skip entering ``dec{L}_concat`` is replaced by zeros or by its per-channel spatial mean;
    everything else, the up-sampled path included, is unchanged. The network was trained *with*
    its skips, so this shows what it loses when deprived of them, not how a U-Net trained
    without skips would do.

    Args:
        model: the Keras U-Net.
        levels: skip levels to switch off (0 = full resolution).
        mode: "zeros" or "mean".

    Example:
        >>> from unet_demo.inference.registry import open_model
        >>> model = open_model("bundled:nuclei").shared.keras_model
        >>> [layer.name for layer in ablated_model(model, [0]).layers if "skip_off" in layer.name]
        ['dec0_skip_off']
    """
    import keras

    depth = unet_anatomy(model).depth
    chosen = _check_ablation(levels, mode, depth)
    if not chosen:
        return model

    def make():
        if not _SKIP_ABLATION:
            _SKIP_ABLATION.append(_ablation_layer_class())
        ablation = _SKIP_ABLATION[0]
        targets = {f"dec{level}_concat" for level in chosen}

        def call(layer, *args, **kwargs):
            if layer.name in targets:
                upsampled, skip = args[0]
                off = ablation(mode, name=layer.name.replace("_concat", "_skip_off"))(skip)
                return layer([upsampled, off], **kwargs)
            return layer(*args, **kwargs)

        clone = keras.models.clone_model(model, clone_function=lambda layer: layer,
                                         call_function=call)
        return model, clone

    return _remember(("ablated", id(model), chosen, mode), make)[1]


def predict_ablated(model, images: np.ndarray, levels: Iterable[int], mode: str = "zeros",
                    batch_size: int = 8) -> np.ndarray:
    """Probabilities (N, H, W, K) of the model with the skips at ``levels`` switched off.

    Args:
        model: the Keras U-Net.
        images: prepared model inputs (N, H, W, C) or one image (H, W, C).
        levels: skip levels to switch off (empty: the intact model).
        mode: "zeros" or "mean".
        batch_size: images per call.

    Example:
        >>> from unet_demo.inference.registry import open_model
        >>> model = open_model("bundled:nuclei").shared.keras_model
        >>> predict_ablated(model, np.zeros((2, 128, 128, 1)), [0, 1, 2]).shape
        (2, 128, 128, 1)
    """
    batch = _as_batch(images, model)
    network = ablated_model(model, levels, mode)
    run, lock = _compiled(network)
    outputs = []
    for start in range(0, len(batch), max(1, int(batch_size))):
        with lock:
            outputs.append(np.asarray(run(batch[start:start + batch_size])[0], np.float32))
    probabilities = np.concatenate(outputs, axis=0)
    return probabilities[..., None] if probabilities.ndim == 3 else probabilities


# --------------------------------------------------------------------------- receptive fields

def theoretical_receptive_fields(model) -> dict[str, tuple[float, float]]:
    """(receptive field side, jump) in input pixels of every layer's output.

    The walk and its per-layer rule are the architecture calculator's
    (`unet_demo.models.stats`): a k x k convolution adds (k - 1) * jump, pooling multiplies
    the jump, a concatenation takes the larger field of its inputs.

    Args:
        model: a Keras model.

    Example:
        >>> from unet_demo.inference.registry import open_model
        >>> fields = theoretical_receptive_fields(open_model("bundled:nuclei").shared.keras_model)
        >>> fields["enc0_act2"], fields["enc1_act2"]
        ((5.0, 1.0), (14.0, 2.0))
    """
    from unet_demo.models.stats import _receptive_step

    input_side = max(int(d) for d in model.inputs[0].shape[1:-1])
    by_tensor: dict[int, tuple[float, float]] = {}
    result: dict[str, tuple[float, float]] = {}
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            field = (1.0, 1.0)
        else:
            inputs = layer.input if isinstance(layer.input, list | tuple) else [layer.input]
            field = _receptive_step(layer, [by_tensor.get(id(t), (1.0, 1.0)) for t in inputs],
                                    input_side)
        by_tensor[id(layer.output)] = (float(field[0]), float(field[1]))
        result[layer.name] = (float(field[0]), float(field[1]))
    return result


def tap_pixel(pixel: tuple[int, int], input_shape: tuple[int, ...], tap_shape: tuple[int, ...]
              ) -> tuple[int, int]:
    """The position in a (smaller) tensor that lies over input pixel ``pixel`` (row, col).

    Example:
        >>> tap_pixel((64, 10), (128, 128, 1), (16, 16, 128))
        (8, 1)
    """
    rows = max(1, int(input_shape[0]) // int(tap_shape[0]))
    cols = max(1, int(input_shape[1]) // int(tap_shape[1]))
    return (min(int(pixel[0]) // rows, int(tap_shape[0]) - 1),
            min(int(pixel[1]) // cols, int(tap_shape[1]) - 1))


def effective_receptive_field(model, image: np.ndarray, name: str,
                              pixel: tuple[int, int] | None = None, *,
                              frozen_statistics: bool = True) -> np.ndarray:
    """|d(sum over channels of tensor ``name`` at one position) / d input|, summed over channels.

    For a softmax output (whose channels always sum to 1) the predicted class's probability at
    that position is traced instead.

    The gradient (``tf.GradientTape``) says how much each input pixel moves that position's
    activation: where it is zero, the input pixel cannot influence it (outside the theoretical
    receptive field); inside, it is usually concentrated near the centre (Luo et al. 2016).
    Group and instance normalisation compute their mean and variance over the whole image, so
    through those statistics every input pixel nudges every position a little; summed over the
    image that spreads the gradient everywhere and hides the convolutions' field. By default the
    statistics are held at their values for this image (their gradient is not followed), which
    traces what the convolutions see; the forward pass is unchanged.

    Args:
        model: the Keras U-Net.
        image: one prepared model input (H, W, C).
        name: layer whose output position is traced (e.g. "enc2_act2", "output").
        pixel: (row, col) in *input* pixels; default the image centre.
        frozen_statistics: hold group/instance normalisation statistics fixed (see above).

    Returns:
        float32 (H, W) gradient magnitude.

    Example:
        >>> from unet_demo.inference.registry import open_model
        >>> model = open_model("bundled:nuclei").shared.keras_model
        >>> erf = effective_receptive_field(model, np.zeros((128, 128, 1)), "enc1_act2")
        >>> erf.shape, bool(erf[64, 64] > 0)
        ((128, 128), True)
    """
    import keras
    import tensorflow as tf

    batch = _as_batch(image, model)
    height, width = batch.shape[1:3]
    pixel = (height // 2, width // 2) if pixel is None else pixel
    if not (0 <= pixel[0] < height and 0 <= pixel[1] < width):
        raise UNetDemoError(f"The traced pixel must lie inside the {height}x{width} image. "
                            f"Received: {pixel}.")
    layer = model.get_layer(name)

    def make():
        probe = keras.Model(model.inputs[0], layer.output, name=f"{model.name}_erf_{name}")
        if frozen_statistics:
            probe = _frozen_statistics_model(probe)
        return model, probe, threading.Lock()

    _, probe, lock = _remember(("erf", id(model), name, bool(frozen_statistics)), make)
    row, col = tap_pixel(pixel, batch.shape[1:], _shape(layer.output))
    x = tf.convert_to_tensor(batch)
    # Softmax outputs sum to 1 over the channels, so their sum has no gradient: trace the
    # predicted class's probability there instead.
    softmax = getattr(getattr(layer, "activation", None), "__name__", "") == "softmax"
    with lock, tf.GradientTape() as tape:
        tape.watch(x)
        out = probe(x, training=False)
        values = out[0, row, col, :]
        target = tf.reduce_max(values) if softmax else tf.reduce_sum(values)
    gradient = tape.gradient(target, x)
    return np.abs(gradient.numpy()[0]).sum(axis=-1).astype(np.float32)


def _frozen_group_norm_class():
    import keras

    class FrozenStatisticsGroupNorm(keras.layers.Layer):
        """A trained GroupNormalization whose mean and variance pass no gradient (same output)."""

        def __init__(self, norm, **kwargs):
            super().__init__(**kwargs)
            self.norm = norm

        def call(self, x):
            ops = keras.ops
            groups = self.norm.groups
            height, width, channels = x.shape[1:]
            grouped = ops.reshape(x, (-1, height, width, groups, channels // groups))
            mean, variance = ops.moments(grouped, axes=(1, 2, 4), keepdims=True)
            mean, variance = ops.stop_gradient(mean), ops.stop_gradient(variance)
            inv = ops.rsqrt(variance + self.norm.epsilon)
            broadcast = (1, 1, 1, groups, channels // groups)
            if self.norm.scale:
                inv = inv * ops.reshape(self.norm.gamma, broadcast)
            shift = -mean * inv
            if self.norm.center:
                shift = shift + ops.reshape(self.norm.beta, broadcast)
            return ops.reshape(grouped * inv + shift, ops.shape(x))

    return FrozenStatisticsGroupNorm


def _frozen_statistics_model(model):
    """``model`` with every GroupNormalization's statistics cut from the gradient (same weights)."""
    import keras

    if not any(isinstance(layer, keras.layers.GroupNormalization) for layer in model.layers):
        return model
    frozen = _frozen_group_norm_class()

    def call(layer, *args, **kwargs):
        if isinstance(layer, keras.layers.GroupNormalization):
            return frozen(layer, name=layer.name)(*args)
        return layer(*args, **kwargs)

    return keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)


def effective_size(gradient: np.ndarray, pixel: tuple[int, int] | None = None,
                   mass: float = ERF_MASS) -> int:
    """Side of the smallest square centred on ``pixel`` that holds ``mass`` of the gradient.

    Args:
        gradient: (H, W) from `effective_receptive_field`.
        pixel: the traced (row, col); default the centre.
        mass: share of the total absolute gradient (0-1].

    Example:
        >>> g = np.zeros((9, 9)); g[4, 4] = 1; g[4, 6] = 1
        >>> effective_size(g, (4, 4), 0.5), effective_size(g, (4, 4), 1.0)
        (1, 5)
    """
    grad = np.abs(np.asarray(gradient, np.float64))
    height, width = grad.shape
    pixel = (height // 2, width // 2) if pixel is None else pixel
    total = grad.sum()
    if total <= 0:
        return 0
    rows, cols = np.indices(grad.shape)
    distance = np.maximum(np.abs(rows - pixel[0]), np.abs(cols - pixel[1]))
    per_ring = np.bincount(distance.ravel(), weights=grad.ravel())
    ring = int(np.searchsorted(np.cumsum(per_ring), mass * total - 1e-12 * total))
    return 2 * ring + 1


def field_box(position: tuple[int, int], field: float, jump: float, shape: tuple[int, ...]
              ) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) input pixels, inclusive and clipped, seen by one position.

    A position p of a tensor whose neighbours lie ``jump`` input pixels apart is centred on
    input pixel (p + 0.5) * jump - 0.5 and sees ``field`` pixels around it.

    Args:
        position: (row, col) in the tensor (see `tap_pixel`).
        field: receptive field side in input pixels.
        jump: input pixels between neighbouring positions of the tensor.
        shape: (height, width) of the input image.

    Example:
        >>> field_box((64, 64), 5, 1, (128, 128))
        (62, 62, 66, 66)
        >>> field_box((8, 8), 32, 4, (64, 64))
        (18, 18, 49, 49)
    """
    half = (float(field) - 1.0) / 2.0
    centre = [(p + 0.5) * float(jump) - 0.5 for p in position]
    return (max(0, math.ceil(centre[0] - half - 1e-9)), max(0, math.ceil(centre[1] - half - 1e-9)),
            min(int(shape[0]) - 1, math.floor(centre[0] + half + 1e-9)),
            min(int(shape[1]) - 1, math.floor(centre[1] + half + 1e-9)))
