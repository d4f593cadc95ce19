"""Export: download a model as SavedModel, LiteRT (TFLite) or ONNX, with what each costs."""

import streamlit as st

from unet_demo.ui.common import page_setup
from unet_demo.ui.export_ui import export_page

page_setup("Export a model", "📦")
st.markdown(
    "Take a model out of the app: the same U-Net in the formats other runtimes read. Each "
    "export is loaded back and checked against the Keras model on the test images, so you see "
    "what a smaller or faster file costs in accuracy."
)
export_page()
