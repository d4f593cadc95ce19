"""Evaluation: how good is a model against ground truth?

Modules: ``metrics`` (numpy Dice, IoU, precision, recall, HD95, ASD of one mask pair),
``scores`` (per-image tables, worst cases, confusion matrix, threshold sweep), ``evaluate``
(a model on a split or a folder, before and after post-processing). Never imports TensorFlow.
"""
