"""Registry of the models shipped with the app, plus one way to open any model by name or path.

Bundled models live in ``models/bundled/<dataset>/`` (override the folder with the environment
variable ``UNET_DEMO_BUNDLED_MODELS_DIR``), one folder per bundled dataset:

    model.keras        the trained Keras 3 model (loaded with safe_mode=True)
    card.json          model card: config, seed, data, test metrics, limitations
    fingerprint.json   training-set fingerprint for out-of-distribution warnings (see unet_demo.inference.ood)

They are made by ``scripts/train_bundled_models.py``. `open_model` also accepts a training run
directory (``runs/<id>/`` with model.keras and config.json) or a ``.keras`` file, so the CLI and
the pages treat every model the same way.

Example:
    >>> [m.name for m in list_bundled_models()]
    ['brain_skullstrip', 'brain_tissue', 'nuclei', 'synthetic_lesions']
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from unet_demo.errors import UNetDemoError
from unet_demo.settings import REPO_ROOT

BUNDLED_PREFIX = "bundled:"
MODEL_FILE = "model.keras"
CARD_FILE = "card.json"
FINGERPRINT_FILE = "fingerprint.json"
MAX_BUNDLED_BYTES = 5 * 1024 * 1024


def bundled_models_dir() -> Path:
    """Folder holding one sub-folder per bundled model (``UNET_DEMO_BUNDLED_MODELS_DIR``)."""
    return Path(os.environ.get("UNET_DEMO_BUNDLED_MODELS_DIR", REPO_ROOT / "models" / "bundled"))


@dataclasses.dataclass(frozen=True)
class BundledModelInfo:
    """What the pages show about a bundled model before loading it.

    Attributes:
        name: folder name, equal to the bundled dataset it was trained on.
        title: human title from the card (falls back to the name).
        path: the model.keras file.
        dataset: dataset name the model was trained on.
        num_classes: label count of the task.
        size_bytes: model file size.
        card: the full card.json contents.
    """

    name: str
    title: str
    path: Path
    dataset: str
    num_classes: int
    size_bytes: int
    card: dict[str, Any]


def list_bundled_models() -> list[BundledModelInfo]:
    """Bundled models that have a model.keras file, sorted by name.

    Example:
        >>> isinstance(list_bundled_models(), list)
        True
    """
    root = bundled_models_dir()
    if not root.is_dir():
        return []
    infos = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        model_path = folder / MODEL_FILE
        if model_path.is_file():
            infos.append(_info(folder.name, model_path))
    return infos


def bundled_model_names() -> list[str]:
    """Names of the available bundled models."""
    return [info.name for info in list_bundled_models()]


def bundled_model_path(name: str) -> Path:
    """Path of a bundled model's model.keras, or a UNetDemoError listing the valid names.

    Args:
        name: bundled model name, e.g. "nuclei" (a "bundled:" prefix is accepted).

    Example:
        >>> bundled_model_path("bundled:nuclei").relative_to(bundled_models_dir()).as_posix()
        'nuclei/model.keras'
        >>> bundled_model_path("no_such_model")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        unet_demo.errors.UNetDemoError: No bundled model named 'no_such_model'. Available: [...].
    """
    name = name.removeprefix(BUNDLED_PREFIX)
    path = bundled_models_dir() / name / MODEL_FILE
    if "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
        names = bundled_model_names()
        hint = (
            f"Available: {names}." if names else
            "None are installed yet: run `python scripts/train_bundled_models.py`."
        )
        raise UNetDemoError(f"No bundled model named {name!r}. {hint}")
    return path


def get_bundled_model_info(name: str) -> BundledModelInfo:
    """Card-derived information about one bundled model."""
    name = name.removeprefix(BUNDLED_PREFIX)
    return _info(name, bundled_model_path(name))


def load_bundled_card(name: str) -> dict[str, Any]:
    """The model card (card.json) of a bundled model; {} when it has none."""
    return _read_json(bundled_model_path(name).parent / CARD_FILE) or {}


def load_bundled_fingerprint(name: str) -> dict[str, Any] | None:
    """The training fingerprint of a bundled model; None when it has none."""
    from unet_demo.inference.ood import load_fingerprint

    return load_fingerprint(bundled_model_path(name).parent / FINGERPRINT_FILE)


def load_bundled_model(name: str):
    """Load a bundled model safely (safe_mode) and wrap it in a thread-safe `SharedModel`.

    The loaded model is kept for the life of the process, so every caller shares one copy.

    Args:
        name: bundled model name.

    Example:
        >>> shared = load_bundled_model("nuclei")
        >>> shared.model_id  # doctest: +ELLIPSIS
        'bundled:nuclei@...'
        >>> shared is load_bundled_model("bundled:nuclei")  # one copy per process
        True
    """
    return open_model(BUNDLED_PREFIX + name.removeprefix(BUNDLED_PREFIX)).shared


# --------------------------------------------------------------------------- any model

@dataclasses.dataclass
class ModelHandle:
    """A loaded model with what callers need to feed it and to key caches.

    Attributes:
        model_id: stable string for cache keys, e.g. "bundled:nuclei@<sha256 prefix>".
        title: human label.
        shared: `unet_demo.inference.shared.SharedModel` wrapping the Keras model.
        input_shape: (H, W, C) the model expects.
        num_classes: label count (1 or 2 = binary).
        dataset: training dataset name when known ("" otherwise).
        card: model card or run config ({} when unknown).
        fingerprint: training fingerprint or None.
        source: the folder or file the model came from.
        normalization: intensity normalisation the model was trained with ("minmax" default).
    """

    model_id: str
    title: str
    shared: Any
    input_shape: tuple[int, int, int]
    num_classes: int
    dataset: str
    card: dict[str, Any]
    fingerprint: dict[str, Any] | None
    source: Path
    normalization: str = "minmax"

    def predict(self, images: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """Probabilities (N, H, W, K) for float32 images (N, H, W, C) at the model's size."""
        return predict_with(self.shared, images, batch_size)

    def predict_fn(self, batch_size: int = 8):
        """A ``predict_fn(images) -> probabilities`` callable for evaluation and TTA."""
        return lambda images: self.predict(images, batch_size)


def compatible_datasets(handle: ModelHandle) -> list[str]:
    """Bundled datasets (files present) with the model's class count and input channels.

    A binary model (1 sigmoid channel) fits a dataset with 2 labels, like a 2-class softmax.

    Args:
        handle: the opened model.

    Example:
        >>> handle = open_model("bundled:nuclei")
        >>> compatible_datasets(handle)
        ['brain_skullstrip', 'nuclei', 'synthetic_lesions']
    """
    from unet_demo.data.bundled import available_datasets

    names = [info.name for info in available_datasets()
             if dataset_fits(info.num_classes, info.channels, handle.num_classes,
                             handle.input_shape[-1])]
    return names + uploaded_datasets_for(handle)


def uploaded_datasets_for(handle: ModelHandle) -> list[str]:
    """Uploaded datasets ("upload:<id>") whose classes and channels fit the model.

    The model's own upload comes first; an unreadable uploads folder gives [].

    Args:
        handle: the opened model.

    Example:
        >>> isinstance(uploaded_datasets_for(open_model("bundled:nuclei")), list)
        True
    """
    from unet_demo.data.upload_dataset import list_uploaded_datasets

    try:
        cards = list_uploaded_datasets()
    except (UNetDemoError, OSError):
        return []
    names = [str(card["name"]) for card in cards
             if "name" in card and dataset_fits(max(2, int(card.get("num_classes") or 1)),
                                                int(card.get("channels") or 1),
                                                handle.num_classes, handle.input_shape[-1])]
    return sorted(names, key=lambda name: name != handle.dataset)


def dataset_fits(dataset_classes: int, dataset_channels: int, model_classes: int,
                 model_channels: int) -> bool:
    """True when a dataset's labels and channels match a model's outputs and inputs.

    Args:
        dataset_classes: labels including background (2 for a binary dataset).
        dataset_channels: image channels of the dataset.
        model_classes: model output channels (1 = sigmoid, binary).
        model_channels: model input channels.

    Example:
        >>> dataset_fits(2, 1, 1, 1), dataset_fits(4, 1, 1, 1), dataset_fits(2, 3, 2, 1)
        (True, False, False)
    """
    return (max(2, int(dataset_classes)) == max(2, int(model_classes))
            and int(dataset_channels) == int(model_channels))


# (path, mtime): the first handle of a file (its loaded model); (path, mtime, id prefix):
# the handle of each name the file was opened under, sharing that model.
_CACHE: dict[tuple, ModelHandle] = {}
_CACHE_LOCK = threading.Lock()


def open_model(spec: str | Path) -> ModelHandle:
    """Open ``bundled:NAME``, a run directory, or a ``.keras`` file; cached per file and mtime.

    A file is loaded once per process; its handle's ``model_id`` names what was opened
    (``bundled:NAME@...`` also for a bundled model's own path, ``file:PATH@...`` otherwise), so
    the id does not depend on which caller opened the file first.

    Args:
        spec: "bundled:nuclei", "runs/20250101-abc" (a folder with model.keras) or "m.keras".

    Example:
        >>> handle = open_model("bundled:nuclei")
        >>> handle.input_shape, handle.num_classes, handle.dataset
        ((128, 128, 1), 1, 'nuclei')
    """
    text = str(spec)
    if text.startswith(BUNDLED_PREFIX):
        name = text.removeprefix(BUNDLED_PREFIX)
        model_path = bundled_model_path(name)
        folder = model_path.parent
        card = _read_json(folder / CARD_FILE) or {}
        id_prefix = text
        title = str(card.get("title") or f"Bundled model: {name}")
    else:
        path = Path(text).expanduser()
        if path.is_dir():
            model_path = path / MODEL_FILE
            folder = path
        else:
            model_path = path
            folder = path.parent
        if not model_path.is_file():
            raise UNetDemoError(
                f"No model found at {text!r}. Expected 'bundled:NAME' (one of "
                f"{bundled_model_names()}), a run folder containing {MODEL_FILE}, or a .keras file."
            )
        if model_path.suffix != ".keras":
            raise UNetDemoError(
                f"Only Keras 3 '.keras' model files can be loaded (safely). Received: {text!r}. "
                "Re-save the model with model.save('model.keras')."
            )
        card = _read_json(folder / CARD_FILE) or _read_json(folder / "config.json") or {}
        id_prefix = f"file:{model_path.resolve()}"
        title = str(card.get("title") or folder.name or model_path.name)
        bundled_root = bundled_models_dir().resolve()
        if model_path.name == MODEL_FILE and model_path.resolve().parent.parent == bundled_root:
            # A bundled model opened by its path has the name it has in the menus.
            id_prefix = f"{BUNDLED_PREFIX}{model_path.resolve().parent.name}"
            title = str(card.get("title") or f"Bundled model: {folder.name}")
    stat = model_path.stat()
    key = (str(model_path.resolve()), stat.st_mtime)
    with _CACHE_LOCK:
        named = _CACHE.get((*key, id_prefix))
        if named is not None:
            return named
        first = _CACHE.get(key)  # the file is loaded once, whatever it is called
        if first is None:
            named = first = _load_handle(model_path, folder, card, id_prefix, title)
            _CACHE[key] = first
        else:  # the same loaded model under this name (its id names what the caller opened)
            digest = first.model_id.rsplit("@", 1)[1]
            named = dataclasses.replace(first, model_id=f"{id_prefix}@{digest}", title=title)
        _CACHE[(*key, id_prefix)] = named
        return named


def _load_handle(model_path: Path, folder: Path, card: dict[str, Any], id_prefix: str,
                 title: str) -> ModelHandle:
    from unet_demo.inference.ood import load_fingerprint
    from unet_demo.inference.shared import SharedModel
    from unet_demo.models.safe_load import load_model_file

    model = load_model_file(model_path)
    shape = tuple(model.input_shape)
    if len(shape) != 4 or any(v is None for v in shape[1:]):
        raise UNetDemoError(
            f"The model in {model_path} takes input {shape}; this app needs a 2-D model with a "
            "fixed (batch, height, width, channels) input."
        )
    outputs = int(model.output_shape[-1])
    model_id = f"{id_prefix}@{_file_digest(model_path)[:12]}"
    return ModelHandle(
        model_id=model_id,
        title=title,
        shared=SharedModel(model, model_id=model_id),
        input_shape=(int(shape[1]), int(shape[2]), int(shape[3])),
        num_classes=outputs if outputs > 1 else 1,
        dataset=dataset_of(card),
        card=card,
        fingerprint=load_fingerprint(folder / FINGERPRINT_FILE),
        source=folder,
        normalization=recorded_normalization(card),
    )


def predict_with(shared: Any, images: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Predict probabilities with a `SharedModel` (or a bare Keras model); always (N, H, W, K)."""
    batch = np.asarray(images, dtype=np.float32)
    if not hasattr(shared, "predict_probabilities"):
        from unet_demo.inference.shared import SharedModel

        shared = SharedModel(shared)
    out = np.asarray(shared.predict_probabilities(batch, batch_size=batch_size), np.float32)
    return out[..., None] if out.ndim == 3 else out


def _info(name: str, model_path: Path) -> BundledModelInfo:
    card = _read_json(model_path.parent / CARD_FILE) or {}
    return BundledModelInfo(
        name=name,
        title=str(card.get("title") or name.replace("_", " ").capitalize()),
        path=model_path,
        dataset=dataset_of(card) or name,
        num_classes=int(card.get("num_classes") or nested_value(card, "model", "num_classes") or 1),
        size_bytes=model_path.stat().st_size,
        card=card,
    )


def recorded_normalization(card: dict[str, Any]) -> str:
    """The intensity normalisation a model was trained with, from its card or run config.

    A run folder's config.json holds it at ``data.normalization``; a bundled model's card.json
    keeps the run config under ``config``. Models without a record were trained on "minmax".

    Args:
        card: card.json or config.json contents.

    Example:
        >>> recorded_normalization({"config": {"data": {"normalization": "zscore"}}})
        'zscore'
        >>> recorded_normalization({})
        'minmax'
    """
    for keys in (("data", "normalization"), ("config", "data", "normalization")):
        value = nested_value(card, *keys)
        if isinstance(value, str):
            return value
    return "minmax"


def dataset_of(card: dict[str, Any]) -> str:
    """The dataset a model was trained on, from its card or run config ("" when unknown).

    Example:
        >>> dataset_of({"data": {"dataset": "nuclei"}})
        'nuclei'
    """
    for keys in (("dataset",), ("data", "dataset"), ("data_config", "dataset")):
        value = nested_value(card, *keys)
        if isinstance(value, str):
            return value
    return ""


def nested_value(data: dict[str, Any], *keys: str) -> Any:
    """``data[k1][k2]...``, or None when a key is missing on the way.

    Example:
        >>> nested_value({"a": {"b": 1}}, "a", "b"), nested_value({}, "a", "b")
        (1, None)
    """
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UNetDemoError(f"Could not read {path}: {error}.") from None
    return data if isinstance(data, dict) else None


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


