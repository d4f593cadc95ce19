"""Data page: browse a bundled dataset with mask overlays, its statistics, card and preprocessing.

Widgets only draw and return values; the arrays come from `unet_demo.data.bundled`, the
figures from `unet_demo.plots`, the preprocessing from `unet_demo.data.preprocess`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from unet_demo.data.bundled import SPLITS
from unet_demo.errors import UNetDemoError
from unet_demo.plots.data import (
    class_balance_figure,
    intensity_histogram_figure,
    split_sizes_figure,
)
from unet_demo.plots.images import (
    class_colours,
    class_legend_entries,
    draw_outline,
    legend_rgb,
    overlay_rgb,
    to_display_rgb,
)
from unet_demo.ui.kept import keep, kept, kept_index
from unet_demo.ui.state import get_dataset, set_dataset

PREFIX = "data."
SIZES = [64, 96, 128, 160, 192, 256]
INDEX_KEY = PREFIX + "index"
"""Session-state key (no widget) of the 0-based image shown in Browse, read by the preview."""
NORMALISATION_HELP = {
    "minmax": "Stretch to [0, 1] using the image's min and max: simple, but one bright pixel "
              "squeezes everything else.",
    "zscore": "Subtract the mean, divide by the standard deviation: every image gets the same "
              "brightness and contrast (values around 0, not bounded).",
    "symmetric": "Min-max to [-1, 1]: what some pretrained encoders expect.",
    "clahe": "Contrast-limited adaptive histogram equalisation, then [0, 1]: evens out dark and "
             "bright regions. As a normalisation it uses the clip limit 0.02 (the CLAHE "
             "toggle's default) and can be chosen for training.",
    "ct_window": "Keep only a band of intensities (centre ± width/2) and stretch it to [0, 1]: "
                 "how radiologists look at soft tissue or bone in CT. In CT the band is set in "
                 "Hounsfield units (e.g. L40 W400); these images are MRI or microscopy already "
                 "scaled to [0, 1], so centre and width here are fractions of that range.",
}


@st.cache_data(show_spinner=False, max_entries=16)
def split_statistics(name: str, split: str, colours: tuple[str, ...]) -> dict[str, Any]:
    """Class-balance and intensity-histogram figures for one split (cached).

    Args:
        name: bundled dataset name or "upload:<id>".
        split: "train", "val" or "test".
        colours: hex colour per label value (part of the cache key).
    """
    from unet_demo.data.bundled import class_balance, class_fractions
    from unet_demo.data.sources import dataset_info, is_uploaded, load_split

    info = dataset_info(name)
    arrays = load_split(name, split)
    if is_uploaded(name):  # no stored card balance: count the pixels of each split
        balance = {part: class_fractions(load_split(name, part).masks, info.num_classes)
                   for part in SPLITS}
    else:
        balance = class_balance(name)
    return {
        "balance": class_balance_figure(balance, info.class_names, colours),
        "histogram": intensity_histogram_figure(arrays.images, arrays.masks, info.class_names,
                                                colours=colours),
        "sizes": split_sizes_figure(info.split_counts),
    }


def choose_dataset() -> str:
    """Dataset select box (bundled, then uploaded); the choice is stored for the other pages."""
    from unet_demo.data.bundled import DATASET_NAMES
    from unet_demo.data.sources import dataset_choices, is_uploaded

    choices = {name: label for name, label in dataset_choices().items()
               if name in DATASET_NAMES or is_uploaded(name)}  # 2D images only
    names = list(choices)
    current = get_dataset()
    index = names.index(current) if current in names else 0
    name = st.selectbox(
        "Dataset", names, index=index, key=PREFIX + "dataset", format_func=choices.get,
        help="Each dataset is a different task: a large organ (brain), several tissue classes, "
             "many small objects (nuclei) or rare tiny lesions. Datasets uploaded as a ZIP on "
             "the Train page are listed after the bundled ones.",
    )
    set_dataset(name)
    return name


def colour_controls(class_names: tuple[str, ...]) -> list[str]:
    """A colour picker per foreground class; returns the colour per label value."""
    colours = class_colours(len(class_names))
    with st.popover("Class colours", help="Pick colours that you can tell apart on a projector."):
        for value, class_name in enumerate(class_names):
            if value == 0:
                continue
            key = f"{PREFIX}colour.{class_name}"
            colours[value] = keep(key, st.color_picker(class_name, kept(key, colours[value]),
                                                       key=key))
    return colours


def browse_section(name: str, info, colours: list[str]) -> None:
    """Image browser: image, overlay and outline of one image, with an opacity slider."""
    from unet_demo.data.sources import load_split

    controls = st.columns([1, 2, 2])
    split_key = PREFIX + "split"
    split = keep(split_key, controls[0].radio(
        "Split", SPLITS, index=kept_index(split_key, SPLITS), horizontal=True, key=split_key,
        help="Train teaches the model, val picks settings, test is kept for the final, "
             "honest score."))
    arrays = load_split(name, split)
    count = len(arrays)
    # One slider per dataset and split, numbered from 1 like the caption: a new dataset opens
    # on a representative image (never the previous dataset's position, often an empty slice).
    image_key = f"{PREFIX}image.{name}.{split}"
    first = kept(image_key, None)
    if first is None or not 1 <= int(first) <= count:
        from unet_demo.data.representative import representative_index

        first = representative_index(arrays.masks) + 1
    number = keep(image_key, controls[1].slider(
        "Image", 1, count, int(first), key=image_key,
        help=f"Browse the {count} images of this split (it opens on the one with the most "
             "classes and foreground)."))
    index = int(number) - 1
    st.session_state[INDEX_KEY] = index
    opacity_key = PREFIX + "opacity"
    opacity = keep(opacity_key, controls[2].slider(
        "Mask opacity", 0.0, 1.0, kept(opacity_key, 0.45), 0.05, key=opacity_key,
        help="0 shows the raw image, 1 paints the classes solid: check that the labels really "
             "sit on the structures."))
    image, mask = arrays.images[index], arrays.masks[index]
    left, middle, right = st.columns(3)
    left.image(to_display_rgb(image), caption=f"image · {arrays.ids[index]}", width="stretch")
    middle.image(overlay_rgb(image, mask, info.num_classes, opacity, colours),
                 caption="mask overlay", width="stretch")
    right.image(draw_outline(to_display_rgb(image), mask, colour="#ff2a2a"),
                caption="mask outline", width="stretch")
    entries = class_legend_entries(info.class_names, colours)
    st.image(legend_rgb(entries), caption="Legend: " + ", ".join(name for name, _ in entries))
    present = np.bincount(mask.ravel(), minlength=info.num_classes)[: info.num_classes]
    share = ", ".join(f"{n} {100 * c / mask.size:.1f}%" for n, c in zip(info.class_names, present,
                                                                          strict=True))
    st.caption(f"Image {index + 1} of {count} in {split}; pixels: {share}.")


def statistics_section(name: str, split: str, colours: list[str]) -> None:
    """Class balance per split, intensity histogram per class and split sizes."""
    figures = split_statistics(name, split, tuple(colours))
    left, right = st.columns([3, 2])
    with left:
        st.markdown("**Class balance** — share of pixels per class")
        st.plotly_chart(figures["balance"], key=PREFIX + "balance_chart")
        st.caption("A small foreground share means class imbalance: a model can score high "
                   "pixel accuracy by predicting background everywhere. Dice-type losses help.")
    with right:
        st.markdown("**Split sizes** — images per split")
        st.plotly_chart(figures["sizes"], key=PREFIX + "sizes_chart")
    st.markdown(f"**Intensity histogram per class** ({split} split)")
    st.plotly_chart(figures["histogram"], key=PREFIX + "histogram_chart")
    st.caption("Where the class curves overlap, brightness alone cannot tell the classes apart: "
               "the network must learn shape and context.")


def preprocessing_section(name: str, split: str) -> None:
    """Preprocessing preview: the chosen steps applied to the current image, side by side."""
    from unet_demo.data import preprocess
    from unet_demo.data.sources import load_split

    arrays = load_split(name, split)
    index = min(int(st.session_state.get(INDEX_KEY, 0)), len(arrays) - 1)
    original = np.asarray(arrays.images[index], np.float32)
    controls = st.columns(4)
    with controls[0]:
        modes = list(preprocess.NORMALIZATION_MODES)
        mode = keep(PREFIX + "norm", st.selectbox(
            "Normalisation", modes, index=kept_index(PREFIX + "norm", modes), key=PREFIX + "norm",
            help="How intensities are rescaled before the network sees them; pick one and use "
                 "it for training and use."))
        st.caption(NORMALISATION_HELP[mode])
        center = width = None
        if mode == "ct_window":
            center = keep(PREFIX + "center", st.slider(
                "Window centre", 0.0, 1.0, kept(PREFIX + "center", 0.5), 0.01,
                key=PREFIX + "center", help="The intensity in the middle of the band kept."))
            width = keep(PREFIX + "width", st.slider(
                "Window width", 0.05, 1.0, kept(PREFIX + "width", 0.4), 0.05, key=PREFIX + "width",
                help="How wide the band is: narrow = more contrast, less range."))
    with controls[1]:
        height = keep(PREFIX + "height", st.select_slider(
                                  "Target height", SIZES, kept(PREFIX + "height", 128),
                                  key=PREFIX + "height", help="A U-Net takes any size that "
                                  "is a multiple of 2**depth, but all images in a batch must "
                                  "share one; the image is scaled to fit and padded, never "
                                  "stretched."))
        target_width = keep(PREFIX + "target_width", st.select_slider(
            "Target width", SIZES, kept(PREFIX + "target_width", 192),
            key=PREFIX + "target_width", help="A size with another aspect ratio shows the padding."))
        pads = list(preprocess.PAD_MODES)
        pad_mode = keep(PREFIX + "pad", st.radio(
            "Padding", pads, index=kept_index(PREFIX + "pad", pads), horizontal=True,
            key=PREFIX + "pad", help="constant fills with 0; edge repeats the border pixels."))
    with controls[2]:
        clahe = keep(PREFIX + "clahe", st.toggle(
            "CLAHE", kept(PREFIX + "clahe", False), key=PREFIX + "clahe",
            help="Local histogram equalisation: lifts contrast in dark and bright regions "
                 "separately."))
        clip = keep(PREFIX + "clip", st.slider(
                         "CLAHE clip limit (0-1 scale)", 0.005, 0.1, kept(PREFIX + "clip", 0.02),
                         0.005, key=PREFIX + "clip", disabled=not clahe,
                         help="scikit-image's scale: the largest share of a tile's pixels one "
                              "grey level may hold before its excess is spread out (0.02 = 2 %). "
                              "Higher = stronger contrast, more noise. Not the Augment page's "
                              "OpenCV scale (about 1-4)."))
    with controls[3]:
        methods = ["off", *preprocess.DENOISE_METHODS]
        method = keep(PREFIX + "denoise", st.selectbox(
            "Denoise", methods, index=kept_index(PREFIX + "denoise", methods),
            key=PREFIX + "denoise", help="tv keeps edges, median removes salt-and-pepper dots "
            "(isolated black or white pixels, not ultrasound speckle), gaussian blurs "
            "everything."))
        strength = keep(PREFIX + "strength", st.slider(
            "Denoise strength", 0.05, 1.0, kept(PREFIX + "strength", 0.15), 0.05,
            key=PREFIX + "strength", disabled=method == "off",
            help="Too strong erases small structures."))
    try:
        processed = original
        if method != "off":
            processed = preprocess.denoise(processed, method, strength)
        if clahe:
            processed = preprocess.apply_clahe(processed, clip_limit=clip)
        processed = preprocess.normalize(processed, mode, center=center, width=width)
        processed = preprocess.resize_with_pad(processed, (height, target_width),
                                               pad_mode=pad_mode)
    except UNetDemoError as error:
        st.error(str(error))
        return
    left, right = st.columns(2)
    left.image(to_display_rgb(original), caption=f"original {original.shape[0]}x"
               f"{original.shape[1]}, values {original.min():.2f}..{original.max():.2f}",
               width="stretch")
    right.image(to_display_rgb(processed), caption=f"preprocessed {processed.shape[0]}x"
                f"{processed.shape[1]}, values {processed.min():.2f}..{processed.max():.2f}"
                " (shown stretched to grey levels)", width="stretch")
    training_input_ui(name, int(height), "clahe" if clahe else mode,
                      clahe and abs(float(clip) - preprocess.CLAHE_CLIP) > 1e-9,
                      method != "off")


TRAINING_INPUT_KEY = PREFIX + "training_input"
"""Session-state key (no widget): the input size and intensity chosen here for training, a dict
``{"dataset", "image_size", "normalization"}`` (set by "Use for training")."""


def training_input_ui(name: str, size: int, normalization: str, other_clip: bool,
                      denoised: bool) -> None:
    """What of the preview a training run can use, its command, and a "Use for training" button.

    Args:
        name: the dataset.
        size: the target height (training inputs are square, size x size).
        normalization: the intensity normalisation ("clahe" when the CLAHE toggle is on).
        other_clip: the CLAHE clip limit differs from the one training uses.
        denoised: a denoising step is on (training has none).
    """
    from unet_demo.data.preprocess import CLAHE_CLIP

    if normalization == "ct_window":
        st.caption("For training: a CT window's centre and width are not stored with a model, so "
                   "training cannot use 'ct_window'; pick another normalisation to train with.")
        return
    st.markdown(f"**For training:** input {size} x {size} px, intensity **{normalization}**")
    notes = []
    if normalization == "clahe":
        notes.append(f"training applies CLAHE with clip limit {CLAHE_CLIP} and then scales to "
                     "[0, 1]" + (" (not the clip limit shown above)" if other_clip else "")
                     + "; the normalisation chosen above is replaced by that scaling")
    if denoised:
        notes.append("denoising is a preview only: training does not denoise")
    if notes:
        st.caption("Note: " + "; ".join(notes) + ".")
    st.code(f"python -m unet_demo train --dataset {name} --image-size {size} "
            f"--intensity {normalization}", language="bash")
    if st.button("Use for training", key=PREFIX + "use_for_training",
                 help="Remembers this input size and intensity for training in this session; "
                      "the command above trains with them from a terminal."):
        st.session_state[TRAINING_INPUT_KEY] = {"dataset": name, "image_size": size,
                                                "normalization": normalization}
    chosen = st.session_state.get(TRAINING_INPUT_KEY)
    if chosen and chosen.get("dataset") == name:
        st.caption(f"Chosen for training: {chosen['image_size']} px, {chosen['normalization']}.")


def upload_card_markdown(name: str) -> str:
    """A short card of an uploaded dataset: where it came from, its splits and skipped files.

    Args:
        name: "upload:<id>".
    """
    from unet_demo import DISCLAIMER
    from unet_demo.data.upload_dataset import load_uploaded_info

    card = load_uploaded_info(name)
    counts = card.get("split_counts") or {}
    skipped = [row for row in card.get("rows") or [] if row.get("status") != "ok"]
    lines = [f"# {card.get('title', name)}", "", f"> {DISCLAIMER}", "",
             f"- **Archive:** {card.get('source_archive', '?')} (sha256 "
             f"`{str(card.get('source_sha256', ''))[:16]}...`), uploaded {card.get('created', '?')}",
             f"- **Images:** {card.get('image_size')} px, {card.get('channels')} channel(s), "
             f"labels {card.get('labels')}",
             f"- **Splits:** train {counts.get('train', 0)}, val {counts.get('val', 0)}, test "
             f"{counts.get('test', 0)}",
             f"- **Skipped files:** {len(skipped)}", "", f"**Split rule.** {card.get('split_rule', '')}"]
    return "\n".join(lines)


def data_page() -> None:
    """Draw the Data page body (the page file sets up the title and disclaimer)."""
    from unet_demo.data.bundled import card_markdown, load_card
    from unet_demo.data.sources import dataset_info, is_uploaded

    top = st.columns([2, 3])
    with top[0]:
        name = choose_dataset()
    try:
        info = dataset_info(name)
    except UNetDemoError as error:
        st.error(str(error))
        return
    with top[1]:
        st.markdown(f"**{info.title}** — {info.task}")
        st.caption(f"{info.modality} · {info.image_size[0]}x{info.image_size[1]} px · "
                   f"{info.channels} channel(s) · {info.total_images} images · classes: "
                   f"{', '.join(info.class_names)}")
    colours = colour_controls(info.class_names)
    browse, stats, card_tab, prep = st.tabs(
        ["Browse", "Statistics", "Dataset card", "Preprocessing preview"])
    with browse:
        browse_section(name, info, colours)
    split = st.session_state.get(PREFIX + "split", "train")
    with stats:
        statistics_section(name, split, colours)
    with card_tab:
        st.markdown(upload_card_markdown(name) if is_uploaded(name)
                    else card_markdown(load_card(name), for_readme=False))
    with prep:
        st.caption("Try the preprocessing steps on the image chosen in Browse. The training "
                   "pipeline uses min-max normalisation by default.")
        preprocessing_section(name, split)

