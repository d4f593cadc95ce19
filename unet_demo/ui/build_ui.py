"""Build page: design a U-Net with widgets; see its size, cost, diagram, summary and Keras code.

TensorFlow is imported lazily (inside cached functions) so the widgets draw at once. The chosen
`UNetConfig` is stored in session state (`UNET_CONFIG_KEY`) for the Train page.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from typing import Any

import streamlit as st

from unet_demo.config import (
    ACTIVATIONS,
    BACKBONES,
    DROPOUT_PLACES,
    ENCODER_WEIGHTS,
    INITIALIZERS,
    INTERPOLATIONS,
    NORMALIZATIONS,
    UPSAMPLINGS,
    VARIANTS,
    UNetConfig,
)
from unet_demo.errors import UNetDemoError
from unet_demo.plots.models import level_shapes, levels_from_stats, mismatch_text, unet_diagram
from unet_demo.training.links import BuildLink
from unet_demo.ui.classroom_ui import class_settings
from unet_demo.ui.common import encoder_weights_ui
from unet_demo.ui.links_ui import copy_link_ui, restore_link
from unet_demo.ui.state import DEFAULT_DATASET, get_dataset, get_unet_config, set_unet_config

PREFIX = "build."
FILTER_CHOICES = (4, 8, 16, 32, 64)
MEMORY_BATCHES = (1, 2, 4, 8, 16, 32, 64)
DECAY_CHOICES = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
BACKBONE_DEPTH = {"vgg16": 4, "resnet50": 5, "mobilenetv2": 5, "efficientnetb0": 5}

VARIANT_HELP = {
    "classic": "The original design: two convolutions per level, skips concatenate.",
    "attention": "Gates on the skips learn to suppress background: helps small targets.",
    "residual": "Shortcuts around each block: deeper nets train more easily.",
    "dense": "Dense blocks: each convolution reads all earlier ones, so features are reused.",
    "unetpp": "Nested, dense skip paths narrow the gap between encoder and decoder features.",
    "lightweight": "Depthwise-separable convolutions: far fewer weights, faster on a CPU.",
    "unet3d": "Whole volumes with 3D convolutions: uses context across slices, costs memory.",
    "pretrained": "An ImageNet network as encoder: transfer learning when data are scarce.",
}

BINARY_WORDING = "binary (foreground/background)"
"""How a one-output-channel (sigmoid) model is named; the Segment page uses the same words."""


def classroom_default(dataset: str | None = None) -> UNetConfig:
    """The classroom preset's model for a dataset, so Build and Train start from the same U-Net.

    That is GroupNorm, not BatchNorm: with about 100 images and 8 epochs BatchNorm's running
    statistics do not settle (docs/presets.md). Output classes and input channels follow the
    dataset when its card can be read (the runner sets them from the data anyway).

    Args:
        dataset: a bundled dataset name or "upload:<id>"; default the one chosen in this session.

    Example:
        >>> cfg = classroom_default("brain_skullstrip")
        >>> cfg.normalization, cfg.base_filters, cfg.num_classes
        ('group', 8, 1)
        >>> classroom_default("brain_tissue").num_classes
        4
    """
    from unet_demo.training.presets import get_preset

    if dataset is None:
        dataset = get_dataset(default=class_settings().default_dataset or DEFAULT_DATASET)
    try:
        spec = get_preset(dataset, "classroom")
    except UNetDemoError:
        spec = get_preset("brain_skullstrip", "classroom")
    model = spec.model.replace(input_height=spec.data.image_size,
                               input_width=spec.data.image_size)
    try:
        from unet_demo.data.bundled import get_dataset_info

        info = get_dataset_info(spec.data.dataset)
    except (UNetDemoError, OSError, ValueError):
        return model
    return model.replace(input_channels=info.channels,
                         num_classes=1 if info.is_binary else info.num_classes)


def _reset_to_classroom() -> None:
    _load_config(classroom_default())


def _key(field: str) -> str:
    return PREFIX + field


def skip_choices(depth: int) -> list[str]:
    """The `UNetConfig.skip_connections` values for ``depth``: all, none, then kept levels.

    Args:
        depth: number of poolings (skips exist at levels 0..depth-1).

    Example:
        >>> skip_choices(2)
        ['all', 'none', '0', '1']
    """
    levels = range(depth)
    subsets = [",".join(str(level) for level in combo)
               for size in range(depth - 1, 0, -1)
               for combo in itertools.combinations(levels, size)]
    return ["all", "none", *sorted(subsets, key=lambda text: (-len(text), text))]


def skip_label(value: str) -> str:
    """How the Build page names a skip choice.

    Example:
        >>> skip_label("all"), skip_label("0,2")
        ('all levels (the U-Net)', 'levels 0, 2 only')
    """
    if value == "all":
        return "all levels (the U-Net)"
    if value == "none":
        return "none (plain encoder-decoder)"
    return f"levels {value.replace(',', ', ')} only"


def _init_state(stored: UNetConfig) -> None:
    for field in dataclasses.fields(UNetConfig):
        if _key(field.name) not in st.session_state:
            st.session_state[_key(field.name)] = getattr(stored, field.name)


def _load_config(cfg: UNetConfig) -> None:
    for field in dataclasses.fields(UNetConfig):
        st.session_state[_key(field.name)] = getattr(cfg, field.name)


def _on_variant_change() -> None:
    """The pretrained encoders fix the depth; pick it for the user."""
    if st.session_state[_key("variant")] == "pretrained":
        st.session_state[_key("depth")] = BACKBONE_DEPTH[st.session_state[_key("backbone")]]
    if st.session_state[_key("variant")] == "unet3d":
        st.session_state[_key("input_height")] = min(st.session_state[_key("input_height")], 64)
        st.session_state[_key("input_width")] = min(st.session_state[_key("input_width")], 64)


def _on_backbone_change() -> None:
    st.session_state[_key("depth")] = BACKBONE_DEPTH[st.session_state[_key("backbone")]]


def _apply_link(link) -> None:
    """Write a Build link into the widgets (a variant the class does not allow is refused)."""
    allowed = class_settings().allowed_variants
    if link.model.variant not in allowed:
        raise UNetDemoError(f"This link's model is a {link.model.variant!r} U-Net, and this "
                            f"class allows only {', '.join(allowed)}.")
    _load_config(link.model)
    if link.batch_size in MEMORY_BATCHES:
        st.session_state[PREFIX + "batch_size"] = link.batch_size
    set_unet_config(link.model)


def controls_ui() -> UNetConfig:
    """Every UNetConfig option as a widget; returns the config (raises UNetDemoError if invalid)."""
    _init_state(get_unet_config() or classroom_default())
    values: dict[str, Any] = {}
    allowed = [name for name in VARIANTS if class_settings().variant_allowed(name)]
    if st.session_state[_key("variant")] not in allowed:  # the class file limits the variants
        st.session_state[_key("variant")] = allowed[0]
        _on_variant_change()
    variant = st.selectbox("Variant", allowed, key=_key("variant"), on_change=_on_variant_change,
                           help="; ".join(f"{k}: {v}" for k, v in VARIANT_HELP.items()
                                          if k in allowed))
    values["variant"] = variant
    st.caption(VARIANT_HELP[variant])
    if len(allowed) < len(VARIANTS):
        st.caption(f"This class uses the {', '.join(allowed)} variant(s) only.")
    shape, blocks, extras = st.tabs(["Input & output", "Blocks", "Regularisation & variant"])
    with shape:
        values["input_height"] = st.number_input(
            "Input height", 16, 1024, step=8, key=_key("input_height"),
            help="Rows of the image the network sees; must be divisible by 2**depth.")
        values["input_width"] = st.number_input(
            "Input width", 16, 1024, step=8, key=_key("input_width"),
            help="Columns; must be divisible by 2**depth too.")
        values["input_depth"] = st.number_input(
            "Input depth (slices, 3D only)", 4, 128, step=4, key=_key("input_depth"),
            disabled=variant != "unet3d", help="Slices per volume for the 3D U-Net.")
        values["input_channels"] = st.radio(
            "Input channels", (1, 3), key=_key("input_channels"), horizontal=True,
            help="1 for grey scans (MRI, CT, fluorescence); 3 for colour (RGB) images.")
        values["num_classes"] = st.number_input(
            "Output classes", 1, 8, key=_key("num_classes"), step=1,
            help=f"1 = {BINARY_WORDING}, one sigmoid channel; 2+ = one softmax channel per "
                 "class, background included.")
    with blocks:
        values["depth"] = st.slider(
            "Depth (poolings)", 1, 5, key=_key("depth"), disabled=variant == "pretrained",
            help="Each pooling halves the size: deeper sees more context but needs bigger "
                 "inputs and more weights.")
        values["base_filters"] = st.select_slider(
            "Base filters", FILTER_CHOICES, key=_key("base_filters"),
            help="Filters at the top level; the textbook's models use 64, a CPU is happier "
                 "with 8-16.")
        values["filter_growth"] = st.slider(
            "Filter growth per level", 1.0, 4.0, step=0.5, key=_key("filter_growth"),
            help="2 doubles the filters at each level, as in the original U-Net.")
        values["kernel_size"] = st.radio(
            "Kernel size", (1, 3, 5, 7), key=_key("kernel_size"), horizontal=True,
            help="3x3 is standard: two 3x3 convolutions see as far as one 5x5 with fewer weights.")
        values["convs_per_block"] = st.slider(
            "Convolutions per block", 1, 4, key=_key("convs_per_block"),
            help="Two in each of the textbook's models; more adds depth within a level.")
        values["activation"] = st.selectbox(
            "Activation", ACTIVATIONS, key=_key("activation"),
            help="ReLU is the default; leaky ReLU/ELU/GELU keep small gradients for negatives.")
        values["kernel_initializer"] = st.selectbox(
            "Kernel initializer", INITIALIZERS, key=_key("kernel_initializer"),
            help="He initialisers suit ReLU-family activations; Glorot suits tanh/sigmoid.")
        values["upsampling"] = st.radio(
            "Up-sampling", UPSAMPLINGS, key=_key("upsampling"), horizontal=True,
            help="transpose: a learned 2x2 transposed convolution; upsample_conv: resize then "
                 "a 2x2 convolution (avoids checkerboard artefacts).")
        values["interpolation"] = st.radio(
            "Interpolation", INTERPOLATIONS, key=_key("interpolation"), horizontal=True,
            disabled=values["upsampling"] != "upsample_conv",
            help="How upsample_conv enlarges: nearest copies pixels, bilinear blends them.")
        choices = skip_choices(int(values["depth"]))
        if st.session_state[_key("skip_connections")] not in choices:
            st.session_state[_key("skip_connections")] = "all"
        values["skip_connections"] = st.selectbox(
            "Skip connections", choices, key=_key("skip_connections"),
            format_func=skip_label, disabled=variant in ("unetpp", "pretrained"),
            help="Which encoder levels hand their detail across to the decoder (level 0 = "
                 "full resolution). 'none' builds a plain encoder-decoder: every decoder "
                 "level only up-samples, so fine boundaries must be rebuilt from the "
                 "bottleneck. U-Net++ and the pretrained encoder keep all their skips.")
    with extras:
        values["normalization"] = st.selectbox(
            "Normalisation", NORMALIZATIONS, key=_key("normalization"),
            help="Batch norm speeds up training, but with small batches or short runs it can "
                 "open a big train/validation gap; then use group or instance norm.")
        values["dropout_rate"] = st.slider(
            "Dropout rate", 0.0, 0.9, step=0.05, key=_key("dropout_rate"),
            help="Randomly silences features while training: a cure for overfitting.")
        values["dropout_where"] = st.radio(
            "Dropout where", DROPOUT_PLACES, key=_key("dropout_where"), horizontal=True,
            disabled=values["dropout_rate"] == 0,
            help="Bottleneck only (mild), the decoder, or every block (strong).")
        values["l1"] = st.select_slider(
            "L1 penalty", DECAY_CHOICES, key=_key("l1"),
            help="Adds the absolute weights to the loss and pulls them towards zero; with Adam "
                 "they get small but rarely exactly zero. Not weight decay; rarely used for "
                 "U-Nets.")
        values["l2"] = st.select_slider(
            "L2 penalty (weight decay)", DECAY_CHOICES, key=_key("l2"),
            help="Keeps weights small: a gentle cure for overfitting.")
        values["deep_supervision"] = st.toggle(
            "Deep supervision (U-Net++)", key=_key("deep_supervision"),
            disabled=variant != "unetpp",
            help="Average the outputs of all nested decoders under one loss: more direct "
                 "feedback for the shallow decoders. (No pruning of decoders is offered.)")
        values["backbone"] = st.selectbox(
            "Backbone (pretrained)", BACKBONES, key=_key("backbone"),
            disabled=variant != "pretrained", on_change=_on_backbone_change,
            help="The ImageNet network used as encoder.")
        values["encoder_weights"] = st.radio(
            "Encoder weights", ENCODER_WEIGHTS, key=_key("encoder_weights"), horizontal=True,
            disabled=variant != "pretrained",
            help="imagenet uses the weights from the local Keras cache when present; none "
                 "starts from random weights.")
        values["freeze_encoder"] = st.toggle(
            "Freeze encoder", key=_key("freeze_encoder"), disabled=variant != "pretrained",
            help="Train only the decoder first: fewer trainable weights, less overfitting.")
    for name in ("num_classes", "input_height", "input_width", "input_depth"):
        values[name] = int(values[name])
    return UNetConfig(**values)


@st.cache_data(show_spinner="Building the model to count parameters and FLOPs…", max_entries=64)
def cached_stats(cfg_json: str, batch_size: int) -> dict[str, Any]:
    """Architecture statistics of a config, as a plain dict (cached per config and batch).

    Args:
        cfg_json: `UNetConfig.to_json()`.
        batch_size: images per batch for the memory figures.
    """
    from unet_demo.models.stats import architecture_stats

    stats = architecture_stats(UNetConfig.from_dict(json.loads(cfg_json)), batch_size)
    data = stats.to_dict()
    data["levels"] = levels_from_stats(stats.levels)
    return data


@st.cache_data(show_spinner=False, max_entries=16)
def cached_summary(cfg_json: str) -> str:
    """Keras' model.summary() text of a config (cached).

    Args:
        cfg_json: `UNetConfig.to_json()`.
    """
    from unet_demo.models.builder import build_unet, summary_text

    return summary_text(build_unet(UNetConfig.from_dict(json.loads(cfg_json)), load_weights=False))


@st.cache_data(show_spinner=False, max_entries=16)
def cached_code(cfg_json: str) -> str:
    """Standalone Keras code that rebuilds a config's model (cached).

    Args:
        cfg_json: `UNetConfig.to_json()`.
    """
    from unet_demo.models.export import export_keras_code

    return export_keras_code(UNetConfig.from_dict(json.loads(cfg_json)))


def size_warning(cfg: UNetConfig) -> str | None:
    """A message naming valid sizes when an input side is not divisible by 2**depth, else None.

    Args:
        cfg: the model config.

    Example:
        >>> size_warning(UNetConfig(input_height=100, depth=3)).startswith("Input height 100")
        True
    """
    from unet_demo.models.checks import nearest_valid_sizes

    multiple = 2**cfg.depth
    sides = [("Input height", cfg.input_height), ("Input width", cfg.input_width)]
    if cfg.variant == "unet3d":
        sides.append(("Input depth", cfg.input_depth))
    problems = [
        f"{label} {size} is not divisible by 2**depth = {multiple}; valid sizes nearby: "
        f"{' or '.join(str(s) for s in nearest_valid_sizes(size, multiple))}."
        for label, size in sides if size % multiple
    ]
    if not problems:
        return None
    what_happens = mismatch_text(level_shapes(cfg))
    return (" ".join(problems) + " Each pooling halves the size and rounds down, and the decoder "
            "doubles it back, so the halving must come out even. "
            + (f"{what_happens} (the red block in the diagram)." if what_happens else ""))


def _gflops(flops: int) -> str:
    return f"{flops / 1e9:.2f}" if flops >= 1e7 else f"{flops / 1e6:.1f} M"


def stats_ui(cfg: UNetConfig, batch_size: int) -> dict[str, Any] | None:
    """Metrics row: parameters, FLOPs, memory, receptive field. Returns the stats dict."""
    from unet_demo.models.stats import format_bytes

    try:
        stats = cached_stats(cfg.to_json(), batch_size)
    except UNetDemoError as error:
        st.error(str(error))
        return None
    row = st.columns(3) + st.columns(3)
    row[0].metric("Parameters", f"{stats['params']:,}",
                  help=f"{stats['trainable_params']:,} trainable, "
                       f"{stats['non_trainable_params']:,} fixed (e.g. batch-norm statistics).")
    flops = stats["flops"]
    row[1].metric("GFLOPs / image" if flops >= 1e7 else "FLOPs / image", _gflops(flops),
                  help="One forward pass, multiply-add = 2 FLOPs. A training step costs about "
                       "3x (forward + backward).")
    row[3].metric(f"Training memory (batch {batch_size})",
                  format_bytes(stats["training_total_bytes"]),
                  help="Weights, gradients, Adam's two moments and every activation kept for "
                       "back-propagation (an upper estimate).")
    row[4].metric(f"Inference memory (batch {batch_size})",
                  format_bytes(stats["inference_activation_bytes"] + stats["weights_bytes"]),
                  help="Weights plus the peak of activations alive at once while predicting.")
    side = max(cfg.input_height, cfg.input_width)
    row[2].metric("Receptive field", f"{stats['receptive_field']} px",
                  help="Side of the input window that can influence one output pixel. "
                       f"The image is {side} px wide: a field smaller than the structures "
                       "means the model judges pixels without seeing the whole object.")
    return stats


def compare_seeds_ui(cfg: UNetConfig, stats: dict[str, Any] | None) -> None:
    """Table comparing the designed model with the textbook's three example models, and buttons."""
    from unet_demo.models.seeds import SEED_MODELS, SEED_PARAM_COUNTS

    rows = []
    for name, (seed_cfg, description) in SEED_MODELS.items():
        rows.append({
            "model": name,
            "input": f"{seed_cfg.input_height}x{seed_cfg.input_width}x{seed_cfg.input_channels}",
            "depth": seed_cfg.depth,
            "filters": "-".join(str(f) for f in seed_cfg.level_filters()),
            "up-sampling": seed_cfg.upsampling,
            "normalisation": seed_cfg.normalization,
            "parameters": SEED_PARAM_COUNTS[name],
            "yours / that model": (f"{stats['params'] / SEED_PARAM_COUNTS[name]:.3f}x" if stats else "-"),
            "what it is": description,
        })
    rows.append({
        "model": "yours",
        "input": f"{cfg.input_height}x{cfg.input_width}x{cfg.input_channels}",
        "depth": cfg.depth,
        "filters": "-".join(str(f) for f in cfg.level_filters()),
        "up-sampling": cfg.upsampling,
        "normalisation": cfg.normalization,
        "parameters": stats["params"] if stats else None,
        "yours / that model": "1.000x" if stats else "-",
        "what it is": f"{cfg.variant} U-Net designed on this page",
    })
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"parameters": st.column_config.NumberColumn(format="localized")})
    buttons = st.columns(len(SEED_MODELS))
    for column, (name, (seed_cfg, _)) in zip(buttons, SEED_MODELS.items(), strict=True):
        column.button(f"Load {name} into the builder", key=PREFIX + f"load_{name}",
                      on_click=_load_config, args=(seed_cfg,), width="stretch",
                      help="Copies that model's settings into the widgets above.")


def build_page() -> None:
    """Draw the Build page body (the page file sets up the title and disclaimer)."""
    restore_link("build", _apply_link)  # ?x=... from a shared link, once
    controls, results = st.columns([1, 2], gap="large")
    with controls:
        try:
            cfg = controls_ui()
        except UNetDemoError as error:
            st.error(str(error))
            return
        encoder_weights_ui(cfg)
        st.session_state.setdefault(PREFIX + "batch_size", 8)
        batch_size = st.select_slider(
            "Batch size (for the memory figures)", MEMORY_BATCHES, key=PREFIX + "batch_size",
            help="Training memory grows with the batch; halve it if training runs out of memory.")
        st.button("Reset to the classroom default", key=PREFIX + "reset",
                  icon=":material/restart_alt:", on_click=_reset_to_classroom,
                  help="The classroom preset's model for the chosen dataset (the one the Train "
                       "page uses): a small classic U-Net with GroupNorm that trains on a "
                       "laptop CPU in minutes.")
        copy_link_ui(BuildLink(cfg, int(batch_size)))
    stats = None
    with results:
        warning = size_warning(cfg)
        if warning:
            st.warning(warning)
            st.plotly_chart(unet_diagram(cfg, level_shapes(cfg)), key=PREFIX + "diagram")
        else:
            set_unet_config(cfg)
            stats = stats_ui(cfg, int(batch_size))
            results_ui(cfg, stats)
    st.subheader("Compare with the textbook's models")
    st.caption("The three U-Nets written out in full in the textbook (chapters 4 and 8) and "
               "its companion notebook. Parameter counts are those of their code under Keras 3.")
    compare_seeds_ui(cfg, stats)


def results_ui(cfg: UNetConfig, stats: dict[str, Any] | None) -> None:
    """Diagram, summary and code export of a valid config."""
    levels = stats["levels"] if stats else level_shapes(cfg)
    st.plotly_chart(unet_diagram(cfg, levels), key=PREFIX + "diagram")
    if stats:
        kind = (BINARY_WORDING if cfg.num_classes == 1
                else f"{cfg.num_classes} classes, background included")
        st.caption(f"{stats['layer_count']} layers; output {tuple(stats['output_shape'])}, "
                   f"{kind}. This model is stored for the Train page.")
    with st.expander("model.summary()"):
        try:
            st.code(cached_summary(cfg.to_json()), language="text")
        except UNetDemoError as error:
            st.error(str(error))
    with st.expander("Keras code of this model"):
        try:
            code = cached_code(cfg.to_json())
        except UNetDemoError as error:
            st.error(str(error))
        else:
            st.download_button("Download unet_model.py", code, file_name="unet_model.py",
                               mime="text/x-python", key=PREFIX + "download_code")
            st.code(code, language="python")
