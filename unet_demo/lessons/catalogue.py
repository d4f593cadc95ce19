"""The Lessons page's experiments: one question from the guide, a few runs that change one thing.

Every experiment starts from a small, fast base run (a classroom preset on bundled data, a few
epochs, a capped training set) and varies one setting, so its runs can be recorded once
(`scripts/record_lessons.py`) and replayed instantly, and anyone can train the same `RunSpec`
again through the queue and get the same curve on a CPU (fixed seeds, deterministic ops).

Example:
    >>> experiment = get_experiment("skip_connections")
    >>> [run.key for run in experiment.runs]
    ['all', 'level0', 'none']
    >>> experiment.varies
    ('model.skip_connections',)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from unet_demo.config import AugmentConfig
from unet_demo.errors import UNetDemoError
from unet_demo.training.presets import get_preset
from unet_demo.training.spec import RunSpec

MEASURES = {
    "test_dice": "test Dice",
    "gap": "train-minus-validation Dice gap",
    "train_gflop": "training compute (GFLOP)",
    "receptive_field": "receptive field (px)",
    "train_seconds": "wall time (s, shared machine)",
}
"""What an experiment's answer can compare; `LOWER_IS_BETTER` ones are better when lower."""
LOWER_IS_BETTER = ("gap", "train_seconds", "train_gflop")


@dataclasses.dataclass(frozen=True)
class LessonRun:
    """One recorded run of an experiment.

    Args:
        key: folder name under the experiment's recording (letters, digits, underscores).
        label: what the page and the CLI call it, e.g. "no skips".
        spec: the full RunSpec, trained as it stands (by the recorder and by "Run it live").
    """

    key: str
    label: str
    spec: RunSpec


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A question, its runs and how the recording answers it.

    Args:
        key: stable id (the recording's folder, the page's ``?lesson=`` value).
        title: short name in the list.
        question: the question from the guide, in one sentence.
        guide_says: what the guide claims, in our words.
        expected: key of the run the guide's claim predicts does best ("" when it predicts none).
        varies: the dotted config fields that differ between the runs (usually one).
        runs: two to five `LessonRun`s; the first is the baseline.
        measures: what the answer compares; the first decides which run did best.
        look_at: where on the snapshots the difference shows (a hint, no numbers).
        learn: key of the Learn section that explains the idea.
    """

    key: str
    title: str
    question: str
    guide_says: str
    expected: str
    varies: tuple[str, ...]
    runs: tuple[LessonRun, ...]
    measures: tuple[str, ...] = ("test_dice",)
    look_at: str = ""
    learn: str = ""

    def run(self, key: str) -> LessonRun:
        """The run called ``key`` (UNetDemoError naming the choices otherwise)."""
        for run in self.runs:
            if run.key == key:
                return run
        raise UNetDemoError(f"Experiment {self.key!r} has no run {key!r}. Expected one of "
                            f"{[r.key for r in self.runs]}.")


def _base(dataset: str, *, size: int, images: int, epochs: int) -> RunSpec:
    spec = get_preset(dataset, "classroom")
    return spec.replace(data=spec.data.replace(image_size=size, max_train_images=images),
                        train=spec.train.replace(epochs=epochs))


BRAIN = _base("brain_skullstrip", size=64, images=32, epochs=6)
"""Skull stripping at 64 px: 32 training slices, 6 epochs (about 20 s on two CPU cores)."""
LESIONS = _base("synthetic_lesions", size=96, images=32, epochs=10)
LESIONS = LESIONS.replace(train=LESIONS.train.replace(batch_size=2))
"""Small synthetic lesions at 96 px (a few per cent foreground): 32 training images in batches of
two, 10 epochs (160 steps; with batches of 8, 32 steps, no loss got past Dice 0.12)."""
SMALL = BRAIN.replace(data=BRAIN.data.replace(max_train_images=10),
                      train=BRAIN.train.replace(epochs=30, batch_size=2))
"""Ten training slices in batches of two for 30 epochs (150 steps): long enough to start
memorising them, where augmentation and regularisation matter (24 steps showed nothing)."""
_AUGMENT = AugmentConfig(hflip_p=0.5, affine_p=0.8, shift_limit=0.08, scale_limit=0.15,
                         affine_rotate_limit=15.0, brightness_contrast_p=0.3,
                         brightness_limit=0.1, contrast_limit=0.1, seed=0)


def _set(spec: RunSpec, **changes: Any) -> RunSpec:
    """Copy of ``spec`` with dotted fields changed: ``_set(s, **{"model.depth": 2})``."""
    parts: dict[str, dict[str, Any]] = {}
    for dotted, value in changes.items():
        part, field = dotted.split(".")
        parts.setdefault(part, {})[field] = value
    return spec.replace(**{part: getattr(spec, part).replace(**fields)
                           for part, fields in parts.items()})


def _runs(base: RunSpec, field: str, choices: list[tuple[str, str, Any]]) -> tuple[LessonRun, ...]:
    return tuple(LessonRun(key, label, _set(base, **{field: value}))
                 for key, label, value in choices)


EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment(
        key="skip_connections", title="Skip connections on or off",
        question="What do skip connections add to an encoder-decoder?",
        guide_says="Skip connections carry fine detail from the encoder to the decoder, so "
                   "boundaries come out sharper and accuracy improves.",
        expected="all", varies=("model.skip_connections",),
        runs=_runs(BRAIN, "model.skip_connections", [
            ("all", "all skips (U-Net)", "all"),
            ("level0", "full-resolution skip only", "0"),
            ("none", "no skips (plain encoder-decoder)", "none")]),
        look_at="Compare the outlines along the brain's border and around the ventricles: "
                "without skips the decoder must rebuild that detail from the 8x8 bottleneck.",
        learn="architecture"),
    Experiment(
        key="loss_imbalance", title="Losses under class imbalance",
        question="Which loss copes best when the target covers a few per cent of the image?",
        guide_says="Dice loss is preferred when classes are imbalanced, and BCE plus Dice often "
                   "works best in practice.",
        expected="bce_dice", varies=("train.loss",),
        runs=_runs(LESIONS, "train.loss", [
            ("bce", "BCE", "bce"), ("dice", "Dice", "dice"), ("bce_dice", "BCE + Dice", "bce_dice"),
            ("focal", "focal", "focal"), ("tversky", "Tversky", "tversky")]),
        look_at="Scrub to the first epochs: which losses start marking the small lesions, "
                "and which stay close to empty masks for longer?",
        learn="losses"),
    Experiment(
        key="augmentation", title="Augmentation with ten images",
        question="Does augmentation help when there are only ten training images?",
        guide_says="Augmentation enlarges a small dataset and reduces overfitting.",
        expected="on", varies=("train.augment",),
        runs=_runs(SMALL.replace(augment=_AUGMENT), "train.augment", [
            ("off", "no augmentation", False), ("on", "flips, shifts, brightness", True)]),
        measures=("test_dice", "gap"),
        look_at="The gap between training and validation Dice tells how much each run "
                "memorised its ten slices.",
        learn="augmentation"),
    Experiment(
        key="image_only_bug", title="The image-only augmentation bug",
        question="What happens if the image is augmented but its mask is not?",
        guide_says="Augmentations must be applied to image and mask together, or the labels "
                   "no longer match the pixels.",
        expected="paired",
        varies=("augment.transform_mask",),
        runs=_runs(SMALL.replace(augment=_AUGMENT, train=SMALL.train.replace(augment=True)),
                   "augment.transform_mask", [
                       ("paired", "image and mask moved together", True),
                       ("image_only", "image moved, mask left behind", False)]),
        look_at="The buggy run was taught masks that drift off the anatomy: its predictions "
                "spill over the edges and blur the border.",
        learn="augmentation"),
    Experiment(
        key="regularisation", title="Dropout and L2 on a small training set",
        question="Do dropout or weight decay close the gap between training and validation?",
        guide_says="Dropout reduces overfitting, especially with small datasets.",
        expected="dropout", varies=("model.dropout_rate", "model.l2"),
        runs=(LessonRun("none", "no regularisation", SMALL),
              LessonRun("dropout", "dropout 0.3 (bottleneck)",
                        _set(SMALL, **{"model.dropout_rate": 0.3})),
              LessonRun("l2", "L2 1e-3 on every kernel", _set(SMALL, **{"model.l2": 1e-3}))),
        measures=("gap", "test_dice"),
        look_at="Read the gap, then the test Dice: a smaller gap is only useful if the "
                "validation score does not fall with it.",
        learn="fitting"),
    Experiment(
        key="depth", title="Depth 1 to 4",
        question="How deep must the U be: what does each extra pooling buy?",
        guide_says="Each pooling doubles the receptive field, so deeper networks see more "
                   "context (the guide's model pools four times).",
        expected="", varies=("model.depth",),
        runs=_runs(BRAIN, "model.depth", [(f"d{d}", f"depth {d}", d) for d in (1, 2, 3, 4)]),
        measures=("test_dice", "receptive_field", "train_gflop"),
        look_at="A shallow U sees a small window per pixel: look for holes in the middle of "
                "the brain, where the edge is far away.",
        learn="architecture"),
    Experiment(
        key="learning_rate", title="Learning rate: too low, good, too high",
        question="What does a bad learning rate look like in the curves?",
        guide_says="Adam adapts the step size; a small learning rate such as 1e-4 keeps "
                   "training stable.",
        expected="good", varies=("train.learning_rate",),
        runs=_runs(BRAIN, "train.learning_rate", [
            ("low", "1e-5 (too low)", 1e-5), ("good", "3e-3 (preset)", 3e-3),
            ("high", "0.1 (too high)", 0.1)]),
        look_at="Too low: the curves barely move. Too high: the validation curve jumps "
                "around or collapses to an empty mask.",
        learn="training"),
    Experiment(
        key="normalization", title="Batch norm, group norm or none",
        question="Does normalising after each convolution make training faster or steadier?",
        guide_says="Batch normalisation after the convolutions stabilises training and helps "
                   "it converge.",
        expected="batch", varies=("model.normalization",),
        runs=_runs(BRAIN, "model.normalization", [
            ("none", "no normalisation", "none"), ("batch", "batch norm", "batch"),
            ("group", "group norm (preset)", "group")]),
        look_at="Batch norm trains on batch statistics and validates on running averages: a "
                "jumpy validation curve early on is the price of small batches.",
        learn="architecture"),
    Experiment(
        key="upsampling", title="Transposed convolution or bilinear up-sampling",
        question="Transposed convolution or bilinear resize followed by a convolution?",
        guide_says="Transposed 2x2 convolutions are the usual choice; bilinear up-sampling "
                   "also works.",
        expected="transpose", varies=("model.upsampling",),
        runs=_runs(BRAIN, "model.upsampling", [
            ("transpose", "2x2 transposed convolution", "transpose"),
            ("bilinear", "bilinear up-sampling + 2x2 conv", "upsample_conv")]),
        look_at="Early epochs of the transposed-convolution run can show a faint checkerboard "
                "in the probability map; bilinear up-sampling is smooth by construction.",
        learn="architecture"),
    Experiment(
        key="input_size", title="Input 64 or 128 pixels",
        question="What does halving the input side cost in accuracy, and what does it save?",
        guide_says="Smaller inputs train faster and need less memory; larger inputs keep "
                   "fine detail (chapter 9).",
        expected="", varies=("data.image_size",),
        runs=_runs(BRAIN.replace(data=BRAIN.data.replace(max_train_images=16)),
                   "data.image_size", [("px64", "64 x 64", 64), ("px128", "128 x 128", 128)]),
        measures=("test_dice", "train_gflop"),
        look_at="Same slices, a quarter of the pixels: compare the compute per run with the "
                "Dice it costs.",
        learn="input-size"),
    Experiment(
        key="variants", title="Classic, attention, residual or U-Net++",
        question="Do the fancier U-Net variants beat the classic one?",
        guide_says="Attention gates help with small targets in a lot of background; residual "
                   "and nested skips help deeper models train.",
        expected="attention", varies=("model.variant",),
        runs=_runs(BRAIN, "model.variant", [
            ("classic", "classic", "classic"), ("attention", "attention gates", "attention"),
            ("residual", "residual blocks", "residual"),
            ("unetpp", "U-Net++ (nested skips)", "unetpp")]),
        measures=("test_dice", "train_gflop"),
        look_at="Recorded on skull stripping (not the lesions) to keep the recordings cheap: "
                "with this little training, compare the spread with the other lessons', and "
                "what each extra point of Dice costs in compute (U-Net++ the most).",
        learn="variants"),
    Experiment(
        key="mask_resize", title="Resizing masks: nearest neighbour or the guide's /255",
        question="What does the guide's mask loader (bilinear resize, then divide by 255) "
                 "teach the network?",
        guide_says="The guide's loaders resize each mask with tf.image.resize, which is "
                   "bilinear by default, then divide it by 255 and call it a binary mask.",
        expected="", varies=("data.mask_resize",),
        runs=_runs(BRAIN, "data.mask_resize", [
            ("nearest", "nearest neighbour, labels 0/1", "nearest"),
            ("bilinear", "bilinear (mask saved as 0/255)", "bilinear"),
            ("div255", "bilinear / 255 (mask saved as 0/1)", "bilinear_div255")]),
        look_at="Every run is scored on the true 0/1 test masks. The guide's loader is "
                "right only for masks saved as 0/255: bilinear resizing then just softens the "
                "edge labels. On masks saved as 0/1, dividing by 255 leaves labels below "
                "0.004 and the network learns to mark nothing. Check what your mask files "
                "hold before you divide them.",
        learn="preprocessing"),
    Experiment(
        key="train_images", title="How many training images?",
        question="How much does the size of the training set matter?",
        guide_says="Small datasets overfit; more (or augmented) data generalises better.",
        expected="n64", varies=("data.max_train_images",),
        runs=_runs(BRAIN, "data.max_train_images", [
            ("n8", "8 slices", 8), ("n32", "32 slices", 32), ("n64", "64 slices", 64)]),
        measures=("test_dice", "gap"),
        look_at="Every run trains 6 epochs, so the larger sets also take more steps: the "
                "price of data is time.",
        learn="fitting"),
)
"""Every experiment, in the order of the page."""


def list_experiments() -> tuple[Experiment, ...]:
    """All experiments in page order."""
    return EXPERIMENTS


def get_experiment(key: str) -> Experiment:
    """The experiment called ``key``.

    Raises:
        UNetDemoError: unknown key (the message lists the known ones).

    Example:
        >>> get_experiment("depth").runs[0].spec.model.depth
        1
    """
    for experiment in EXPERIMENTS:
        if experiment.key == key:
            return experiment
    raise UNetDemoError(f"No lesson {key!r}. Expected one of {[e.key for e in EXPERIMENTS]}.")


def spec_differences(a: RunSpec, b: RunSpec) -> list[str]:
    """The dotted config fields whose values differ between two specs.

    Example:
        >>> base = get_experiment("depth").runs[0].spec
        >>> spec_differences(base, base.replace(model=base.model.replace(depth=4)))
        ['model.depth']
    """
    left, right = a.to_dict(), b.to_dict()
    return sorted(f"{part}.{name}" for part in left for name in left[part]
                  if left[part][name] != right[part].get(name))
