"""Inference: open a model, run it on any image or volume, turn outputs into clean label masks.

Modules: ``registry`` (bundled models and `open_model` for any model), ``shared`` (one
thread-safe model shared by all sessions), ``labels`` (probabilities -> labels), ``segment``
(one image or volume of any size), ``tta`` (flip test-time augmentation), ``postprocess``
(morphological clean-up), ``ood`` (is this image like the training data?), ``encoders``
(mask files). Only numpy at import time; TensorFlow is loaded with the first model.
"""
