"""Training a 3D U-Net on a volume dataset: the runner's hooks with three volume-specific ones.

`VolumeHooks` is a mixin the runner puts in front of its trainer (`unet_demo.training.runner`)
for a 3D U-Net, replacing the parts that depend on the data's dimensionality; everything else (seeding, XLA choice, the tf.data
pipeline, checkpoints, typed events, live curves on the Train page) is shared:

* ``prepare``: as the runner, then the 2-D augmentation switch is turned off (albumentations
  transforms images, not volumes; the training patches already come with their left-right
  mirrors, `unet_demo.data.volumes.region_patches`);
* ``_snapshot``: the Train page's validation snapshot shows the middle axial slice of a few
  validation cubes;
* ``score_test``: the test box is predicted cube by cube and scored once in 3D: Dice, IoU and
  HD95/ASD in mm (`unet_demo.evaluation.volume`).

Example:
    >>> from unet_demo.training.presets import get_preset
    >>> spec = get_preset("brain_volume", "classroom")
    >>> spec.model.variant, spec.data.image_size
    ('unet3d', 32)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from unet_demo.data.readers import slice_volume
from unet_demo.errors import UNetDemoError
from unet_demo.training import rundir


def middle_slices(cubes: np.ndarray) -> np.ndarray:
    """Middle axial slice of each cube, upright: (N, X, Y[, C]) -> (N, rows, cols[, C]).

    Args:
        cubes: (N, X, Y, Z) or (N, X, Y, Z, C) arrays in RAS+ voxel order.

    Example:
        >>> middle_slices(np.zeros((2, 4, 6, 8, 1))).shape
        (2, 6, 4, 1)
    """
    middle = cubes.shape[3] // 2
    slices = []
    for cube in cubes:
        if cube.ndim == 4:
            slices.append(np.stack([slice_volume(cube[..., c], "axial", middle)
                                    for c in range(cube.shape[-1])], axis=-1))
        else:
            slices.append(slice_volume(cube, "axial", middle))
    return np.stack(slices)


class VolumeHooks:
    """Mixin over the runner's trainer for a 3D U-Net on cubic patches (module docstring).

    Used as ``type("VolumeTrainer", (VolumeHooks, _Trainer), {})`` by
    `unet_demo.training.runner.run_training`; it reads and sets the trainer's attributes
    (``spec``, ``data``, ``model``, ``run_dir``, ``notes``) and calls the trainer's own hooks
    through ``super()``.
    """

    spec: Any
    data: Any
    model: Any
    run_dir: Any
    notes: list[str]
    snapshot_index: Any

    def prepare(self, resume: bool) -> None:
        """As the runner; then the 2-D augmentation switch is turned off (see above)."""
        super().prepare(resume)  # type: ignore[misc]
        if self.spec.train.augment:
            self.spec = self.spec.replace(train=self.spec.train.replace(augment=False))
            rundir.atomic_write_text(self.run_dir / rundir.CONFIG_FILE, self.spec.to_json())
            self.notes.append("Image augmentation is off for volumes: the training cubes "
                              "already include left-right mirrored copies.")

    def snapshot_view(self, array: np.ndarray) -> np.ndarray:
        """Snapshots of cubes keep their middle axial slice (the runner saves them as 2-D)."""
        return middle_slices(array)

    def score_test(self, model) -> tuple[dict[str, Any], int]:
        """Scores of the whole test box in 3D (HD95/ASD in mm) and 1 (one volume region)."""
        from unet_demo.evaluation.volume import evaluate_volume_split

        cfg = self.spec.model
        try:
            scores = evaluate_volume_split(
                lambda cubes: np.asarray(model(cubes, training=False)), self.spec.data.dataset,
                "test", (cfg.input_depth, cfg.input_height, cfg.input_width))
        except UNetDemoError as error:
            return {"error": str(error)}, 0
        return scores, 1
