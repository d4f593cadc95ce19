"""Model files: only checked `.keras` archives with built-in classes are loaded."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from unet_demo.errors import UNetDemoError
from unet_demo.models.safe_load import (
    load_model_file,
    provenance_path,
    save_model_with_provenance,
    sha256_of,
    verify_provenance,
)

keras = pytest.importorskip("keras")


def tiny_model():
    """A two-layer conv net: the smallest real model that still looks like a segmenter."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 1))
    hidden = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid")(hidden)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def good_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("good") / "model.keras"
    tiny_model().save(path)
    return path


def rewrite(source: Path, *, config=None, extra: dict[str, bytes] | None = None,
            drop: tuple[str, ...] = ()) -> bytes:
    """Copy a .keras archive, replacing config.json, adding or dropping members."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(buffer, "w") as archive:
        for info in original.infolist():
            if info.filename in drop:
                continue
            data = original.read(info.filename)
            if info.filename == "config.json" and config is not None:
                data = json.dumps(config).encode()
            archive.writestr(info.filename, data)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def config_of(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


# ------------------------------------------------------------------------------ good files


def test_good_model_loads_from_path_and_bytes(good_file):
    batch = np.random.default_rng(0).random((2, 16, 16, 1), dtype=np.float32)
    expected = tiny_model()(batch, training=False)
    for source in (good_file, str(good_file), good_file.read_bytes()):
        model = load_model_file(source)
        assert isinstance(model, keras.Model)
        np.testing.assert_allclose(model(batch, training=False), expected, rtol=1e-6)


def test_project_registered_loss_in_compile_config_is_allowed(tmp_path):
    from unet_demo.losses import BceDiceLoss

    model = tiny_model()
    model.compile(optimizer="adam", loss=BceDiceLoss(), metrics=[keras.metrics.BinaryIoU()])
    model.save(tmp_path / "compiled.keras")
    assert "unet_demo>BceDiceLoss" in json.dumps(config_of(tmp_path / "compiled.keras"))
    assert isinstance(load_model_file(tmp_path / "compiled.keras"), keras.Model)


def test_provenance_sidecar_records_sha_and_detects_tampering(tmp_path):
    target = tmp_path / "export" / "model.keras"
    sidecar = save_model_with_provenance(tiny_model(), target, {"run_id": "r1", "dataset": "x"})
    assert sidecar == provenance_path(target) and sidecar.name == "model.keras.provenance.json"
    record = verify_provenance(target)
    assert record["sha256"] == sha256_of(target) == sha256_of(target.read_bytes())
    assert record["provenance"] == {"run_id": "r1", "dataset": "x"}
    assert record["size_bytes"] == target.stat().st_size and record["keras_version"]
    assert load_model_file(target, expected_sha256=record["sha256"]) is not None
    assert not list(target.parent.glob(".*partial*"))  # no half-written leftovers

    data = bytearray(target.read_bytes())
    data[-30] ^= 0xFF  # one byte in the central directory
    target.write_bytes(bytes(data))
    with pytest.raises(UNetDemoError, match="changed after export"):
        verify_provenance(target)
    with pytest.raises(UNetDemoError, match="recorded SHA-256"):
        load_model_file(target, expected_sha256=record["sha256"])
    with pytest.raises(UNetDemoError, match="no provenance record"):
        verify_provenance(tmp_path / "other.keras")
    with pytest.raises(UNetDemoError, match=".keras"):
        save_model_with_provenance(tiny_model(), tmp_path / "model.h5", {})


# -------------------------------------------------------------------------- hostile files


def test_real_lambda_model_is_refused_before_its_code_runs(tmp_path, monkeypatch):
    marker = tmp_path / "code_ran.txt"
    monkeypatch.setenv("UNET_DEMO_TEST_MARKER", str(marker))

    # A real lambda is saved as marshalled bytecode; it runs when Keras rebuilds the layer.
    payload = lambda tensor: (  # noqa: E731
        open(__import__("os").environ["UNET_DEMO_TEST_MARKER"], "w").write("code ran"),  # noqa: SIM115
        tensor * 2.0,
    )[1]
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Lambda(payload)(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    marker.unlink(missing_ok=True)  # building the model above ran it once

    with pytest.raises(UNetDemoError, match="'Lambda'.*executable code"):
        load_model_file(path)
    with pytest.raises(UNetDemoError, match="Lambda"):
        load_model_file(path.read_bytes())
    assert not marker.exists()

    # The file really is hostile: loading it with safe_mode off executes the payload.
    keras.saving.load_model(path, safe_mode=False, compile=False)
    assert marker.exists()


def _with_layer(config: dict, layer: dict) -> dict:
    patched = json.loads(json.dumps(config))
    patched["config"]["layers"].append(layer)
    return patched


@pytest.mark.parametrize(
    ("layer", "match"),
    [
        ({"module": "keras.layers", "class_name": "TFSMLayer",
          "config": {"filepath": "/tmp/saved", "call_endpoint": "serve"}}, "'TFSMLayer'"),
        ({"module": "keras.layers", "class_name": "TorchModuleWrapper", "config": {}},
         "TorchModuleWrapper"),
        ({"module": "os", "class_name": "system", "config": {}}, "module 'os'"),
        ({"module": "keras.src.layers.core.lambda_layer", "class_name": "Lambda", "config": {}},
         "'Lambda'"),
        ({"module": "keras.src.ops", "class_name": "Add", "config": {}}, "keras.src.ops"),
        ({"module": "keras.layers", "class_name": "Dense", "registered_name": "evil>Dense",
          "config": {}}, "custom object"),
        ({"module": "keras.layers", "class_name": "NoSuchLayer", "config": {}}, "no built-in"),
        ({"module": "keras.layers", "class_name": "__loader__", "config": {}}, "no built-in"),
        ({"module": "keras.layers", "class_name": "Conv2D",
          "config": {"activation": {"module": "builtins", "class_name": "function",
                                    "config": "eval", "registered_name": "function"}}},
         "'eval' is not a built-in"),
        ({"module": "unet_demo.evil", "class_name": "Thing", "registered_name": "unet_demo>Nope",
          "config": {}}, "not a unet_demo class"),
        ({"module": None, "class_name": "__lambda__", "config": {"code": "AAAA"}}, "__lambda__"),
        ({"class_name": "Conv2D", "config": {}}, "does not say which module"),
    ],
)
def test_code_carrying_or_foreign_classes_are_refused(good_file, layer, match):
    data = rewrite(good_file, config=_with_layer(config_of(good_file), layer))
    with pytest.raises(UNetDemoError, match=match):
        load_model_file(data)


def test_top_level_compile_config_is_ignored_but_nested_ones_are_checked(good_file):
    foreign_loss = {"module": "builtins", "class_name": "function", "config": "my_loss",
                    "registered_name": "function"}
    config = config_of(good_file)
    config["compile_config"] = {"loss": foreign_loss}  # dropped unread with compile=False
    assert isinstance(load_model_file(rewrite(good_file, config=config)), keras.Model)
    nested = config_of(good_file)
    layer = nested["config"]["layers"][-1]
    layer["compile_config"] = {"loss": {"module": "mypkg.losses", "class_name": "Evil",
                                        "registered_name": "mypkg>Evil", "config": {}}}
    with pytest.raises(UNetDemoError, match="mypkg"):
        load_model_file(rewrite(good_file, config=nested))


def test_legacy_h5_is_refused_by_name_and_by_content(tmp_path):
    h5_path = tmp_path / "legacy.h5"
    tiny_model().save(h5_path)  # Keras 3 still writes the legacy HDF5 format
    assert h5_path.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    with pytest.raises(UNetDemoError, match=r"'\.h5'.*legacy HDF5"):
        load_model_file(h5_path)
    disguised = tmp_path / "disguised.keras"
    disguised.write_bytes(h5_path.read_bytes())
    with pytest.raises(UNetDemoError, match="HDF5.*Legacy .h5 models are refused"):
        load_model_file(disguised)
    with pytest.raises(UNetDemoError, match="HDF5"):
        load_model_file(h5_path.read_bytes())


def test_pickles_are_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("pickle code ran",))

    data = pickle.dumps(Payload(), protocol=4)
    for path in (tmp_path / "model.pkl", tmp_path / "model.keras"):
        path.write_bytes(data)
        with pytest.raises(UNetDemoError, match="pickle|Pickle"):
            load_model_file(path)
    with pytest.raises(UNetDemoError, match="never loaded"):
        load_model_file(data)


def test_savedmodel_folder_is_refused(tmp_path):
    folder = tmp_path / "saved"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"\x08\x01")
    with pytest.raises(UNetDemoError, match="SavedModel"):
        load_model_file(folder)
    with pytest.raises(UNetDemoError, match=r"'\.pb'"):
        load_model_file(folder / "saved_model.pb")


@pytest.mark.parametrize(
    "extra",
    [
        {"evil.py": b"import os; os.system('id')"},
        {"saved_model.pb": b"\x08\x01"},
        {"variables/variables.index": b"x"},
        {"../outside.txt": b"x"},
        {"assets/../../x": b"x"},
        {"model.weights.h5.bak": b"x"},
    ],
    ids=lambda extra: next(iter(extra)),
)
def test_archives_with_extra_members_are_refused(good_file, extra):
    with pytest.raises(UNetDemoError, match="unexpected entry|unsafe path"):
        load_model_file(rewrite(good_file, extra=extra))


def test_assets_folder_is_allowed(good_file):
    data = rewrite(good_file, extra={"assets/vocab.txt": b"a\nb\n"})
    assert isinstance(load_model_file(data), keras.Model)


def test_symlink_and_duplicate_members_are_refused(good_file):
    import stat

    buffer = io.BytesIO(rewrite(good_file))
    with zipfile.ZipFile(buffer, "a") as archive:
        link = zipfile.ZipInfo("assets/link")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(UNetDemoError, match="symbolic link"):
        load_model_file(buffer.getvalue())
    buffer = io.BytesIO(rewrite(good_file))
    with pytest.warns(UserWarning), zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("config.json", b"{}")
    with pytest.raises(UNetDemoError, match="same entry twice"):
        load_model_file(buffer.getvalue())


def test_missing_config_and_bad_json_are_refused(good_file):
    with pytest.raises(UNetDemoError, match="no config.json"):
        load_model_file(rewrite(good_file, drop=("config.json",)))
    buffer = io.BytesIO()
    with zipfile.ZipFile(good_file) as original, zipfile.ZipFile(buffer, "w") as archive:
        for info in original.infolist():
            data = b"{not json" if info.filename == "config.json" else original.read(info)
            archive.writestr(info.filename, data)
    with pytest.raises(UNetDemoError, match="not valid JSON"):
        load_model_file(buffer.getvalue())
    with pytest.raises(UNetDemoError, match="does not describe a Keras model"):
        load_model_file(rewrite(good_file, config={"layers": []}))


def test_truncated_and_corrupted_files_are_refused(good_file):
    data = good_file.read_bytes()
    for cut in (4, 100, len(data) // 2, len(data) - 10):
        with pytest.raises(UNetDemoError, match="truncated|corrupt|damaged"):
            load_model_file(data[:cut])
    stored = rewrite(good_file)  # ZIP_STORED: flip a byte inside the weights payload
    with zipfile.ZipFile(io.BytesIO(stored)) as archive:
        info = archive.getinfo("model.weights.h5")
    flipped = bytearray(stored)
    flipped[info.header_offset + 30 + len(info.filename) + info.file_size // 2] ^= 0xFF
    with pytest.raises(UNetDemoError, match="checksum"):
        load_model_file(bytes(flipped))


def test_size_budget_and_empty_file(tmp_path, good_file):
    with pytest.raises(UNetDemoError, match="limit is"):
        load_model_file(good_file, max_bytes=1000)
    with pytest.raises(UNetDemoError, match="empty"):
        load_model_file(b"")
    with pytest.raises(UNetDemoError, match="No model file"):
        load_model_file(tmp_path / "missing.keras")


def test_weights_that_do_not_fit_the_config_give_a_clear_error(good_file, tmp_path):
    other = tmp_path / "other.keras"
    inputs = keras.Input((16, 16, 1))
    keras.Model(inputs, keras.layers.Conv2D(7, 3)(inputs)).save(other)
    with zipfile.ZipFile(other) as archive:
        foreign_weights = archive.read("model.weights.h5")
    data = rewrite(good_file, drop=("model.weights.h5",),
                   extra={"model.weights.h5": foreign_weights})
    with pytest.raises(UNetDemoError, match="could not rebuild"):
        load_model_file(data)


def test_mutated_model_files_are_loaded_or_refused_never_crash(good_file):
    """Random truncations and byte flips: a model or a UNetDemoError, never another exception."""
    original = good_file.read_bytes()
    rng = np.random.default_rng(7)
    outcomes = {"loaded": 0, "refused": 0}
    for trial in range(30):
        data = bytearray(original)
        if trial % 3 == 0:
            data = data[: int(rng.integers(1, len(data)))]
        else:
            for _ in range(int(rng.integers(1, 6))):
                data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        try:
            load_model_file(bytes(data))
            outcomes["loaded"] += 1
        except UNetDemoError as error:
            assert str(error) and "Traceback" not in str(error)
            outcomes["refused"] += 1
    assert outcomes["refused"] >= 10, outcomes
