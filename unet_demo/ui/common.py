"""Page furniture shared by every page: the menu, page config, title and the disclaimer.

The menu is st.navigation over the files in pages/ (`navigation_menu`, run by
`streamlit_app.py`). Streamlit 1.67 treats a `pages/` folder next to the entrypoint as a legacy
multipage app until some session calls `st.navigation`: `PagesManager` sets the process-wide
flag `uses_pages_directory` when the first session starts, and while it is set the script
runner runs the requested page file straight from `pages/` with an auto-built menu ("streamlit
app", no icons) instead of running `streamlit_app.py`. So when the very first request after a
server start is a deep link (`/Segment`, `/Train?run=...`), `streamlit_app.py` never runs and
the student sees the wrong menu. `page_setup` (the first call of every page file) calls
`route_through_menu()`, which notices that case, calls `st.navigation` with our menu (the
documented switch to the st.navigation mode for every session) and reruns, so the entrypoint
draws the real menu and runs the same page (same URL path, same query string).

Example:
    >>> MENU_LABELS[:3]
    ('Home', 'Data', 'Augment')
    >>> # in pages/1_Data.py: page_setup("Explore the data", "🔎")
"""

from __future__ import annotations

import streamlit as st

from unet_demo import DISCLAIMER
from unet_demo.ui.classroom_ui import class_banner_ui
from unet_demo.ui.home_ui import PAGES, home_page

HOME_TITLE = "Home"
# The menu's entries, top to bottom (the browser test checks a deep link shows exactly these).
MENU_LABELS = (HOME_TITLE, *(label for _path, label, _icon, _description in PAGES))


def page_setup(title: str, icon: str) -> None:
    """Configure the page (wide layout), show its title, the disclaimer and the class banner.

    Call it first on every page. On a server's first request, when Streamlit ran the page file
    straight from pages/ (its legacy mode), it reruns through `streamlit_app.py` first so the page
    shows the app's own menu (see the module docstring).

    Args:
        title: the page heading (also the browser tab title, suffixed with the app name).
        icon: an emoji shown in the browser tab.

    Example:
        >>> page_setup("Build a U-Net", "🧱")  # doctest: +SKIP
    """
    route_through_menu()
    st.set_page_config(page_title=f"{title} · unet-demo", page_icon=icon, layout="wide")
    st.title(title)
    st.caption(f"⚠️ {DISCLAIMER}")
    class_banner_ui()  # the teacher's banner, or why the class file is unusable


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


def home() -> None:
    """The home page body, drawn when the menu's first entry is selected."""
    page_setup("U-Net segmentation, hands on", "🩻")
    home_page()


def navigation_menu() -> list:
    """The menu's pages: Home, then one `st.Page` per file in pages/ with its label and icon.

    The URL path of each page is its label (`/Data`, `/Train`), the same path Streamlit derives
    from the file name (`4_Train.py` -> `Train`), so links made in either mode keep working.

    Example:
        >>> st.navigation(navigation_menu()).run()  # in streamlit_app.py  # doctest: +SKIP
    """
    menu = [st.Page(home, title=HOME_TITLE, icon=":material/home:", default=True)]
    menu += [st.Page(path, title=label, icon=icon, url_path=label)
             for path, label, icon, _description in PAGES]
    return menu


def legacy_pages_mode() -> bool:
    """True while Streamlit runs page files straight from pages/ (its legacy multipage mode).

    Reads Streamlit's own switch (`PagesManager.uses_pages_directory`, set from the existence of
    a pages/ folder next to the entrypoint, cleared by any `st.navigation` call); False when the
    attribute is gone, as a Streamlit without the legacy mode has nothing to correct.

    Example:
        >>> legacy_pages_mode() in (True, False)
        True
    """
    from streamlit.runtime.pages_manager import PagesManager

    return bool(getattr(PagesManager, "uses_pages_directory", False))


def route_through_menu() -> None:
    """Rerun through `streamlit_app.py` if Streamlit ran this page file in its legacy mode.

    Does nothing on a normal run. In the legacy case it registers the real menu with
    `st.navigation` (which ends the legacy mode for the whole server) and reruns; the rerun
    keeps the page and the query string, so `/Train?run=...` still lands on Train.

    Example:
        >>> route_through_menu()  # outside a Streamlit run: does nothing  # doctest: +SKIP
    """
    if not legacy_pages_mode():
        return
    st.navigation(navigation_menu())
    st.rerun()
