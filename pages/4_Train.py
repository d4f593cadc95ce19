"""Train: pick data, model and settings, start a training job and watch it learn live."""

import streamlit as st

from unet_demo.ui.common import page_setup
from unet_demo.ui.train_ui import train_page

page_setup("Train a U-Net", "🏋️")

st.markdown(
    "Training shows the model many image/mask pairs and nudges its weights to lower the "
    "**loss**. Watch two curves: the **training** loss falls as the model fits the images it "
    "sees; the **validation** loss and Dice, measured on images it never trains on, tell you "
    "whether it generalises. When validation stops improving while training keeps "
    "improving, the model is memorising (overfitting): early stopping watches the validation "
    "Dice and keeps the weights of its best epoch; without it the last epoch is kept (the "
    "end message says which)."
)
train_page()
