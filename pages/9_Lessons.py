"""Lessons: recorded experiments that answer the guide's questions at once, and a class plan."""

import streamlit as st

from unet_demo.ui.common import page_setup
from unet_demo.ui.lessons_ui import lessons_page

page_setup("Lessons: experiments replayed", "🧪")
st.markdown(
    "Each experiment asks one question from the guide and answers it with two to five recorded "
    "training runs that differ in one setting: replay their curves, scrub through the epochs "
    "to compare their predictions, read the measured answer, then train any run again yourself."
)
lessons_page()
