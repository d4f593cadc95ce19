"""Segment a whole volume in 3D with a 3D U-Net, and compare with slice-by-slice 2D.

A 3D U-Net takes fixed-size cubes (the patch it trained on), a volume has any size and voxel
size, so `segment_volume_3d`:

1. normalises the volume once (0.5-99.5 percentile clip, then the model's normalisation);
2. resamples it to the voxel size the model trained on (linear, `scipy.ndimage.zoom`);
3. predicts overlapping cubes on a grid (`sliding_window_probabilities`: neighbours share a
   quarter of their side, the last cube sits flush with the edge) and averages the
   probabilities where cubes overlap;
4. resamples the probabilities back to the original grid and thresholds them.

`unet_demo.evaluation.volume.compare_3d_with_slices` runs this and the 2D slice-by-slice path
on the same volume and reports the time and Dice of each.

Example:
    >>> import numpy as np
    >>> volume = np.zeros((20, 24, 12), np.float32); volume[5:15, 6:18, 3:9] = 1.0
    >>> probs = sliding_window_probabilities(lambda x: x, volume, (8, 8, 8))
    >>> probs.shape, float(probs[10, 12, 6, 0]), float(probs[0, 0, 0, 0])
    ((20, 24, 12, 1), 1.0, 0.0)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unet_demo.data.preprocess import normalize
from unet_demo.data.volumes import grid_starts
from unet_demo.errors import UNetDemoError
from unet_demo.inference.labels import foreground_classes, labels_from_probabilities

PredictFn = Callable[[np.ndarray], np.ndarray]
OVERLAP = 0.25
"""Shared fraction of a cube's side between neighbouring cubes (MONAI's sliding-window default)."""
VOLUME_MODELS_DIR = "models/volumetric"
"""Bundled 3D models under the repository, one folder each with model.keras and card.json
(apart from the 2-D bundled models; ``UNET_DEMO_VOLUME_MODELS_DIR`` moves the folder)."""


def volume_models_dir(repo_root: Path) -> Path:
    """Folder of the bundled 3D models (``UNET_DEMO_VOLUME_MODELS_DIR`` or models/volumetric).

    Args:
        repo_root: the repository.

    Example:
        >>> volume_models_dir(Path("/repo")).name
        'volumetric'
    """
    import os

    return Path(os.environ.get("UNET_DEMO_VOLUME_MODELS_DIR", Path(repo_root) / VOLUME_MODELS_DIR))


def sliding_window_probabilities(predict_fn: PredictFn, volume: np.ndarray,
                                 patch: Sequence[int], *, overlap: float = OVERLAP,
                                 batch_size: int = 8,
                                 progress: Callable[[int, int], None] | None = None
                                 ) -> np.ndarray:
    """Class probabilities (X, Y, Z, K) of a normalised volume, predicted cube by cube.

    Neighbouring cubes share ``overlap`` of their side (the last one sits flush with the
    edge) and their probabilities are averaged where they overlap; a volume smaller than the
    cube is zero-padded. In 3D the cube count grows with the cube of 1 / (1 - overlap): 0.5
    costs 8x the tiling, 0.25 (MONAI's default) about 2.4x.

    Args:
        predict_fn: model callable, (N, d, h, w, 1) -> (N, d, h, w, K).
        volume: (X, Y, Z) float32, already normalised.
        patch: the model's cube (d, h, w).
        overlap: shared fraction of a side between neighbouring cubes, 0 to 0.9.
        batch_size: cubes per call.
        progress: called as progress(done, total) after each batch.
    """
    data = np.asarray(volume, np.float32)
    if data.ndim != 3:
        raise UNetDemoError(f"Expected a 3-D volume (X, Y, Z). Received shape {data.shape}.")
    patch = tuple(int(p) for p in patch)
    pad = [(0, max(0, p - s)) for p, s in zip(patch, data.shape, strict=True)]
    padded = np.pad(data, pad)
    if not 0.0 <= overlap < 0.95:
        raise UNetDemoError(f"overlap must be between 0 and 0.9. Received: {overlap!r}.")
    starts = [grid_starts(s, p, max(1, int(round(p * (1.0 - overlap)))))
              for s, p in zip(padded.shape, patch, strict=True)]
    corners = [(x, y, z) for x in starts[0] for y in starts[1] for z in starts[2]]
    total = summed = None
    counts = np.zeros(padded.shape, np.float32)
    for first in range(0, len(corners), batch_size):
        chunk = corners[first:first + batch_size]
        cubes = np.stack([padded[x:x + patch[0], y:y + patch[1], z:z + patch[2]]
                          for x, y, z in chunk])[..., None]
        probs = np.asarray(predict_fn(cubes), np.float32)
        if summed is None:
            summed = np.zeros((*padded.shape, probs.shape[-1]), np.float32)
        for (x, y, z), prob in zip(chunk, probs, strict=True):
            summed[x:x + patch[0], y:y + patch[1], z:z + patch[2]] += prob
            counts[x:x + patch[0], y:y + patch[1], z:z + patch[2]] += 1.0
        if progress is not None:
            total = len(corners)
            progress(min(first + batch_size, total), total)
    summed /= counts[..., None]
    return summed[:data.shape[0], :data.shape[1], :data.shape[2]]


def _resize(array: np.ndarray, shape: Sequence[int], order: int) -> np.ndarray:
    from skimage.transform import resize

    return resize(array, tuple(shape) + array.shape[3:], order=order, preserve_range=True,
                  anti_aliasing=False).astype(np.float32)


def segment_volume_3d(
    predict_fn: PredictFn,
    volume: np.ndarray,
    *,
    patch: Sequence[int],
    num_classes: int,
    zooms: Sequence[float] | None,
    model_spacing: Sequence[float] | None,
    threshold: float = 0.5,
    normalization: str = "minmax",
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, dict[int, float] | None]:
    """Segment a volume in 3D; return labels on the original grid and volumes in mm³.

    Args:
        predict_fn: 3D model callable.
        volume: (X, Y, Z) voxels in RAS+ order (`LoadedImage.volume`).
        patch: the model's cube (d, h, w).
        num_classes: model output classes (1 = sigmoid).
        zooms: voxel size in mm of ``volume`` (None: unknown, no resampling).
        model_spacing: voxel size in mm the model trained at (None: no resampling).
        threshold: sigmoid cut.
        normalization: the model's training normalisation.
        progress: called as progress(done, total) after each batch of cubes.

    Example:
        >>> vol = np.zeros((16, 16, 16)); vol[4:12, 4:12, 4:12] = 100.0
        >>> labels, mm3 = segment_volume_3d(lambda x: x, vol, patch=(8, 8, 8), num_classes=1,
        ...                                 zooms=(1, 1, 1), model_spacing=(2, 2, 2))
        >>> labels.shape, round(mm3[1] / 8**3, 1)  # the 8 mm cube, within resampling error
        ((16, 16, 16), 1.0)
    """
    data = np.asarray(volume, np.float32)
    if data.ndim != 3:
        raise UNetDemoError(f"Expected a 3-D volume; received shape {data.shape}.")
    data = normalize(data, normalization, percentiles=(0.5, 99.5))
    working = data
    if zooms is not None and model_spacing is not None and len(zooms) >= 3:
        factors = [float(z) / float(s) for z, s in zip(zooms[:3], model_spacing, strict=True)]
        if any(abs(f - 1.0) > 1e-3 for f in factors):
            shape = [max(1, int(round(n * f))) for n, f in zip(data.shape, factors, strict=True)]
            working = _resize(data, shape, order=1)
    probs = sliding_window_probabilities(predict_fn, working, patch, progress=progress)
    if working.shape != data.shape:
        probs = _resize(probs, data.shape, order=1)
    labels = labels_from_probabilities(probs, probs.shape[-1], threshold)
    volumes = None
    if zooms is not None and len(zooms) >= 3:
        voxel = float(np.prod([float(z) for z in zooms[:3]]))
        volumes = {c: float((labels == c).sum()) * voxel for c in foreground_classes(num_classes)}
    return labels.astype(np.uint8), volumes


# --------------------------------------------------------------------------- 3D models

@dataclasses.dataclass
class VolumeModel:
    """A loaded 3D U-Net with what `segment_volume_3d` needs.

    Attributes:
        title: human label.
        model: the Keras model.
        patch: input cube (d, h, w).
        num_classes: output channels (1 = sigmoid).
        spacing: voxel size in mm it trained at (None when unknown).
        normalization: its training normalisation.
        source: the folder it came from.
    """

    title: str
    model: Any
    patch: tuple[int, int, int]
    num_classes: int
    spacing: tuple[float, float, float] | None
    normalization: str
    source: Path

    def predict_fn(self, batch_size: int = 4) -> PredictFn:
        """A ``predict_fn(cubes) -> probabilities`` callable."""
        def predict(cubes: np.ndarray) -> np.ndarray:
            # Direct calls: Model.predict's per-call set-up costs more than a few cubes.
            return np.concatenate([np.asarray(self.model(cubes[i:i + batch_size],
                                                         training=False))
                                   for i in range(0, len(cubes), batch_size)])

        return predict


def _spacing_of(config: dict[str, Any]) -> tuple[float, float, float] | None:
    from unet_demo.data.volumes import is_volume_dataset, load_volume_card

    dataset = str((config.get("data") or {}).get("dataset", ""))
    if not is_volume_dataset(dataset):
        return None
    return tuple(float(s) for s in load_volume_card(dataset)["spacing_mm"])  # type: ignore


def open_volume_model(folder: str | Path) -> VolumeModel:
    """Load the 3D U-Net of a run folder or bundled 3D model folder (model.keras + config).

    Args:
        folder: a folder with model.keras and config.json (a run) or card.json (bundled).

    Example:
        >>> from unet_demo.settings import REPO_ROOT
        >>> model = open_volume_model(REPO_ROOT / VOLUME_MODELS_DIR / "brain_volume")
        >>> model.patch, model.spacing
        ((32, 32, 32), (2.0, 2.0, 2.0))
    """
    from unet_demo.models.safe_load import load_model_file

    folder = Path(folder)
    config: dict[str, Any] = {}
    for name in ("config.json", "card.json"):
        path = folder / name
        if path.is_file():
            stored = json.loads(path.read_text(encoding="utf-8"))
            config = stored.get("config", stored)
            break
    model = load_model_file(folder / "model.keras")
    shape = tuple(model.input_shape)
    if len(shape) != 5:
        raise UNetDemoError(
            f"The model in {folder} takes input {shape}; the 3D path needs a 3D U-Net with "
            "input (batch, depth, height, width, channels). Train one with --variant unet3d "
            "on the brain_volume dataset.")
    outputs = int(model.output_shape[-1])
    return VolumeModel(
        title=str(config.get("title") or folder.name), model=model,
        patch=(int(shape[1]), int(shape[2]), int(shape[3])),
        num_classes=outputs, spacing=_spacing_of(config),
        normalization=str((config.get("data") or {}).get("normalization", "minmax")),
        source=folder)


def list_volume_models(runs_root: Path, repo_root: Path) -> dict[str, Path]:
    """Bundled 3D models and finished 3D U-Net runs: label -> folder.

    Args:
        runs_root: the runs folder (`unet_demo.settings.runs_dir`).
        repo_root: the repository (for the bundled 3D models).

    Example:
        >>> from unet_demo.settings import REPO_ROOT
        >>> list(list_volume_models(REPO_ROOT / "no_runs", REPO_ROOT))
        ['bundled 3D: brain_volume']
    """
    found: dict[str, Path] = {}
    bundled = volume_models_dir(repo_root)
    if bundled.is_dir():
        for folder in sorted(p for p in bundled.iterdir() if (p / "model.keras").is_file()):
            found[f"bundled 3D: {folder.name}"] = folder
    if Path(runs_root).is_dir():
        for folder in sorted(Path(runs_root).iterdir(), reverse=True):
            config = folder / "config.json"
            if not (folder / "model.keras").is_file() or not config.is_file():
                continue
            try:
                variant = json.loads(config.read_text(encoding="utf-8"))["model"]["variant"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if variant == "unet3d":
                found[f"run: {folder.name}"] = folder
    return found
