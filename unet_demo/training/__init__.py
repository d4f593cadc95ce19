"""Training engine: typed events, run directories, the Keras training run and the job manager.

Importing this package is cheap (no TensorFlow); `unet_demo.training.runner` imports TensorFlow
when it is used.
"""
