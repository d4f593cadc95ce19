"""Entry point of unet-demo: the navigation menu, and the home page.

Run with `streamlit run streamlit_app.py`. The home page says what U-Net segmentation is, shows the
bundled datasets and links to the other pages; it must not import TensorFlow. The other pages are
the files in `pages/`, listed here so the menu can name them ("Home" rather than the file name).
"""

import streamlit as st

from unet_demo.ui.common import page_setup
from unet_demo.ui.home_ui import PAGES, home_page


def home() -> None:
    """The home page body, drawn when the menu's first entry is selected."""
    page_setup("U-Net segmentation, hands on", "🩻")
    home_page()


menu = [st.Page(home, title="Home", icon=":material/home:", default=True)]
menu += [st.Page(path, title=label, icon=icon, url_path=label)
         for path, label, icon, _description in PAGES]
st.navigation(menu).run()
