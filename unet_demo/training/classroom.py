"""A teacher's class file: pin the dataset, preset, allowed variants, an epoch cap and a banner.

``UNET_DEMO_CLASS_FILE`` (see `unet_demo.settings.class_file`) names a small YAML file; every
page reads it (``docs/class.example.yaml`` shows all keys)::

    default_dataset: nuclei          # the dataset Build and Train start on
    preset: classroom                # classroom or quality
    allowed_variants: [classic, attention]
    epoch_cap: 10                    # no run trains longer than this
    banner: "Week 3: try the attention gate."

Every key is optional. A file that is missing, is not YAML, or holds an unknown key or a bad
value gives one `UNetDemoError` sentence saying what is wrong and how to fix it; the pages show
it and carry on with no class settings.

Example:
    >>> settings = parse_class_settings("epoch_cap: 5\\nallowed_variants: [classic]")
    >>> settings.epoch_cap, settings.allowed_variants
    (5, ('classic',))
    >>> apply_class_settings(RunSpec(), settings).train.epochs
    5
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

from unet_demo.config import VARIANTS
from unet_demo.data.bundled import DATASET_NAMES
from unet_demo.errors import UNetDemoError
from unet_demo.training.presets import PRESET_NAMES
from unet_demo.training.spec import RunSpec

MAX_BANNER_CHARS = 500
MAX_FILE_BYTES = 64_000


@dataclasses.dataclass(frozen=True)
class ClassSettings:
    """What a teacher pinned for the class (the defaults pin nothing).

    Args:
        default_dataset: the dataset Build and Train start on ("" = the app's default).
        preset: the preset Train starts on ("" = "classroom").
        allowed_variants: the U-Net variants students may pick (all by default).
        epoch_cap: the most epochs one run may train (0 = no cap).
        banner: text shown at the top of every page ("" = none).

    Example:
        >>> ClassSettings().pinned()
        False
        >>> ClassSettings(epoch_cap=3).capped_epochs(10)
        3
    """

    default_dataset: str = ""
    preset: str = ""
    allowed_variants: tuple[str, ...] = VARIANTS
    epoch_cap: int = 0
    banner: str = ""

    def pinned(self) -> bool:
        """True when the class file changes anything."""
        return self != ClassSettings()

    def capped_epochs(self, epochs: int) -> int:
        """`epochs`, lowered to the cap when there is one."""
        return min(int(epochs), self.epoch_cap) if self.epoch_cap else int(epochs)

    def variant_allowed(self, variant: str) -> bool:
        """True when students may build and train a `variant` U-Net."""
        return variant in self.allowed_variants


_KEYS = tuple(field.name for field in dataclasses.fields(ClassSettings))


def parse_class_settings(text: str, source: str = "The class file") -> ClassSettings:
    """Read and check the YAML text of a class file.

    Args:
        text: the file's contents.
        source: how messages name the file, e.g. "Class file /srv/class.yaml".

    Raises:
        UNetDemoError: not YAML, not a mapping, an unknown key or a bad value (one sentence).

    Example:
        >>> parse_class_settings("preset: quality").preset
        'quality'
        >>> parse_class_settings("epochs_cap: 5")
        Traceback (most recent call last):
        ...
        unet_demo.errors.UNetDemoError: The class file has an unknown key 'epochs_cap': use only default_dataset, preset, allowed_variants, epoch_cap, banner (see docs/class.example.yaml).
    """
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise UNetDemoError(f"{source} is not valid YAML{line}: write one 'key: value' per line "
                            "as in docs/class.example.yaml.") from None
    if data is None:
        return ClassSettings()
    if not isinstance(data, dict):
        raise UNetDemoError(f"{source} must hold 'key: value' lines (a YAML mapping), not a "
                            f"{type(data).__name__}; see docs/class.example.yaml.")
    for key in data:
        if key not in _KEYS:
            raise UNetDemoError(f"{source} has an unknown key {key!r}: use only "
                                f"{', '.join(_KEYS)} (see docs/class.example.yaml).")
    values: dict[str, Any] = {}
    if data.get("default_dataset") is not None:
        dataset = data["default_dataset"]
        if not isinstance(dataset, str) or not (dataset in DATASET_NAMES
                                                or dataset.startswith("upload:")):
            raise UNetDemoError(f"{source}: default_dataset {dataset!r} is not a dataset; use "
                                f"one of {', '.join(DATASET_NAMES)} or 'upload:<id>'.")
        values["default_dataset"] = dataset
    if data.get("preset") is not None:
        if data["preset"] not in PRESET_NAMES:
            raise UNetDemoError(f"{source}: preset {data['preset']!r} is not a preset; use one "
                                f"of {', '.join(PRESET_NAMES)}.")
        values["preset"] = data["preset"]
    if data.get("allowed_variants") is not None:
        variants = data["allowed_variants"]
        variants = [variants] if isinstance(variants, str) else variants
        if not isinstance(variants, list) or not variants:
            raise UNetDemoError(f"{source}: allowed_variants must list at least one variant, "
                                "e.g. 'allowed_variants: [classic, attention]'.")
        bad = [name for name in variants if name not in VARIANTS]
        if bad:
            raise UNetDemoError(f"{source}: allowed_variants names unknown variant(s) "
                                f"{', '.join(map(repr, bad))}; use some of "
                                f"{', '.join(VARIANTS)}.")
        values["allowed_variants"] = tuple(dict.fromkeys(variants))
    if data.get("epoch_cap") is not None:
        cap = data["epoch_cap"]
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise UNetDemoError(f"{source}: epoch_cap must be a whole number of at least 1, "
                                f"e.g. 'epoch_cap: 10'. Received: {cap!r}.")
        values["epoch_cap"] = cap
    if data.get("banner") is not None:
        banner = data["banner"]
        if not isinstance(banner, str | int | float) or isinstance(banner, bool):
            raise UNetDemoError(f"{source}: banner must be one line of text, e.g. "
                                "'banner: \"Week 3: attention gates\"'.")
        banner = str(banner).strip()
        if len(banner) > MAX_BANNER_CHARS:
            raise UNetDemoError(f"{source}: banner is {len(banner)} characters long; keep it "
                                f"under {MAX_BANNER_CHARS}.")
        values["banner"] = banner
    return ClassSettings(**values)


def load_class_settings(path: Path | str | None) -> ClassSettings:
    """The class settings in the file at `path` (no file set: nothing pinned).

    Re-read only when the file changes (its size and modification time are the cache key), so
    every page can call it on every run and a teacher's edit shows on the next click.

    Args:
        path: usually `unet_demo.settings.class_file()`.

    Raises:
        UNetDemoError: the file is missing, unreadable, too big or not a valid class file.

    Example:
        >>> load_class_settings(None)
        ClassSettings(default_dataset='', preset='', allowed_variants=('classic', 'attention', 'residual', 'dense', 'unetpp', 'lightweight', 'unet3d', 'pretrained'), epoch_cap=0, banner='')
    """
    if path is None:
        return ClassSettings()
    path = Path(path)
    source = f"Class file {path} (UNET_DEMO_CLASS_FILE)"
    try:
        stat = path.stat()
    except OSError:
        raise UNetDemoError(f"{source} does not exist: fix the path or unset "
                            "UNET_DEMO_CLASS_FILE to use no class settings.") from None
    if not path.is_file() or stat.st_size > MAX_FILE_BYTES:
        raise UNetDemoError(f"{source} is not a small YAML file (a folder, or over "
                            f"{MAX_FILE_BYTES // 1000} kB): point the variable at a file like "
                            "docs/class.example.yaml.")
    return _parse_file(str(path), stat.st_mtime_ns, stat.st_size, source)


@functools.lru_cache(maxsize=8)
def _parse_file(path: str, mtime_ns: int, size: int, source: str) -> ClassSettings:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise UNetDemoError(f"{source} cannot be read as UTF-8 text: save it as plain text "
                            "like docs/class.example.yaml.") from None
    return parse_class_settings(text, source)


def apply_class_settings(spec: RunSpec, settings: ClassSettings) -> RunSpec:
    """`spec` within the class's limits: epochs lowered to the cap, a barred variant refused.

    Args:
        spec: the run about to start.
        settings: the class settings (`ClassSettings()` changes nothing).

    Raises:
        UNetDemoError: the spec's model is a variant the class file does not allow.

    Example:
        >>> from unet_demo.config import UNetConfig
        >>> spec = RunSpec(model=UNetConfig(variant="attention"))
        >>> apply_class_settings(spec, ClassSettings(allowed_variants=("classic",)))
        Traceback (most recent call last):
        ...
        unet_demo.errors.UNetDemoError: This class allows only the classic U-Net variant(s), and this run's model is 'attention': pick an allowed variant on the Build page, or train the preset's model.
    """
    if not settings.variant_allowed(spec.model.variant):
        raise UNetDemoError(f"This class allows only the {', '.join(settings.allowed_variants)} "
                            f"U-Net variant(s), and this run's model is "
                            f"{spec.model.variant!r}: pick an allowed variant on the Build page, "
                            "or train the preset's model.")
    epochs = settings.capped_epochs(spec.train.epochs)
    if epochs == spec.train.epochs:
        return spec
    return spec.replace(train=spec.train.replace(epochs=epochs))
