"""Streamlit glue of the teacher's class file (`unet_demo.training.classroom`).

`class_banner_ui` (called by `page_setup` on every page) shows the banner, or the file's
problem in a red box; `class_settings` gives the pages the settings without repeating the
message (a broken file pins nothing, so the app works on its defaults).

Example:
    >>> class_settings().pinned() in (True, False)
    True
"""

from __future__ import annotations

import streamlit as st

from unet_demo.errors import UNetDemoError
from unet_demo.settings import class_file
from unet_demo.training.classroom import ClassSettings, load_class_settings


def class_settings() -> ClassSettings:
    """The class settings from ``UNET_DEMO_CLASS_FILE``; nothing pinned when unset or broken."""
    try:
        return load_class_settings(class_file())
    except UNetDemoError:
        return ClassSettings()


def class_banner_ui() -> ClassSettings:
    """Show the class banner (or why the class file cannot be used); returns the settings.

    Example:
        >>> class_banner_ui()  # doctest: +SKIP
    """
    try:
        settings = load_class_settings(class_file())
    except UNetDemoError as error:
        st.error(f"{error} Until then the app runs without class settings.",
                 icon=":material/school:")
        return ClassSettings()
    if settings.banner:
        st.info(settings.banner, icon=":material/school:")
    return settings
