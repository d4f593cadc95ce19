"""Page furniture shared by every page: page config, title and the disclaimer.

Example:
    >>> # in pages/1_Data.py
    >>> # page_setup("Explore the data", "🔎")
"""

from __future__ import annotations

import streamlit as st

from unet_demo import DISCLAIMER


def page_setup(title: str, icon: str) -> None:
    """Configure the page (wide layout), show its title and the disclaimer.

    Call it first on every page. On a server's first request, when Streamlit ran the page file
    straight from pages/ (its legacy mode), it reruns through `streamlit_app.py` first so the page
    shows the app's own menu (see `unet_demo.ui.menu`).

    Args:
        title: the page heading (also the browser tab title, suffixed with the app name).
        icon: an emoji shown in the browser tab.

    Example:
        >>> page_setup("Build a U-Net", "🧱")  # doctest: +SKIP
    """
    from unet_demo.ui.menu import route_through_menu

    route_through_menu()
    st.set_page_config(page_title=f"{title} · unet-demo", page_icon=icon, layout="wide")
    st.title(title)
    st.caption(f"⚠️ {DISCLAIMER}")


def show_error(error: Exception) -> None:
    """Show a project error's message in a red box (no traceback).

    Args:
        error: usually a `UNetDemoError`; its message says what happened and how to fix it.

    Example:
        >>> show_error(ValueError("bad"))  # doctest: +SKIP
    """
    st.error(str(error))


def encoder_weights_ui(cfg) -> None:
    """For a "pretrained" model, say where its encoder weights come from (nothing otherwise).

    A warning when no local ImageNet weights were found (the encoder then trains from random
    weights), a note when they were.

    Args:
        cfg: the `UNetConfig` about to be built or trained.

    Example:
        >>> encoder_weights_ui(UNetConfig(variant="pretrained", backbone="vgg16", depth=4))  # doctest: +SKIP
    """
    if cfg.variant != "pretrained":
        return
    from unet_demo.models.pretrained import encoder_weights_status, imagenet_weights_found

    found = cfg.encoder_weights == "imagenet" and imagenet_weights_found(cfg)
    (st.info if found else st.warning)(encoder_weights_status(cfg))
