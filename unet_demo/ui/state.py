"""Session-state keys shared by the pages, and typed getters/setters for them.

Widget values do not carry across `pages/` pages, so each page copies what others need into
these keys: the Augment page stores an `AugmentConfig`, the Build page a `UNetConfig`, the Data
page the chosen dataset name; the Train page reads them.

Example:
    >>> state = {}
    >>> set_augment_config(AugmentConfig(hflip_p=0.5), state)
    >>> get_augment_config(state).hflip_p
    0.5
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from unet_demo.config import AugmentConfig, UNetConfig
from unet_demo.errors import UNetDemoError

AUGMENT_CONFIG_KEY = "augment_config"
"""Session-state key of the chosen `AugmentConfig` (Augment page -> Train page)."""

UNET_CONFIG_KEY = "unet_config"
"""Session-state key of the chosen `UNetConfig` (Build page -> Train page)."""

DATASET_KEY = "dataset"
"""Session-state key of the chosen bundled dataset name (str)."""

DEFAULT_DATASET = "brain_skullstrip"


def _session(state: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
    if state is not None:
        return state
    import streamlit as st

    return st.session_state


def get_augment_config(state: MutableMapping[str, Any] | None = None) -> AugmentConfig | None:
    """The AugmentConfig stored by the Augment page, or None if the user has not been there.

    Args:
        state: a mapping to read (tests); default `st.session_state`.
    """
    value = _session(state).get(AUGMENT_CONFIG_KEY)
    return value if isinstance(value, AugmentConfig) else None


def set_augment_config(cfg: AugmentConfig, state: MutableMapping[str, Any] | None = None) -> None:
    """Store the AugmentConfig for other pages.

    Args:
        cfg: the pipeline the user chose.
        state: a mapping to write (tests); default `st.session_state`.
    """
    _session(state)[AUGMENT_CONFIG_KEY] = cfg


def get_unet_config(state: MutableMapping[str, Any] | None = None) -> UNetConfig | None:
    """The UNetConfig stored by the Build page, or None if the user has not been there.

    Args:
        state: a mapping to read (tests); default `st.session_state`.
    """
    value = _session(state).get(UNET_CONFIG_KEY)
    return value if isinstance(value, UNetConfig) else None


def set_unet_config(cfg: UNetConfig, state: MutableMapping[str, Any] | None = None) -> None:
    """Store the UNetConfig for other pages.

    Args:
        cfg: the model the user designed.
        state: a mapping to write (tests); default `st.session_state`.
    """
    _session(state)[UNET_CONFIG_KEY] = cfg


def get_dataset(state: MutableMapping[str, Any] | None = None, default: str | None = None) -> str:
    """The dataset name chosen on the Data page (or `default`).

    Args:
        state: a mapping to read (tests); default `st.session_state`.
        default: returned when nothing was chosen yet; None means the class file's default
            dataset (``UNET_DEMO_CLASS_FILE``) or, without one, `DEFAULT_DATASET`.
    """
    value = _session(state).get(DATASET_KEY)
    if isinstance(value, str) and value:
        return value
    if default is None:
        from unet_demo.settings import class_file
        from unet_demo.training.classroom import load_class_settings

        try:
            default = load_class_settings(class_file()).default_dataset or DEFAULT_DATASET
        except UNetDemoError:
            default = DEFAULT_DATASET
    return default


def set_dataset(name: str, state: MutableMapping[str, Any] | None = None) -> None:
    """Store the chosen dataset name for other pages.

    Args:
        name: a bundled dataset name.
        state: a mapping to write (tests); default `st.session_state`.
    """
    _session(state)[DATASET_KEY] = name
