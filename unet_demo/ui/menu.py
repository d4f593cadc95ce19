"""The app's navigation menu (st.navigation over the files in pages/), and its deep-link guard.

Streamlit 1.67 treats a `pages/` folder next to the entrypoint as a legacy multipage app until
some session calls `st.navigation`: `PagesManager` sets the process-wide flag
`uses_pages_directory` when the first session starts, and while it is set the script runner
runs the requested page file straight from `pages/` with an auto-built menu ("streamlit app",
no icons) instead of running `streamlit_app.py`. So when the very first request after a server
start is a deep link (`/Segment`, `/Train?run=...`), `streamlit_app.py` never runs and the
student sees the wrong menu. `page_setup` (the first call of every page file) calls
`route_through_menu()`, which notices that case, calls `st.navigation` with our menu (the
documented switch to the st.navigation mode for every session) and reruns, so the entrypoint
draws the real menu and runs the same page (same URL path, same query string).

Example:
    >>> MENU_LABELS[:3]
    ('Home', 'Data', 'Augment')
"""

from __future__ import annotations

import streamlit as st

from unet_demo.ui.home_ui import PAGES

HOME_TITLE = "Home"
# The menu's entries, top to bottom (the browser test checks a deep link shows exactly these).
MENU_LABELS = (HOME_TITLE, *(label for _path, label, _icon, _description in PAGES))


def home() -> None:
    """The home page body, drawn when the menu's first entry is selected."""
    from unet_demo.ui.common import page_setup
    from unet_demo.ui.home_ui import home_page

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
