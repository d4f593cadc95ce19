"""Reproducibility bundle: one ZIP from which ``train --from-bundle`` reproduces a run.

A finished run directory becomes one flat ZIP (no archive inside another, so the project's ZIP
guard reads it like any upload):

    manifest.json        format version, run id, seed, dataset, SHA-256 of every other member,
                         and the command that reproduces the run
    config.json          the RunSpec (data, augmentation, model, training; the seed is
                         ``train.seed``)
    split.json           the split rule: dataset, how the training subset was drawn, the image
                         ids of every split and a SHA-256 of each split's model-ready arrays
    environment.json     packages, CPU, device, XLA choice of the original run
    history.csv          one row per epoch
    metrics.json         validation and test scores
    model_card.md        the run's card
    model/config.json, model/metadata.json, model/model.weights.h5
                         the members of the run's model.keras, stored side by side (zip them
                         again, or use `bundle_model`, to get the .keras file)
    README.md            what the bundle is and how to use it

`read_bundle` checks the archive, the member list and every SHA-256; `check_split` makes sure
this machine's data gives the same images as the original run; `compare_runs` says whether a
reproduced run matches the bundle (same history, same weights). On the CPU, with the same
packages, the run repeats bit for bit (the training pipeline draws every random number from the
seed; see `unet_demo.training.runner`).

Example:
    >>> read_bundle(b"not a zip")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    unet_demo.data.archive.ArchiveError: Bundle 'bundle.zip' was refused: it is not a ZIP archive...
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from unet_demo import DISCLAIMER
from unet_demo.data.archive import BoundedReader, ZipLimits, open_zip, refuse_nested
from unet_demo.errors import UNetDemoError
from unet_demo.training import rundir
from unet_demo.training.spec import RunSpec

BUNDLE_VERSION = 1
BUNDLE_KIND = "unet-demo reproducibility bundle"
MANIFEST = "manifest.json"
SPLIT_FILE = "split.json"
README = "README.md"
MODEL_PREFIX = "model/"
MODEL_MEMBERS = ("config.json", "metadata.json", "model.weights.h5")
RUN_FILES = (rundir.CONFIG_FILE, rundir.ENVIRONMENT_FILE, rundir.HISTORY_FILE,
             rundir.METRICS_FILE, rundir.MODEL_CARD_FILE)
MEMBERS = frozenset({MANIFEST, SPLIT_FILE, README, *RUN_FILES,
                     *(MODEL_PREFIX + name for name in MODEL_MEMBERS)})
TIMING_COLUMNS = frozenset({"seconds", "images_per_sec"})
"""History columns that measure time, not training: left out when runs are compared."""

BUNDLE_LIMITS = ZipLimits(
    max_archive_bytes=400 * 1024 * 1024, max_members=len(MEMBERS),
    max_member_bytes=400 * 1024 * 1024, max_total_bytes=600 * 1024 * 1024,
    hints=(("members", "A bundle holds only the files `export --format bundle` writes."),
           ("nested", "A bundle stores the model's members, never a .keras file inside it; "
                      "export the bundle again.")),
)


@dataclasses.dataclass(frozen=True)
class ReproBundle:
    """A checked bundle, read into memory.

    Attributes:
        manifest: manifest.json.
        spec: the run's RunSpec.
        split: split.json.
        files: every member's bytes by name.
    """

    manifest: dict[str, Any]
    spec: RunSpec
    split: dict[str, Any]
    files: dict[str, bytes]

    def history(self) -> list[dict[str, Any]]:
        """The bundled history.csv as rows (see `rundir.load_history`)."""
        return _history_rows(self.files.get(rundir.HISTORY_FILE, b""))

    def metrics(self) -> dict[str, Any]:
        """The bundled metrics.json."""
        return json.loads(self.files[rundir.METRICS_FILE]) if rundir.METRICS_FILE in self.files \
            else {}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_record(spec: RunSpec) -> dict[str, Any]:
    """The split rule of a run: dataset, subset draw, ids and a digest of each split's arrays.

    Args:
        spec: the run's spec.

    Example:
        >>> from unet_demo.config import DataConfig
        >>> record = split_record(RunSpec(data=DataConfig(dataset="nuclei", image_size=32,
        ...                                               max_train_images=3)))
        >>> len(record["splits"]["train"]["ids"]), record["splits"]["test"]["count"]
        (3, 5)
    """
    from unet_demo.data import sources
    from unet_demo.training.runner import prepare_split

    rule = ""
    if not sources.is_uploaded(spec.data.dataset):
        from unet_demo.data.bundled import load_card

        rule = str(load_card(spec.data.dataset).get("split_rule", ""))
    splits = {}
    for split in ("train", "val", "test"):
        images, masks, ids = prepare_split(spec, split)
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(images, np.float32).tobytes())
        digest.update(np.ascontiguousarray(masks).tobytes())
        digest.update("\n".join(ids).encode("utf-8"))
        splits[split] = {"count": len(ids), "ids": list(ids), "sha256": digest.hexdigest()}
    limit = spec.data.max_train_images
    subset = (f"the training split is cut to {limit} images drawn with "
              f"numpy.random.default_rng({spec.train.seed}).permutation, kept in their order"
              if limit else "every training image is used")
    return {"dataset": spec.data.dataset, "seed": spec.train.seed, "rule": rule,
            "training_subset": subset, "splits": splits}


def build_bundle(run_dir: str | Path) -> bytes:
    """The reproducibility bundle (ZIP bytes) of a finished run.

    Args:
        run_dir: a finished training run directory (or a run id under the runs folder).

    Example:
        >>> build_bundle("/nonexistent")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        unet_demo.errors.UNetDemoError: No training run found at '/nonexistent'...
    """
    info = rundir.load_run(run_dir)
    if info.status != "finished":
        raise UNetDemoError(
            f"Run {info.run_id} is {info.status}; only a finished run can be bundled (its "
            "model, history and test metrics must all be there). Wait for it or train it again.")
    folder = info.path
    members: dict[str, bytes] = {}
    for name in RUN_FILES:
        path = folder / name
        if not path.is_file():
            raise UNetDemoError(f"Run {info.run_id} has no {name}; it cannot be bundled. Train "
                                "it again with this version of unet-demo.")
        members[name] = path.read_bytes()
    spec = RunSpec.from_json(members[rundir.CONFIG_FILE].decode("utf-8"))
    model_bytes = (folder / rundir.MODEL_FILE).read_bytes()
    with zipfile.ZipFile(io.BytesIO(model_bytes)) as model_zip:
        for name in MODEL_MEMBERS:
            members[MODEL_PREFIX + name] = model_zip.read(name)
    members[SPLIT_FILE] = json.dumps(split_record(spec), indent=2).encode("utf-8")
    members[README] = _readme(info.run_id).encode("utf-8")
    manifest = {
        "kind": BUNDLE_KIND,
        "version": BUNDLE_VERSION,
        "run_id": info.run_id,
        "dataset": spec.data.dataset,
        "seed": spec.train.seed,
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "model_sha256": _sha256(model_bytes),
        "files": {name: _sha256(data) for name, data in sorted(members.items())},
        "reproduce": "python -m unet_demo train --from-bundle BUNDLE.zip --out runs/reproduced",
    }
    members[MANIFEST] = json.dumps(manifest, indent=2).encode("utf-8")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(members):
            archive.writestr(name, members[name])
    return buffer.getvalue()


def _readme(run_id: str) -> str:
    return "\n".join([
        f"# Reproducibility bundle of run {run_id}",
        "",
        f"> {DISCLAIMER}",
        "",
        "Reproduce the run (same data, same seed, same settings) and compare it with this one:",
        "",
        "    python -m unet_demo train --from-bundle THIS_FILE.zip --out runs/reproduced",
        "",
        "manifest.json lists every file with its SHA-256. config.json is the run's settings, "
        "split.json which images each split held, environment.json the packages and CPU of the "
        "original run. model/ holds the three members of its model.keras; zip them together "
        "(config.json, metadata.json, model.weights.h5 at the top level) to get the file back.",
        "",
    ])


def read_bundle(source: str | Path | bytes, name: str = "bundle.zip") -> ReproBundle:
    """Open a bundle through the ZIP guard and check its members and SHA-256 digests.

    Args:
        source: the ZIP's path or bytes.
        name: how messages call it (the path's name when a path is given).

    Example:
        >>> read_bundle("/nonexistent.zip")
        Traceback (most recent call last):
        ...
        unet_demo.errors.UNetDemoError: Cannot read the bundle /nonexistent.zip: No such file or directory.
    """
    if not isinstance(source, bytes | bytearray):
        path = Path(source)
        name = path.name
        try:
            source = path.read_bytes()
        except OSError as error:
            raise UNetDemoError(f"Cannot read the bundle {path}: {error.strerror}.") from None
    subject = f"Bundle {name!r}"
    files: dict[str, bytes] = {}
    with open_zip(bytes(source), BUNDLE_LIMITS, subject) as archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        refuse_nested(infos, BUNDLE_LIMITS, subject)
        unknown = sorted(info.filename for info in infos if info.filename not in MEMBERS)
        if unknown:
            raise UNetDemoError(f"{subject} holds unexpected files {unknown[:5]}; a bundle holds "
                                "only what `export --format bundle` writes. Export it again.")
        reader = BoundedReader(archive, BUNDLE_LIMITS, subject)
        for info in infos:
            files[info.filename] = reader.read(info)
    missing = sorted(MEMBERS - set(files))
    if missing:
        raise UNetDemoError(f"{subject} lacks {missing}; it is not a complete unet-demo "
                            "bundle. Export it again with `export --format bundle`.")
    manifest = _json_member(files, MANIFEST, subject)
    if manifest.get("kind") != BUNDLE_KIND or manifest.get("version") != BUNDLE_VERSION:
        raise UNetDemoError(f"{subject} is not a version-{BUNDLE_VERSION} unet-demo bundle "
                            f"(kind {manifest.get('kind')!r}, version "
                            f"{manifest.get('version')!r}). Export it again with this version.")
    recorded = manifest.get("files") or {}
    for member, data in files.items():
        if member != MANIFEST and recorded.get(member) != _sha256(data):
            raise UNetDemoError(f"{subject}: {member} does not match its SHA-256 in "
                                "manifest.json; the bundle was changed or damaged. Use the "
                                "original bundle or export it again.")
    spec = RunSpec.from_json(files[rundir.CONFIG_FILE].decode("utf-8"))
    return ReproBundle(manifest=manifest, spec=spec, split=_json_member(files, SPLIT_FILE, subject),
                       files=files)


def _json_member(files: dict[str, bytes], member: str, subject: str) -> dict[str, Any]:
    try:
        data = json.loads(files[member].decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise UNetDemoError(f"{subject}: {member} is not valid JSON ({error}). Export the bundle "
                            "again.") from None
    if not isinstance(data, dict):
        raise UNetDemoError(f"{subject}: {member} is not a JSON object. Export it again.")
    return data


def check_split(bundle: ReproBundle) -> None:
    """Refuse to reproduce when this machine's data differs from the bundled run's.

    Args:
        bundle: from `read_bundle`.
    """
    current = split_record(bundle.spec)["splits"]
    for split, recorded in (bundle.split.get("splits") or {}).items():
        now = current.get(split, {})
        if now.get("sha256") != recorded.get("sha256"):
            detail = ("other images" if now.get("ids") != recorded.get("ids") else
                      "the same image ids with different pixels")
            raise UNetDemoError(
                f"The {split} split of {bundle.spec.data.dataset!r} here holds {detail} than "
                f"the bundled run had ({now.get('count')} vs {recorded.get('count')} images), so "
                "the run cannot be reproduced exactly. Install the same dataset version (see "
                "split.json in the bundle).")


def bundle_model_bytes(bundle: ReproBundle) -> bytes:
    """The run's model.keras rebuilt from the bundle's model/ members.

    Args:
        bundle: from `read_bundle`.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in MODEL_MEMBERS:
            archive.writestr(name, bundle.files[MODEL_PREFIX + name])
    return buffer.getvalue()


def bundle_model(bundle: ReproBundle):
    """The bundled model, loaded through the safe loader (`unet_demo.models.safe_load`)."""
    from unet_demo.models.safe_load import load_model_file

    return load_model_file(bundle_model_bytes(bundle))


def _history_rows(data: bytes) -> list[dict[str, Any]]:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / rundir.HISTORY_FILE).write_bytes(data)
        return rundir.load_history(folder)


def compare_runs(bundle: ReproBundle, run_dir: str | Path) -> dict[str, Any]:
    """How closely a reproduced run matches the bundled one.

    Compares the histories (every column but the timings), the final weights and the test
    Dice. ``identical`` is True when the histories are equal and every weight is bit for bit
    the same.

    Args:
        bundle: from `read_bundle`.
        run_dir: the reproduced run's directory.

    Returns:
        A dict: identical, history_equal, epochs (bundled, reproduced), max_history_difference,
        max_weight_difference, test_dice (bundled, reproduced), summary (one sentence).
    """
    from unet_demo.models.safe_load import load_model_file

    old_rows, new_rows = bundle.history(), rundir.load_history(run_dir)
    history_gap = 0.0 if len(old_rows) == len(new_rows) else float("inf")
    for old, new in zip(old_rows, new_rows, strict=False):
        for key in set(old) | set(new):
            if key in TIMING_COLUMNS:
                continue
            a, b = old.get(key), new.get(key)
            if isinstance(a, float) and isinstance(b, float):
                history_gap = max(history_gap, abs(a - b))
            elif a != b:
                history_gap = float("inf")
    model_path = Path(run_dir) / rundir.MODEL_FILE
    weight_gap = float("inf")
    if model_path.is_file():
        old_weights = bundle_model(bundle).get_weights()
        new_weights = load_model_file(model_path).get_weights()
        if len(old_weights) == len(new_weights) and all(
                a.shape == b.shape for a, b in zip(old_weights, new_weights, strict=True)):
            weight_gap = max((float(np.abs(np.asarray(a, np.float64) - b).max())
                              for a, b in zip(old_weights, new_weights, strict=True)
                              if np.size(a)), default=0.0)
    old_dice = (bundle.metrics().get("test") or {}).get("dice")
    new_dice = (rundir.read_json(Path(run_dir) / rundir.METRICS_FILE).get("test") or {}).get(
        "dice")
    identical = history_gap == 0.0 and weight_gap == 0.0
    if identical:
        summary = (f"Reproduced exactly: {len(new_rows)} epoch(s) with the same history and "
                   "bit-identical weights.")
    else:
        summary = (f"Not identical: history differs by up to {history_gap:.3g}, weights by up "
                   f"to {weight_gap:.3g} (another CPU, package version or XLA choice changes "
                   "the last bits; see environment.json in the bundle).")
    return {"identical": identical, "history_equal": history_gap == 0.0,
            "epochs": [len(old_rows), len(new_rows)],
            "max_history_difference": history_gap, "max_weight_difference": weight_gap,
            "test_dice": [old_dice, new_dice], "summary": summary}
