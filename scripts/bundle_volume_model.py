"""Train (or take) a 3D U-Net run on brain_volume and copy it to models/volumetric/brain_volume.

The bundled 3D model lets the Segment page's 3D path work without training first. It is the
``brain_volume`` classroom preset trained for 4 epochs:

    $ .venv/bin/python -m unet_demo train --dataset brain_volume --preset classroom \\
          --epochs 4 --out build/volume_run
    $ .venv/bin/python scripts/bundle_volume_model.py --run build/volume_run

Without ``--run`` the script trains that run itself first. The folder gets model.keras and a
card.json (the run's config, test scores in 3D, environment and the command).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from unet_demo import DISCLAIMER  # noqa: E402
from unet_demo.inference.volume3d import VOLUME_MODELS_DIR  # noqa: E402

COMMAND = ["-m", "unet_demo", "train", "--dataset", "brain_volume", "--preset", "classroom",
           "--epochs", "4"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="a finished 3D run folder")
    args = parser.parse_args()
    run = args.run
    if run is None:
        run = REPO_ROOT / "build" / "volume_run"
        subprocess.run([sys.executable, *COMMAND, "--out", str(run)], check=True, cwd=REPO_ROOT)
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    environment = json.loads((run / "environment.json").read_text(encoding="utf-8"))
    if config["model"]["variant"] != "unet3d":
        raise SystemExit(f"{run} is not a 3D U-Net run")
    folder = REPO_ROOT / VOLUME_MODELS_DIR / config["data"]["dataset"]
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run / "model.keras", folder / "model.keras")
    card = {
        "title": "3D U-Net: brain extraction on the 2 mm Colin27 head (bundled)",
        "notice": DISCLAIMER,
        "dataset": config["data"]["dataset"],
        "config": config,
        "command": "python " + " ".join(COMMAND),
        "test_scores_3d": metrics.get("test"),
        "val": metrics.get("val"),
        "epochs_run": metrics.get("epochs_run"),
        "train_seconds": metrics.get("train_seconds"),
        "environment": {key: environment.get(key) for key in
                        ("cpu_model", "cpu_count", "device", "jit_compile", "packages")},
        "limitations": "Trained on the right side of one head (Colin27) and tested on the back "
                       "of its left side; it has never seen another person, scanner or "
                       "contrast. For teaching only.",
    }
    (folder / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    size = (folder / "model.keras").stat().st_size
    print(f"{folder}: model.keras {size / 1e6:.2f} MB, test {metrics.get('test')}")


if __name__ == "__main__":
    main()
