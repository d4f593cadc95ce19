"""Fit the feature-space OOD detector of every bundled model (re-runnable, deterministic).

For each ``models/bundled/NAME/`` this prepares the model's own training and validation splits
exactly as it was trained on them (the card's data config), fits
`unet_demo.inference.ood.fit_feature_detector` (Mahalanobis distance of pooled encoder
features, threshold from the validation images) and writes

    ood_features.npz   the training images' pooled features (float16) and the threshold

next to model.keras, and records the fit under ``ood_detector`` in card.json. Each file stays
under 200 kB.

Usage:
    .venv/bin/python scripts/fit_ood.py                  # every bundled model
    .venv/bin/python scripts/fit_ood.py --models nuclei  # just one

Education and research only, not for diagnosis.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from unet_demo.config import DataConfig  # noqa: E402
from unet_demo.data.sources import prepare_split  # noqa: E402
from unet_demo.inference import ood  # noqa: E402
from unet_demo.inference.registry import (  # noqa: E402
    CARD_FILE,
    bundled_model_names,
    nested_value,
    open_model,
)

MAX_FILE_BYTES = 200 * 1024


def fit_one(name: str) -> dict:
    """Fit, store and card-record the detector of one bundled model; return the card entry."""
    handle = open_model(f"bundled:{name}")
    data = nested_value(handle.card, "config", "data") or {"dataset": handle.dataset}
    config = DataConfig(**{k: v for k, v in data.items() if k in DataConfig.__dataclass_fields__})
    channels = handle.input_shape[-1]
    train = prepare_split(config, "train", channels=channels)[0]
    val = prepare_split(config, "val", channels=channels)[0]
    detector = ood.fit_feature_detector(handle.shared.keras_model, train, val)
    path = ood.save_feature_detector(detector, handle.source)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise SystemExit(f"{path} is {size} bytes, over the {MAX_FILE_BYTES} byte budget.")
    entry = {
        "file": ood.FEATURE_FILE,
        "bytes": size,
        "layers": list(detector.layers),
        "feature_dims": int(detector.train_features.shape[1]),
        "threshold": round(detector.threshold, 4),
        **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in detector.info.items()},
        "note": "Uploads whose encoder features lie farther than the threshold from the "
                "training images are flagged on Segment and by predict; see docs/ood.md.",
    }
    card_path = handle.source / CARD_FILE
    card = json.loads(card_path.read_text())
    card["ood_detector"] = entry
    card_path.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None, help="bundled model names")
    args = parser.parse_args(argv)
    for name in args.models or bundled_model_names():
        entry = fit_one(name)
        print(f"{name}: threshold {entry['threshold']:.2f} over {entry['num_train']} train / "
              f"{entry['num_val']} val images, {entry['bytes']} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
