"""Build: design a U-Net; live parameters, FLOPs, memory, diagram, summary and Keras code."""

from unet_demo.ui.build_ui import build_page
from unet_demo.ui.common import page_setup

page_setup("Build a U-Net", "🧱")
build_page()
