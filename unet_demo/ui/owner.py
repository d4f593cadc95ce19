"""Who is this browser? The owner secret that makes a run "yours", kept across reloads.

A run belongs to the browser that started it: `unet_demo.training.jobs` stores a hash of the
browser's owner secret in the run's job.json, and only that browser (or an operator with the
``UNET_DEMO_ADMIN_TOKEN``) may stop or cancel it. The secret lives in session state and in a
cookie of this app (``unet_demo_owner``, 30 days, SameSite=Strict), so a reload keeps
ownership; it never goes into a URL, so a shared ``?run=`` link lets others watch, not stop.
A fresh secret is written to the cookie by a tiny script (`st.html` with JavaScript, which
Streamlit runs in the page itself); `st.context.cookies` reads it back on the next visit.

Example:
    >>> valid_secret("abc"), valid_secret("A" * 32)
    (False, True)
"""

from __future__ import annotations

import re

import streamlit as st

from unet_demo.training.jobs import is_admin, new_owner_secret

OWNER_COOKIE = "unet_demo_owner"
SECRET_KEY = "owner.secret"
COOKIE_SET_KEY = "owner.cookie_written"
ADMIN_KEY = "owner.admin_token"
COOKIE_DAYS = 30
_SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{24,64}$")


def valid_secret(value: object) -> bool:
    """Whether a cookie value looks like a secret made by `new_owner_secret`.

    Args:
        value: the cookie's value.
    """
    return isinstance(value, str) and bool(_SECRET_PATTERN.match(value))


def owner_secret() -> str:
    """This browser's owner secret: session state, else the cookie, else a new one."""
    state = st.session_state
    secret = state.get(SECRET_KEY)
    if valid_secret(secret):
        return secret
    try:
        cookie = st.context.cookies.get(OWNER_COOKIE)
    except Exception:  # noqa: BLE001 - no browser context (bare script, AppTest)
        cookie = None
    secret = cookie if valid_secret(cookie) else new_owner_secret()
    state[SECRET_KEY] = secret
    if secret == cookie:
        state[COOKIE_SET_KEY] = True
    return secret


def remember_owner() -> None:
    """Write the owner secret into this app's cookie once per session (keeps it on reload)."""
    secret = owner_secret()
    if st.session_state.get(COOKIE_SET_KEY):
        return
    st.session_state[COOKIE_SET_KEY] = True
    max_age = COOKIE_DAYS * 24 * 3600
    st.html(f"<script>document.cookie = '{OWNER_COOKIE}={secret}; path=/; "
            f"max-age={max_age}; SameSite=Strict';</script>", unsafe_allow_javascript=True)


def operator_token() -> str | None:
    """The operator token typed on this session's Train page (None when none was entered)."""
    token = st.session_state.get(ADMIN_KEY)
    return token or None


def operator_ui() -> None:
    """An "Operator" box: the ``UNET_DEMO_ADMIN_TOKEN`` lets this session stop any run."""
    with st.expander("Operator (teacher) controls"):
        st.text_input("Operator token", type="password", key=ADMIN_KEY,
                      help="The server's UNET_DEMO_ADMIN_TOKEN. With it, this browser may "
                           "stop or cancel anyone's run.")
        token = operator_token()
        if token and is_admin(token):
            st.success("Operator mode: you may stop or cancel any run.")
        elif token:
            st.error("That is not the operator token of this server.")
