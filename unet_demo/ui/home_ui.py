"""Home page: what U-Net segmentation is, a picture of every bundled dataset, links to pages.

Nothing here (or in what it imports) loads TensorFlow, so the first page paints fast.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from unet_demo.errors import UNetDemoError
from unet_demo.plots.images import (
    class_legend_entries,
    legend_rgb,
    overlay_rgb,
    to_display_rgb,
)
from unet_demo.settings import REPO_ROOT

INTRO = (
    "**Segmentation** gives every pixel of an image a label — brain or not, nucleus or "
    "background, grey or white matter — so the result is a mask, not a single answer. "
    "A **U-Net** does it with an encoder that shrinks the image into coarse, meaningful "
    "features, a decoder that grows them back to full size, and **skip connections** that hand "
    "the decoder the fine detail the encoder saw at each scale. Here you can look at real "
    "medical and microscopy data, design a U-Net, train it on a CPU in minutes and see where it "
    "succeeds and fails."
)

PAGES = (
    ("pages/1_Data.py", "Data", ":material/database:", "browse images and masks, class balance, preprocessing"),
    ("pages/2_Augment.py", "Augment", ":material/shuffle:", "flips, rotations, elastic warps — image and mask together"),
    ("pages/3_Build.py", "Build", ":material/construction:", "design a U-Net: depth, filters, variants; size and cost"),
    ("pages/4_Train.py", "Train", ":material/model_training:", "train live, watch the curves, stop and compare runs"),
    ("pages/5_Evaluate.py", "Evaluate", ":material/straighten:", "Dice, IoU, error maps and the worst cases"),
    ("pages/6_Segment.py", "Segment", ":material/image:", "run a model on your own image"),
    ("pages/7_Learn.py", "Learn", ":material/school:", "the concepts, a glossary and a quiz"),
    ("pages/8_Inside.py", "Inside", ":material/biotech:", "feature maps, skip ablation, receptive field, loss maps of a model"),
    ("pages/9_Lessons.py", "Lessons", ":material/play_lesson:", "recorded experiments replayed at once, and a 45-minute class plan"),
    ("pages/10_Export.py", "Export", ":material/download:", "SavedModel, TFLite and ONNX downloads: size, speed, accuracy"),
)


def pick_example(masks: np.ndarray) -> int:
    """Index of the image that shows the most classes, then the most foreground.

    The rule lives in `unet_demo.data.representative.representative_index`.

    Args:
        masks: (N, H, W) integer labels.

    Example:
        >>> m = np.zeros((3, 4, 4), np.uint8); m[2, :2] = 1
        >>> pick_example(m)
        2
    """
    from unet_demo.data.representative import representative_index

    return representative_index(masks, "most")


@st.cache_data(show_spinner=False, max_entries=8)
def gallery_tile(name: str) -> dict:
    """Image, overlay and facts of one bundled dataset for the gallery (cached per name).

    Args:
        name: bundled dataset name.
    """
    from unet_demo.data.bundled import get_dataset_info, load_split

    info = get_dataset_info(name)
    split = load_split(name, "val")
    index = pick_example(split.masks)
    image, mask = split.images[index], split.masks[index]
    return {
        "title": info.title,
        "modality": info.modality,
        "classes": ", ".join(info.class_names[1:]),
        "counts": info.split_counts,
        "image": to_display_rgb(image),
        "overlay": overlay_rgb(image, mask, info.num_classes, opacity=0.5),
        "legend": legend_rgb(class_legend_entries(info.class_names)),
        "legend_text": ", ".join(info.class_names[1:]),
    }


def dataset_gallery() -> None:
    """One card per bundled dataset: the image, the same image with its mask, and facts."""
    from unet_demo.data.bundled import DATASET_NAMES

    columns = st.columns(2)
    for number, name in enumerate(DATASET_NAMES):
        with columns[number % 2], st.container(border=True):
            try:
                tile = gallery_tile(name)
            except UNetDemoError as error:
                st.markdown(f"**{name}**")
                st.info(str(error))
                continue
            st.markdown(f"**{tile['title']}**")
            left, right = st.columns(2)
            left.image(tile["image"], caption="image", width="stretch")
            right.image(tile["overlay"], caption="mask overlay", width="stretch")
            st.image(tile["legend"], caption="Colours: " + tile["legend_text"])
            counts = tile["counts"]
            st.caption(
                f"{tile['modality']} · labels: {tile['classes']} · "
                f"{counts['train']}/{counts['val']}/{counts['test']} train/val/test images"
            )


def page_links() -> None:
    """A link per page that exists, with a one-line description."""
    available = [page for page in PAGES if (REPO_ROOT / page[0]).exists()]
    columns = st.columns(2)
    for number, (path, label, icon, description) in enumerate(available):
        with columns[number % 2]:
            st.page_link(path, label=f"**{label}** — {description}", icon=icon)


def home_page() -> None:
    """Draw the home page body (the page file sets up title and disclaimer)."""
    st.markdown(INTRO)
    st.subheader("The bundled datasets")
    st.caption("One validation image of each, and the same image with its label mask coloured in.")
    dataset_gallery()
    st.subheader("Where to go next")
    page_links()

