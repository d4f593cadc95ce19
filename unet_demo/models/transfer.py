"""Transfer learning offline: shipped encoders and the guide's freeze -> unfreeze schedule.

An *encoder* here is the contracting path of a U-Net built from scratch: the blocks named
``enc0`` .. ``enc{depth-1}`` (level 0 = full resolution) and the ``bottleneck`` (level
``depth``, the deepest). A shipped encoder is the weights of those layers, trained on one
bundled dataset, stored in ``models/encoders/<name>/`` as ``encoder.npz`` (plain arrays, no
pickle, float16) with a ``card.json`` that says which architecture it fits and how it was made. It
loads without a network, unlike ImageNet weights, which the "pretrained" variant uses only
when they are already in the local Keras cache.

The guide's fine-tuning schedule, in phases of one run:

1. ``"decoder"``: the encoder is frozen and only the decoder (and the output head) learns;
2. ``"last_level"``: the deepest encoder level (the bottleneck; for a keras.applications
   backbone, its layers after the last skip tap) is unfrozen too, at a lower learning rate.

``"all"`` is a run without the schedule: every layer learns. `phase_plan` turns a
`TrainConfig` into those phases; `set_phase` sets the layers' ``trainable`` flags.

Example:
    >>> from unet_demo.config import TrainConfig
    >>> phase_plan(TrainConfig(epochs=10, frozen_epochs=4))
    [('decoder', 0, 4), ('last_level', 4, 10)]
    >>> encoder_level("enc1_conv2", 3), encoder_level("bottleneck_norm1", 3)
    (1, 3)
    >>> encoder_level("dec1_conv1", 3) is None
    True
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from unet_demo.config import TrainConfig, UNetConfig
from unet_demo.errors import UNetDemoError
from unet_demo.settings import REPO_ROOT

ENCODER_FILE = "encoder.npz"
CARD_FILE = "card.json"
PHASES = ("all", "decoder", "last_level")
PHASE_TEXT = {
    "all": "every layer learns",
    "decoder": "encoder frozen: only the decoder and the output head learn",
    "last_level": "the deepest encoder level is unfrozen and learns with the decoder",
}
ARCHITECTURE_FIELDS = ("variant", "depth", "base_filters", "filter_growth", "kernel_size",
                       "convs_per_block", "normalization", "activation", "input_channels")
"""The UNetConfig fields a shipped encoder fixes (they decide its layers and weight shapes)."""
SCRATCH_VARIANTS = ("classic", "attention", "residual", "dense", "lightweight", "unetpp")
"""2-D variants whose encoder is the ``enc*`` / ``bottleneck`` blocks (a shipped encoder fits)."""

_LEVEL = re.compile(r"^enc(\d+)_")


def encoders_dir() -> Path:
    """Folder with one sub-folder per shipped encoder (``UNET_DEMO_ENCODERS_DIR`` overrides).

    Example:
        >>> encoders_dir().name
        'encoders'
    """
    return Path(os.environ.get("UNET_DEMO_ENCODERS_DIR", REPO_ROOT / "models" / "encoders"))


def encoder_level(layer_name: str, depth: int) -> int | None:
    """The encoder level of a layer of a scratch U-Net (``depth`` = bottleneck), else None.

    Args:
        layer_name: a layer name of a model built by `build_unet`.
        depth: the model's depth (number of poolings).

    Example:
        >>> encoder_level("enc0_pool", 2), encoder_level("output", 2)
        (0, None)
    """
    if layer_name.startswith("bottleneck"):
        return depth
    match = _LEVEL.match(layer_name)
    return int(match.group(1)) if match else None


def encoder_layers(model, cfg: UNetConfig) -> dict[int, list]:
    """The model's encoder layers by level (level 0 first, the deepest last).

    For a scratch variant the levels are ``enc0`` .. ``bottleneck``; for the "pretrained"
    variant the backbone's layers up to its last skip tap are level 0 and the layers after it
    (to the bottleneck tap) are level 1, the "last level" the schedule unfreezes.

    Args:
        model: a Keras model built by `build_unet` from ``cfg``.
        cfg: its config.

    Raises:
        UNetDemoError: a variant without a separable encoder (the 3-D U-Net).
    """
    levels: dict[int, list] = {}
    if cfg.variant == "pretrained":
        from unet_demo.models.checks import BACKBONES
        from unet_demo.models.pretrained import is_backbone_layer

        last_tap = [name for name in BACKBONES[cfg.backbone].skip_layers if name][-1]
        names = [layer.name for layer in model.layers]
        cut = names.index(last_tap) if last_tap in names else len(names)
        for index, layer in enumerate(model.layers):
            if is_backbone_layer(layer.name) and layer.name != "image":
                levels.setdefault(0 if index <= cut else 1, []).append(layer)
        return levels
    if cfg.variant not in SCRATCH_VARIANTS:
        raise UNetDemoError(
            f"The {cfg.variant!r} variant has no encoder this app can freeze or load. Use one "
            f"of {list(SCRATCH_VARIANTS) + ['pretrained']} for transfer learning.")
    for layer in model.layers:
        level = encoder_level(layer.name, cfg.depth)
        if level is not None:
            levels.setdefault(level, []).append(layer)
    return levels


def phase_plan(train: TrainConfig) -> list[tuple[str, int, int]]:
    """The schedule's phases as (phase, first epoch, stop epoch), 0-based like ``model.fit``.

    ``frozen_epochs`` = 0 is one "all" phase; otherwise the first ``frozen_epochs`` train the
    decoder only and the rest ("last_level") also train the deepest encoder level. When
    ``frozen_epochs`` >= ``epochs`` the whole run keeps the encoder frozen.

    Args:
        train: the run's training settings.

    Example:
        >>> phase_plan(TrainConfig(epochs=5))
        [('all', 0, 5)]
        >>> phase_plan(TrainConfig(epochs=3, frozen_epochs=8))
        [('decoder', 0, 3)]
    """
    if train.frozen_epochs <= 0:
        return [("all", 0, train.epochs)]
    cut = min(train.frozen_epochs, train.epochs)
    plan = [("decoder", 0, cut)]
    if cut < train.epochs:
        plan.append(("last_level", cut, train.epochs))
    return plan


def set_phase(model, cfg: UNetConfig, phase: str) -> dict[str, int]:
    """Set every layer's ``trainable`` flag for a phase; recompile the model afterwards.

    Args:
        model: a model built by `build_unet` from ``cfg``.
        cfg: its config.
        phase: one of PHASES.

    Returns:
        {"trainable": ..., "frozen": ...} parameter counts after the change.

    Example:
        >>> from unet_demo.models.builder import build_unet
        >>> cfg = UNetConfig(input_height=16, input_width=16, depth=1, base_filters=2)
        >>> model = build_unet(cfg)
        >>> set_phase(model, cfg, "decoder")["frozen"] > 0, model.get_layer("enc0_conv1").trainable
        (True, False)
        >>> set_phase(model, cfg, "last_level")["frozen"] > 0
        True
        >>> model.get_layer("bottleneck_conv1").trainable, model.get_layer("enc0_conv1").trainable
        (True, False)
    """
    if phase not in PHASES:
        raise UNetDemoError(f"phase must be one of {list(PHASES)}. Received: {phase!r}.")
    for layer in model.layers:
        layer.trainable = True
    if phase != "all":
        levels = encoder_layers(model, cfg)
        deepest = max(levels) if levels else -1
        for level, found in levels.items():
            if phase == "decoder" or level != deepest:
                for layer in found:
                    layer.trainable = False
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    frozen = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return {"trainable": trainable, "frozen": frozen}


# --------------------------------------------------------------------------- shipped encoders

def list_encoders() -> list[str]:
    """Names of the shipped encoders (folders holding an encoder.npz and a card.json).

    Example:
        >>> "brain_tissue_classic16" in list_encoders()
        True
    """
    folder = encoders_dir()
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if (p / ENCODER_FILE).is_file() and (p / CARD_FILE).is_file())


def encoder_card(name: str) -> dict[str, Any]:
    """The card of a shipped encoder: architecture, how it was pretrained, sizes.

    Args:
        name: a name from `list_encoders`.

    Example:
        >>> encoder_card("brain_tissue_classic16")["architecture"]["variant"]
        'classic'
    """
    if name not in list_encoders():
        raise UNetDemoError(
            f"No shipped encoder named {name!r} in {encoders_dir()}. Expected one of "
            f"{list_encoders()} (or leave it empty to start from random weights).")
    return json.loads((encoders_dir() / name / CARD_FILE).read_text(encoding="utf-8"))


def describe_architecture(arch: dict[str, Any]) -> str:
    """Short words for an architecture dict, e.g. "classic U-Net, depth 3, 16 base filters".

    Args:
        arch: `ARCHITECTURE_FIELDS` values (a card's "architecture" or a config's fields).

    Example:
        >>> describe_architecture(UNetConfig().to_dict())
        'classic U-Net, depth 3, 16 base filters x2, 3x3 kernels, 2 convs per block, batch norm, relu, 1 channel(s)'
    """
    return (f"{arch['variant']} U-Net, depth {arch['depth']}, {arch['base_filters']} base "
            f"filters x{float(arch['filter_growth']):g}, {arch['kernel_size']}x"
            f"{arch['kernel_size']} kernels, {arch['convs_per_block']} convs per block, "
            f"{arch['normalization']} norm, {arch['activation']}, {arch['input_channels']} "
            "channel(s)")


def match_encoder(cfg: UNetConfig, name: str) -> UNetConfig:
    """The config with its architecture fields set to those a shipped encoder was made for.

    Input size and class count stay: convolution weights fit any size, and the decoder and
    output head are new anyway.

    Args:
        cfg: the model config to adapt.
        name: a shipped encoder ("" returns ``cfg`` unchanged).

    Example:
        >>> match_encoder(UNetConfig(base_filters=8), "brain_tissue_classic16").base_filters
        16
    """
    if not name:
        return cfg
    arch = encoder_card(name)["architecture"]
    return cfg.replace(**{field: arch[field] for field in ARCHITECTURE_FIELDS})


def encoder_weights(model, cfg: UNetConfig) -> dict[str, np.ndarray]:
    """The encoder's weights as flat arrays ``{"<layer>/<index>": array}`` (for `save_encoder`).

    Args:
        model: a trained scratch U-Net.
        cfg: its config.
    """
    found = {}
    for layers in encoder_layers(model, cfg).values():
        for layer in layers:
            for index, weight in enumerate(layer.get_weights()):
                found[f"{layer.name}/{index}"] = np.asarray(weight, np.float32)
    return found


def save_encoder(model, cfg: UNetConfig, folder: str | Path, card: dict[str, Any]) -> Path:
    """Write a shipped encoder: encoder.npz (the encoder's weights) and card.json.

    Args:
        model: the trained model (a scratch variant).
        cfg: its config (the card records `ARCHITECTURE_FIELDS`).
        folder: the encoder's folder (created).
        card: what the card says besides the architecture (how it was made, scores).

    Returns:
        The folder.
    """
    if cfg.variant not in SCRATCH_VARIANTS:
        raise UNetDemoError(f"Only scratch variants {list(SCRATCH_VARIANTS)} can be shipped as an "
                            f"encoder. Received: {cfg.variant!r}.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # float16 halves the file; the rounding (~1e-3 relative) is far below what training moves.
    arrays = {key: value.astype(np.float16) for key, value in encoder_weights(model, cfg).items()}
    np.savez_compressed(folder / ENCODER_FILE, **arrays)
    full = {**card, "architecture": {f: getattr(cfg, f) for f in ARCHITECTURE_FIELDS}}
    full["encoder_bytes"] = (folder / ENCODER_FILE).stat().st_size
    (folder / CARD_FILE).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n",
                                    encoding="utf-8")
    return folder


def load_encoder(model, cfg: UNetConfig, name: str) -> int:
    """Copy a shipped encoder's weights into ``model`` (offline); returns the layers loaded.

    Every encoder layer of the model must be in the file with the same weight shapes, so a
    mismatch is refused before any weight changes.

    Args:
        model: a fresh model built by `build_unet` from ``cfg``.
        cfg: its config (its architecture must match the encoder's card, see `match_encoder`).
        name: a name from `list_encoders`.

    Raises:
        UNetDemoError: unknown encoder, another architecture, or a damaged file.

    Example:
        >>> from unet_demo.models.builder import build_unet
        >>> cfg = match_encoder(UNetConfig(input_height=32, input_width=32),
        ...                     "brain_tissue_classic16")
        >>> load_encoder(build_unet(cfg), cfg, "brain_tissue_classic16")
        16
    """
    card = encoder_card(name)
    arch = card["architecture"]
    wanted = {field: getattr(cfg, field) for field in ARCHITECTURE_FIELDS}
    if cfg.variant not in SCRATCH_VARIANTS or any(
            wanted[f] != arch[f] for f in ARCHITECTURE_FIELDS if f != "variant"):
        raise UNetDemoError(
            f"The encoder {name!r} was made for a {describe_architecture(arch)}; this model is "
            f"a {describe_architecture(wanted)}. Use the encoder's architecture (the Train "
            "page and --init-encoder set it) or start from random weights.")
    try:
        with np.load(encoders_dir() / name / ENCODER_FILE, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except (OSError, ValueError) as error:
        raise UNetDemoError(f"Cannot read the encoder {name!r} ({error}). Re-make it with "
                            "scripts/pretrain_encoder.py.") from None
    pending = []
    for layers in encoder_layers(model, cfg).values():
        for layer in layers:
            current = layer.get_weights()
            new = [arrays.get(f"{layer.name}/{i}") for i in range(len(current))]
            if any(a is None or a.shape != c.shape for a, c in zip(new, current, strict=True)):
                raise UNetDemoError(
                    f"The encoder {name!r} has no weights of shape "
                    f"{[tuple(c.shape) for c in current]} for layer {layer.name!r}. Use the "
                    f"encoder's architecture ({describe_architecture(arch)}).")
            if current:
                pending.append((layer, new))
    for layer, new in pending:
        layer.set_weights([a.astype(np.float32) for a in new])
    return len(pending)
