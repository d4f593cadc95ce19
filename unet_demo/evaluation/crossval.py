"""Cross-validation results: per-fold validation Dice, mean +- sd, and the fold ensemble.

``python -m unet_demo train --folds K`` trains one run per fold (`unet_demo.data.folds`
decides which images each fold validates on) and then calls `summarize_crossval`, which
scores every fold model the same way:

- on **its own validation fold** (per-image mean Dice; the folds together cover the whole
  pool, so the mean over folds estimates how well this recipe generalises, and the standard
  deviation how much that depends on which images one happens to hold out);
- on the **test split**, alone and as an **ensemble** (the mean of the K models'
  probabilities, as nnU-Net does), so the gain of the ensemble over the best single fold is
  measured on images none of them saw.

The summary is written to ``crossval.json`` in the CV folder; the Evaluate page lists such
folders (`list_crossval`) and shows the fold table.

Example:
    >>> mean_sd([0.8, 0.9, 1.0])
    (0.9, 0.1)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unet_demo.config import DataConfig
from unet_demo.errors import UNetDemoError

CROSSVAL_FILE = "crossval.json"
CROSSVAL_DIR = "crossval"
"""Folder under the runs folder that holds the summaries of queued cross-validations."""


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for one value), NaNs left out.

    Args:
        values: one score per fold.

    Example:
        >>> mean_sd([0.5])
        (0.5, 0.0)
    """
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return float("nan"), float("nan")
    sd = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    return round(float(np.mean(finite)), 6), round(sd, 6)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _dice_on(handle: Any, images: np.ndarray, masks: np.ndarray, ids: list[str]):
    """(probabilities, per-image rows) of a model on prepared images."""
    from unet_demo.evaluation.evaluate import evaluate_predictions

    probabilities = handle.predict(images)
    result = evaluate_predictions(probabilities, masks, handle.num_classes, ids=ids,
                                  distances=False)
    return probabilities, result


def summarize_crossval(
    fold_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    ensemble: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score the fold runs, write ``crossval.json`` into ``out_dir`` and return its contents.

    Args:
        fold_dirs: run directories, one per fold, each with config.json (its ``data.fold``)
            and model.keras.
        out_dir: the CV folder (created if needed).
        ensemble: also score the mean of the fold models' probabilities on the test split.
        progress: called with a line of text before each step (the CLI prints it).

    Raises:
        UNetDemoError: a fold run has no model, or the runs are not folds of one CV.

    Example:
        >>> summarize_crossval([], "/tmp/cv")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        unet_demo.errors.UNetDemoError: No fold runs to summarise...
    """
    from unet_demo.data.sources import prepare_split
    from unet_demo.evaluation.ensemble import mean_probabilities
    from unet_demo.evaluation.evaluate import evaluate_predictions
    from unet_demo.inference.registry import open_model

    say = progress or (lambda line: None)
    if not fold_dirs:
        raise UNetDemoError("No fold runs to summarise; train them with `python -m unet_demo "
                            "train --folds K`.")
    out_dir = Path(out_dir)
    folds, datas = [], []
    for run_dir in fold_dirs:
        run_dir = Path(run_dir)
        spec = _read_json(run_dir / "config.json")
        if not spec or not (run_dir / "model.keras").is_file():
            raise UNetDemoError(f"{run_dir} is not a finished fold run (config.json and "
                                "model.keras expected). Train it again with --folds.")
        datas.append(DataConfig.from_dict(spec["data"]))
        folds.append(run_dir)
    first = datas[0]
    keys = {(d.dataset, d.folds, d.image_size, d.normalization) for d in datas}
    if len(keys) != 1 or first.folds < 2 or len({d.fold for d in datas}) != len(datas):
        raise UNetDemoError("The runs are not the folds of one cross-validation (each needs the "
                            "same dataset, fold count, size and normalisation, and its own "
                            "fold). Received: " + ", ".join(
                                f"{d.dataset} fold {d.fold + 1}/{d.folds}" for d in datas))
    test_images, test_masks, test_ids = prepare_split(first, "test")
    rows, test_outputs, handles = [], [], []
    for run_dir, data in sorted(zip(folds, datas, strict=True), key=lambda p: p[1].fold):
        say(f"scoring fold {data.fold + 1} of {data.folds}")
        handle = open_model(run_dir)
        handles.append(handle)
        val_images, val_masks, val_ids = prepare_split(data, "val")
        _, val_result = _dice_on(handle, val_images, val_masks, val_ids)
        train_ids = prepare_split(data, "train")[2]
        row = {"fold": data.fold + 1, "run_dir": _relative(run_dir, out_dir),
               "run_id": run_dir.name, "train_images": len(train_ids),
               "val_images": len(val_ids), "val_dice": val_result.mean.get("dice"),
               "val_groups": _groups_text(val_ids),
               "epochs": _read_json(run_dir / "metrics.json").get("epochs_run")}
        if len(test_ids):
            probabilities, test_result = _dice_on(handle, test_images, test_masks, test_ids)
            test_outputs.append(probabilities)
            row["test_dice"] = test_result.mean.get("dice")
        rows.append(row)
    mean, sd = mean_sd([row["val_dice"] for row in rows])
    summary: dict[str, Any] = {
        "dataset": first.dataset, "folds": first.folds, "image_size": first.image_size,
        "normalization": first.normalization, "runs": rows,
        "val_dice_mean": mean, "val_dice_sd": sd, "test_images": len(test_ids),
    }
    if ensemble and len(test_outputs) == len(rows) and len(rows) > 1:
        say(f"scoring the ensemble of {len(rows)} folds on the test split")
        averaged = mean_probabilities(test_outputs)
        result = evaluate_predictions(averaged, test_masks, handles[0].num_classes,
                                      ids=test_ids, distances=False)
        best = max(rows, key=lambda r: r.get("test_dice") or -1.0)
        summary["ensemble"] = {
            "test_dice": result.mean.get("dice"),
            "best_fold": best["fold"], "best_fold_test_dice": best.get("test_dice"),
            "mean_fold_test_dice": mean_sd([r.get("test_dice") for r in rows])[0],
            "gain_over_best_fold": (result.mean.get("dice") or 0.0) - (best.get("test_dice")
                                                                        or 0.0),
        }
    out_dir.mkdir(parents=True, exist_ok=True)
    temporary = out_dir / f".{CROSSVAL_FILE}.tmp"
    temporary.write_text(json.dumps(summary, indent=2, default=float), encoding="utf-8")
    os.replace(temporary, out_dir / CROSSVAL_FILE)
    return summary


def _relative(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` when inside it (a CV folder that moves keeps working)."""
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def _groups_text(ids: Sequence[str]) -> str:
    """A short description of which images a fold validates on, e.g. 'axial_z011..axial_z041'."""
    from unet_demo.data.folds import image_groups

    groups = sorted(set(image_groups(list(ids))))
    if not groups:
        return ""
    return f"{len(groups)} group(s): " + (", ".join(groups) if len(groups) <= 4 else
                                          f"{groups[0]} ... {groups[-1]}")


def load_crossval(folder: str | Path) -> dict[str, Any]:
    """The ``crossval.json`` of a CV folder, with each fold's run folder made absolute.

    Args:
        folder: the CV folder (or the crossval.json file).

    Raises:
        UNetDemoError: no readable summary there.

    Example:
        >>> load_crossval("/nonexistent")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        unet_demo.errors.UNetDemoError: No cross-validation summary at /nonexistent/crossval.json...
    """
    folder = Path(folder)
    if folder.name == CROSSVAL_FILE:
        folder = folder.parent
    summary = _read_json(folder / CROSSVAL_FILE)
    if not summary.get("runs"):
        raise UNetDemoError(f"No cross-validation summary at {folder / CROSSVAL_FILE}. Train the "
                            "folds with `python -m unet_demo train --folds K`.")
    for row in summary["runs"]:
        path = Path(row["run_dir"])
        row["path"] = str(path if path.is_absolute() else folder / path)
    summary["folder"] = str(folder)
    return summary


def list_crossval(root: str | Path | None = None) -> list[Path]:
    """CV folders (holding crossval.json) in the runs folder and its crossval/ folder, newest first.

    Args:
        root: the runs folder (default `unet_demo.settings.runs_dir()`).

    Example:
        >>> list_crossval("/nonexistent")
        []
    """
    from unet_demo.settings import runs_dir

    root = Path(root) if root is not None else runs_dir()
    found = [*root.glob(f"*/{CROSSVAL_FILE}"), *root.glob(f"{CROSSVAL_DIR}/*/{CROSSVAL_FILE}")]
    return [path.parent for path in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]


def fold_table(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for the Evaluate page: one per fold, then mean +- sd and the ensemble.

    Args:
        summary: from `load_crossval` or `summarize_crossval`.

    Example:
        >>> table = fold_table({"runs": [{"fold": 1, "val_dice": 0.8, "test_dice": 0.7,
        ...                               "val_images": 3, "train_images": 6}],
        ...                     "val_dice_mean": 0.8, "val_dice_sd": 0.0})
        >>> [row["fold"] for row in table]
        ['1', 'mean ± sd']
    """
    rows = [{"fold": str(row["fold"]), "train images": row.get("train_images"),
             "val images": row.get("val_images"), "val Dice": row.get("val_dice"),
             "test Dice": row.get("test_dice"), "validates on": row.get("val_groups", "")}
            for row in summary["runs"]]
    rows.append({"fold": "mean ± sd", "train images": None, "val images": None,
                 "val Dice": summary.get("val_dice_mean"), "test Dice": None,
                 "validates on": f"sd {summary.get('val_dice_sd', float('nan')):.3f}"})
    ensemble = summary.get("ensemble")
    if ensemble:
        rows.append({"fold": "ensemble", "train images": None, "val images": None,
                     "val Dice": None, "test Dice": ensemble.get("test_dice"),
                     "validates on": f"mean of {len(summary['runs'])} models' probabilities"})
    return rows
