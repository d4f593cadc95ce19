"""Widget values that survive a trip to another page.

Streamlit drops a widget's entry in ``st.session_state`` at the end of any run in which the
widget was not drawn, so a page's sliders and toggles reset when the user visits another page
and comes back. The Streamlit docs ("Working with widgets in multipage apps", the options that
use Session State directly) keep a copy under a key that belongs to no widget and hand it back
when the widget is drawn again. Here the copy lives under ``<widget key>.kept`` and goes back as
the widget's default value: for the widgets used here Streamlit identifies a keyed widget by its
key alone, so the default only matters on the run that re-creates the widget (no "default value
and Session State" warning, no reset when the default changes).

Example:
    >>> state = {}
    >>> kept("data.opacity", 0.45, state)
    0.45
    >>> keep("data.opacity", 0.9, state)
    0.9
    >>> kept("data.opacity", 0.45, state), kept_index("data.norm", ["minmax", "zscore"], state)
    (0.9, 0)
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any

KEPT_SUFFIX = ".kept"


def _session(state: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
    if state is not None:
        return state
    import streamlit as st

    return st.session_state


def kept(key: str, default: Any, state: MutableMapping[str, Any] | None = None) -> Any:
    """The value last stored for widget `key` (or `default`): pass it as the widget's default.

    Args:
        key: the widget's key.
        default: the value before the user touched the widget.
        state: a mapping to read (tests); default `st.session_state`.

    Example:
        >>> kept("evaluate.tta", False, {"evaluate.tta.kept": True})
        True
    """
    return _session(state).get(key + KEPT_SUFFIX, default)


def kept_index(key: str, options: Sequence[Any], state: MutableMapping[str, Any] | None = None,
               default: int = 0) -> int:
    """Position of the stored value of a selectbox or radio `key` in `options` (else `default`).

    Args:
        key: the widget's key.
        options: the widget's options, as passed to it.
        state: a mapping to read (tests); default `st.session_state`.
        default: index used when nothing is stored or the stored value is not an option.

    Example:
        >>> kept_index("data.split", ["train", "val"], {"data.split.kept": "val"})
        1
    """
    value = _session(state).get(key + KEPT_SUFFIX)
    options = list(options)
    return options.index(value) if value in options else default


def keep(key: str, value: Any, state: MutableMapping[str, Any] | None = None) -> Any:
    """Store widget `key`'s current value under its non-widget key; returns `value`.

    Args:
        key: the widget's key.
        value: what the widget returned this run.
        state: a mapping to write (tests); default `st.session_state`.

    Example:
        >>> keep("augment.image_only", True, {})
        True
    """
    _session(state)[key + KEPT_SUFFIX] = value
    return value
