"""Inside: feature maps, attention gates, receptive field, skip ablation and loss maps of a model."""

import streamlit as st

from unet_demo.ui.common import page_setup
from unet_demo.ui.inside_ui import inside_page

page_setup("Inside the U-Net", "🔬")
st.markdown(
    "Open a trained U-Net and follow one image through it: what each level of the encoder, the "
    "bottleneck and the decoder computes, what the skip connections carry, where attention "
    "gates look, how far each pixel sees, what happens when a skip is switched off, and where "
    "each loss pulls during training."
)
inside_page()
