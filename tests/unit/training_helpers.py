"""A tiny RunSpec shared by the training tests: 32-pixel synthetic images, a 4-filter U-Net."""

from __future__ import annotations

from unet_demo.config import DataConfig, TrainConfig, UNetConfig
from unet_demo.training.spec import RunSpec


def tiny_spec(epochs: int = 2, images: int = 8, batch_size: int = 4, **train) -> RunSpec:
    """A run that trains in about a second per epoch on two cores (after compilation)."""
    return RunSpec(
        data=DataConfig(dataset="synthetic_lesions", image_size=32, max_train_images=images),
        model=UNetConfig(depth=2, base_filters=4, normalization="group"),
        train=TrainConfig(epochs=epochs, batch_size=batch_size, learning_rate=3e-3, seed=7,
                          **train),
    )


def wait_for(predicate, timeout: float = 240.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` seconds pass (False)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
