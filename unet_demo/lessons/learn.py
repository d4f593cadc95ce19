"""Teaching content for the Learn page: concept sections, a glossary and a scored quiz.

Pure data and logic (no streamlit, no TensorFlow), so the page, the tests and anyone else can
use it. The text restates, in this project's own words, the ideas of a U-Net medical-imaging
guide (called "the textbook" on the page, chapters 1-10) and its companion U-Net notebook, plus a
few topics the app adds. Students do not have those texts, so every fact a quiz question needs is
stated in a section or a glossary entry.

Example:
    >>> from unet_demo.lessons import learn
    >>> len(learn.QUIZ) >= 24
    True
    >>> correct, total = learn.score({q.key: q.correct for q in learn.QUIZ})
    >>> correct == total == len(learn.QUIZ)
    True
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence

from unet_demo.errors import UNetDemoError

# --------------------------------------------------------------------------- sources

CHAPTERS: dict[str, str] = {
    "guide-1": "Textbook chapter 1: introduction and basic concepts",
    "guide-2": "Textbook chapter 2: U-Net principles and architecture",
    "guide-3": "Textbook chapter 3: medical image data and preprocessing",
    "guide-4": "Textbook chapter 4: implementing U-Net in TensorFlow and Keras",
    "guide-5": "Textbook chapter 5: training and performance evaluation",
    "guide-6": "Textbook chapter 6: improving and optimising the model",
    "guide-7": "Textbook chapter 7: practical applications in medicine",
    "guide-8": "Textbook chapter 8: complete practical project",
    "guide-9": "Textbook chapter 9: advanced variants and alternative models",
    "guide-10": "Textbook chapter 10: final notes and future directions",
    "notebook": "Companion notebook: U-Net background, code, FAQ and project ideas",
    "beyond": "Beyond the textbook: topics this app adds",
}
"""Where the content comes from: the textbook's ten chapters, its companion notebook, and topics
neither covers that this app adds. Each has at least one quiz question."""

TRY_IT_PAGES: dict[str, str] = {
    "pages/1_Data.py": "Data",
    "pages/2_Augment.py": "Augment",
    "pages/3_Build.py": "Build",
    "pages/4_Train.py": "Train",
    "pages/5_Evaluate.py": "Evaluate",
    "pages/6_Segment.py": "Segment",
}
"""Pages a section may send the reader to, with their short names."""

INSIDE_PAGE = "pages/8_Inside.py"
INSIDE_LINKS: dict[str, str] = {
    "architecture": "See the encoder, bottleneck, decoder and skips of a trained model on the "
                    "Inside page, and switch skips off",
    "losses": "Compare per-pixel BCE, focal, Dice and Tversky maps on the Inside page",
}
"""Second links, to the Inside page, by section key."""

LESSONS_PAGE = "pages/9_Lessons.py"
LESSON_LINKS: dict[str, tuple[str, str]] = {
    "architecture": ("skip_connections", "Replay recorded runs with and without skip "
                     "connections, at depths 1-4, with each up-sampling and normalisation"),
    "input-size": ("input_size", "Replay a 64 px and a 128 px run: the Dice and the time"),
    "losses": ("loss_imbalance", "Replay BCE, Dice, BCE + Dice, focal and Tversky on small "
               "lesions"),
    "augmentation": ("augmentation", "Replay ten-image runs with and without augmentation, and "
                     "the image-only bug"),
    "training": ("learning_rate", "Replay a learning rate that is too low, a good one and one "
                 "too high"),
    "fitting": ("regularisation", "Replay dropout and L2 against none, and 8 vs 32 vs 64 "
                "training slices"),
    "variants": ("variants", "Replay classic, attention and residual U-Nets side by side"),
}
"""Third links, to a recorded experiment on the Lessons page (``?lesson=<key>``)."""


# --------------------------------------------------------------------------- records

@dataclasses.dataclass(frozen=True)
class Section:
    """One short concept section with a link to the page where it can be tried.

    Args:
        key: stable identifier (used for widget keys and tests).
        title: heading shown on the page.
        body: Markdown text, a few short paragraphs or bullet points.
        try_it: page file, relative to the repository root, e.g. "pages/3_Build.py".
        try_it_label: link text that says what to do there.
        chapters: keys of CHAPTERS this section draws on.

    Example:
        >>> SECTIONS[0].try_it in TRY_IT_PAGES
        True
    """

    key: str
    title: str
    body: str
    try_it: str
    try_it_label: str
    chapters: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class GlossaryEntry:
    """A term and a one- or two-sentence definition.

    Args:
        term: the word or phrase.
        definition: what it means here.

    Example:
        >>> GlossaryEntry("IoU", "Overlap divided by union.").term
        'IoU'
    """

    term: str
    definition: str


@dataclasses.dataclass(frozen=True)
class QuizQuestion:
    """A multiple-choice question with one correct option and an explanation.

    Args:
        key: stable identifier; answers are looked up by it, so it survives shuffling.
        question: the question text.
        options: the answer options shown to the student.
        correct: index into `options` of the right answer.
        explanation: why the right answer is right (shown after answering).
        chapter: key of CHAPTERS the question belongs to.
        topic: a few words naming the concept tested.

    Example:
        >>> q = QUIZ[0]
        >>> 0 <= q.correct < len(q.options)
        True
    """

    key: str
    question: str
    options: tuple[str, ...]
    correct: int
    explanation: str
    chapter: str
    topic: str

    @property
    def correct_option(self) -> str:
        """The text of the right answer."""
        return self.options[self.correct]


# --------------------------------------------------------------------------- sections

SECTIONS: tuple[Section, ...] = (
    Section(
        key="segmentation",
        title="What segmentation is",
        body=(
            "A classifier gives one answer per image (\"tumour present\"). A segmentation model "
            "gives one answer **per pixel**: background, organ, lesion. The result is a mask the "
            "same size as the image, so you can measure a structure's area or volume and see "
            "exactly where its border runs.\n\n"
            "- *Semantic* segmentation labels every pixel with a class; two touching nuclei get "
            "the same label.\n"
            "- *Instance* segmentation also tells the two nuclei apart.\n"
            "- The reference mask drawn by experts is the **ground truth**; the model can only "
            "be as good as those labels.\n\n"
            "U-Net (Ronneberger, Fischer and Brox, 2015) was made for cells under the microscope "
            "and became the default starting point for medical segmentation."
        ),
        try_it="pages/1_Data.py",
        try_it_label="Browse images with their masks on the Data page",
        chapters=("guide-1", "guide-7", "notebook"),
    ),
    Section(
        key="architecture",
        title="Encoder, bottleneck, decoder and skip connections",
        body=(
            "- **Encoder** (left arm of the U): blocks of two 3x3 convolutions, each block "
            "followed by 2x2 max pooling. Every step down halves height and width and usually "
            "doubles the number of filters, trading *where* for *what*.\n"
            "- **Bottleneck** (bottom): the smallest, deepest feature maps. Each value here "
            "summarises a wide patch of the input, so this is where context lives.\n"
            "- **Decoder** (right arm): each step doubles the size again and refines with two "
            "convolutions, until the map is back at input resolution. A 1x1 convolution then "
            "gives one channel per class (sigmoid for one class, softmax for several).\n"
            "- **Skip connections**: the encoder's feature map at each level is concatenated "
            "onto the decoder's map of the same size. Pooling threw away exact positions; the "
            "skips hand them back, which is why U-Net borders are sharp instead of blobby."
        ),
        try_it="pages/3_Build.py",
        try_it_label="Change depth and filters on the Build page and watch the U diagram",
        chapters=("guide-2", "guide-4", "notebook"),
    ),
    Section(
        key="layers",
        title="Convolution, pooling and the two ways to upsample",
        body=(
            "- **Convolution**: a small learned kernel (3x3 in all of the textbook's models) slides over the "
            "map and responds to local patterns such as edges or textures. `padding=\"same\"` "
            "keeps the size unchanged.\n"
            "- **Max pooling 2x2, stride 2**: keeps the strongest response in each 2x2 patch, "
            "halving the size and widening what later layers can see (the receptive field).\n"
            "- **Transposed convolution** (`Conv2DTranspose`, kernel 2, stride 2): a *learned* "
            "upsampling used by the textbook's chapter 4 and chapter 8 models. It can leave "
            "checkerboard artefacts (a faint grid) when the kernel size is not a multiple of the "
            "stride, because some output pixels then get more contributions than their "
            "neighbours.\n"
            "- **Upsampling + convolution** (`UpSampling2D` then a 2x2 convolution): a fixed "
            "resize followed by a learned filter, as in the companion notebook's model. It cannot "
            "make a checkerboard and is usually smoother, "
            "with a similar number of weights."
        ),
        try_it="pages/3_Build.py",
        try_it_label="Switch the upsampling type on the Build page and compare parameters",
        chapters=("guide-2", "guide-4", "notebook", "beyond"),
    ),
    Section(
        key="input-size",
        title="Why the input size must be divisible by 2**depth",
        body=(
            "Each pooling halves the size and rounds down. With depth 4 a 100-pixel side goes "
            "100 -> 50 -> 25 -> 12 -> 6; doubling back gives 12 -> 24, which no longer matches "
            "the 25-pixel skip map, and the concatenation fails.\n\n"
            "Rule: every spatial side must be a multiple of 2**depth (depth 2: multiple of 4, "
            "depth 4: multiple of 16). That is the only size rule: convolutions and poolings "
            "work on any size, so the same U-Net design fits 128x128 as well as 512x384. Images "
            "are brought to one size anyway because every image in a batch must have the same "
            "shape. For a 100-pixel image with depth 4, pad or resize to 96 or 112. The "
            "textbook's chapter 8 project model (depth 2) takes 128x128; its chapter 4 model "
            "(depth 4) takes 256x256, and its bottleneck is 16x16."
        ),
        try_it="pages/3_Build.py",
        try_it_label="Type an odd input size on the Build page to see the valid neighbours",
        chapters=("guide-2", "guide-4", "guide-8"),
    ),
    Section(
        key="textbook-models",
        title="The example models of the textbook and its notebook",
        body=(
            "The quiz refers to these worked examples; here is what you need to know about "
            "them.\n\n"
            "- **Chapter 4 model** (`build_unet`): 256x256 grey input (one channel), four "
            "poolings, filters doubling from 64 to 1024, so the bottleneck is 16x16 with 1024 "
            "filters. Transposed convolutions upsample. About 31 million parameters.\n"
            "- **Chapter 5 augmentation example**: flips and rotates the image but hands back "
            "the original, unchanged mask (the pitfall shown on the Augment page).\n"
            "- **Chapter 7 brain-tumour example**: uses the BraTS data, brain MRI with several "
            "sequences per patient (T1, T2, FLAIR, ...) and expert tumour masks.\n"
            "- **Chapter 8 project model**: 128x128 grey input, two poolings, filters "
            "64-128-256, transposed convolutions: 1,861,697 parameters. It resizes images *and* "
            "masks with `tf.image.resize` (bilinear unless told otherwise) and compares the "
            "sigmoid output with 0.5 before showing a mask.\n"
            "- **Companion notebook's `unet()`**: input (256, 256, 3), i.e. colour; filters 64 "
            "to 1024; the decoder enlarges with `UpSampling2D` and then a 2x2 convolution with "
            "ReLU; weights start with `he_normal` (He initialisation, made for ReLU). The "
            "notebook lists U-Net's drawbacks as high memory use for large images or deep "
            "networks, a risk of overfitting small datasets, artefacts at object borders, and "
            "limited long-range context."
        ),
        try_it="pages/3_Build.py",
        try_it_label="Load the textbook's models into the builder on the Build page",
        chapters=("guide-4", "guide-5", "guide-7", "guide-8", "notebook"),
    ),
    Section(
        key="losses",
        title="Loss functions and class imbalance",
        body=(
            "In most medical images the target is small: a lesion may cover 1 % of the pixels. "
            "A loss that counts every pixel equally is then dominated by easy background.\n\n"
            "- **Binary cross-entropy (BCE)**: per-pixel log loss; smooth gradients, but "
            "imbalance pulls it towards \"all background\".\n"
            "- **Dice loss** = 1 - Dice: scores only the overlap with the foreground. Correctly "
            "found background (true negatives) does not enter the formula, so a huge background "
            "cannot swamp it. It does *not* make a small object count as much as a big one: "
            "summed over an image or a batch, a large object still brings more pixels and "
            "dominates. A small smoothing constant avoids 0/0 when both masks are empty.\n"
            "- **BCE + Dice**: the usual compromise; stable pixel-wise gradients plus an overlap "
            "target.\n"
            "- **Focal loss**: cross-entropy with an extra factor that shrinks the loss of "
            "pixels predicted confidently *and correctly* (mostly easy background), so hard or "
            "wrong pixels drive learning; good for tiny targets.\n"
            "- **Tversky loss**: Dice with separate weights for false positives (alpha) and "
            "false negatives (beta); beta > alpha favours recall.\n"
            "- **Generalised Dice**: weights each class by the inverse of its squared size, so "
            "rare classes count in multi-class problems (Sudre et al., 2017).\n\n"
            "The textbook covers BCE, Dice, BCE + Dice and focal loss; Tversky and generalised "
            "Dice are extras this app adds."
        ),
        try_it="pages/4_Train.py",
        try_it_label="Train the same model with two losses on the Train page",
        chapters=("guide-4", "guide-5", "guide-7", "guide-9", "beyond"),
    ),
    Section(
        key="metrics",
        title="Metrics, and why pixel accuracy misleads",
        body=(
            "Count true positives (TP), false positives (FP) and false negatives (FN) over the "
            "foreground pixels:\n\n"
            "- **Dice** = 2TP / (2TP + FP + FN); 1 is perfect overlap, 0 none.\n"
            "- **IoU** (Jaccard) = TP / (TP + FP + FN); always at most Dice "
            "(Dice = 2 IoU / (1 + IoU)).\n"
            "- **Precision** = TP / (TP + FP): of what I marked, how much was right?\n"
            "- **Recall** (sensitivity) = TP / (TP + FN): of what was there, how much did I "
            "find?\n"
            "- **HD95**: the 95th percentile of distances between the two borders, in pixels "
            "or mm. It reports *how far off* a boundary is, which overlap scores hide, and "
            "ignores the worst 5 % so a single stray pixel does not dominate. When exactly one "
            "of the two masks is empty (the model misses a lesion completely, or marks one "
            "where there is none) there is no second border to measure to: HD95 is then left "
            "empty (NaN) and that image drops out of the mean HD95. Two empty masks give 0. So "
            "a good mean HD95 can hide complete misses; check how many images it covers.\n"
            "- **ASD** (average surface distance): the mean of the same border distances; "
            "empty in the same cases.\n"
            "- **F1 score**: the harmonic mean of precision and recall; for a binary mask it is "
            "exactly the Dice coefficient.\n\n"
            "The textbook's summary recommends judging a model by overlap (Dice, IoU) together "
            "with a boundary distance (Hausdorff distance).\n\n"
            "**Pixel accuracy** counts background too: if a lesion covers 2 % of an image, a "
            "model that predicts nothing at all scores 98 % accuracy and Dice 0."
        ),
        try_it="pages/5_Evaluate.py",
        try_it_label="Inspect per-image Dice, IoU and HD95 on the Evaluate page",
        chapters=("guide-5", "guide-7", "guide-10"),
    ),
    Section(
        key="preprocessing",
        title="Preprocessing and normalisation",
        body=(
            "Networks train best when inputs have a consistent range.\n\n"
            "- **8-bit images** (photos, PNG slices): divide by 255 to get [0, 1].\n"
            "- **CT** measures Hounsfield units (air about -1000, water 0, bone several "
            "hundred or more). Pick a *window* (level and width) for the tissue of interest, "
            "clip to it and rescale: the soft tissue / abdomen window (level 40, width 400, "
            "written L40 W400) keeps -160 to 240 HU. The Data page's window works on the bundled "
            "MRI and microscopy images, already scaled to [0, 1], so there its centre and width "
            "are fractions of that range, not Hounsfield units.\n"
            "- **MRI** has no fixed intensity scale; it changes with scanner and sequence "
            "(T1, T2, FLAIR). Use a **z-score** per image or volume (subtract the mean, divide "
            "by the standard deviation), often after clipping extreme percentiles and "
            "correcting the bias field.\n"
            "- **Ultrasound** is grainy (speckle, a texture that multiplies the brightness); "
            "mild denoising can help. A median filter is made for salt-and-pepper noise "
            "(isolated black or white pixels), not for speckle.\n"
            "- Resize or pad to one shared size; resize masks with *nearest neighbour* so labels "
            "stay whole numbers.\n"
            "- **CLAHE** raises local contrast; its *clip limit* caps how strongly. Two scales "
            "exist: the Data page uses scikit-image's 0-1 scale (the largest share of a tile's "
            "pixels one grey level may hold, e.g. 0.01-0.03), the Augment page uses OpenCV's "
            "(a multiple of the average histogram height: 1 changes little, 2-4 is usual).\n"
            "- Libraries: **NiBabel** and **SimpleITK** read medical formats such as NIfTI and "
            "DICOM; **MONAI** adds medical-image transforms, networks and losses.\n"
            "- 3D scans can be cut into 2D slices (cheap, loses context across slices) or fed "
            "to a 3D U-Net (keeps context, needs far more memory)."
        ),
        try_it="pages/1_Data.py",
        try_it_label="Compare normalisation modes in the preprocessing preview on the Data page",
        chapters=("guide-3", "guide-7", "guide-8", "guide-10", "beyond"),
    ),
    Section(
        key="augmentation",
        title="Augmentation: move the image and the mask together",
        body=(
            "Medical datasets are small, so we show the network plausible variations of each "
            "image: flips, small rotations and shifts, zoom, brightness/contrast and gamma, "
            "noise, blur, elastic and grid distortions.\n\n"
            "**The one rule**: every geometric change must be applied to the image *and* its "
            "mask with the same random parameters. The textbook's chapter 5 example augments "
            "only the image; the mask then points at the wrong pixels and the model learns from "
            "wrong labels. Libraries such as albumentations take both in one call.\n\n"
            "Keep it realistic: intensity changes apply to the image only; a left-right flip "
            "may be harmless for a cell but not for an organ that sits on one side of the body."
        ),
        try_it="pages/2_Augment.py",
        try_it_label="Toggle 'augment the image only' on the Augment page and watch the outline slip",
        chapters=("guide-3", "guide-5", "guide-6", "notebook"),
    ),
    Section(
        key="training",
        title="Training: optimiser, learning rate, epochs and batches",
        body=(
            "- An **epoch** is one pass over the training set; a **batch** is the group of "
            "images used for one weight update.\n"
            "- **Adam** adapts the step size per weight; the textbook uses a learning rate of "
            "1e-4 for stable training.\n"
            "- **ReduceLROnPlateau** lowers the learning rate (e.g. halves it) when the "
            "validation loss stalls for a few epochs.\n"
            "- Watch *both* curves: training loss tells you whether the model can learn; "
            "validation loss tells you whether what it learned carries over to unseen images."
        ),
        try_it="pages/4_Train.py",
        try_it_label="Start a short training run and watch the live curves on the Train page",
        chapters=("guide-4", "guide-5", "guide-8"),
    ),
    Section(
        key="fitting",
        title="Overfitting, underfitting and their cures",
        body=(
            "- **Underfitting**: training and validation scores are both poor. The model is "
            "too small or trained too briefly. Cures: more epochs, more filters or depth, a "
            "better learning rate.\n"
            "- **Overfitting**: the training score keeps improving while validation gets worse; "
            "the model memorises the training images. Cures:\n"
            "  - **augmentation** (more variety per image),\n"
            "  - **dropout** (randomly silence units while training, typically 0.3-0.5 in the "
            "bottleneck or decoder; switched off at prediction time),\n"
            "  - an **L2 penalty** (adds the sum of squared weights to the loss, so large "
            "weights cost more; with plain gradient descent this equals *weight decay*),\n"
            "  - an **L1 penalty** (adds the sum of absolute weights and pulls them towards "
            "zero; with Adam they end up small but rarely exactly zero; not weight decay),\n"
            "  - **early stopping** (stop when a validation score has not improved for a few "
            "epochs and keep the best weights; the Train page watches the validation Dice),\n"
            "  - a smaller model, or more labelled data.\n"
            "- **Batch normalisation** is a training aid, not a cure for overfitting: it "
            "rescales each layer's outputs with the mean and spread of the current batch, which "
            "steadies and speeds up training. With small batches or few training steps its "
            "running averages (used at prediction time) are unreliable, and it can *open* a "
            "gap: in this project a BatchNorm run reached training Dice 0.97 but validation Dice "
            "0.23, so the presets use group normalisation instead."
        ),
        try_it="pages/4_Train.py",
        try_it_label="Compare runs with and without augmentation on the Train page",
        chapters=("guide-5", "guide-6", "guide-9", "notebook", "beyond"),
    ),
    Section(
        key="variants",
        title="U-Net variants and when to pick each",
        body=(
            "- **Classic U-Net**: the baseline; start here for 2D images.\n"
            "- **Attention U-Net**: gates on the skip connections weight each location before "
            "concatenation; helps with small targets on cluttered backgrounds, at some extra "
            "cost.\n"
            "- **Residual U-Net**: blocks with shortcut additions; easier to train deeper "
            "networks.\n"
            "- **U-Net++**: nested, densely connected skip paths that fuse several scales; "
            "often a little more accurate, clearly slower and heavier. Its *deep supervision* "
            "option here averages the outputs of all nested decoders under one loss; the "
            "original paper's pruning (dropping decoders at prediction time for speed) is not "
            "offered.\n"
            "- **Lightweight U-Net**: depthwise separable convolutions and fewer filters; for "
            "laptops, phones and real-time use.\n"
            "- **3D U-Net**: 3D convolutions and pooling for CT/MRI volumes; keeps context "
            "between slices but needs much more memory and volumetric labels.\n"
            "- **Pretrained encoder** (e.g. VGG16, ResNet, MobileNet trained on ImageNet): "
            "when labelled data is scarce; freeze the encoder first, then fine-tune its last "
            "blocks with a small learning rate. Expects 3-channel input."
        ),
        try_it="pages/3_Build.py",
        try_it_label="Pick a variant on the Build page and compare size and memory",
        chapters=("guide-6", "guide-9", "guide-10"),
    ),
    Section(
        key="evaluation-pitfalls",
        title="Evaluation pitfalls: leakage and honest test sets",
        body=(
            "- Split into training (about 70-80 %), validation (10-15 %, for tuning and early "
            "stopping) and test (10-15 %, touched once at the end).\n"
            "- **Split by subject, not by slice.** Neighbouring slices of one scan look almost "
            "the same; if some land in training and others in test, the test score measures "
            "memory, not generalisation.\n"
            "- Report scores on **held-out subjects**, ideally from another hospital or scanner.\n"
            "- Look at the spread and the worst cases, not only the mean Dice; empty masks and "
            "tiny structures need their own look.\n"
            "- The bundled brain data come from single subjects split into blocks of slices, so "
            "their scores overstate how well a model would generalise."
        ),
        try_it="pages/5_Evaluate.py",
        try_it_label="Sort by worst Dice on the Evaluate page",
        chapters=("guide-3", "guide-5", "guide-8", "beyond"),
    ),
    Section(
        key="inference",
        title="From probabilities to a mask",
        body=(
            "A sigmoid output is a probability per pixel; a threshold (0.5 by default) turns it "
            "into a mask. You can instead pick the threshold with the best Dice on the "
            "validation split, or use **Otsu's method**, which needs no labels: it picks the "
            "cut that best splits the histogram of the probabilities into two groups.\n\n"
            "Morphological opening removes isolated specks and closing fills small holes. "
            "Keeping only the **largest connected component** drops stray islands, but also "
            "deletes a real second lesion and, in a cell image, every nucleus but one; use it "
            "only when exactly one object is expected. Test-time "
            "augmentation (predicting flipped copies and averaging) steadies the result and "
            "shows where the model is unsure."
        ),
        try_it="pages/6_Segment.py",
        try_it_label="Segment an image and adjust the threshold on the Segment page",
        chapters=("guide-7", "guide-8", "beyond"),
    ),
    Section(
        key="clinical",
        title="Clinical caveats",
        body=(
            "- A good Dice on a research set is not clinical validity. Models break on images "
            "from other scanners, protocols or patient groups (**domain shift**).\n"
            "- Labels differ between experts; the ground truth itself is uncertain, and no "
            "model should be trusted beyond the agreement between annotators.\n"
            "- Clinical use needs prospective, external validation, regulatory approval and a "
            "clinician who reviews every result.\n"
            "- This app is for **education and research only, not for diagnosis**."
        ),
        try_it="pages/6_Segment.py",
        try_it_label="See the out-of-distribution warning on the Segment page",
        chapters=("guide-1", "guide-7", "guide-10", "beyond"),
    ),
)


# --------------------------------------------------------------------------- glossary

GLOSSARY: tuple[GlossaryEntry, ...] = (
    GlossaryEntry("3D U-Net", "A U-Net with 3D convolutions and pooling that takes whole CT or "
                  "MRI volumes; keeps context between slices but needs far more memory."),
    GlossaryEntry("Activation function", "A non-linear function applied after a layer (ReLU, "
                  "sigmoid, softmax) so the network can model more than straight lines."),
    GlossaryEntry("Adam", "An optimiser that keeps running averages of each weight's gradient and "
                  "its square and scales every step accordingly."),
    GlossaryEntry("ASD (average surface distance)", "The mean distance between the predicted and "
                  "the true border, in pixels here. Empty (NaN) when exactly one of the two "
                  "masks is empty."),
    GlossaryEntry("Attention gate", "A small block on a skip connection that multiplies the "
                  "encoder features by a learned 0-1 weight per location."),
    GlossaryEntry("Augmentation", "Random but realistic changes to training images (and the "
                  "matching masks) to show the model more variety."),
    GlossaryEntry("Backbone", "The pretrained network (e.g. ResNet or MobileNet) used as the "
                  "encoder of a U-Net."),
    GlossaryEntry("Backpropagation", "How a network finds out what each weight did to the loss: "
                  "the error is passed backwards through the layers (chain rule), giving one "
                  "gradient per weight."),
    GlossaryEntry("Batch", "The group of images processed together for one weight update."),
    GlossaryEntry("Batch normalisation", "Rescales a layer's outputs with the mean and spread of "
                  "the current batch; steadies and speeds up training. Unreliable with small "
                  "batches or short training, where it can widen the gap between training and "
                  "validation scores."),
    GlossaryEntry("Binary cross-entropy", "Per-pixel log loss between a predicted probability and "
                  "a 0/1 label."),
    GlossaryEntry("Bottleneck", "The deepest level of the U: smallest maps, most filters, widest "
                  "view of the image."),
    GlossaryEntry("BraTS", "Brain Tumour Segmentation challenge data: brain MRI with several "
                  "sequences per patient (T1, T2, FLAIR, ...) and expert tumour masks."),
    GlossaryEntry("Class imbalance", "One class (usually background) covers far more pixels than "
                  "the others, which biases plain losses and accuracy."),
    GlossaryEntry("CLAHE", "Contrast-limited adaptive histogram equalisation: boosts local "
                  "contrast tile by tile without blowing up noise. Its clip limit caps the "
                  "boost; scikit-image gives it on a 0-1 scale, OpenCV and albumentations on a "
                  "scale of about 1-4."),
    GlossaryEntry("CNN (convolutional neural network)", "A network built mainly from "
                  "convolutions, so it learns local image patterns such as edges and textures by "
                  "itself; U-Net is one."),
    GlossaryEntry("Confusion matrix", "A table that counts, for each true class, how many pixels "
                  "were predicted as each class; for a binary mask its four cells are TP, FP, FN "
                  "and TN."),
    GlossaryEntry("Connected component", "A group of foreground pixels that touch each other; "
                  "every separate blob in a mask is one component."),
    GlossaryEntry("Convolution", "Sliding a small learned kernel over an image or feature map to "
                  "detect a local pattern everywhere."),
    GlossaryEntry("Cross-validation", "Splitting the data into k parts and training k times, each "
                  "time validating on another part; the average score is steadier than that of "
                  "one split."),
    GlossaryEntry("CT window", "A level (centre) and a width in Hounsfield units, e.g. L40 W400 "
                  "for soft tissue / abdomen; values outside are clipped so the chosen tissue "
                  "fills the grey range. The Data page applies the same idea to [0, 1] "
                  "intensities."),
    GlossaryEntry("Data leakage", "Information from the test data reaching training, e.g. slices "
                  "of one patient on both sides of the split; inflates scores."),
    GlossaryEntry("Decoder", "The expanding arm of the U that upsamples back to full resolution "
                  "and produces the mask."),
    GlossaryEntry("Deep supervision", "Giving several decoder levels their own output so each "
                  "gets direct feedback. Here (U-Net++) those outputs are averaged under one "
                  "loss; pruning them away is not offered."),
    GlossaryEntry("Depthwise separable convolution", "A cheap convolution in two steps: one small "
                  "filter per channel, then a 1x1 convolution that mixes the channels; far fewer "
                  "weights and FLOPs."),
    GlossaryEntry("DICOM", "The file format of clinical scanners: the image plus a header with "
                  "patient, scanner and display-window details."),
    GlossaryEntry("Dice coefficient", "Twice the overlap divided by the total size of both masks; "
                  "1 means identical masks."),
    GlossaryEntry("Dice loss", "One minus the (soft) Dice coefficient, computed on probabilities "
                  "so it can be minimised. True negatives do not count, but large objects still "
                  "weigh more than small ones."),
    GlossaryEntry("Domain shift", "A difference between the images a model was trained on and "
                  "those it meets later (another scanner, protocol or patient group); scores "
                  "usually drop."),
    GlossaryEntry("Dropout", "Randomly zeroes a share of units during training so the network "
                  "cannot rely on any single one; inactive at prediction."),
    GlossaryEntry("Early stopping", "Ends training when a validation score (here the validation "
                  "Dice) stops improving and restores the best weights."),
    GlossaryEntry("Elastic deformation", "A smooth random warp applied to image and mask "
                  "together, imitating how soft tissue bends."),
    GlossaryEntry("Encoder", "The contracting arm of the U: convolutions and pooling that turn "
                  "pixels into increasingly abstract features."),
    GlossaryEntry("Epoch", "One full pass over the training set."),
    GlossaryEntry("F1 score", "The harmonic mean of precision and recall, 2PR / (P + R); for a "
                  "binary mask it equals the Dice coefficient."),
    GlossaryEntry("Feature map", "The output of a layer: one 2D grid of responses for each "
                  "filter."),
    GlossaryEntry("Fine-tuning", "Continuing to train pretrained weights on your own data, "
                  "usually with a small learning rate and after the new layers have been trained "
                  "first."),
    GlossaryEntry("FLOPs", "Floating-point operations: how many multiplications and additions one "
                  "prediction needs; a rough measure of compute and speed."),
    GlossaryEntry("Focal loss", "Cross-entropy scaled down for pixels that are predicted "
                  "confidently and correctly, so training focuses on hard and wrong ones."),
    GlossaryEntry("Generalisation", "How well a model does on new images that it never saw in "
                  "training."),
    GlossaryEntry("Generalised Dice loss", "A multi-class Dice loss that weights each class by "
                  "the inverse of its squared volume."),
    GlossaryEntry("Gradient descent", "Training by moving every weight a small step against its "
                  "gradient, the direction in which the loss grows fastest, over and over."),
    GlossaryEntry("Ground truth", "The reference mask drawn by experts that predictions are "
                  "trained on and compared with."),
    GlossaryEntry("Group normalisation", "Normalises each image's features in groups of channels, "
                  "without batch statistics, so it behaves the same in training and prediction "
                  "and suits tiny batches."),
    GlossaryEntry("Hausdorff distance", "The largest distance from a point on one border to the "
                  "nearest point of the other border; HD95 is its robust form."),
    GlossaryEntry("HD95", "95th percentile of the distances between predicted and true "
                  "boundaries; a robust Hausdorff distance. NaN when exactly one of the masks is "
                  "empty (that image then drops out of the mean), 0 when both are."),
    GlossaryEntry("He initialisation", "Random starting weights scaled for ReLU layers (Keras: "
                  "he_normal), so signals neither fade nor explode through a deep stack."),
    GlossaryEntry("Hounsfield unit", "CT intensity scale: air about -1000, water 0, dense bone "
                  "well above +400."),
    GlossaryEntry("Hyperparameter", "A setting you choose rather than the training learns, such "
                  "as learning rate, batch size, depth or dropout rate."),
    GlossaryEntry("ImageNet", "A large set of labelled everyday photos (about 1.2 million, 1000 "
                  "classes) on which many pretrained encoders were trained."),
    GlossaryEntry("Inference", "Using a trained model to predict on new images; no weights "
                  "change."),
    GlossaryEntry("Instance normalisation", "Normalises each channel of each image on its own; "
                  "group normalisation with one channel per group."),
    GlossaryEntry("Instance segmentation", "Segmentation that also tells individual objects "
                  "apart, e.g. gives each of two touching nuclei its own label."),
    GlossaryEntry("IoU (Jaccard index)", "Pixels marked in both masks over pixels marked in "
                  "either: TP / (TP + FP + FN)."),
    GlossaryEntry("L1 and L2 penalties", "Extra terms in the loss: L2 adds the squared weights "
                  "(for plain gradient descent the same as weight decay), L1 adds their absolute "
                  "values and pulls weights towards zero, though with Adam rarely exactly to "
                  "zero."),
    GlossaryEntry("Learning rate", "How large a step the optimiser takes on each update."),
    GlossaryEntry("Loss function", "The number training tries to make small; it measures how far "
                  "the prediction is from the ground truth (e.g. BCE or Dice loss)."),
    GlossaryEntry("Mask", "An image of labels the same size as the input: 0 for background, 1 (or "
                  "a class number) for each structure."),
    GlossaryEntry("Max pooling", "Keeps the largest value in each small window (2x2 here), "
                  "halving height and width."),
    GlossaryEntry("Median filter", "Replaces each pixel by the median of its neighbours; removes "
                  "salt-and-pepper noise (isolated black or white pixels) and keeps edges."),
    GlossaryEntry("Min-max normalisation", "Stretches an image so its smallest value becomes 0 "
                  "and its largest 1."),
    GlossaryEntry("MONAI, NiBabel and SimpleITK", "Python libraries for medical images: NiBabel "
                  "and SimpleITK read and write formats such as NIfTI and DICOM; MONAI adds "
                  "medical transforms, networks and losses."),
    GlossaryEntry("Morphological opening and closing", "Opening (erode, then dilate) removes "
                  "specks smaller than its disk; closing (dilate, then erode) fills small holes "
                  "and gaps."),
    GlossaryEntry("NIfTI", "A research file format for 3D scans such as MRI volumes (.nii or "
                  ".nii.gz), with the voxel size in its header."),
    GlossaryEntry("Optimiser", "The rule that turns gradients into weight updates, e.g. plain "
                  "gradient descent or Adam."),
    GlossaryEntry("Otsu's method", "Chooses a threshold without any labels: the cut that best "
                  "splits a histogram (here of the predicted probabilities) into two groups."),
    GlossaryEntry("Out-of-distribution (OOD)", "An input unlike the training images (another "
                  "modality, scanner or kind of picture); predictions on it cannot be trusted."),
    GlossaryEntry("Overfitting", "The model fits the training images, noise included, and does "
                  "worse on new ones."),
    GlossaryEntry("Padding", "Adding a border (zeros, or copies of the edge pixels) to reach a "
                  "required size without stretching the image."),
    GlossaryEntry("Parameters", "The weights and biases a network learns; their number is a rough "
                  "measure of model size."),
    GlossaryEntry("Patch-based training", "Training on smaller crops (patches) of large images or "
                  "volumes, so they fit in memory and give more samples; prediction then covers "
                  "the image patch by patch."),
    GlossaryEntry("Pixel accuracy", "Share of all pixels, background included, that are labelled "
                  "correctly; misleading when the target is small."),
    GlossaryEntry("Precision", "Share of predicted foreground pixels that are truly foreground: "
                  "TP / (TP + FP)."),
    GlossaryEntry("Quantisation", "Storing weights and computing with fewer bits (e.g. 8-bit "
                  "integers instead of 32-bit floats) for a smaller, faster model at a small "
                  "cost in accuracy."),
    GlossaryEntry("Receptive field", "The patch of the input that can influence one output value; "
                  "grows with every convolution and pooling."),
    GlossaryEntry("Recall (sensitivity)", "Share of true foreground pixels that were found: TP / "
                  "(TP + FN)."),
    GlossaryEntry("ReduceLROnPlateau", "A Keras callback that lowers the learning rate (e.g. "
                  "halves it) when the watched validation loss has not improved for a few "
                  "epochs."),
    GlossaryEntry("Regularisation", "Anything that discourages memorising the training set: "
                  "weight penalties, dropout, augmentation, early stopping."),
    GlossaryEntry("ReLU", "max(0, x): the default activation in U-Net's convolutions."),
    GlossaryEntry("Residual block", "A block whose input is added to its output through a "
                  "shortcut, so the block learns a correction; helps deep networks train."),
    GlossaryEntry("ROC curve and AUC", "The ROC curve plots recall against the false-positive "
                  "rate for every threshold; the area under it (AUC) is 1 for a perfect ranking "
                  "and 0.5 for guessing. A huge easy background makes it look good too easily."),
    GlossaryEntry("Segmentation", "Labelling an image pixel by pixel; the result is a mask that "
                  "shows where each structure is."),
    GlossaryEntry("Semantic segmentation", "Giving every pixel a class label."),
    GlossaryEntry("Sigmoid", "Squashes a number into (0, 1); used for one-class masks."),
    GlossaryEntry("Skip connection", "Passes an encoder feature map across the U to the decoder "
                  "level of the same size, restoring fine detail."),
    GlossaryEntry("Softmax", "Turns one score per class into probabilities that sum to 1; used "
                  "for multi-class masks."),
    GlossaryEntry("Speckle", "The grainy texture of ultrasound images; it multiplies the "
                  "brightness rather than adding to it."),
    GlossaryEntry("Test set", "Data kept aside and used once, at the end, for an honest estimate "
                  "of performance."),
    GlossaryEntry("Threshold", "The probability at or above which a pixel counts as foreground "
                  "(0.5 unless chosen otherwise)."),
    GlossaryEntry("TP, FP, FN, TN", "True positive: foreground found. False positive: background "
                  "marked as foreground. False negative: foreground missed. True negative: "
                  "background left alone."),
    GlossaryEntry("Transfer learning", "Starting from weights learned on another, larger dataset "
                  "(e.g. ImageNet) and fine-tuning them."),
    GlossaryEntry("Transposed convolution", "A learned upsampling layer; with kernel 2 and stride "
                  "2 it doubles height and width."),
    GlossaryEntry("TTA (test-time augmentation)", "Predicting on flipped copies of an image, "
                  "flipping the results back and averaging them; gives a steadier mask and shows "
                  "where the copies disagree."),
    GlossaryEntry("Tversky loss", "A Dice-like loss with separate weights for false positives and "
                  "false negatives."),
    GlossaryEntry("U-Net", "An encoder-decoder CNN with skip connections, drawn as a U, that "
                  "outputs a mask the size of its input; introduced in 2015 for cell images."),
    GlossaryEntry("U-Net++", "A U-Net whose skip connections become nested, densely connected "
                  "decoder paths; sometimes more accurate, clearly more costly."),
    GlossaryEntry("Underfitting", "The model is too weak or trained too briefly to fit even the "
                  "training images."),
    GlossaryEntry("Upsampling", "Enlarging a feature map, by a transposed convolution or by a "
                  "fixed resize followed by a convolution."),
    GlossaryEntry("Validation set", "Data used during development to tune settings and decide "
                  "when to stop, never for weight updates."),
    GlossaryEntry("Weight decay", "Shrinking every weight by a small fraction at each update; for "
                  "plain gradient descent the same as an L2 penalty (with Adam, AdamW applies it "
                  "separately). L1 is a different penalty, not weight decay."),
    GlossaryEntry("Z-score", "Subtract the mean and divide by the standard deviation; the usual "
                  "normalisation for MRI."),
)


# --------------------------------------------------------------------------- quiz

def _q(key: str, chapter: str, topic: str, question: str, options: Sequence[str], correct: int,
       explanation: str) -> QuizQuestion:
    return QuizQuestion(key=key, question=question, options=tuple(options), correct=correct,
                        explanation=explanation, chapter=chapter, topic=topic)


QUIZ: tuple[QuizQuestion, ...] = (
    # Chapter 1
    _q("origin", "guide-1", "history of U-Net",
       "What was U-Net first designed for in 2015?",
       ["Classifying chest X-rays as normal or abnormal",
        "Segmenting cells in microscope images",
        "Drawing boxes around lung nodules in CT",
        "Generating synthetic MRI scans"],
       1, "Ronneberger, Fischer and Brox built it for cell segmentation in microscopy; it then "
          "spread to organs, tumours and far beyond medicine."),
    _q("cnn-features", "guide-1", "why CNNs",
       "What is the main advantage of a CNN over older hand-crafted image pipelines?",
       ["It needs no labelled examples",
        "It is guaranteed to beat a radiologist",
        "It learns its own features (edges, textures, shapes) from the pixels",
        "It ignores local structure, which makes it robust"],
       2, "Convolutions learn useful local filters from data, so nobody has to design edge or "
          "texture detectors by hand. They still need labelled examples."),
    # Chapter 2
    _q("skip-purpose", "guide-2", "skip connections",
       "Why does U-Net concatenate encoder feature maps into the decoder?",
       ["To cut the number of parameters",
        "To give the decoder the fine positional detail that pooling discarded",
        "To replace the bottleneck",
        "To make the output probabilities sum to 1"],
       1, "Pooling keeps what was seen but blurs where. The skip maps still hold exact "
          "positions, so the decoder can draw sharp borders."),
    _q("level-step", "guide-2", "encoder levels",
       "In the classic design, what happens one level further down the encoder?",
       ["Height and width halve, the number of filters doubles",
        "Height and width double, filters halve",
        "Both stay the same",
        "Height and width halve, filters halve too"],
       0, "2x2 pooling halves the map; the filter count doubles (64, 128, 256, ...) so "
          "capacity grows as resolution shrinks."),
    _q("output-layer", "guide-2", "output activation",
       "You segment background plus three tissue classes, one label per pixel. What should "
       "the last layer be?",
       ["A 1x1 convolution with 1 channel and sigmoid",
        "A 1x1 convolution with 4 channels and softmax",
        "A dense layer after global average pooling",
        "A 3x3 convolution with ReLU"],
       1, "One channel per class (background included) with softmax gives per-pixel class "
          "probabilities that sum to 1. Sigmoid with 1 channel is for a single foreground "
          "class."),
    _q("input-size", "guide-2", "input size and depth",
       "A U-Net of depth 4 gets a 100x100 image. What happens?",
       ["It works; Keras pads automatically",
        "The skip concatenation fails because 100 is not a multiple of 16; use 96 or 112",
        "It works but the output is 96x96",
        "Only the bottleneck is affected"],
       1, "Four poolings need a side divisible by 2**4 = 16. 100 -> 50 -> 25 -> 12 -> 6, and "
          "upsampling 12 gives 24, which does not match the 25-pixel skip map."),
    # Chapter 3
    _q("hounsfield", "guide-3", "CT intensities",
       "Which modality stores intensities on a physical scale (Hounsfield units), so a fixed "
       "window can be reused across scans?",
       ["MRI", "Ultrasound", "CT", "Fluorescence microscopy"],
       2, "CT values are calibrated (water 0, air about -1000). MRI intensities depend on the "
          "scanner and sequence, and ultrasound on gain settings."),
    _q("mri-zscore", "guide-3", "MRI normalisation",
       "Why is MRI usually z-score normalised per image or volume instead of divided by 255?",
       ["MRI files are always 8-bit",
        "MRI intensities have no fixed scale and vary between scanners and protocols",
        "Z-scores make the images smaller",
        "Dividing by 255 is not allowed for medical images"],
       1, "Subtracting the mean and dividing by the standard deviation puts every scan on a "
          "comparable scale whatever the machine produced."),
    # Chapter 4
    _q("transpose-size", "guide-4", "transposed convolution",
       "What does Conv2DTranspose(64, 2, strides=2, padding=\"same\") do to a 16x16 map?",
       ["Keeps it 16x16", "Makes it 8x8", "Makes it 32x32", "Makes it 18x18"],
       2, "Kernel 2 with stride 2 doubles height and width: the learned counterpart of 2x2 "
          "pooling."),
    _q("ch4-bottleneck", "guide-4", "the textbook's chapter 4 model",
       "The textbook's chapter 4 model (build_unet) takes 256x256x1, starts with 64 filters and "
       "pools four times. What is the bottleneck?",
       ["16x16 with 1024 filters", "32x32 with 512 filters", "8x8 with 2048 filters",
        "64x64 with 256 filters"],
       0, "256 / 2**4 = 16, and the filters double from 64 to 1024. The model has about 31 "
          "million parameters."),
    _q("dice-smooth", "guide-4", "Dice loss",
       "Why does the textbook's dice_loss add a tiny 'smooth' constant?",
       ["To make training faster",
        "To avoid 0/0 when both the mask and the prediction are empty",
        "To turn Dice into IoU",
        "To weight the background class"],
       1, "With no foreground in either mask the Dice fraction would be 0/0. The constant makes "
          "it defined (and equal to 1 for two empty masks)."),
    # Chapter 5
    _q("accuracy-trap", "guide-5", "pixel accuracy",
       "A lesion covers 2 % of an image. The model predicts 'background' everywhere. What are "
       "pixel accuracy and Dice?",
       ["2 % and 0", "98 % and 0", "98 % and 0.98", "50 % and 0.5"],
       1, "Accuracy rewards the easy background. Dice only looks at foreground overlap, and "
          "there is none."),
    _q("dice-from-iou", "guide-5", "Dice vs IoU",
       "A prediction has IoU 0.5 with the truth. What is its Dice?",
       ["0.25", "0.5", "about 0.67", "1.0"],
       2, "Dice = 2 IoU / (1 + IoU) = 1 / 1.5, about 0.67. Dice is never below IoU."),
    _q("overfit-curve", "guide-5", "overfitting",
       "Training loss keeps falling but validation loss rises from epoch 10 on. What is this "
       "and what helps?",
       ["Underfitting; train longer",
        "Overfitting; early stopping with the best weights restored, augmentation, dropout",
        "A bug in the loss; switch to accuracy",
        "Normal; ignore validation"],
       1, "The model memorises the training set. EarlyStopping(patience=..., "
          "restore_best_weights=True) keeps the epoch-10 weights; augmentation and dropout "
          "delay the turn."),
    _q("image-only-aug", "guide-5", "augmentation pitfall",
       "The textbook's chapter 5 augmentation example flips and rotates the image but returns "
       "the original mask. What goes wrong?",
       ["Nothing, masks need not be augmented",
        "Training becomes slower",
        "The mask no longer lines up with the image, so the model learns from wrong labels",
        "The mask turns into probabilities"],
       2, "Geometric transforms must use the same random parameters on both; the textbook "
          "itself warns about this elsewhere. The Augment page lets you see the misalignment."),
    _q("plateau", "guide-5", "learning-rate schedule",
       "A ReduceLROnPlateau callback watches val_loss with factor 0.5 and patience 3. What "
       "does it do?",
       ["Halves the learning rate after 3 epochs without validation improvement",
        "Stops training after 3 epochs",
        "Doubles the learning rate every 3 epochs",
        "Restores the best weights"],
       0, "Smaller steps often let the model settle into a better minimum once progress "
          "stalls."),
    # Chapter 6
    _q("l1-l2", "guide-6", "regularisation",
       "How do L1 and L2 weight penalties differ?",
       ["L1 pulls every weight towards zero by the same amount, so many become tiny; L2 pulls "
        "harder on large weights and shrinks all of them smoothly",
        "L2 pushes weights to zero; L1 makes them larger",
        "They are the same",
        "L1 works only on biases"],
       0, "L1 favours sparse weights, though with Adam they hover near zero rather than "
          "reaching it exactly; L2 keeps them small without zeroing them. In Keras: "
          "kernel_regularizer=regularizers.l2(1e-3)."),
    _q("dropout-inference", "guide-6", "dropout",
       "What does a Dropout(0.5) layer do when the trained model predicts a new image?",
       ["Drops half of the units at random",
        "Nothing: dropout is only active during training",
        "Halves the output probabilities",
        "Drops half of the image"],
       1, "At prediction time every unit is used; Keras rescales during training so the "
          "average activation matches."),
    _q("fine-tune", "guide-6", "transfer learning",
       "You reuse an ImageNet VGG16 as the encoder. Which training order is recommended?",
       ["Train everything from the start with a large learning rate",
        "Freeze the encoder, train the decoder, then unfreeze the last encoder blocks with a "
        "small learning rate",
        "Freeze the decoder and train only the encoder",
        "Never train the encoder"],
       1, "A random decoder would send large, noisy gradients into the pretrained weights; "
          "freezing first protects them. VGG16 also expects 3-channel input."),
    # Chapter 7
    _q("focal", "guide-7", "focal loss",
       "When is focal loss most useful?",
       ["When foreground and background are equally large",
        "When the target is tiny compared with the background",
        "For image classification only",
        "When there are no labels"],
       1, "It scales down easy, confidently correct pixels (mostly background), so the few "
          "hard foreground pixels drive learning."),
    _q("hd95", "guide-7", "boundary metric",
       "Why report HD95 next to Dice?",
       ["It measures how far the predicted border is from the true one, which overlap scores "
        "hide",
        "It is the same as Dice in pixels",
        "It counts true negatives",
        "It only works in 3D"],
       0, "Two masks can have similar Dice but very different borders. HD95 takes the 95th "
          "percentile of boundary distances, so one stray pixel does not dominate. It is empty "
          "(NaN) when exactly one mask is empty, and such images drop out of the mean."),
    _q("brats", "guide-7", "brain tumour project",
       "What does the BraTS dataset, used in the textbook's chapter 7 example, provide?",
       ["Chest X-rays with diagnoses",
        "Multi-sequence brain MRI (T1, T2, FLAIR, ...) with tumour masks",
        "Retinal photographs with vessel masks",
        "Skin photographs with melanoma labels"],
       1, "Each case has several MRI sequences and expert tumour labels; the sequences can be "
          "stacked as input channels."),
    _q("opening", "guide-7", "post-processing",
       "Which post-processing step removes small isolated false-positive specks?",
       ["Morphological opening", "Morphological closing", "Raising the learning rate",
        "Histogram equalisation"],
       0, "Opening (erosion then dilation) deletes blobs smaller than the structuring element; "
          "closing fills small holes instead."),
    # Chapter 8
    _q("ch8-params", "guide-8", "chapter 8 model size",
       "The textbook's chapter 8 project model (128x128x1 input, filters 64-128-256, two poolings, "
       "transposed convolutions) has how many parameters?",
       ["About 0.5 million", "1,861,697", "31,030,593", "About 120 million"],
       1, "Two levels and a 256-filter bottleneck keep it at about 1.9 million; the four-level "
          "chapter 4 model has about 31 million."),
    _q("ch8-sizes", "guide-8", "valid input sizes",
       "The textbook's chapter 8 model pools twice. Which rule describes exactly the input "
       "sides it accepts?",
       ["Any side at all",
        "Every multiple of 4, e.g. 124, 128 or 132",
        "Only multiples of 16",
        "Only powers of two"],
       1, "Two poolings need sides divisible by 2**2 = 4: 128 works, and so do 124 and 132. "
          "Multiples of 16 and powers of two also work, but they leave out valid sizes."),
    _q("mask-resize", "guide-8", "resizing masks",
       "The textbook's chapter 8 project resizes masks with tf.image.resize, which is "
       "bilinear by default. What is the risk?",
       ["None",
        "Edge pixels get fractional values that are not valid labels; resize masks with "
        "nearest neighbour or re-threshold them",
        "The mask becomes larger than the image",
        "The mask turns into RGB"],
       1, "Interpolating between 0 and 1 creates values like 0.4 at borders (and meaningless "
          "in-between class ids for multi-class masks)."),
    _q("threshold", "guide-8", "thresholding",
       "Why does the textbook's chapter 8 project compare predictions with 0.5 before "
       "displaying them?",
       ["The sigmoid gives a probability per pixel; the threshold turns it into a 0/1 mask",
        "To normalise the image",
        "To compute the loss",
        "Keras requires it"],
       0, "0.5 is a default; a threshold chosen on the validation split can trade precision "
          "for recall."),
    # Chapter 9
    _q("attention", "guide-9", "Attention U-Net",
       "Where do the attention gates of an Attention U-Net sit?",
       ["On the skip connections, weighting encoder features before concatenation",
        "After the output layer",
        "Only in the bottleneck",
        "In the data loader"],
       0, "The gate uses the coarser decoder signal to decide which locations of the skip map "
          "matter, damping background clutter."),
    _q("unet3d-cost", "guide-9", "3D U-Net",
       "What is the main price of a 3D U-Net compared with slice-wise 2D?",
       ["It cannot use pooling",
        "Much higher memory and compute, and it needs labelled volumes",
        "It only works on ultrasound",
        "It ignores context between slices"],
       1, "3D kernels and feature maps grow with the third dimension; in return the model "
          "sees continuity across slices."),
    _q("unetpp", "guide-9", "U-Net++",
       "What does U-Net++ change compared with the classic U-Net?",
       ["It removes the skip connections",
        "It replaces skips with nested, densely connected paths that fuse several scales",
        "It uses only fully connected layers",
        "It works only on 3D data"],
       1, "The nested decoders give better multi-scale fusion at a clearly higher cost in time "
          "and memory."),
    _q("speed", "guide-9", "making it fast",
       "You need real-time inference on a small device. Which choice fits best?",
       ["An Attention U-Net with twice the filters",
        "A lightweight U-Net (depthwise separable convolutions, fewer filters), possibly "
        "quantised",
        "A 3D U-Net",
        "Larger input images"],
       1, "Fewer filters, cheaper convolutions, smaller inputs and INT8 quantisation all cut "
          "latency, at some cost in accuracy."),
    _q("residual", "guide-9", "Residual U-Net",
       "Why do residual blocks help deeper U-Nets train?",
       ["They remove the need for labels",
        "Shortcut additions let gradients flow past the convolutions",
        "They double the input size",
        "They replace the loss function"],
       1, "Each block learns a correction to its input; the identity path keeps gradients "
          "from vanishing."),
    # Chapter 10
    _q("beyond-accuracy", "guide-10", "evaluation summary",
       "Which set of measures does the textbook's summary recommend for judging "
       "segmentation?",
       ["Pixel accuracy alone", "Dice, IoU and Hausdorff distance",
        "Training loss only", "Number of parameters"],
       1, "Overlap (Dice, IoU) plus a boundary distance give a fuller picture; accuracy is "
          "misleading under class imbalance."),
    _q("tools", "guide-10", "tools",
       "Which libraries does the textbook suggest for medical image formats and pipelines?",
       ["MONAI, SimpleITK and NiBabel", "Pandas only", "Flask and Django",
        "OpenGL and Vulkan"],
       0, "NiBabel and SimpleITK read NIfTI and friends; MONAI offers medical transforms, "
          "networks and losses."),
    # Notebook
    _q("nb-upsampling", "notebook", "notebook decoder",
       "How does the companion notebook's unet() upsample in the decoder?",
       ["Conv2DTranspose with stride 2",
        "UpSampling2D followed by a 2x2 convolution with ReLU",
        "Max pooling",
        "It does not upsample"],
       1, "A fixed 2x resize then a learned 2x2 convolution; the textbook's models use "
          "transposed convolutions instead."),
    _q("nb-channels", "notebook", "input channels",
       "The companion notebook calls unet(input_shape=(256, 256, 3)). What does the 3 mean?",
       ["Three classes", "Three colour channels (RGB)", "Depth 3", "Batch size 3"],
       1, "The last number is the channel count; a grey CT or MRI slice would use 1."),
    _q("nb-he-normal", "notebook", "weight initialisation",
       "The companion notebook's convolutions use kernel_initializer='he_normal'. Why that one?",
       ["It is designed for ReLU layers and keeps activations from shrinking or exploding",
        "It makes training deterministic",
        "It is required for sigmoid outputs",
        "It loads pretrained weights"],
       0, "He initialisation scales the random weights for ReLU's halved activations, so deep "
          "stacks start in a trainable range."),
    _q("nb-cons", "notebook", "limitations",
       "Which of these is a drawback of U-Net named in the companion notebook?",
       ["It cannot be trained with few images",
        "High memory use for large images or deep networks",
        "It only works on satellite images",
        "It has no skip connections"],
       1, "Full-resolution feature maps and skip copies take a lot of memory; the companion "
          "notebook also lists boundary artefacts and limited long-range context."),
    # Beyond the textbook
    _q("ct-window", "beyond", "CT windowing",
       "The soft tissue / abdomen CT window has level 40 and width 400 (L40 W400). Which "
       "Hounsfield range is kept before rescaling to [0, 1]?",
       ["0 to 400", "-160 to 240", "-400 to 400", "40 to 440"],
       1, "The window is centred on the level: 40 - 200 = -160 and 40 + 200 = 240. Everything "
          "below is clipped to 0, everything above to 1."),
    _q("leakage", "beyond", "data splitting and leakage",
       "Slices from each patient's scan are shuffled and split randomly into training and "
       "test sets. What is wrong?",
       ["Nothing, random splits are always fair",
        "Neighbouring, near-identical slices of one patient end up on both sides, so the test "
        "score is inflated",
        "The test set becomes too small",
        "Shuffling changes the masks"],
       1, "Split by subject (or, for a single subject, by blocks of slices) so the test set "
          "really contains unseen anatomy."),
    _q("checkerboard", "beyond", "upsampling choice",
       "Which upsampling is more prone to checkerboard artefacts?",
       ["Transposed convolution", "UpSampling2D followed by a convolution",
        "Max pooling", "Bilinear resizing alone"],
       0, "When the kernel size is not a multiple of the stride, some output pixels receive "
          "more kernel contributions than their neighbours and a grid pattern appears; "
          "resize-then-convolve avoids that by construction."),
    _q("generalized-dice", "beyond", "class imbalance",
       "In a multi-class task one class covers a tiny area. Which loss weights every class by "
       "the inverse of its squared size, so that the rare class is not drowned out?",
       ["Plain categorical cross-entropy, where every pixel counts the same",
        "Generalised Dice loss",
        "Mean squared error between probabilities and labels",
        "Binary cross-entropy on the background channel only"],
       1, "Generalised Dice (Sudre et al., 2017) gives each class a weight of 1 / size**2; the "
          "other three let the large classes dominate or ignore the rare one altogether."),
    _q("tversky", "beyond", "Tversky loss",
       "In a Tversky loss, setting the false-negative weight beta above the false-positive "
       "weight alpha does what?",
       ["Raises precision at the cost of recall",
        "Raises recall: missing foreground costs more than over-marking",
        "Makes it identical to BCE",
        "Ignores the background"],
       1, "With alpha = beta = 0.5 it equals Dice. Weighting misses more is useful when "
          "overlooking a lesion is worse than a false alarm."),
    _q("domain-shift", "beyond", "clinical caveats",
       "A model scores Dice 0.9 on held-out slices from one hospital's scanner. What can you "
       "conclude about use in another hospital?",
       ["It will also score 0.9",
        "Little: other scanners and patients can shift the images; it needs external "
        "validation and clinician review",
        "It is approved for diagnosis",
        "It will score higher there"],
       1, "Performance often drops under domain shift. Clinical use needs external and "
          "prospective validation, regulatory approval and a human in the loop."),
)


# --------------------------------------------------------------------------- functions

def search_glossary(query: str) -> tuple[GlossaryEntry, ...]:
    """Return the glossary entries whose term or definition contains `query`.

    Case-insensitive; an empty or blank query returns the whole glossary. Terms matching
    come before entries that match only in their definition.

    Args:
        query: text typed by the user.

    Example:
        >>> [e.term for e in search_glossary("jaccard")]
        ['IoU (Jaccard index)']
    """
    needle = query.strip().lower()
    if not needle:
        return GLOSSARY
    in_term = [e for e in GLOSSARY if needle in e.term.lower()]
    in_text = [e for e in GLOSSARY if e not in in_term and needle in e.definition.lower()]
    return tuple(in_term + in_text)


def questions_by_chapter(
    questions: Sequence[QuizQuestion] = QUIZ,
) -> dict[str, list[QuizQuestion]]:
    """Group questions by chapter key, in the order of CHAPTERS.

    Args:
        questions: the quiz to group (default: the full quiz).

    Example:
        >>> groups = questions_by_chapter()
        >>> list(groups) == list(CHAPTERS)
        True
    """
    groups: dict[str, list[QuizQuestion]] = {key: [] for key in CHAPTERS}
    for question in questions:
        groups.setdefault(question.chapter, []).append(question)
    return groups


def shuffled_quiz(seed: int, questions: Sequence[QuizQuestion] = QUIZ) -> tuple[QuizQuestion, ...]:
    """Return the quiz with question order and option order shuffled, reproducibly.

    The same seed always gives the same order; each question's `correct` index follows its
    option to the new position, and its `key` stays the same.

    Args:
        seed: any integer; equal seeds give equal quizzes.
        questions: the quiz to shuffle (default: the full quiz).

    Example:
        >>> shuffled_quiz(7) == shuffled_quiz(7)
        True
        >>> sorted(q.key for q in shuffled_quiz(7)) == sorted(q.key for q in QUIZ)
        True
    """
    rng = random.Random(seed)
    order = list(range(len(questions)))
    rng.shuffle(order)
    result = []
    for index in order:
        question = questions[index]
        permutation = list(range(len(question.options)))
        rng.shuffle(permutation)
        result.append(dataclasses.replace(
            question,
            options=tuple(question.options[i] for i in permutation),
            correct=permutation.index(question.correct),
        ))
    return tuple(result)


def quiz_questions(seed: int | None = None) -> tuple[QuizQuestion, ...]:
    """Return the quiz, in authored order or shuffled by `seed`.

    Args:
        seed: None for the authored order; an integer for a reproducible shuffle.

    Example:
        >>> quiz_questions() == QUIZ
        True
    """
    return QUIZ if seed is None else shuffled_quiz(seed)


def is_correct(question: QuizQuestion, answer: int | None) -> bool:
    """Say whether `answer` (an option index, or None for unanswered) is right.

    Args:
        question: the question answered.
        answer: index into `question.options`, or None.

    Example:
        >>> is_correct(QUIZ[0], QUIZ[0].correct), is_correct(QUIZ[0], None)
        (True, False)
    """
    if answer is None:
        return False
    if not 0 <= answer < len(question.options):
        raise UNetDemoError(
            f"Answer {answer} to question {question.key!r} is out of range. Expected an option "
            f"index from 0 to {len(question.options) - 1}; pick one of the listed options."
        )
    return answer == question.correct


def score(
    answers: Mapping[str, int | None] | Sequence[int | None],
    questions: Sequence[QuizQuestion] = QUIZ,
) -> tuple[int, int]:
    """Count correct answers; return (correct, total number of questions).

    Args:
        answers: either a mapping from question key to chosen option index (missing keys and
            None count as unanswered), or a sequence with one entry per question, in the
            order of `questions`.
        questions: the quiz answered (default: the full quiz in authored order).

    Example:
        >>> score({QUIZ[0].key: QUIZ[0].correct, QUIZ[1].key: None}) == (1, len(QUIZ))
        True
        >>> score([q.correct for q in QUIZ[:3]], QUIZ[:3])
        (3, 3)
    """
    if isinstance(answers, Mapping):
        known = {q.key for q in questions}
        unknown = sorted(set(answers) - known)
        if unknown:
            raise UNetDemoError(
                f"Answers name unknown question(s) {unknown}. Expected keys of the quiz being "
                "scored; pass the same questions the answers were given for."
            )
        chosen = [answers.get(q.key) for q in questions]
    else:
        if len(answers) != len(questions):
            raise UNetDemoError(
                f"Got {len(answers)} answers for {len(questions)} questions. Expected one entry "
                "per question (None for unanswered)."
            )
        chosen = list(answers)
    correct = sum(is_correct(q, a) for q, a in zip(questions, chosen, strict=True))
    return correct, len(questions)


def chapter_scores(
    answers: Mapping[str, int | None],
    questions: Sequence[QuizQuestion] = QUIZ,
) -> list[dict[str, object]]:
    """Per-chapter tally of a quiz: questions, answered and correct, in the order of CHAPTERS.

    Args:
        answers: question key to chosen option index (None or missing: unanswered).
        questions: the quiz answered (default: the full quiz).

    Example:
        >>> rows = chapter_scores({QUIZ[0].key: QUIZ[0].correct})
        >>> rows[0]["chapter"] == CHAPTERS[QUIZ[0].chapter], rows[0]["correct"]
        (True, 1)
    """
    rows = []
    for key, group in questions_by_chapter(questions).items():
        if not group:
            continue
        chosen = [answers.get(q.key) for q in group]
        rows.append({
            "chapter": CHAPTERS.get(key, key),
            "questions": len(group),
            "answered": sum(a is not None for a in chosen),
            "correct": sum(is_correct(q, a) for q, a in zip(group, chosen, strict=True)),
        })
    return rows
