"""unet-demo: teach and demonstrate U-Net segmentation of medical images.

The engine lives here; only ``unet_demo.ui`` and ``pages/`` import streamlit.
Education and research only, not for diagnosis.
"""

from unet_demo import settings as _settings

__version__ = "0.1.0"

DISCLAIMER = "Education and research only, not for diagnosis."

# TensorFlow reads its oneDNN and thread switches once, when it loads: set them first.
_settings.prepare_tensorflow()
