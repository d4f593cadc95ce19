"""Augment page: build an albumentations pipeline with sliders, see a seeded gallery, export it.

Every draw shows the augmented image with the outline of the mask that goes with it, so a
misaligned mask is visible at once. The chosen `AugmentConfig` is stored in session state
(`AUGMENT_CONFIG_KEY`) for the Train page.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import streamlit as st

from unet_demo.augment import augment_gallery, augmentation_code, augmentation_yaml
from unet_demo.config import AugmentConfig
from unet_demo.errors import UNetDemoError
from unet_demo.plots.images import draw_outline, image_grid, to_display_rgb
from unet_demo.training.links import AugmentLink
from unet_demo.ui.kept import keep, kept
from unet_demo.ui.links_ui import copy_link_ui, restore_link
from unet_demo.ui.state import get_augment_config, get_dataset, set_augment_config, set_dataset

PREFIX = "augment."
IMAGE_INDEX_KEY = PREFIX + "image_index"
IMAGE_ONLY_KEY = PREFIX + "image_only"
GALLERY_SIZE = 9
TILE_SCALE = 2  # tiles are enlarged (nearest) before the outline is drawn, so it stays crisp

DEMO_CONFIG = AugmentConfig(hflip_p=0.5, rotate_p=0.5, brightness_contrast_p=0.5, elastic_p=0.3,
                            seed=0)
"""What the page starts with when nothing is stored yet: a mild, common pipeline."""

# (field, label, min, max, step, why) for every control; probabilities first in each group.
GEOMETRIC_CONTROLS: tuple[tuple[str, tuple[tuple[str, str, float, float, float, str], ...]], ...] = (
    ("Flips", (
        ("hflip_p", "Horizontal flip probability", 0.0, 1.0, 0.05,
         "Left-right mirror: fine for most anatomy seen from either side; not for text or "
         "organs with a fixed side in the image."),
        ("vflip_p", "Vertical flip probability", 0.0, 1.0, 0.05,
         "Up-down mirror: natural for microscopy, unrealistic for upright anatomy."),
    )),
    ("Rotate", (
        ("rotate_p", "Rotation probability", 0.0, 1.0, 0.05,
         "How often a random rotation is applied."),
        ("rotate_limit", "Rotation limit (degrees)", 0.0, 180.0, 5.0,
         "Largest angle either way: patients lie slightly tilted; cells have no 'up'."),
    )),
    ("Shift, scale, rotate (affine)", (
        ("affine_p", "Affine probability", 0.0, 1.0, 0.05,
         "How often a combined shift + zoom + small rotation is applied."),
        ("shift_limit", "Shift limit (fraction of size)", 0.0, 0.3, 0.01,
         "The structure does not always sit in the centre of the field of view."),
        ("scale_limit", "Scale limit (± fraction)", 0.0, 0.5, 0.05,
         "Heads, organs and cells differ in size between subjects and scanners."),
        ("affine_rotate_limit", "Affine rotation limit (degrees)", 0.0, 45.0, 1.0,
         "Small tilts together with the shift and zoom."),
    )),
    ("Random crop", (
        ("crop_p", "Crop probability", 0.0, 1.0, 0.05,
         "Cut a random window and scale it back up: a zoom-in that hides parts of the scene."),
        ("crop_scale_min", "Smallest kept area (fraction)", 0.1, 1.0, 0.05,
         "Lower keeps less of the image, so small objects may vanish from the crop."),
    )),
    ("Elastic deformation", (
        ("elastic_p", "Elastic probability", 0.0, 1.0, 0.05,
         "Smooth random warps, as soft tissue deforms; the original U-Net paper's favourite."),
        ("elastic_alpha", "Elastic strength (alpha)", 0.0, 200.0, 5.0,
         "How far pixels move; too much gives unrealistic shapes."),
        ("elastic_sigma", "Elastic smoothness (sigma)", 2.0, 20.0, 1.0,
         "Larger sigma gives broader, smoother warps; small sigma gives jitter."),
    )),
    ("Grid distortion", (
        ("grid_p", "Grid distortion probability", 0.0, 1.0, 0.05,
         "Stretch the image cell by cell, like lens or scanner distortions."),
        ("grid_steps", "Grid cells per side", 2, 10, 1,
         "More cells give more local, wigglier distortions."),
        ("grid_limit", "Grid distortion limit", 0.0, 0.6, 0.05,
         "How much each cell may stretch or shrink."),
    )),
)

PHOTOMETRIC_CONTROLS: tuple[tuple[str, tuple[tuple[str, str, float, float, float, str], ...]], ...] = (
    ("Brightness / contrast", (
        ("brightness_contrast_p", "Brightness/contrast probability", 0.0, 1.0, 0.05,
         "Scanners and settings differ in overall brightness and contrast."),
        ("brightness_limit", "Brightness limit (±)", 0.0, 0.5, 0.05,
         "Largest brightness change, as a fraction of the full range."),
        ("contrast_limit", "Contrast limit (±)", 0.0, 0.5, 0.05,
         "Largest contrast change, as a fraction."),
    )),
    ("Gamma", (
        ("gamma_p", "Gamma probability", 0.0, 1.0, 0.05,
         "Non-linear brightness change: darkens or lifts mid-tones, keeps black and white."),
        ("gamma_min", "Gamma min (x100)", 50.0, 100.0, 5.0, "Below 100 brightens mid-tones."),
        ("gamma_max", "Gamma max (x100)", 100.0, 200.0, 5.0, "Above 100 darkens mid-tones."),
    )),
    ("Gaussian noise", (
        ("noise_p", "Noise probability", 0.0, 1.0, 0.05,
         "Real images are noisy; noise teaches the model not to trust single pixels."),
        ("noise_std_max", "Noise std max (fraction of range)", 0.0, 0.3, 0.01,
         "Upper limit of the noise level."),
    )),
    ("CLAHE", (
        ("clahe_p", "CLAHE probability", 0.0, 1.0, 0.05,
         "Local contrast equalisation, as some viewers and pipelines apply it."),
        ("clahe_clip", "CLAHE clip limit max (OpenCV scale, 1-8)", 1.0, 8.0, 0.5,
         "OpenCV/albumentations scale: a multiple of a tile's average histogram height; 1 "
         "changes little, 2-4 is usual. Each image draws a limit between 1 and this value. "
         "Higher gives stronger local contrast (and more amplified noise). Not the Data page's "
         "scikit-image 0-1 scale."),
    )),
    ("Blur", (
        ("blur_p", "Blur probability", 0.0, 1.0, 0.05,
         "Motion and low resolution blur images; the model should still find edges."),
        ("blur_limit", "Blur kernel max (px)", 3, 15, 2,
         "Largest Gaussian kernel; larger means blurrier."),
    )),
    ("Bias field", (
        ("bias_field_p", "Bias field probability", 0.0, 1.0, 0.05,
         "MRI coils are not equally sensitive everywhere: one side of a scan comes out "
         "brighter. A smooth random field multiplies the image (mask untouched)."),
        ("bias_field_limit", "Bias field strength max (±)", 0.01, 0.3, 0.01,
         "Largest brightness change, as a fraction: 0.2 keeps every pixel between 80% and "
         "120% of its value."),
    )),
)


def _widget_key(field: str) -> str:
    return PREFIX + field


def _init_state(stored: AugmentConfig) -> None:
    """Give every control its stored value the first time the page is drawn in a visit."""
    for field in dataclasses.fields(AugmentConfig):
        key = _widget_key(field.name)
        if key not in st.session_state:
            st.session_state[key] = getattr(stored, field.name)


def _control_group(groups) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for title, controls in groups:
        probability_key = _widget_key(controls[0][0])
        active = float(st.session_state.get(probability_key, 0.0)) > 0
        with st.expander(f"{title} — {'on' if active else 'off'}", expanded=active,
                         icon=":material/toggle_on:" if active else ":material/toggle_off:"):
            for field, label, low, high, step, why in controls:
                is_int = isinstance(step, int) and isinstance(low, int)
                kind = int if is_int else float
                values[field] = st.slider(
                    label, kind(low), kind(high), step=kind(step), key=_widget_key(field),
                    help=why, disabled=field != controls[0][0] and not active,
                )
    return values


def _reroll() -> None:
    st.session_state[_widget_key("seed")] = int(st.session_state[_widget_key("seed")]) + 1


def _reset() -> None:
    for field in dataclasses.fields(AugmentConfig):
        st.session_state[_widget_key(field.name)] = getattr(DEMO_CONFIG, field.name)


def controls_ui() -> AugmentConfig:
    """All controls; returns the AugmentConfig they describe (and stores it in session state)."""
    _init_state(get_augment_config() or DEMO_CONFIG)
    geometric, photometric = st.tabs(["Geometric: image and mask", "Photometric: image only"])
    with geometric:
        values = _control_group(GEOMETRIC_CONTROLS)
        values["border_mode"] = st.radio(
            "Border fill", ("reflect", "constant"), key=_widget_key("border_mode"),
            horizontal=True, help="What fills the corners a rotation or shift uncovers: a "
                                  "mirror of the image (reflect) or black (constant).")
    with photometric:
        values.update(_control_group(PHOTOMETRIC_CONTROLS))
    values["seed"] = int(st.session_state[_widget_key("seed")])
    values = {k: (int(v) if k in ("grid_steps", "blur_limit", "seed") else v)
              for k, v in values.items()}
    cfg = AugmentConfig(**values)
    set_augment_config(cfg)
    return cfg


@st.cache_data(show_spinner=False, max_entries=64)
def gallery_image(cfg_json: str, dataset: str, index: int, image_only: bool) -> dict[str, Any]:
    """The 3x3 gallery as one RGB array plus the transforms applied per tile (cached).

    Args:
        cfg_json: `AugmentConfig.to_json()` (the cache key; the seed is inside).
        dataset: bundled dataset name or "upload:<id>".
        index: training image index.
        image_only: show the pitfall (mask left behind).
    """
    import json

    from unet_demo.data.sources import load_split

    cfg = AugmentConfig.from_dict(json.loads(cfg_json))
    arrays = load_split(dataset, "train")
    image, mask = arrays.images[index], arrays.masks[index]
    samples = augment_gallery(cfg, image, mask, GALLERY_SIZE, image_only=image_only)
    tiles = []
    for sample in samples:
        big_image = np.repeat(np.repeat(sample.image, TILE_SCALE, 0), TILE_SCALE, 1)
        big_mask = np.repeat(np.repeat(sample.mask, TILE_SCALE, 0), TILE_SCALE, 1)
        tiles.append(draw_outline(to_display_rgb(big_image), big_mask, thickness=2))
    original = draw_outline(
        to_display_rgb(np.repeat(np.repeat(image, TILE_SCALE, 0), TILE_SCALE, 1)),
        np.repeat(np.repeat(mask, TILE_SCALE, 0), TILE_SCALE, 1), thickness=2)
    return {"grid": image_grid(tiles, columns=3, gap=6), "original": original,
            "applied": [s.applied for s in samples], "image_id": arrays.ids[index]}


def gallery_ui(cfg: AugmentConfig) -> None:
    """Source image picker, re-roll, pitfall toggle and the seeded 3x3 gallery."""
    from unet_demo.data.sources import dataset_info as get_dataset_info
    from unet_demo.data.sources import load_split

    dataset = get_dataset()
    info = get_dataset_info(dataset)
    count = len(load_split(dataset, "train"))
    top = st.columns([3, 2, 2, 2])
    index_key = PREFIX + "image_index"
    # Kept per dataset (the slider itself is dropped while another page is shown): a new
    # dataset opens on a representative image, not on the last dataset's position.
    stored = kept(index_key, {})
    first = stored.get(dataset) if isinstance(stored, dict) else None
    if first is None or not 0 <= int(first) < count:  # 0-based
        from unet_demo.data.representative import representative_index

        first = representative_index(load_split(dataset, "train").masks)
    if st.session_state.get(index_key + ".dataset") != dataset:
        st.session_state.pop(index_key, None)  # a new dataset: start from its own image
    st.session_state[index_key + ".dataset"] = dataset
    # Numbered from 1, as on the Data page (the same image has the same number on both).
    number = top[0].slider("Training image", 1, count, int(first) + 1, key=index_key,
                           help=f"The {info.title} image every tile starts from, numbered as "
                                "on the Data page (change the dataset there).")
    index = int(number) - 1
    keep(index_key, {**(stored if isinstance(stored, dict) else {}), dataset: index})
    top[1].number_input("Seed", 0, 2**31 - 1, key=_widget_key("seed"), step=1,
                        help="Same seed, same gallery: augmentation is random but reproducible.")
    top[2].button("Re-roll", icon=":material/casino:", on_click=_reroll, width="stretch",
                  help="New seed, new random draws with the same settings.")
    top[3].button("Reset", icon=":material/restart_alt:", on_click=_reset, width="stretch",
                  help="Back to a mild default pipeline.")
    image_only = keep(PREFIX + "image_only", st.toggle(
        "Show the pitfall: augment the image only", kept(PREFIX + "image_only", False),
        key=PREFIX + "image_only",
        help="The textbook's simple example transforms the image and returns the old mask. "
             "Turn this on to see the red outline drift off the structure."))
    result = gallery_image(cfg.to_json(), dataset, int(index), bool(image_only))
    left, right = st.columns([1, 3])
    left.image(result["original"], caption=f"original · {result['image_id']}", width="stretch")
    left.caption("Red = outline of the mask that goes with each image.")
    if image_only:
        right.image(result["grid"], width="stretch",
                    caption="Image augmented, mask NOT: the labels no longer match the pixels.")
        st.warning("Every geometric change here leaves the mask behind, so the network would "
                   "learn from wrong labels. Pass image and mask to the same transform call "
                   "(`transform(image=image, mask=mask)`) as this page does when the toggle "
                   "is off.")
    else:
        right.image(result["grid"], width="stretch",
                    caption="9 draws: image and mask augmented together.")
    with st.expander("Which transforms fired on each tile"):
        for number, applied in enumerate(result["applied"], start=1):
            st.markdown(f"{number}. {', '.join(applied) or 'nothing (all skipped by chance)'}")


def export_ui(cfg: AugmentConfig) -> None:
    """Python code and YAML of the pipeline, each with a download button."""
    try:
        code = augmentation_code(cfg)
        yaml_text = augmentation_yaml(cfg)
    except UNetDemoError as error:
        st.error(str(error))
        return
    code_tab, yaml_tab, json_tab = st.tabs(["Python", "YAML (albumentations)", "Config (JSON)"])
    with code_tab:
        st.code(code, language="python")
        st.download_button("Download augmentation.py", code, file_name="augmentation.py",
                           mime="text/x-python", key=PREFIX + "download_py")
    with yaml_tab:
        st.caption("Load with `albumentations.load(path, data_format='yaml')`.")
        st.code(yaml_text, language="yaml")
        st.download_button("Download augmentation.yaml", yaml_text, file_name="augmentation.yaml",
                           mime="application/x-yaml", key=PREFIX + "download_yaml")
    with json_tab:
        st.caption("The unet-demo AugmentConfig: what the Train page and the CLI read.")
        st.code(cfg.to_json(), language="json")
        st.download_button("Download augment_config.json", cfg.to_json(),
                           file_name="augment_config.json", mime="application/json",
                           key=PREFIX + "download_json")


def _apply_link(link: AugmentLink) -> None:
    """Write an Augment link into the sliders, the dataset, the gallery image and the toggle."""
    from unet_demo.data.bundled import DATASET_NAMES

    if link.dataset and link.dataset not in DATASET_NAMES:
        raise UNetDemoError(f"This link's gallery shows the dataset {link.dataset!r}, which "
                            f"this page cannot show (it shows {', '.join(DATASET_NAMES)}).")
    state = st.session_state
    for field in dataclasses.fields(AugmentConfig):
        state[_widget_key(field.name)] = getattr(link.augment, field.name)
    set_augment_config(link.augment)
    if link.dataset:
        set_dataset(link.dataset)
    if link.image_index >= 0:  # gallery_ui checks the range against the dataset
        keep(IMAGE_INDEX_KEY, {link.dataset or get_dataset(): link.image_index})
        state.pop(IMAGE_INDEX_KEY, None)
    keep(IMAGE_ONLY_KEY, bool(link.image_only))
    state.pop(IMAGE_ONLY_KEY, None)


def page_link(cfg: AugmentConfig) -> AugmentLink:
    """The page's current state as a link: pipeline, dataset, gallery image, pitfall toggle.

    Args:
        cfg: the pipeline `controls_ui` returned.
    """
    from unet_demo.data.sources import is_uploaded

    dataset = get_dataset()
    stored = kept(IMAGE_INDEX_KEY, {})
    index = stored.get(dataset, -1) if isinstance(stored, dict) else -1
    if is_uploaded(dataset):  # an upload lives on this server only: the link keeps the pipeline
        dataset, index = "", -1
    return AugmentLink(cfg, dataset, int(index), bool(kept(IMAGE_ONLY_KEY, False)))


def augment_page() -> None:
    """Draw the Augment page body (the page file sets up the title and disclaimer)."""
    restore_link("augment", _apply_link)  # ?x=... from a shared link, once
    controls, gallery = st.columns([2, 3], gap="large")
    with controls:
        try:
            cfg = controls_ui()
        except UNetDemoError as error:
            st.error(str(error))
            return
    with gallery:
        try:
            gallery_ui(cfg)
        except UNetDemoError as error:
            st.error(str(error))
    with controls:
        copy_link_ui(page_link(cfg))
    st.divider()
    st.subheader("Export")
    export_ui(cfg)
    st.caption("This pipeline is kept for the Train page (turn on augmentation there).")
