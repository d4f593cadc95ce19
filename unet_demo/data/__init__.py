"""Data layer: file readers and validation, preprocessing, bundled datasets, tf.data pipeline.

Import submodules directly (``from unet_demo.data.readers import read_image_bytes``).
``unet_demo.data.pipeline`` imports TensorFlow, so nothing here imports it eagerly.
"""
