"""Make the shipped encoder ``models/encoders/brain_tissue_classic16`` (transfer learning offline).

It trains an ordinary run of this app (`unet_demo.training.runner.run_training`) on the
*training split* of the bundled ``brain_tissue`` dataset (4 tissue classes on the MNI ICBM152
template, skull-stripped), keeps the encoder (``enc0`` .. ``bottleneck``) of the trained U-Net
and writes it with a card:

    models/encoders/brain_tissue_classic16/encoder.npz   the encoder's weights (float16)
    models/encoders/brain_tissue_classic16/card.json     architecture, recipe, scores, sizes
    models/encoders/brain_tissue_classic16/README.md     the card in words

The target task of docs/transfer.md is ``brain_skullstrip`` (Colin27, another head and another
template): pretraining never sees a Colin27 image, let alone its test split.

Usage:
    .venv/bin/python scripts/pretrain_encoder.py                  # re-make the shipped encoder
    .venv/bin/python scripts/pretrain_encoder.py --dest /tmp/enc  # somewhere else

Education and research only, not for diagnosis.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from unet_demo import DISCLAIMER  # noqa: E402
from unet_demo.config import AugmentConfig, DataConfig, TrainConfig, UNetConfig  # noqa: E402
from unet_demo.models import transfer  # noqa: E402
from unet_demo.training.spec import RunSpec  # noqa: E402

NAME = "brain_tissue_classic16"
MAX_ENCODER_BYTES = 1_000_000
"""The shipped encoder's size budget (tests/unit/test_transfer.py checks it too)."""

SPEC = RunSpec(
    data=DataConfig(dataset="brain_tissue", image_size=64),
    augment=AugmentConfig(hflip_p=0.5, affine_p=0.5, shift_limit=0.05, scale_limit=0.15,
                          affine_rotate_limit=10.0, brightness_contrast_p=0.5,
                          brightness_limit=0.15, contrast_limit=0.15, seed=0),
    model=UNetConfig(variant="classic", depth=3, base_filters=16, normalization="group"),
    train=TrainConfig(loss="cce_dice", optimizer="adam", learning_rate=3e-3, schedule="cosine",
                      epochs=40, batch_size=8, augment=True, seed=7),
)


def readme(card: dict) -> str:
    """The card in words (README.md next to the weights)."""
    arch = card["architecture"]
    test = card["pretraining"]["test"]
    return "\n".join([
        f"# Shipped encoder: {card['name']}",
        "",
        f"> {DISCLAIMER}",
        "",
        f"- **What:** the encoder (levels enc0..enc{arch['depth'] - 1} and the bottleneck) of a "
        f"{transfer.describe_architecture(arch)}; {card['parameters']:,} parameters, "
        f"{card['encoder_bytes']:,} bytes.",
        f"- **Pretrained on:** the training split of `{card['pretraining']['dataset']}` "
        f"({card['pretraining']['train_images']} slices of the MNI ICBM152 2009a template, "
        f"skull-stripped), {card['pretraining']['image_size']}x"
        f"{card['pretraining']['image_size']} px, 4 tissue classes, "
        f"{card['pretraining']['epochs']} epochs, augmentation on, seed "
        f"{card['pretraining']['seed']}.",
        f"- **Pretraining scores (brain_tissue test split):** Dice {test.get('dice', 0):.3f}, "
        f"IoU {test.get('iou', 0):.3f}.",
        "- **Never seen:** any image of the Colin27 head (the `brain_skullstrip` dataset), so "
        "fine-tuning on skull stripping and scoring on its test split is a fair test.",
        f"- **Made by:** `{card['made_by']}` on {card['made_on']} "
        f"({card['cpu']}).",
        "- **Use:** `python -m unet_demo train --dataset brain_skullstrip --init-encoder "
        f"{card['name']} --frozen-epochs 10`, or pick it under *Start the encoder from* on the "
        "Train page. See docs/transfer.md for the measured effect.",
        "",
        "Limitations: one population-average template; the features know brain MRI at about "
        "3.4 mm per pixel and little else.",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=transfer.encoders_dir() / NAME)
    parser.add_argument("--epochs", type=int, default=SPEC.train.epochs)
    args = parser.parse_args(argv)

    import keras

    from unet_demo.data.sources import prepare_split
    from unet_demo.training.runner import cpu_description, run_training

    spec = SPEC.replace(train=SPEC.train.replace(epochs=args.epochs))
    with tempfile.TemporaryDirectory() as work:
        run_dir = run_training(spec, Path(work) / "pretrain",
                               on_event=lambda e: print(type(e).__name__, getattr(e, "epoch", ""),
                                                        flush=True))
        metrics = json.loads((run_dir / "metrics.json").read_text())
        stored = json.loads((run_dir / "config.json").read_text())
        model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    used = RunSpec.from_dict(stored)
    weights = transfer.encoder_weights(model, used.model)
    card = {
        "name": args.dest.name,
        "disclaimer": DISCLAIMER,
        "parameters": int(sum(w.size for w in weights.values())),
        "pretraining": {
            "dataset": used.data.dataset, "image_size": used.data.image_size,
            "splits_used": ["train (weights)", "val (monitoring)"],
            "train_images": len(prepare_split(used.data, "train")[2]),
            "epochs": used.train.epochs, "seed": used.train.seed, "loss": used.train.loss,
            "learning_rate": used.train.learning_rate, "schedule": used.train.schedule,
            "test": {k: v for k, v in metrics.get("test", {}).items()
                     if isinstance(v, float)},
            "config": stored,
        },
        "made_by": "scripts/pretrain_encoder.py",
        "made_on": datetime.date.today().isoformat(),
        "cpu": cpu_description()["cpu_model"],
    }
    folder = transfer.save_encoder(model, used.model, args.dest, card)
    size = (folder / transfer.ENCODER_FILE).stat().st_size
    if size > MAX_ENCODER_BYTES:
        raise SystemExit(f"{folder} is {size:,} bytes, over the {MAX_ENCODER_BYTES:,}-byte "
                         "budget; use fewer filters.")
    final = json.loads((folder / transfer.CARD_FILE).read_text())
    (folder / "README.md").write_text(readme(final), encoding="utf-8")
    print(f"wrote {folder} ({size:,} bytes); brain_tissue test Dice "
          f"{card['pretraining']['test'].get('dice', float('nan')):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
