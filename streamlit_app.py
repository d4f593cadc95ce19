"""Home page of unet-demo: what U-Net segmentation is, the bundled datasets, links to pages.

Run with `streamlit run streamlit_app.py`. This page must not import TensorFlow.
"""

from unet_demo.ui.common import page_setup
from unet_demo.ui.home_ui import home_page

page_setup("U-Net segmentation, hands on", "🩻")
home_page()
