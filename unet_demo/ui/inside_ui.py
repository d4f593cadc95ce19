"""Inside page: open a trained U-Net and look at what it computes for one image.

Pick a model (bundled or a finished run) and an image (a dataset image or an upload). Tabs show
the activations level by level down the U and back up (at each concatenation the up-sampled
tensor beside the skip it joins), the attention coefficients of every gate, the theoretical and
effective receptive field, skip-connection ablation (Dice on the split and the masks of the
chosen image) and per-pixel loss maps.

Everything is computed by the engine (`unet_demo.inference.activations`,
`unet_demo.evaluation.ablation`, `unet_demo.evaluation.loss_maps`) and cached with
``st.cache_data`` keyed by (model spec, model id, image choice) strings and bytes; the figures
come from `unet_demo.plots.inside`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import streamlit as st

from unet_demo.data.bundled import SPLITS
from unet_demo.errors import UNetDemoError
from unet_demo.plots.images import overlay_rgb, to_display_rgb
from unet_demo.plots.inside import (
    ablation_figure,
    channel_grid,
    heat_overlay,
    map_rgb,
    receptive_field_rgb,
    receptive_growth_figure,
    scale_up,
)
from unet_demo.ui.evaluate_ui import pick_model
from unet_demo.ui.kept import keep, kept, kept_index

STATE_PREFIX = "inside."
SOURCE_DATASET = "dataset image"
SOURCE_UPLOAD = "your upload"
ABLATION_LIMIT = 32
"""Split images scored per ablation setting (enough for a stable mean, a few seconds)."""
DISPLAY_SIDE = 256
PLOTLY_CONFIG = {"displayModeBar": "hover", "displaylogo": False}
DEPRIVED = ("This network was **trained with** its skip connections; here they are switched off "
            "only at inference, so the drop shows how much its decoder relies on each skip, not "
            "how well a U-Net trained without skips would do (that is a separate experiment: "
            "train one with the skips removed).")
ERF_NOTE = ("Cyan box: the **theoretical** receptive field (every input pixel that can reach the "
            "traced position, from the architecture calculator). Heat: the **effective** one, the "
            "gradient of that position with respect to the input; most of it sits near the "
            "centre. Group-normalisation statistics are held fixed for this picture (they span "
            "the whole image and would add a faint gradient everywhere).")

Source = tuple[str, str, int, str, bytes]
"""(dataset, split, index, upload name, upload bytes): one image choice, a cache key."""


# --------------------------------------------------------------------------- cached compute

def _handle(spec: str):
    from unet_demo.inference.registry import open_model

    return open_model(spec)


@st.cache_data(show_spinner=False, max_entries=32)
def inside_input(spec: str, model_id: str, source: Source) -> dict[str, Any]:
    """The chosen image prepared for the model (`prepare_image`), its truth and a label."""
    from unet_demo.data.preprocess import prepare_batch, prepare_image
    from unet_demo.data.readers import read_image_bytes
    from unet_demo.data.sources import load_split_arrays

    del model_id
    handle = _handle(spec)
    height, width, channels = handle.input_shape
    dataset, split, index, name, data = source
    if data:
        loaded = read_image_bytes(data, name)
        ready = prepare_image(loaded.pixels, size=(height, width), channels=channels,
                              normalization=handle.normalization)
        return {"image": ready.model_input, "truth": None, "label": name}
    images, masks, ids = load_split_arrays(dataset, split)
    if not len(images):
        raise UNetDemoError(f"The {split} split of {dataset!r} has no images; pick another split.")
    index = min(int(index), len(images) - 1)
    prepared, labels = prepare_batch(images[index:index + 1], masks[index:index + 1],
                                     size=(height, width), channels=channels,
                                     normalization=handle.normalization)
    return {"image": prepared[0], "truth": labels[0], "label": f"{dataset} {split} {ids[index]}"}


@st.cache_data(show_spinner=False, max_entries=16)
def inside_maps(spec: str, model_id: str, source: Source) -> dict[str, Any]:
    """Every tap's activation for the image (one forward pass), channel order and anatomy."""
    from unet_demo.inference.activations import feature_maps, rank_channels, unet_anatomy

    model = _handle(spec).shared.keras_model
    anatomy = unet_anatomy(model)
    maps = feature_maps(model, inside_input(spec, model_id, source)["image"])
    return {"maps": maps, "order": {name: rank_channels(a) for name, a in maps.items()},
            "taps": [tap.to_dict() for tap in anatomy.taps], "depth": anatomy.depth}


@st.cache_data(show_spinner=False, max_entries=64)
def inside_erf(spec: str, model_id: str, source: Source, name: str, row: int, col: int
               ) -> dict[str, Any]:
    """Effective receptive field of one position of tensor ``name`` and its theoretical box."""
    from unet_demo.inference.activations import (
        effective_receptive_field,
        effective_size,
        field_box,
        tap_pixel,
        theoretical_receptive_fields,
    )

    model = _handle(spec).shared.keras_model
    image = inside_input(spec, model_id, source)["image"]
    gradient = effective_receptive_field(model, image, name, (row, col))
    field, jump = theoretical_receptive_fields(model)[name]
    position = tap_pixel((row, col), image.shape, tuple(model.get_layer(name).output.shape[1:]))
    return {"gradient": gradient, "field": field, "jump": jump,
            "box": field_box(position, field, jump, image.shape),
            "effective": effective_size(gradient, (row, col))}


@st.cache_data(show_spinner=False, max_entries=16)
def inside_ablation_split(spec: str, model_id: str, dataset: str, split: str, mode: str
                          ) -> list[dict[str, Any]]:
    """Mean Dice on (the first images of) a split per ablation setting."""
    from unet_demo.evaluation.ablation import skip_ablation_scores

    del model_id
    return skip_ablation_scores(_handle(spec), dataset, split, mode=mode, limit=ABLATION_LIMIT)


@st.cache_data(show_spinner=False, max_entries=32)
def inside_ablation_image(spec: str, model_id: str, source: Source, levels: tuple[int, ...],
                          mode: str) -> np.ndarray:
    """Probabilities for the chosen image with the skips at ``levels`` switched off."""
    from unet_demo.inference.activations import predict_ablated

    model = _handle(spec).shared.keras_model
    return predict_ablated(model, inside_input(spec, model_id, source)["image"], levels, mode)[0]


@st.cache_data(show_spinner=False, max_entries=16)
def inside_loss_maps(spec: str, model_id: str, source: Source) -> dict[str, Any]:
    """Loss maps at the start of training and for the model's prediction, with shares."""
    from unet_demo.evaluation.loss_maps import foreground_share, loss_maps, start_probabilities

    handle = _handle(spec)
    ready = inside_input(spec, model_id, source)
    truth = ready["truth"]
    prediction = inside_ablation_image(spec, model_id, source, (), "zeros")
    result = {}
    for stage, probabilities in (("start", start_probabilities(truth.shape, handle.num_classes)),
                                 ("model", prediction)):
        maps = loss_maps(probabilities, truth, handle.num_classes)
        result[stage] = {name: {"map": value, "share": foreground_share(value, truth)}
                         for name, value in maps.items()}
    return result


# --------------------------------------------------------------------------- widgets

def _labels_of(probabilities: np.ndarray, num_classes: int) -> np.ndarray:
    from unet_demo.inference.labels import labels_from_probabilities

    return labels_from_probabilities(probabilities[None], num_classes)[0]


def _overlay(image: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    return scale_up(overlay_rgb(image, labels, max(2, num_classes), opacity=0.5), DISPLAY_SIDE)


def choose_image(handle) -> Source | None:
    """Dataset image (dataset, split, slider) or an upload; returns the image choice."""
    from unet_demo.data.sources import load_split_arrays
    from unet_demo.inference.registry import compatible_datasets

    source_key = STATE_PREFIX + "source"
    options = (SOURCE_DATASET, SOURCE_UPLOAD)
    source = keep(source_key, st.radio("Image", options, horizontal=True,
                                       index=kept_index(source_key, options), key=source_key))
    if source == SOURCE_UPLOAD:
        upload = st.file_uploader("An image (PNG, JPEG, TIFF, DICOM, NIfTI)",
                                  key=STATE_PREFIX + "upload",
                                  help="Prepared exactly as the model was trained (its size and "
                                       "normalisation). Kept in this session only.")
        if upload is None:
            st.info("Upload an image, or switch to a dataset image.")
            return None
        return ("", "", 0, upload.name, upload.getvalue())
    compatible = compatible_datasets(handle)
    if not compatible:
        st.error(f"No bundled dataset matches this model ({handle.num_classes} classes, "
                 f"{handle.input_shape[-1]} channel(s)); upload an image instead.")
        return None
    col_data, col_split, col_index = st.columns([2, 1, 2])
    data_key, split_key = STATE_PREFIX + "dataset", STATE_PREFIX + "split"
    default = handle.dataset if handle.dataset in compatible else compatible[0]
    if st.session_state.get(STATE_PREFIX + "dataset_model") != handle.model_id:
        st.session_state[data_key] = default
        st.session_state[STATE_PREFIX + "dataset_model"] = handle.model_id
    if st.session_state.get(data_key) not in compatible:
        st.session_state[data_key] = default
    dataset = col_data.selectbox("Dataset", compatible, key=data_key,
                                 help="Opens on the data the model was trained on.")
    split = keep(split_key, col_split.selectbox(
        "Split", SPLITS, index=kept_index(split_key, SPLITS, default=SPLITS.index("test")),
        key=split_key))
    _, _, ids = load_split_arrays(dataset, split)
    if not ids:
        st.error(f"The {split} split of {dataset} has no images.")
        return None
    index_key = STATE_PREFIX + "index"
    number = col_index.slider("Image number", 1, max(2, len(ids)),
                              min(int(kept(index_key, 1)), len(ids)), key=index_key,
                              disabled=len(ids) < 2)
    keep(index_key, number)
    return (dataset, split, int(number) - 1, "", b"")


def _tap_grid(data: dict[str, Any], tap: dict[str, Any], count: int, column=None) -> None:
    where = column or st
    activation = data["maps"][tap["name"]]
    order = data["order"][tap["name"]][:count]
    h, w, c = tap["shape"]
    where.image(channel_grid(activation, order, columns=4 if column else 8, tile=48),
                caption=f"{tap['name']} · {h}×{w}×{c} · channels {', '.join(map(str, order))}",
                width="stretch")


def feature_maps_ui(data: dict[str, Any]) -> None:
    """Channel grids of every level: encoder, bottleneck, then decoder with its two inputs."""
    count_key = STATE_PREFIX + "channels"
    count = keep(count_key, st.slider("Channels shown per tensor (most active first)", 1, 32,
                                      int(kept(count_key, 8)), key=count_key,
                                      help="Channels are ranked by their mean absolute "
                                           "activation for this image."))
    st.caption("Each tile is one channel, scaled on its own: dark = its lowest value, yellow = "
               "its highest. Shapes are height × width × channels.")
    taps = data["taps"]
    by = {(t["role"], t["level"]): t for t in taps}
    depth = data["depth"]
    st.subheader("Down the U: the encoder")
    for level in range(depth):
        tap = by[("encoder", level)]
        st.markdown(f"**Encoder level {level}** — {'×'.join(map(str, tap['shape']))}")
        _tap_grid(data, tap, count)
    tap = by[("bottleneck", depth)]
    st.subheader(f"The bottleneck — {'×'.join(map(str, tap['shape']))}")
    _tap_grid(data, tap, count)
    st.subheader("Back up: the decoder")
    st.caption("At each level the up-sampled coarse tensor (left) is concatenated with the skip "
               "from the encoder (middle): the skip brings the fine detail the coarse path "
               "lost. Right: the decoder block's output.")
    for level in reversed(range(depth)):
        st.markdown(f"**Decoder level {level}**")
        left, middle, right = st.columns(3)
        left.caption("up-sampled from below")
        middle.caption("skip from the encoder" + (" (after its attention gate)"
                                                  if ("attention", level) in by else ""))
        right.caption("after the decoder block")
        _tap_grid(data, by[("upsampled", level)], count, left)
        _tap_grid(data, by[("skip", level)], count, middle)
        _tap_grid(data, by[("decoder", level)], count, right)
    tap = by[("output", 0)]
    st.subheader(f"The output — {'×'.join(map(str, tap['shape']))}")
    st.caption("A 1×1 convolution turns the last decoder tensor into one probability map per "
               "output channel (sigmoid for one class, softmax for several).")
    activation = data["maps"][tap["name"]]
    order = data["order"][tap["name"]][:count]
    st.image(channel_grid(activation, order, tile=DISPLAY_SIDE // 2),
             caption=f"{tap['name']} · {'×'.join(map(str, tap['shape']))} · channels "
                     f"{', '.join(map(str, order))}")


def attention_ui(data: dict[str, Any], image: np.ndarray) -> None:
    """Attention coefficients of every gate over the image, or a note for plain U-Nets."""
    gates = [t for t in data["taps"] if t["role"] == "attention"]
    if not gates:
        st.info("This model has no attention gates. Train an **attention** U-Net (variant "
                "'attention' on the Build or Train page) and open it here to see where each "
                "gate lets the skip through.")
        return
    st.caption("Each gate multiplies its skip by a coefficient in [0, 1] per pixel, computed from "
               "the skip and the coarser decoder tensor: bright = passed on, dark = suppressed.")
    columns = st.columns(len(gates))
    for column, tap in zip(columns, sorted(gates, key=lambda t: t["level"]), strict=True):
        alpha = data["maps"][tap["name"]][..., 0]
        factor = image.shape[0] // alpha.shape[0]
        full = np.repeat(np.repeat(alpha, factor, axis=0), factor, axis=1)
        column.image(scale_up(heat_overlay(image, full, opacity=0.8, scale=False), DISPLAY_SIDE),
                     caption=f"{tap['name']} (level {tap['level']}): coefficients "
                             f"{alpha.min():.2f}–{alpha.max():.2f}, mean {alpha.mean():.2f}",
                     width="stretch")


def receptive_field_ui(spec: str, model_id: str, source: Source, data: dict[str, Any],
                       image: np.ndarray) -> None:
    """Theoretical and effective receptive field of a chosen tensor and pixel, and per depth."""
    taps = [t for t in data["taps"] if t["role"] in ("encoder", "bottleneck", "decoder",
                                                      "output")]
    labels = [f"{t['role']} {t['level']} ({t['name']})" for t in taps]
    tap_key = STATE_PREFIX + "erf_tap"
    label = keep(tap_key, st.selectbox("Tensor", labels, key=tap_key,
                                       index=kept_index(tap_key, labels,
                                                        default=len(labels) - 1)))
    tap = taps[labels.index(label)]
    height, width = image.shape[:2]
    col_row, col_col = st.columns(2)
    row = col_row.slider("Traced pixel: row", 0, height - 1, height // 2,
                         key=STATE_PREFIX + "erf_row")
    col = col_col.slider("Traced pixel: column", 0, width - 1, width // 2,
                         key=STATE_PREFIX + "erf_col")
    result = inside_erf(spec, model_id, source, tap["name"], int(row), int(col))
    left, right = st.columns([1, 1])
    left.image(receptive_field_rgb(image, result["gradient"], result["box"], (row, col),
                                   side=DISPLAY_SIDE),
               caption=f"{tap['name']}: theoretical {result['field']:.0f} px, effective "
                       f"{result['effective']} px (square holding 95% of the gradient)",
               width="stretch")
    left.caption(ERF_NOTE)
    growth = [t for t in taps if t["role"] != "output"]
    fields = [inside_erf(spec, model_id, source, t["name"], height // 2, width // 2)
              for t in growth]
    right.plotly_chart(receptive_growth_figure(
        [_short_tap(t) for t in growth], [f["field"] for f in fields],
        [f["effective"] for f in fields], max(height, width)), width="stretch",
        config=PLOTLY_CONFIG)
    right.caption("At the centre pixel: the theoretical field grows with every convolution and "
                  "doubles its pace after every pooling; the decoder adds more on the way up. "
                  "The effective field grows more slowly: most of the influence stays near the "
                  "centre.")


def ablation_ui(spec: str, model_id: str, source: Source, handle, image: np.ndarray,
                truth: np.ndarray | None, dataset: str) -> None:
    """Bar chart of split Dice per switched-off skip, and before/after masks of the image."""
    from unet_demo.evaluation.scores import score_pair

    st.info(DEPRIVED)
    depth = len([t for t in inside_maps(spec, model_id, source)["taps"] if t["role"] == "skip"])
    choices = [f"level {level}" for level in range(depth)] + ["all"]
    col_off, col_mode = st.columns([2, 1])
    off_key, mode_key = STATE_PREFIX + "ablate", STATE_PREFIX + "ablation_mode"
    off = keep(off_key, col_off.radio("Switch off the skip at", choices, horizontal=True,
                                      index=kept_index(off_key, choices), key=off_key,
                                      help="Level 0 is the full-resolution skip."))
    modes = ("zeros", "mean")
    mode = keep(mode_key, col_mode.radio("Replace it by", modes, horizontal=True,
                                         index=kept_index(mode_key, modes), key=mode_key,
                                         help="zeros: nothing arrives; mean: each channel's "
                                              "average arrives, without any spatial detail."))
    levels = tuple(range(depth)) if off == "all" else (int(off.split()[-1]),)
    intact = inside_ablation_image(spec, model_id, source, (), mode)
    ablated = inside_ablation_image(spec, model_id, source, levels, mode)
    classes = handle.num_classes
    before, after = _labels_of(intact, classes), _labels_of(ablated, classes)
    columns = st.columns(3 if truth is not None else 2)
    captions = ["intact model", f"skip {off} off ({mode})"]
    if truth is not None:
        scores = [score_pair(truth, labels, classes, distances=False)["dice"]
                  for labels in (before, after)]
        captions = [f"{text} — Dice {score:.3f}" for text, score in zip(captions, scores,
                                                                         strict=True)]
        columns[2].image(_overlay(image, truth, classes), caption="ground truth",
                         width="stretch")
    columns[0].image(_overlay(image, before, classes), caption=captions[0],
                     width="stretch")
    columns[1].image(_overlay(image, after, classes), caption=captions[1],
                     width="stretch")
    if not dataset:
        st.caption("The split Dice needs a dataset with masks: switch to a dataset image.")
        return
    split = "test"
    with st.spinner(f"Scoring the {split} split with each skip switched off..."):
        rows = inside_ablation_split(spec, model_id, dataset, split, mode)
    st.plotly_chart(ablation_figure(rows, split), width="stretch", config=PLOTLY_CONFIG)
    worst = max(rows[1:], key=lambda r: r["drop"])
    st.caption(f"{dataset}, first {rows[0]['images']} {split} images. Intact Dice "
               f"{rows[0]['dice']:.3f}; the largest drop comes from switching off "
               f"**{worst['ablated']}** ({worst['dice']:.3f}).")


def loss_maps_ui(spec: str, model_id: str, source: Source, truth: np.ndarray | None) -> None:
    """BCE / focal / Dice / Tversky maps at the start of training and for the prediction."""
    from unet_demo.evaluation.loss_maps import LOSS_LABELS, WHY_DICE

    if truth is None:
        st.info("Loss maps compare a prediction with its ground truth: switch to a dataset "
                "image (uploads have no mask).")
        return
    st.markdown(f"Each map shows how hard a loss pulls on each pixel (the size of its gradient "
                f"with respect to the logit; black = no pull). {WHY_DICE}")
    data = inside_loss_maps(spec, model_id, source)
    for stage, title in (("start", "At the start of training (every pixel undecided)"),
                         ("model", "For this model's prediction")):
        st.markdown(f"**{title}**")
        maps = data[stage]
        columns = st.columns(len(maps))
        for column, (name, entry) in zip(columns, maps.items(), strict=True):
            column.image(map_rgb(entry["map"], DISPLAY_SIDE, outline=truth),
                         caption=f"{LOSS_LABELS[name]}: {entry['share']:.0%} of the pull on "
                                 "the foreground", width="stretch")
    share = float((np.asarray(truth) > 0).mean())
    st.caption(f"The foreground (cyan outline) covers {share:.1%} of this image. Brighter = "
               "stronger pull; each map is scaled to its own maximum, so an evenly pale map "
               "means every pixel is pulled equally. The smaller the foreground, the larger the "
               "gap between cross-entropy and Dice: try the synthetic lesions model.")


# --------------------------------------------------------------------------- page

def inside_page() -> None:
    """Draw the whole Inside page (called by pages/8_Inside.py)."""
    spec = pick_model(STATE_PREFIX + "model", prefer="bundled")
    if spec is None:
        return
    try:
        handle = _handle(spec)
        source = choose_image(handle)
        if source is None:
            return
        with st.spinner("Running the image through the network..."):
            ready = inside_input(spec, handle.model_id, source)
            data = inside_maps(spec, handle.model_id, source)
    except UNetDemoError as error:
        st.error(str(error))
        return
    image, truth = ready["image"], ready["truth"]
    prediction = inside_ablation_image(spec, handle.model_id, source, (), "zeros")
    columns = st.columns([1, 1, 2])
    columns[0].image(scale_up(to_display_rgb(image), DISPLAY_SIDE), width="stretch",
                     caption=f"model input: {ready['label']} "
                             f"({'×'.join(map(str, image.shape))})")
    columns[1].image(_overlay(image, _labels_of(prediction, handle.num_classes),
                              handle.num_classes), caption="prediction",
                     width="stretch")
    depth = data["depth"]
    gates = sum(t["role"] == "attention" for t in data["taps"])
    columns[2].markdown(
        f"**{handle.title}**  \n{depth} pooling steps, so {depth} skip connections"
        + (f" with {gates} attention gates" if gates else "")
        + f"; {len(data['taps'])} tensors shown. Input "
        f"{'×'.join(map(str, handle.input_shape))}, digest `{_short(handle.model_id)}`.")
    maps_tab, attention_tab, field_tab, ablation_tab, loss_tab = st.tabs(
        ["Feature maps", "Attention gates", "Receptive field", "Skip ablation", "Loss maps"])
    try:
        with maps_tab:
            feature_maps_ui(data)
        with attention_tab:
            attention_ui(data, image)
        with field_tab:
            receptive_field_ui(spec, handle.model_id, source, data, image)
        with ablation_tab:
            ablation_ui(spec, handle.model_id, source, handle, image, truth, source[0])
        with loss_tab:
            loss_maps_ui(spec, handle.model_id, source, truth)
    except UNetDemoError as error:
        st.error(str(error))


def _short_tap(tap: dict[str, Any]) -> str:
    return "bottleneck" if tap["role"] == "bottleneck" else f"{tap['role'][:3]}{tap['level']}"


def _short(model_id: str) -> str:
    return model_id.rsplit("@", 1)[-1][:8] if "@" in model_id else hashlib.sha256(
        model_id.encode()).hexdigest()[:8]
