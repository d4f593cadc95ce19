"""`RunSpec`: the four configs that fully describe one training run.

A run directory stores it as config.json; the worker process rebuilds the run from that file
alone, so a run can be resumed or reproduced from its folder.

Example:
    >>> spec = RunSpec()
    >>> RunSpec.from_dict(spec.to_dict()) == spec
    True
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from unet_demo.config import AugmentConfig, DataConfig, TrainConfig, UNetConfig
from unet_demo.errors import UNetDemoError

_PARTS = {"data": DataConfig, "augment": AugmentConfig, "model": UNetConfig,
          "train": TrainConfig}


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Data, augmentation, model and training settings of one run (frozen, JSON round trip).

    Args:
        data: which dataset, image size, normalisation, how many training images.
        augment: albumentations settings (used when ``train.augment`` is True).
        model: the U-Net to build; its input size, channels and class count are matched to the
            data when the run starts (the stored config.json shows the values used).
        train: loss, optimiser, schedule, epochs, batch size, early stopping, seed.

    Example:
        >>> spec = RunSpec(train=TrainConfig(epochs=3))
        >>> spec.replace(train=spec.train.replace(epochs=5)).train.epochs
        5
    """

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    model: UNetConfig = dataclasses.field(default_factory=UNetConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        for name, kind in _PARTS.items():
            value = getattr(self, name)
            if not isinstance(value, kind):
                raise UNetDemoError(
                    f"RunSpec.{name} must be a {kind.__name__}. Received: {type(value).__name__}."
                )

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict ``{"data": {...}, "augment": {...}, "model": {...}, "train": {...}}``."""
        return {name: getattr(self, name).to_dict() for name in _PARTS}

    def to_json(self) -> str:
        """Sorted, indented JSON of `to_dict`."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        """Rebuild a spec from `to_dict` output; missing parts take their defaults.

        Args:
            data: a dict with some of the keys "data", "augment", "model", "train".

        Example:
            >>> RunSpec.from_dict({"train": {"epochs": 2}}).train.epochs
            2
        """
        if not isinstance(data, dict):
            raise UNetDemoError(f"A run config must be a JSON object. Received: {type(data).__name__}.")
        unknown = sorted(set(data) - set(_PARTS))
        if unknown:
            raise UNetDemoError(
                f"Run config has unknown section(s) {unknown}. Expected some of {list(_PARTS)}."
            )
        return cls(**{name: kind.from_dict(data.get(name) or {}) for name, kind in _PARTS.items()})

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        """Parse JSON written by `to_json` (e.g. a run's config.json)."""
        try:
            data = json.loads(text)
        except ValueError as error:
            raise UNetDemoError(f"Run config is not valid JSON ({error}).") from None
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> RunSpec:
        """Copy with some parts replaced, e.g. ``spec.replace(train=new_train)``."""
        return dataclasses.replace(self, **changes)
