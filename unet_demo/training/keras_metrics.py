"""Keras training metrics: Dice, IoU, precision and recall accumulated over an epoch.

The formulas are those of `unet_demo.evaluation.metrics` (numpy, per image); here TP/FP/FN are
summed over every pixel of an epoch. Keras is imported on first use only.

Example:
    >>> [m.name for m in keras_metrics(1)]
    ['dice', 'iou', 'precision', 'recall']
"""

from __future__ import annotations


def _keras_overlap_metric_class():
    """Build (once) the Keras metric class; keeps TensorFlow/Keras out of module import."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="unet_demo")
    class OverlapScore(keras.metrics.Metric):
        """Dice, IoU, precision or recall accumulated over all pixels seen in an epoch.

        Predictions are thresholded (sigmoid, ``num_classes == 1``) or arg-maxed (softmax);
        TP/FP/FN per foreground class are summed over every batch, and the score is the mean
        over foreground classes of the formula in `unet_demo.metrics` (a class with no pixels
        in truth or prediction so far scores 1).

        Args:
            kind: "dice", "iou", "precision" or "recall".
            num_classes: 1 for sigmoid output, K for softmax.
            threshold: sigmoid cut.
            name: metric name in logs (defaults to ``kind``).
            class_id: score this one foreground class of a softmax output only (default:
                the mean over all foreground classes).
        """

        def __init__(self, kind="dice", num_classes=1, threshold=0.5, name=None,
                     class_id=None, **kwargs):
            super().__init__(name=name or kind, **kwargs)
            if kind not in ("dice", "iou", "precision", "recall"):
                raise ValueError("kind must be dice, iou, precision or recall. "
                                 f"Received: {kind!r}")
            self.kind = kind
            self.num_classes = int(num_classes)
            self.threshold = float(threshold)
            self.class_id = None if class_id is None else int(class_id)
            if self.class_id is not None and not 1 <= self.class_id < self.num_classes:
                raise ValueError(f"class_id must be a foreground class 1..{self.num_classes - 1} "
                                 f"of a softmax output. Received: {class_id!r}")
            slots = 1 if self.num_classes == 1 or self.class_id is not None else (
                self.num_classes - 1)
            self.tp = self.add_variable(shape=(slots,), initializer="zeros", name="tp")
            self.fp = self.add_variable(shape=(slots,), initializer="zeros", name="fp")
            self.fn = self.add_variable(shape=(slots,), initializer="zeros", name="fn")

        def update_state(self, y_true, y_pred, sample_weight=None):
            y_pred = ops.convert_to_tensor(y_pred)
            y_true = ops.convert_to_tensor(y_true)
            if self.num_classes == 1:
                pred = ops.reshape(ops.cast(y_pred >= self.threshold, "float32"), [-1, 1])
                true = ops.reshape(ops.cast(y_true > 0.5, "float32"), [-1, 1])
            else:
                if len(y_true.shape) == len(y_pred.shape):
                    y_true = ops.squeeze(y_true, axis=-1)
                labels = ops.reshape(ops.cast(y_true, "int32"), [-1])
                predicted = ops.reshape(ops.argmax(y_pred, axis=-1), [-1])
                first, last = ((1, self.num_classes) if self.class_id is None
                               else (self.class_id, self.class_id + 1))
                true = ops.one_hot(labels, self.num_classes, dtype="float32")[:, first:last]
                pred = ops.one_hot(predicted, self.num_classes, dtype="float32")[:, first:last]
            self.tp.assign_add(ops.sum(true * pred, axis=0))
            self.fp.assign_add(ops.sum((1.0 - true) * pred, axis=0))
            self.fn.assign_add(ops.sum(true * (1.0 - pred), axis=0))

        def result(self):
            if self.kind == "dice":
                num, den = 2.0 * self.tp, 2.0 * self.tp + self.fp + self.fn
            elif self.kind == "iou":
                num, den = self.tp, self.tp + self.fp + self.fn
            elif self.kind == "precision":
                num, den = self.tp, self.tp + self.fp
            else:
                num, den = self.tp, self.tp + self.fn
            empty = ops.equal(self.tp + self.fp + self.fn, 0.0)
            safe = ops.where(den > 0, den, ops.ones_like(den))
            score = ops.where(den > 0, num / safe, ops.where(empty, 1.0, 0.0))
            return ops.mean(score)

        def reset_state(self):
            for variable in (self.tp, self.fp, self.fn):
                variable.assign(ops.zeros_like(variable))

        def get_config(self):
            config = super().get_config()
            config.update({"kind": self.kind, "num_classes": self.num_classes,
                           "threshold": self.threshold, "class_id": self.class_id})
            return config

    return OverlapScore


_OVERLAP_CLASS = None


def overlap_metric_class():
    """The registered Keras metric class ``unet_demo>OverlapScore`` (imports Keras on first use)."""
    global _OVERLAP_CLASS
    if _OVERLAP_CLASS is None:
        _OVERLAP_CLASS = _keras_overlap_metric_class()
    return _OVERLAP_CLASS


def keras_metrics(num_classes: int, threshold: float = 0.5) -> list:
    """Training metrics for ``model.compile``: dice, iou, precision, recall.

    All four are `OverlapScore` (mean over foreground classes, accumulated over the epoch).
    IoU used to be Keras' BinaryIoU/IoU; those build a confusion matrix with a scatter over
    every pixel, about 5 ms of the classroom net's 150 ms training step on 2 cores, for the
    same TP / (TP + FP + FN).

    Args:
        num_classes: model output channels (1 = sigmoid).
        threshold: sigmoid cut for the binary metrics.

    Example:
        >>> import numpy as np
        >>> truth = np.zeros((1, 4, 4, 1), np.float32); truth[0, :2] = 1  # 8 foreground pixels
        >>> prediction = np.zeros((1, 4, 4, 1), np.float32); prediction[0, :1] = 0.9  # 4 of them
        >>> metrics = keras_metrics(1)
        >>> for metric in metrics:
        ...     _ = metric.update_state(truth, prediction)
        >>> {metric.name: round(float(metric.result()), 3) for metric in metrics}
        {'dice': 0.667, 'iou': 0.5, 'precision': 1.0, 'recall': 0.5}
    """
    overlap = overlap_metric_class()
    return [overlap(kind, num_classes, threshold) for kind in ("dice", "iou", "precision",
                                                                 "recall")]
