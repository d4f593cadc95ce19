"""A tiny real U-Net, trained briefly on the synthetic lesions, saved like a bundled model.

Used by the Evaluate/Segment page tests, the browser test and the predict CLI tests. The model
is real (built by `build_unet`, trained with Keras, saved as .keras and re-opened with
safe_mode by the code under test), just small: depth 2, a few filters, a few epochs.

Example:
    >>> root = make_tiny_bundled_model(tmp_path)  # doctest: +SKIP
    >>> os.environ["UNET_DEMO_BUNDLED_MODELS_DIR"] = str(root)  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

TINY_DATASET = "synthetic_lesions"
BUNDLED_DIR_ENV = "UNET_DEMO_BUNDLED_MODELS_DIR"


def make_tiny_bundled_model(
    root: Path,
    dataset: str = TINY_DATASET,
    *,
    epochs: int = 1,
    base_filters: int = 4,
    num_images: int = 32,
) -> Path:
    """Train and save ``root/<dataset>/{model.keras, card.json, fingerprint.json}``; return root.

    Args:
        root: folder to use as the bundled-models folder (``UNET_DEMO_BUNDLED_MODELS_DIR``).
        dataset: bundled dataset to train on.
        epochs: training epochs (1 = a few seconds; 6 with 8 filters and all images gives a
            visible, roughly right mask on the synthetic lesions).
        base_filters: filters of the first block.
        num_images: training images used (0 = all).

    Example:
        >>> make_tiny_bundled_model(Path("/tmp/models"), epochs=1)  # doctest: +SKIP
        PosixPath('/tmp/models')
    """
    import keras

    from unet_demo.config import UNetConfig
    from unet_demo.data.bundled import get_dataset_info, load_split
    from unet_demo.data.preprocess import normalize
    from unet_demo.inference.ood import model_fingerprint, save_fingerprint
    from unet_demo.models.builder import build_unet

    keras.utils.set_random_seed(0)
    train = load_split(dataset, "train")
    height, width, channels = train.images.shape[1:4]
    classes = int(get_dataset_info(dataset).num_classes)
    outputs = 1 if classes <= 2 else classes
    cfg = UNetConfig(input_height=height, input_width=width, input_channels=channels,
                     num_classes=outputs, depth=2, base_filters=base_filters,
                     normalization="none")
    model = build_unet(cfg)

    def bce_dice(y_true, y_pred):
        return keras.losses.binary_crossentropy(y_true, y_pred) + keras.losses.dice(y_true, y_pred)

    loss = bce_dice if outputs == 1 else "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=loss)
    count = len(train.images) if num_images <= 0 else num_images
    # Normalised per image like the training engine and the app do ("minmax").
    images = np.stack([normalize(image, "minmax") for image in train.images[:count]])
    masks = np.asarray(train.masks[:count])
    masks = (masks > 0).astype(np.float32)[..., None] if outputs == 1 else masks.astype(np.int32)
    model.fit(images, masks, epochs=epochs, batch_size=8, verbose=0)
    folder = Path(root) / dataset
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    card = {"title": f"Tiny test U-Net ({dataset})", "dataset": dataset, "num_classes": outputs,
            "config": cfg.to_dict(), "data": {"dataset": dataset, "normalization": "minmax"},
            "seed": 0, "epochs": epochs}
    (folder / "card.json").write_text(json.dumps(card))
    save_fingerprint(model_fingerprint(train.images, "minmax"), folder / "fingerprint.json")
    return Path(root)


@functools.cache
def shared_tiny_models_dir() -> Path:
    """One tiny bundled-models folder per test process (trained once, about 10 s).

    Point the app at it with ``monkeypatch.setenv(BUNDLED_DIR_ENV, str(shared_tiny_models_dir()))``.

    Example:
        >>> (shared_tiny_models_dir() / TINY_DATASET / "model.keras").is_file()  # doctest: +SKIP
        True
    """
    root = Path(tempfile.mkdtemp(prefix="unet_demo_tiny_models_"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return make_tiny_bundled_model(root, epochs=2, base_filters=4, num_images=48)
