"""U-Net builders, the seed models, the architecture calculator and Keras code export.

Modules are imported on use (``from unet_demo.models.builder import build_unet``) so that
light pages can read configs without loading TensorFlow.
"""
