"""Entry point of unet-demo: the navigation menu, and the home page.

Run with `streamlit run streamlit_app.py`. The home page says what U-Net segmentation is, shows the
bundled datasets and links to the other pages; it must not import TensorFlow. The other pages are
the files in `pages/`, listed in `unet_demo/ui/common.py` so the menu can name them ("Home" rather
than the file name); that module also explains why a deep link as a server's first request is
rerouted through this file.

Every visit also makes sure the training queue's dispatcher runs in this server process, so runs
left waiting by a server restart start even before anyone opens the Train page.
"""

import streamlit as st

from unet_demo.training.jobs import get_job_manager
from unet_demo.ui.common import navigation_menu

get_job_manager().start_dispatcher()
st.navigation(navigation_menu()).run()
