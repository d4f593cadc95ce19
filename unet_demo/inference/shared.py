"""One read-only Keras model shared by many Streamlit sessions, and cache keys for its results.

Streamlit runs every session's script in its own thread, and `st.cache_resource` hands all of
them the same model object. ``model.predict`` is not safe to call from several threads at once
(it builds and caches a predict function and a data adapter on the model), so `SharedModel`
never calls it: it runs one compiled inference function, ``model(x, training=False)``, under a
per-model lock. Inference on these CPUs already uses every core inside one call, so the lock
costs little throughput and makes results independent of what other sessions do.

`inference_cache_key` keys cached results by the SHA-256 of the *raw uploaded bytes*, the
model id and the options. (`st.cache_data` hashes large arrays by sampling, so two different
images could share a key; hashing every byte cannot confuse them.)

Example:
    >>> from unet_demo.data.sources import load_split
    >>> from unet_demo.inference.registry import open_model
    >>> shared = open_model("bundled:nuclei").shared  # one SharedModel per model file
    >>> shared.predict_probabilities(load_split("nuclei", "test").images).shape
    (5, 128, 128, 1)
    >>> inference_cache_key(b"png bytes", "m1", {"threshold": 0.5})[:8]
    '335089ba'
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from pathlib import PurePath
from typing import Any

import numpy as np

from unet_demo.errors import UNetDemoError


class SharedModel:
    """Thread-safe, read-only inference wrapper around one `keras.Model`.

    Args:
        model: the loaded model (never trained or compiled through this wrapper).
        model_id: stable identifier for cache keys and messages.

    Example:
        >>> from unet_demo.models.safe_load import load_model_file
        >>> from unet_demo.settings import REPO_ROOT
        >>> model = load_model_file(REPO_ROOT / "models/bundled/nuclei/model.keras")
        >>> shared = SharedModel(model, model_id="bundled:nuclei@3f2a")
        >>> shared.input_shape, shared.output_shape, shared.calls
        ((None, 128, 128, 1), (None, 128, 128, 1), 0)
    """

    def __init__(self, model: Any, model_id: str = "") -> None:
        self._model = model
        self.model_id = model_id
        self._lock = threading.Lock()
        self._function = _inference_function(model)
        self.calls = 0
        """Number of batches run so far (for tests and load reports)."""

    @property
    def input_shape(self) -> tuple:
        """The model's input shape, e.g. (None, 128, 128, 1)."""
        return tuple(self._model.input_shape)

    @property
    def output_shape(self) -> tuple:
        """The model's output shape, e.g. (None, 128, 128, 1)."""
        return tuple(self._model.output_shape)

    @property
    def keras_model(self) -> Any:
        """The wrapped model, for reading its summary or config; do not call predict/fit on it."""
        return self._model

    def predict_probabilities(self, images: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """Run the model on float32 images (N, H, W, C) in batches; return float32 outputs.

        Args:
            images: a batch (N, H, W, C) or one image (H, W, C) at the model's input size.
            batch_size: images per call (smaller uses less memory).

        Example:
            >>> from unet_demo.data.sources import load_split
            >>> from unet_demo.inference.registry import open_model
            >>> shared = open_model("bundled:nuclei").shared
            >>> batch, calls = load_split("nuclei", "test").images, shared.calls  # 5 images
            >>> probabilities = shared.predict_probabilities(batch, batch_size=4)
            >>> probabilities.shape, probabilities.dtype, shared.calls - calls  # 4, then 1
            ((5, 128, 128, 1), dtype('float32'), 2)
        """
        batch = np.asarray(images, dtype=np.float32)
        if batch.ndim == 3:
            batch = batch[None]
        expected = self.input_shape
        if batch.ndim != 4 or any(
            want is not None and got != want
            for got, want in zip(batch.shape[1:], expected[1:], strict=False)
        ):
            raise UNetDemoError(
                f"The model expects images of shape {tuple(expected[1:])} (height, width, "
                f"channels). Received a batch of shape {batch.shape}. Resize the image to the "
                "model's input size first."
            )
        if len(batch) == 0:
            return np.zeros((0, *self.output_shape[1:]), np.float32)
        step = max(1, int(batch_size))
        outputs = []
        for start in range(0, len(batch), step):
            chunk = np.ascontiguousarray(batch[start:start + step])
            with self._lock:
                result = self._function(chunk)
                self.calls += 1
            outputs.append(np.asarray(result, dtype=np.float32))
        return np.concatenate(outputs, axis=0)

    __call__ = predict_probabilities


def _inference_function(model: Any):
    """``x -> model(x, training=False)``, compiled once as a graph when TensorFlow is the backend.

    The batch dimension is left open in the signature, so a smaller last batch does not
    retrace. Other backends call the model eagerly (still never through ``predict``).
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return lambda batch: keras.ops.convert_to_numpy(model(batch, training=False))
    import tensorflow as tf

    input_shape = tuple(model.input_shape)
    signature = [tf.TensorSpec((None, *input_shape[1:]), tf.float32)]

    @tf.function(input_signature=signature, reduce_retracing=True)
    def infer(batch):
        return model(batch, training=False)

    return lambda batch: infer(tf.convert_to_tensor(batch)).numpy()


# ------------------------------------------------------------------------------- cache keys


def _canonical(value: Any) -> Any:
    """Turn option values into plain JSON types, refusing anything without a stable form."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _canonical(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, PurePath):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise UNetDemoError(
        f"Cache-key options must be plain values (numbers, strings, lists, dicts). "
        f"Received a {type(value).__name__}."
    )


def inference_cache_key(raw_bytes: bytes, model_id: str, options: dict[str, Any]) -> str:
    """SHA-256 key of (every byte of the upload, the model id, the options).

    Args:
        raw_bytes: the uploaded file exactly as received (not a decoded array).
        model_id: identifies the model and its weights, e.g. "bundled:nuclei@3f2a9c0d1e2b".
        options: everything else that changes the result (threshold, TTA, post-processing,
            slice, window...); key order does not matter.

    Example:
        >>> a = inference_cache_key(b"abc", "m1", {"tta": False, "threshold": 0.5})
        >>> a == inference_cache_key(b"abc", "m1", {"threshold": 0.5, "tta": False})
        True
        >>> a == inference_cache_key(b"abd", "m1", {"tta": False, "threshold": 0.5})
        False
    """
    data = memoryview(raw_bytes).cast("B")
    options_text = json.dumps(_canonical(options), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256()
    # Length-prefix each part so that no two different triples produce the same stream.
    for part in (bytes(str(model_id), "utf-8"), options_text.encode("utf-8")):
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    digest.update(len(data).to_bytes(8, "little"))
    digest.update(data)
    return digest.hexdigest()
