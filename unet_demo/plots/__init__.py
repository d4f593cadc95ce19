"""Figures and pictures for the pages: arrays in, plotly figures or RGB arrays out.

Modules: ``images`` (display scaling, overlays, outlines, error maps, legends), ``data``
(dataset statistics), ``models`` (the U-Net diagram), ``training`` (curves), ``evaluation``
(per-image scores, threshold sweep, confusion, TTA variance). Nothing here imports streamlit
or TensorFlow.
"""
