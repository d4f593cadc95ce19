"""Streamlit glue of the shareable links: read ``?x=`` once, keep the URL in step, show the link.

The encoding and every check live in `unet_demo.training.links`; this module only moves a
link between ``st.query_params`` and a page's widgets. A page calls `restore_link` before it
draws its widgets (a new ``x`` in the URL is decoded once and written into the widgets' session
state) and `copy_link_ui` after them (the current state becomes the URL's ``x`` and is shown as
a link to copy). A bad link gives one `st.warning` sentence and the page's defaults.

Example:
    >>> restore_link("build", lambda link: None)  # doctest: +SKIP
    >>> copy_link_ui(BuildLink(UNetConfig()))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from unet_demo.errors import UNetDemoError
from unet_demo.training.links import (
    LINK_KINDS,
    LINK_PARAM,
    Link,
    LinkError,
    decode_link,
    decode_payload,
    encode_link,
)

SEEN_PREFIX = "links.seen."
"""Session-state key prefix (+ page kind) of the last token read from or written to the URL."""


def restore_link(kind: str, apply: Callable[[Link], None]) -> bool:
    """Apply the URL's link to this page's widgets once (call before drawing them).

    A token this session wrote or read already is skipped, so the widgets stay the user's.

    Args:
        kind: the page, "build", "augment" or "train".
        apply: writes a decoded link into the widgets' session state; it may raise
            `UNetDemoError` (e.g. a variant the class does not allow), shown as a warning.

    Returns:
        True when a link was applied on this run.
    """
    token = st.query_params.get(LINK_PARAM)
    state = st.session_state
    if not token or state.get(SEEN_PREFIX + kind) == token:
        return False
    state[SEEN_PREFIX + kind] = token
    try:
        link = decode_link(token, kind)
    except LinkError as error:
        if _other_page(token, kind):
            return False  # another page's settings, left behind by a page switch: not ours
        st.warning(str(error), icon=":material/link_off:")
        return False
    try:
        apply(link)
    except UNetDemoError as error:
        st.warning(f"{error} The link's settings were not applied.", icon=":material/link_off:")
        return False
    return True


def _other_page(token: str, kind: str) -> bool:
    try:
        found = decode_payload(token).get("k")
    except LinkError:
        return False
    return found in LINK_KINDS and found != kind


def sync_link(link: Link) -> str:
    """Put `link` into the URL's ``x`` (only when it changed) and return the token.

    ``x`` always goes first, before ``run`` and any other parameter: the same state gives the
    same address whichever of them a page wrote first (a page switch clears the query string
    and the Train page writes ``run`` back before ``x``), so a copied address stays comparable.
    """
    token = encode_link(link)
    st.session_state[SEEN_PREFIX + link.kind] = token
    params = st.query_params
    keys = list(params.keys())
    if params.get(LINK_PARAM) != token or keys[:1] != [LINK_PARAM]:
        others = {key: params.get_all(key) for key in keys if key != LINK_PARAM}
        params.from_dict({LINK_PARAM: token, **others})
    return token


def link_url(token: str) -> str:
    """The full link: the page's address from ``st.context.url``, else a relative ``?x=...``."""
    try:
        base = st.context.url
    except Exception:  # no browser behind this run (AppTest, bare mode): a relative link
        base = None
    return f"{base}?{LINK_PARAM}={token}" if base else f"?{LINK_PARAM}={token}"


def copy_link_ui(link: Link) -> str:
    """Keep the URL in step with `link` and show it in a "Copy link" expander; returns the URL.

    `st.code` shows the whole link as text (select it, or use its copy icon), so it works
    without the browser's clipboard permission.

    Args:
        link: this page's current settings.
    """
    url = link_url(sync_link(link))
    with st.expander("Copy link", icon=":material/link:"):
        st.caption("This link opens this page with these settings, for a classmate or your "
                   "notes. It holds settings only, no run or ownership: whoever opens it "
                   "starts their own run. The address bar shows the same link.")
        st.code(url, language=None, wrap_lines=True)
    return url
