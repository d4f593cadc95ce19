"""unet-demo: teach and demonstrate U-Net segmentation of medical images.

The engine lives here; only ``unet_demo.ui`` and ``pages/`` import streamlit.
Education and research only, not for diagnosis.
"""

__version__ = "0.1.0"

DISCLAIMER = "Education and research only, not for diagnosis."
