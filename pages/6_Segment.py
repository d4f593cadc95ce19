"""Segment: upload PNG/JPEG/TIFF/DICOM/NIfTI images and segment them with a model."""

import streamlit as st

from unet_demo.ui.common import page_setup
from unet_demo.ui.segment_ui import segment_page

page_setup("Segment your own image", "✂️")
st.markdown(
    "Upload one or more images; a bundled model (no training needed) or a model you trained "
    "here draws the mask. Files are checked by their content on the server; nothing is kept."
)
segment_page()
