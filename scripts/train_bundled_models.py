"""Train the bundled models that let the Segment and Evaluate pages work with zero training.

For each bundled dataset this runs the ordinary training CLI

    python -m unet_demo train --dataset NAME --preset quality --out WORKDIR/NAME

then copies the run's model.keras into ``models/bundled/NAME/`` together with

    card.json         title, dataset, config, seed, data split, test metrics, limitations
    fingerprint.json  training-set fingerprint for out-of-distribution warnings

and refuses a model file larger than 5 MB (the repository ships these files).

Usage:
    .venv/bin/python scripts/train_bundled_models.py                    # every dataset
    .venv/bin/python scripts/train_bundled_models.py --datasets nuclei  # just one
    .venv/bin/python scripts/train_bundled_models.py --preset quick --dest /tmp/bundled

Education and research only, not for diagnosis.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from unet_demo import DISCLAIMER  # noqa: E402
from unet_demo.inference.registry import (  # noqa: E402
    CARD_FILE,
    FINGERPRINT_FILE,
    MAX_BUNDLED_BYTES,
    MODEL_FILE,
    bundled_models_dir,
)


def find_model_file(out_dir: Path) -> Path:
    """The model.keras the training run wrote (newest if the CLI made a sub-folder per run)."""
    candidates = sorted(out_dir.rglob(MODEL_FILE), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise SystemExit(f"training wrote no {MODEL_FILE} under {out_dir}")
    return candidates[-1]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def test_metrics(model_path: Path, dataset: str) -> dict:
    """Mean Dice/IoU/HD95 etc. of the trained model on the dataset's test split.

    Images are normalised one by one as in training and in ``predict`` (the evaluate CLI path).
    """
    from unet_demo.commands.evaluate import score_model_on_split
    from unet_demo.inference.registry import open_model

    handle = open_model(model_path)
    result = score_model_on_split(handle, dataset, "test", 0.5, True)
    return {"split": "test", "num_images": len(result.rows), **result.mean}


def make_card(name: str, run_dir: Path, preset: str, metrics: dict) -> dict:
    from unet_demo.data.bundled import get_dataset_info, load_card

    info = get_dataset_info(name)
    run_card = read_json(run_dir / "card.json") or read_json(run_dir / "model_card.json")
    config = read_json(run_dir / "config.json")
    return {
        "title": f"U-Net for {info.title}",
        "dataset": name,
        "num_classes": info.num_classes,
        "class_names": list(info.class_names),
        "image_size": list(info.image_size),
        "channels": info.channels,
        "preset": preset,
        "config": config,
        "seed": (config.get("train") or {}).get("seed", config.get("seed")),
        "data": {"split_counts": dict(info.split_counts), "dataset_card": load_card(name)},
        "test_metrics": metrics,
        "run_card": run_card,
        "trained_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "limitations": (
            "Trained on a single subject or image; scores overstate how well it generalises. "
            + DISCLAIMER
        ),
    }


def train_one(name: str, preset: str, work: Path, dest_root: Path) -> dict:
    from unet_demo.data.bundled import load_split
    from unet_demo.inference.ood import model_fingerprint, save_fingerprint

    out_dir = work / name
    command = [sys.executable, "-m", "unet_demo", "train", "--dataset", name,
               "--preset", preset, "--out", str(out_dir)]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=REPO, check=True)
    model_path = find_model_file(out_dir)
    size = model_path.stat().st_size
    if size > MAX_BUNDLED_BYTES:
        raise SystemExit(
            f"{name}: model.keras is {size / 1e6:.1f} MB, over the "
            f"{MAX_BUNDLED_BYTES / 1e6:.0f} MB limit; use a smaller preset or fewer filters."
        )
    metrics = test_metrics(model_path, name)
    card = make_card(name, model_path.parent, preset, metrics)
    dest = dest_root / name
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(model_path, dest / MODEL_FILE)
    (dest / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=True, default=str))
    save_fingerprint(model_fingerprint(load_split(name, "train").images, "minmax"),
                     dest / FINGERPRINT_FILE)
    print(f"{name}: {size / 1e6:.2f} MB, test Dice {metrics.get('dice', float('nan')):.3f}"
          f" -> {dest}", flush=True)
    return {"name": name, "bytes": size, **metrics}


def main(argv: list[str] | None = None) -> int:
    from unet_demo.data.bundled import list_datasets

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", help="dataset names (default: all bundled)")
    parser.add_argument("--preset", default="quality", help="training preset (default quality)")
    parser.add_argument("--dest", type=Path, default=None,
                        help="destination folder (default models/bundled)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where training runs go (default: a temporary folder)")
    args = parser.parse_args(argv)
    names = args.datasets or [info.name for info in list_datasets()]
    dest_root = args.dest or bundled_models_dir()
    with tempfile.TemporaryDirectory(prefix="bundled-train-") as tmp:
        work = args.workdir or Path(tmp)
        summary = [train_one(name, args.preset, work, dest_root) for name in names]
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
