"""Learn: the core U-Net concepts as short chapters with try-it links, a glossary and a scored quiz."""

from unet_demo.ui.common import page_setup
from unet_demo.ui.learn_ui import learn_page

page_setup("Learn U-Net", "🎓")
learn_page()
