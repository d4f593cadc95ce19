"""Open Keras model files without running code from them, and save models with provenance.

A ``.keras`` file is a ZIP holding ``config.json`` (the architecture), ``metadata.json`` and
``model.weights.h5``. Keras rebuilds the model from the config, so a config that names a
``Lambda`` layer (marshalled Python bytecode), a ``TFSMLayer`` (a whole TensorFlow SavedModel)
or a class from another package can run code while loading. `load_model_file` therefore
checks, before Keras sees the file:

1. the size (`MAX_MODEL_BYTES`) and the format: a ZIP; legacy ``.h5``, pickles and SavedModel
   folders are refused with a message naming what was found;
2. the archive, through the project's one ZIP guard (`unet_demo.data.archive`): safe member
   names (no ``..``, absolute paths, backslashes), no links, no encryption, no nested
   archives, bounded uncompressed size and ratio, intact CRCs; then only ``config.json``,
   ``metadata.json``, ``model.weights.h5`` and ``assets/`` entries;
3. every serialized object in ``config.json``: Keras' own built-in classes only (plus the
   classes this project registers under the ``unet_demo>`` package), never ``Lambda``,
   ``TFSMLayer``, ``TorchModuleWrapper``, ``JaxLayer``, ``FlaxLayer`` or a ``__lambda__``
   (the top-level ``compile_config`` is skipped: ``compile=False`` discards it unread);

and only then calls ``keras.saving.load_model(..., safe_mode=True, compile=False)`` on a
private copy of exactly the bytes that were checked.

`save_model_with_provenance` writes a model and a sidecar ``<file>.provenance.json`` with its
SHA-256, size, library versions and the caller's provenance record; `verify_provenance`
checks a file against its sidecar.

Example:
    >>> from unet_demo.settings import REPO_ROOT
    >>> load_model_file(REPO_ROOT / "models/bundled/nuclei/model.keras").input_shape
    (None, 128, 128, 1)
    >>> load_model_file(b"\\x89HDF\\r\\n\\x1a\\n" + bytes(64))
    Traceback (most recent call last):
    ...
    unet_demo.errors.UNetDemoError: The model file is an HDF5 file ...
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import importlib
import json
import os
import platform
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from unet_demo.data.archive import BoundedReader, ZipLimits, open_zip, refuse_nested
from unet_demo.errors import UNetDemoError

MAX_MODEL_BYTES = 300 * 1024 * 1024
"""Largest model file accepted (bytes)."""
MAX_UNCOMPRESSED_BYTES = 600 * 1024 * 1024
"""Largest total uncompressed size of the archive's members (zip-bomb guard)."""
MAX_CONFIG_BYTES = 16 * 1024 * 1024
"""Largest config.json/metadata.json (a U-Net config is well under 1 MB)."""
MAX_MEMBERS = 64
"""Most entries in a model archive (three files plus a few assets)."""

ZIP_LIMITS = ZipLimits(
    max_archive_bytes=MAX_MODEL_BYTES,
    max_members=MAX_MEMBERS,
    max_member_bytes=MAX_UNCOMPRESSED_BYTES,
    max_total_bytes=MAX_UNCOMPRESSED_BYTES,
    # Keras writes .keras files uncompressed (ratio 1); 100:1 only refuses crafted archives.
    max_ratio=100,
    hints=(
        ("members", "A Keras model holds config.json, metadata.json and model.weights.h5 "
                    "(plus a few assets); re-save it with model.save('model.keras')."),
        ("corrupt", "Copy or export the model again."),
        ("checksum", "It is damaged; copy or export the model again."),
        ("size_mismatch", "It was tampered with or is damaged; copy or export it again."),
        ("name", "Re-save the model with model.save('model.keras')."),
        ("duplicate", "Re-save the model with model.save('model.keras')."),
        ("symlink", "Re-save the model with model.save('model.keras')."),
        ("special", "Re-save the model with model.save('model.keras')."),
        ("nested", "Re-save the model with model.save('model.keras')."),
    ),
)
"""The ZIP guard's budgets and fixes for model archives (see `unet_demo.data.archive`)."""

REQUIRED_MEMBERS = ("config.json", "metadata.json")
ALLOWED_MEMBERS = frozenset({"config.json", "metadata.json", "model.weights.h5"})
ASSETS_PREFIX = "assets/"

CODE_CARRYING_CLASSES = frozenset(
    {"Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer", "__lambda__"}
)
"""Class names that carry or load executable code; refused wherever they appear."""

ALLOWED_PUBLIC_MODULES = frozenset(
    {
        "keras",
        "keras.layers",
        "keras.initializers",
        "keras.regularizers",
        "keras.constraints",
        "keras.activations",
        "keras.optimizers",
        "keras.optimizers.schedules",
        "keras.losses",
        "keras.metrics",
        "keras.dtype_policies",
    }
)
"""Public Keras namespaces whose classes may appear in a config."""

ALLOWED_INTERNAL_MODELS = {
    "keras.src.models.functional": frozenset({"Functional"}),
    "keras.src.models.sequential": frozenset({"Sequential"}),
    "keras.src.models.model": frozenset({"Model"}),
}
"""Internal modules Keras itself writes for model containers, with the only classes allowed."""

PROJECT_PACKAGE = "unet_demo"
"""Package name under which this project registers Keras objects (``unet_demo>Name``)."""
PROJECT_MODULES = ("unet_demo.losses", "unet_demo.training.keras_metrics", "unet_demo.models.norm")
"""Modules that register this project's Keras objects (imported to resolve them)."""

DATA_MARKERS = frozenset(
    {"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__", "__slice__"}
)
"""Class names Keras uses for plain values (tensor references, arrays, bytes); no class runs."""
FUNCTION_NAMESPACES = ("keras.activations", "keras.losses", "keras.metrics")
"""Where a serialized built-in function (``module: builtins``) must be found by name."""

PROVENANCE_SUFFIX = ".provenance.json"


# ----------------------------------------------------------------------------- helpers


def sha256_of(source: str | os.PathLike[str] | bytes) -> str:
    """SHA-256 hex digest of a file (read in chunks) or of bytes.

    Args:
        source: a path or the bytes themselves.

    Example:
        >>> sha256_of(b"abc")[:12]
        'ba7816bf8f01'
    """
    digest = hashlib.sha256()
    if isinstance(source, bytes | bytearray | memoryview):
        digest.update(source)
        return digest.hexdigest()
    with open(source, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def provenance_path(model_path: str | os.PathLike[str]) -> Path:
    """Sidecar path for a model file: ``model.keras`` -> ``model.keras.provenance.json``.

    Example:
        >>> provenance_path("runs/a/model.keras").name
        'model.keras.provenance.json'
    """
    path = Path(model_path)
    return path.with_name(path.name + PROVENANCE_SUFFIX)


def _read_source(path_or_bytes: str | os.PathLike[str] | bytes, max_bytes: int) -> tuple[bytes, str]:
    """Return (bytes, display name); refuse folders, wrong suffixes and oversize files."""
    if isinstance(path_or_bytes, bytes | bytearray | memoryview):
        data = bytes(path_or_bytes)
        name = "The model file"
        _check_size(len(data), name, max_bytes)
        return data, name
    path = Path(path_or_bytes)
    name = f"The model file '{path.name}'"
    if path.is_dir():
        hint = (
            " It looks like a TensorFlow SavedModel (saved_model.pb), which can hold arbitrary "
            "TensorFlow functions."
            if (path / "saved_model.pb").exists()
            else ""
        )
        raise UNetDemoError(
            f"'{path}' is a folder, not a model file.{hint} Only Keras 3 '.keras' files are "
            "loaded here: re-save the model with model.save('model.keras')."
        )
    if not path.is_file():
        raise UNetDemoError(f"No model file at '{path}'. Check the path and try again.")
    suffix = path.suffix.lower()
    if suffix != ".keras":
        legacy = {".h5": "a legacy HDF5 model", ".hdf5": "a legacy HDF5 model",
                  ".pkl": "a pickle", ".pickle": "a pickle", ".pb": "a TensorFlow SavedModel",
                  ".joblib": "a joblib pickle", ".pt": "a PyTorch (pickle) file",
                  ".pth": "a PyTorch (pickle) file"}.get(suffix)
        what = f" ({legacy}, which can run code when loaded)" if legacy else ""
        raise UNetDemoError(
            f"{name} has the extension '{suffix or '(none)'}'{what}; only '.keras' files are "
            "loaded. Re-save the model in Keras 3 with model.save('model.keras')."
        )
    _check_size(path.stat().st_size, name, max_bytes)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UNetDemoError(f"Could not read '{path}': {error.strerror}.") from None
    _check_size(len(data), name, max_bytes)  # the file may have changed since stat()
    return data, name


def _check_size(size: int, name: str, max_bytes: int) -> None:
    if size <= 0:
        raise UNetDemoError(f"{name} is empty (0 bytes). Save or copy the model again.")
    if size > max_bytes:
        raise UNetDemoError(
            f"{name} is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB. "
            "Use a smaller model (fewer filters or a lighter backbone)."
        )


def _refuse_non_zip(data: bytes, name: str) -> None:
    if data[:4] == b"PK\x03\x04":
        return
    from unet_demo.data.validation import describe_kind, sniff_format

    kind = sniff_format(data)
    why = {
        "hdf5": "Legacy .h5 models are refused: loading them can run code (Lambda layers).",
        "pickle": "Pickles are never loaded: unpickling runs arbitrary code.",
        "zip": "The archive does not start with a local file header.",
    }.get(kind, "A .keras model is a ZIP archive.")
    raise UNetDemoError(
        f"{name} is {describe_kind(kind)}, not a Keras 3 '.keras' archive. {why} "
        "Re-save the model with model.save('model.keras')."
    )


# --------------------------------------------------------------------------- archive


def check_model_archive(
    data: bytes, name: str = "The model file", *, max_bytes: int = MAX_MODEL_BYTES
) -> dict[str, Any]:
    """Check a `.keras` archive's members and config; return the parsed config.json.

    The ZIP itself goes through the project's one ZIP guard (`unet_demo.data.archive`, with
    `ZIP_LIMITS`); then the member list must be a Keras model's and every member is read
    once through the guard's bounded reader (sizes and CRCs).

    Args:
        data: the whole file.
        name: how to call the file in messages.
        max_bytes: largest file accepted (bytes).

    Example:
        >>> check_model_archive(b"PK\\x03\\x04 not really")
        Traceback (most recent call last):
        ...
        unet_demo.data.archive.ArchiveError: The model file was refused: it is not a readable ZIP archive ...
    """
    _refuse_non_zip(data, name)
    limits = dataclasses.replace(ZIP_LIMITS, max_archive_bytes=max_bytes)
    with open_zip(data, limits, name) as archive:
        refuse_nested(archive.infolist(), limits, name)
        _check_members(archive.infolist(), name)
        reader = BoundedReader(archive, limits, name)
        for info in archive.infolist():
            if not info.is_dir() and info.filename not in REQUIRED_MEMBERS:
                reader.verify(info)
        config = _read_json_member(archive, reader, "config.json", name)
        _read_json_member(archive, reader, "metadata.json", name)
    if not isinstance(config, dict) or "class_name" not in config:
        raise UNetDemoError(
            f"{name}: config.json does not describe a Keras model (no 'class_name'). "
            "Re-save the model with model.save('model.keras')."
        )
    # Keras drops the top-level compile_config unread when loading with compile=False (as
    # load_model_file always does), so a training-only loss function there cannot run.
    # Compile configs of nested models are deserialized, so those are still checked.
    check_config_classes({key: value for key, value in config.items()
                          if key != "compile_config"}, name)
    return config


def _check_members(infos: list[zipfile.ZipInfo], name: str) -> None:
    """Only a Keras model's entries (the ZIP guard has already checked names and sizes)."""
    names = {info.filename for info in infos}
    for member in sorted(names):
        # ':' is refused in assets too: Keras extracts them, and on Windows 'a:b' is a stream.
        if member not in ALLOWED_MEMBERS and not (
            member.startswith(ASSETS_PREFIX) and ":" not in member
        ):
            raise UNetDemoError(
                f"{name} contains an unexpected entry '{member}'. A Keras model archive holds "
                f"only {sorted(ALLOWED_MEMBERS)} and 'assets/'. Refused; re-save the model "
                "with model.save('model.keras')."
            )
    missing = [member for member in REQUIRED_MEMBERS if member not in names]
    if missing:
        raise UNetDemoError(
            f"{name} has no {', '.join(missing)}; it is not a Keras 3 model archive. "
            "Re-save the model with model.save('model.keras')."
        )


def _read_json_member(
    archive: zipfile.ZipFile, reader: BoundedReader, member: str, name: str
) -> Any:
    info = archive.getinfo(member)
    if info.file_size > MAX_CONFIG_BYTES:
        raise UNetDemoError(
            f"{name}: {member} is {info.file_size / 1e6:.0f} MB; the limit is "
            f"{MAX_CONFIG_BYTES / 1e6:.0f} MB. Refused."
        )
    try:
        return json.loads(reader.read(info).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise UNetDemoError(f"{name}: {member} is not valid JSON ({error}). Refused.") from None


# ---------------------------------------------------------------------------- config


def check_config_classes(config: Any, name: str = "The model file") -> None:
    """Refuse a Keras config that names code-carrying or non-built-in classes.

    Every dict with a ``class_name`` is a serialized object; each must come from Keras'
    public namespaces (``keras.layers``, ``keras.initializers``, ...), be a Keras model
    container (Functional, Sequential, Model), or be registered by this project
    (``unet_demo>Name`` defined in `PROJECT_MODULES`).

    Args:
        config: the parsed config.json.
        name: how to call the file in messages.

    Example:
        >>> try:
        ...     check_config_classes({"module": "keras.layers", "class_name": "Lambda"})
        ... except UNetDemoError as error:
        ...     print(str(error)[:45])
        The model file contains a 'Lambda' object: it
    """
    stack: list[Any] = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "class_name" in node:
                _check_object(node, name)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _refuse_class(name: str, class_name: str, why: str) -> UNetDemoError:
    return UNetDemoError(
        f"{name} contains a {class_name!r} object: {why}. Models loaded here may use only "
        "Keras' built-in layers. Rebuild the model without it (for example with "
        "unet_demo's builders) and save it again."
    )


def _check_object(node: dict[str, Any], name: str) -> None:
    class_name = node.get("class_name")
    module = node.get("module")
    registered = node.get("registered_name")
    if not isinstance(class_name, str):
        raise _refuse_class(name, str(class_name), "its class name is not a string")
    if class_name in CODE_CARRYING_CLASSES:
        raise _refuse_class(name, class_name, "it can carry or load executable code")
    if class_name in DATA_MARKERS and module is None:
        return  # a plain value (tensor reference, array, bytes); no class is created
    if class_name == "function" and module == "builtins":
        _check_builtin_function(node, name)
        return
    if not isinstance(module, str):
        raise _refuse_class(name, class_name, "it does not say which module defines it")
    if module.startswith(PROJECT_PACKAGE + "."):
        _check_project_object(node, name)
        return
    if module in ALLOWED_INTERNAL_MODELS:
        if class_name not in ALLOWED_INTERNAL_MODELS[module]:
            raise _refuse_class(name, class_name, f"module {module!r} is not allowed")
        if registered not in (None, class_name):
            raise _refuse_class(name, class_name, f"it is registered as {registered!r}")
        return
    if module not in ALLOWED_PUBLIC_MODULES:
        raise _refuse_class(name, class_name, f"it comes from module {module!r}")
    if registered not in (None, class_name, "function") or (
        isinstance(registered, str) and ">" in registered
    ):
        raise _refuse_class(name, class_name, f"it is a custom object registered as {registered!r}")
    target = node.get("config") if class_name == "function" else class_name
    found = (
        getattr(importlib.import_module(module), target, None)
        if isinstance(target, str) and not target.startswith("_")
        else None
    )
    usable = callable(found) if class_name == "function" else isinstance(found, type)
    if not usable:
        raise _refuse_class(name, class_name, f"{module} has no built-in {target!r}")


def _check_builtin_function(node: dict[str, Any], name: str) -> None:
    """Allow ``{"module": "builtins", "class_name": "function", "config": "relu"}`` forms."""
    function_name = node.get("config")
    if not isinstance(function_name, str) or function_name.startswith("_") or not any(
        callable(getattr(importlib.import_module(namespace), function_name, None))
        for namespace in FUNCTION_NAMESPACES
    ):
        raise _refuse_class(
            name, "function", f"{function_name!r} is not a built-in Keras function"
        )


def _check_project_object(node: dict[str, Any], name: str) -> None:
    """Allow ``unet_demo>Name`` objects registered by this project's own modules."""
    import keras

    class_name = node["class_name"]
    registered = node.get("registered_name")
    if not (isinstance(registered, str) and registered.startswith(PROJECT_PACKAGE + ">")):
        raise _refuse_class(name, class_name, "it is not registered by unet_demo")
    for module_name in PROJECT_MODULES:
        importlib.import_module(module_name)
    target = keras.saving.get_registered_object(registered)
    if target is None or not str(getattr(target, "__module__", "")).startswith(
        PROJECT_PACKAGE + "."
    ):
        raise _refuse_class(name, class_name, f"{registered!r} is not a unet_demo class")


# ------------------------------------------------------------------------------ load


def load_model_file(
    path_or_bytes: str | os.PathLike[str] | bytes,
    *,
    max_bytes: int = MAX_MODEL_BYTES,
    expected_sha256: str | None = None,
):
    """Load a `.keras` model after checking its format, members and classes.

    Args:
        path_or_bytes: path of a ``.keras`` file, or its bytes (an upload).
        max_bytes: size budget in bytes (default `MAX_MODEL_BYTES`).
        expected_sha256: when given, the file's SHA-256 must equal it (hex).

    Returns:
        The uncompiled `keras.Model` (``compile=False``; predictions need no optimizer).

    Example:
        >>> from unet_demo.settings import REPO_ROOT
        >>> path = REPO_ROOT / "models" / "bundled" / "nuclei" / "model.keras"
        >>> model = load_model_file(path.read_bytes(), expected_sha256=sha256_of(path))
        >>> model.input_shape, model.output_shape
        ((None, 128, 128, 1), (None, 128, 128, 1))
    """
    data, name = _read_source(path_or_bytes, max_bytes)
    if expected_sha256 is not None and sha256_of(data) != expected_sha256.lower():
        raise UNetDemoError(
            f"{name} does not match its recorded SHA-256 ({expected_sha256[:12]}...): it was "
            "changed after it was saved. Use the original file or export it again."
        )
    check_model_archive(data, name, max_bytes=max_bytes)
    import keras

    # Load a private copy of exactly the checked bytes (the original may change meanwhile).
    with tempfile.TemporaryDirectory(prefix="unet_demo_model_") as folder:
        copy = Path(folder) / "model.keras"
        copy.write_bytes(data)
        try:
            model = keras.saving.load_model(copy, compile=False, safe_mode=True)
        except UNetDemoError:
            raise
        except Exception as error:  # noqa: BLE001 - any loader failure becomes one clear message
            detail = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
            raise UNetDemoError(
                f"{name} passed the safety checks but Keras could not rebuild it "
                f"({type(error).__name__}: {detail}). It may have been saved by an "
                "incompatible Keras version or be damaged; export it again with Keras 3."
            ) from None
    if not isinstance(model, keras.Model):
        raise UNetDemoError(
            f"{name} holds a {type(model).__name__}, not a Keras model. Save a keras.Model."
        )
    return model


# ------------------------------------------------------------------------ provenance


def save_model_with_provenance(
    model, path: str | os.PathLike[str], provenance: dict[str, Any]
) -> Path:
    """Save `model` as ``.keras`` and write ``<path>.provenance.json`` with its SHA-256.

    The sidecar records the file name, size, SHA-256, UTC time, Keras/Python versions and
    the caller's `provenance` (e.g. run id, dataset, config, git commit). The file is written
    to a temporary name first and renamed, so a reader never sees a half-written model.

    Args:
        model: a `keras.Model`.
        path: destination ending in ``.keras``.
        provenance: JSON-serialisable description of where the model came from.

    Returns:
        The sidecar path.

    Example:
        >>> from unet_demo.settings import REPO_ROOT
        >>> model = load_model_file(REPO_ROOT / "models/bundled/nuclei/model.keras")
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     target = Path(folder) / "model.keras"
        ...     sidecar = save_model_with_provenance(model, target, {"run_id": "demo"})
        ...     record = verify_provenance(target)
        >>> sidecar.name, record["provenance"], len(record["sha256"])
        ('model.keras.provenance.json', {'run_id': 'demo'}, 64)
    """
    import keras

    target = Path(path)
    if target.suffix != ".keras":
        raise UNetDemoError(
            f"Models are exported as '.keras' files only. Received: '{target.name}'."
        )
    try:
        record_extra = json.loads(json.dumps(provenance))
    except (TypeError, ValueError) as error:
        raise UNetDemoError(f"provenance must be JSON-serialisable ({error}).") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.stem}.partial-{os.getpid()}.keras")
    try:
        model.save(partial)
        os.replace(partial, target)
    finally:
        if partial.exists():
            partial.unlink()
    record = {
        "file": target.name,
        "sha256": sha256_of(target),
        "size_bytes": target.stat().st_size,
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "keras_version": keras.__version__,
        "python_version": platform.python_version(),
        "saved_by": "unet_demo",
        "provenance": record_extra,
    }
    sidecar = provenance_path(target)
    sidecar.write_text(json.dumps(record, indent=2, sort_keys=True))
    return sidecar


def verify_provenance(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Check a model file against its provenance sidecar; return the sidecar record.

    Args:
        path: the ``.keras`` file.

    Example:
        >>> from unet_demo.settings import REPO_ROOT
        >>> model = load_model_file(REPO_ROOT / "models/bundled/nuclei/model.keras")
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     target = Path(folder) / "model.keras"
        ...     _ = save_model_with_provenance(model, target, {"run_id": "demo"})
        ...     before = verify_provenance(target)["provenance"]
        ...     _ = target.write_bytes(target.read_bytes() + b"tampered")
        ...     verify_provenance(target)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        unet_demo.errors.UNetDemoError: 'model.keras' has SHA-256 ...: the file was changed...
        >>> before
        {'run_id': 'demo'}
    """
    target = Path(path)
    sidecar = provenance_path(target)
    if not sidecar.is_file():
        raise UNetDemoError(
            f"'{target.name}' has no provenance record ({sidecar.name}). Export it with "
            "save_model_with_provenance."
        )
    try:
        record = json.loads(sidecar.read_text())
        recorded = str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UNetDemoError(f"Could not read {sidecar}: {error}.") from None
    actual = sha256_of(target)
    if actual != recorded:
        raise UNetDemoError(
            f"'{target.name}' has SHA-256 {actual[:12]}... but its provenance record says "
            f"{recorded[:12]}...: the file was changed after export. Export it again."
        )
    return record
