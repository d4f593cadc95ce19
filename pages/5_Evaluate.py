"""Evaluate: per-image metrics, error maps, thresholds, post-processing and TTA for a model."""

import streamlit as st

from unet_demo.ui.common import page_setup
from unet_demo.ui.comparison_ui import evaluate_views

page_setup("Evaluate a model", "📏")
st.markdown(
    "Compare predictions with the ground truth image by image. **Dice** and **IoU** measure "
    "overlap (1 = perfect), **HD95** the 95th-percentile boundary distance in pixels (0 = "
    "perfect; empty when exactly one of mask and prediction is empty, and such images are "
    "left out of its mean). The error map colours what the model found, added and missed."
)
evaluate_views()
