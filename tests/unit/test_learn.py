"""Learn content: quiz integrity, coverage of every source chapter, scoring, shuffling, glossary,
the facts the texts must state correctly, and words a student without the source texts understands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from unet_demo.errors import UNetDemoError
from unet_demo.lessons import learn

REPO_ROOT = Path(__file__).resolve().parents[2]
SEEDS_DIR = Path("/work/shared/seeds")

# The source texts: the guide ("the textbook") has chapters 1-10, the notebook is one more
# "chapter", and "beyond" holds the topics neither text treats.
SOURCE_CHAPTERS = {f"guide-{n}" for n in range(1, 11)} | {"notebook", "beyond"}

# Concepts the Learn page must explain (section keys).
REQUIRED_SECTIONS = {
    "segmentation", "architecture", "layers", "input-size", "losses", "metrics",
    "preprocessing", "augmentation", "fitting", "variants", "evaluation-pitfalls", "clinical",
    "textbook-models",
}


# ----------------------------------------------------------------------------- quiz integrity

def test_quiz_is_big_enough():
    assert len(learn.QUIZ) >= 24


@pytest.mark.parametrize("question", learn.QUIZ, ids=lambda q: q.key)
def test_question_is_well_formed(question):
    assert question.question.strip()
    assert len(question.options) >= 3
    assert len(set(question.options)) == len(question.options), "duplicate options"
    assert all(option.strip() for option in question.options)
    assert isinstance(question.correct, int)
    assert 0 <= question.correct < len(question.options)
    assert len(question.explanation.strip()) >= 20
    assert question.chapter in learn.CHAPTERS
    assert question.topic.strip()


def test_questions_and_keys_are_unique():
    keys = [q.key for q in learn.QUIZ]
    texts = [q.question.strip().lower() for q in learn.QUIZ]
    assert len(set(keys)) == len(keys)
    assert len(set(texts)) == len(texts)


def test_chapters_are_exactly_the_source_chapters():
    assert set(learn.CHAPTERS) == SOURCE_CHAPTERS


@pytest.mark.parametrize("chapter", sorted(SOURCE_CHAPTERS))
def test_every_source_chapter_has_a_question(chapter):
    assert learn.questions_by_chapter()[chapter], f"no quiz question for {chapter}"


def test_correct_answers_are_not_all_in_one_position():
    positions = {q.correct for q in learn.QUIZ}
    assert len(positions) >= 3


# ----------------------------------------------------------------------------- scoring

def test_score_all_correct_and_all_wrong():
    total = len(learn.QUIZ)
    assert learn.score({q.key: q.correct for q in learn.QUIZ}) == (total, total)
    wrong = {q.key: (q.correct + 1) % len(q.options) for q in learn.QUIZ}
    assert learn.score(wrong) == (0, total)


def test_score_counts_unanswered_as_not_correct():
    first, second, third = learn.QUIZ[:3]
    answers = {first.key: first.correct, second.key: None}
    assert learn.score(answers, learn.QUIZ[:3]) == (1, 3)
    assert learn.score([first.correct, None, (third.correct + 1) % len(third.options)],
                       learn.QUIZ[:3]) == (1, 3)
    assert learn.score({}) == (0, len(learn.QUIZ))


def test_score_rejects_bad_input():
    with pytest.raises(UNetDemoError, match="answers for"):
        learn.score([0, 1], learn.QUIZ[:3])
    with pytest.raises(UNetDemoError, match="unknown question"):
        learn.score({"no-such-question": 0})
    with pytest.raises(UNetDemoError, match="out of range"):
        learn.score({learn.QUIZ[0].key: 99})


def test_is_correct():
    question = learn.QUIZ[0]
    assert learn.is_correct(question, question.correct)
    assert not learn.is_correct(question, None)
    assert not learn.is_correct(question, (question.correct + 1) % len(question.options))


# ----------------------------------------------------------------------------- shuffling

def test_shuffle_is_deterministic_and_keeps_answers():
    first = learn.quiz_questions(seed=3)
    assert first == learn.quiz_questions(seed=3)
    assert learn.quiz_questions() == learn.QUIZ
    assert [q.key for q in first] != [q.key for q in learn.QUIZ]
    assert [q.key for q in learn.quiz_questions(seed=4)] != [q.key for q in first]
    original = {q.key: q for q in learn.QUIZ}
    moved_answers = 0
    for question in first:
        source = original[question.key]
        assert sorted(question.options) == sorted(source.options)
        assert question.correct_option == source.correct_option
        moved_answers += question.correct != source.correct
    assert moved_answers > 0


def test_scoring_a_shuffled_quiz_by_key():
    shuffled = learn.shuffled_quiz(11)
    answers = {q.key: q.correct for q in shuffled[:5]}
    assert learn.score(answers, shuffled) == (5, len(shuffled))
    # answers are option indices of the quiz they were given for: the shuffled quiz's right
    # indices, scored against the authored order, are mostly wrong there
    all_right = {q.key: q.correct for q in shuffled}
    assert learn.score(all_right, shuffled) == (len(shuffled), len(shuffled))
    assert learn.score(all_right, learn.QUIZ)[0] < len(learn.QUIZ)


# ----------------------------------------------------------------------------- sections

def test_required_sections_exist_and_are_unique():
    keys = [s.key for s in learn.SECTIONS]
    assert len(set(keys)) == len(keys)
    assert set(keys) >= REQUIRED_SECTIONS


@pytest.mark.parametrize("section", learn.SECTIONS, ids=lambda s: s.key)
def test_section_links_to_an_existing_page(section):
    assert section.try_it in learn.TRY_IT_PAGES
    assert (REPO_ROOT / section.try_it).is_file(), f"{section.try_it} does not exist"
    assert section.try_it_label.strip()
    assert len(section.body) >= 200
    assert section.chapters and set(section.chapters) <= set(learn.CHAPTERS)


def test_every_try_it_page_is_used():
    assert {s.try_it for s in learn.SECTIONS} == set(learn.TRY_IT_PAGES)


# ----------------------------------------------------------------------------- glossary

def test_glossary_size_and_uniqueness():
    terms = [e.term.lower() for e in learn.GLOSSARY]
    assert len(terms) >= 25
    assert len(set(terms)) == len(terms)
    assert all(e.definition.strip() for e in learn.GLOSSARY)


def test_glossary_search():
    assert learn.search_glossary("") == learn.GLOSSARY
    assert learn.search_glossary("   ") == learn.GLOSSARY
    assert [e.term for e in learn.search_glossary("JACCARD")] == ["IoU (Jaccard index)"]
    hits = learn.search_glossary("dice")
    assert hits[0].term.lower().startswith("dice")
    assert {"Dice coefficient", "Dice loss", "Generalised Dice loss"} <= {e.term for e in hits}
    assert learn.search_glossary("zzz-not-a-term") == ()


# ----------------------------------------------------------------------------- own words

def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _shingles(words: list[str], size: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + size]) for i in range(len(words) - size + 1)}


@pytest.mark.skipif(not SEEDS_DIR.is_dir(), reason="seed documents not on this machine")
def test_text_is_not_copied_from_the_seeds():
    size = 8
    seed_shingles: set[tuple[str, ...]] = set()
    for path in SEEDS_DIR.glob("*.txt"):
        seed_shingles |= _shingles(_words(path.read_text(encoding="utf-8")), size)
    texts = [s.title + ". " + s.body + " " + s.try_it_label for s in learn.SECTIONS]
    texts += [e.definition for e in learn.GLOSSARY]
    texts += [" ".join([q.question, *q.options, q.explanation]) for q in learn.QUIZ]
    copied = [text[:60] for text in texts if _shingles(_words(text), size) & seed_shingles]
    assert not copied, f"passages sharing {size} consecutive words with a seed: {copied}"


# ----------------------------------------------------------------------------- words a student knows

def _student_texts() -> list[str]:
    """Every text the Learn page shows: sections, source labels, glossary and quiz."""
    texts = [s.title + "\n" + s.body + "\n" + s.try_it_label for s in learn.SECTIONS]
    texts += list(learn.CHAPTERS.values())
    texts += [e.term + ": " + e.definition for e in learn.GLOSSARY]
    texts += ["\n".join([q.question, *q.options, q.explanation, q.topic]) for q in learn.QUIZ]
    return texts


# Students do not have the source documents, and do not know the project's name for them.
INSIDER_WORDS = re.compile(
    r"seed[ -]?(document|guide|model|code|text|chapter)s?|\bthe seeds\b|from the seeds|"
    r"course material|\bchapter\s?\d+_|\bchapter\d+\b",
    re.IGNORECASE,
)


def test_no_text_speaks_of_seed_documents_or_course_material():
    bad = [text[:80] for text in _student_texts() if INSIDER_WORDS.search(text)]
    assert not bad, bad


@pytest.mark.parametrize("path", [
    "unet_demo/ui/learn_ui.py", "unet_demo/ui/build_ui.py", "unet_demo/ui/augment_ui.py",
    "unet_demo/ui/data_ui.py", "unet_demo/ui/evaluate_ui.py", "pages/7_Learn.py",
])
def test_pages_do_not_speak_of_seed_documents(path):
    source = (REPO_ROOT / path).read_text(encoding="utf-8")
    assert not INSIDER_WORDS.search(source), INSIDER_WORDS.search(source).group(0)


# Terms the pages use; each needs a glossary entry (its term, the part before " (", the part in
# the parentheses, or the first of a comma-separated list).
PAGE_TERMS = [
    # core ideas
    "U-Net", "CNN", "convolutional neural network", "Segmentation", "Semantic segmentation",
    "Instance segmentation", "Mask", "Ground truth", "Loss function", "Optimiser",
    "Gradient descent", "Backpropagation", "Hyperparameter", "Parameters", "Regularisation",
    "Generalisation", "Fine-tuning", "Transfer learning", "Inference",
    # architecture and layers
    "Encoder", "Decoder", "Bottleneck", "Skip connection", "Convolution", "Max pooling",
    "Transposed convolution", "Upsampling", "Receptive field", "Feature map",
    "Activation function", "ReLU", "Sigmoid", "Softmax", "He initialisation",
    "Batch normalisation", "Group normalisation", "Instance normalisation",
    "Depthwise separable convolution", "FLOPs", "Backbone", "ImageNet", "Attention gate",
    "Residual block", "U-Net++", "3D U-Net", "Deep supervision", "Quantisation",
    # training
    "Batch", "Epoch", "Learning rate", "Adam", "ReduceLROnPlateau", "Early stopping",
    "Dropout", "L1 and L2 penalties", "Weight decay", "Overfitting", "Underfitting",
    "Augmentation", "Elastic deformation", "Patch-based training", "Cross-validation",
    # losses and metrics
    "Binary cross-entropy", "Dice loss", "Focal loss", "Tversky loss", "Generalised Dice loss",
    "Class imbalance", "Dice coefficient", "IoU", "Jaccard index", "Precision", "Recall",
    "F1 score", "Pixel accuracy", "Confusion matrix", "TP, FP, FN, TN", "ROC curve and AUC",
    "HD95", "Hausdorff distance", "ASD", "Threshold", "Otsu's method", "Connected component",
    "Morphological opening and closing", "TTA",
    # data
    "Validation set", "Test set", "Data leakage", "Domain shift", "Out-of-distribution",
    "CLAHE", "Z-score", "Min-max normalisation", "Padding", "CT window", "Hounsfield unit",
    "Median filter", "Speckle", "DICOM", "NIfTI", "MONAI", "BraTS",
]


def _glossary_names() -> set[str]:
    names = set()
    for entry in learn.GLOSSARY:
        term = entry.term.lower()
        names.add(term)
        head, _, rest = term.partition(" (")
        names.add(head)
        if rest:
            names.add(rest.rstrip(")"))
        names.add(term.split(",")[0])
    return names


@pytest.mark.parametrize("term", PAGE_TERMS)
def test_every_page_term_has_a_glossary_entry(term):
    assert term.lower() in _glossary_names(), f"no glossary entry for {term!r}"


# ----------------------------------------------------------------------------- facts pinned

def _section(key: str) -> str:
    return next(s.body for s in learn.SECTIONS if s.key == key)


def _entry(term: str) -> str:
    return next(e.definition for e in learn.GLOSSARY if e.term == term)


def test_dice_loss_ignores_true_negatives_but_big_objects_still_dominate():
    losses = _section("losses")
    assert "structure matters as much as a big one" not in losses
    assert "true negatives" in losses and "dominates" in losses


def test_focal_loss_down_weights_confident_and_correct_pixels():
    assert "confidently *and correctly*" in _section("losses")
    assert "confidently and correctly" in _entry("Focal loss")


def test_batch_norm_is_not_listed_as_an_overfitting_cure():
    fitting = _section("fitting")
    cures = fitting.split("Cures:")[-1].split("- **Batch normalisation**")[0]
    assert "batch norm" not in cures.lower()
    assert "0.97" in fitting and "0.23" in fitting and "group normalisation" in fitting


def test_l1_is_not_weight_decay_and_not_exactly_zero_with_adam():
    fitting = _section("fitting")
    assert "rarely exactly zero; not weight decay" in fitting
    assert "exactly zero" not in _entry("L1 and L2 penalties").replace("rarely exactly", "")
    l1 = next(q for q in learn.QUIZ if q.key == "l1-l2")
    assert "exactly zero" not in l1.correct_option


def test_otsu_is_unsupervised_and_largest_component_has_a_warning():
    inference = _section("inference")
    assert "needs no labels" in inference
    assert "tuned on validation data, e.g. with Otsu" not in inference
    assert "every nucleus but one" in inference
    assert "without any labels" in _entry("Otsu's method")


def test_hd95_says_it_is_nan_when_exactly_one_mask_is_empty():
    assert "NaN" in _section("metrics") and "drops out of the mean" in _section("metrics")
    assert "NaN" in _entry("HD95")
    hd95 = next(q for q in learn.QUIZ if q.key == "hd95")
    assert "NaN" in hd95.explanation
    evaluate = (REPO_ROOT / "unet_demo/ui/evaluate_ui.py").read_text(encoding="utf-8")
    assert "exactly one of mask" in evaluate


def test_ct_window_preset_has_one_name_everywhere():
    from unet_demo.data.readers import CT_WINDOW_PRESETS

    name = "soft tissue / abdomen (L40 W400)"
    assert CT_WINDOW_PRESETS[name] == (40.0, 400.0)
    assert "abdomen" not in CT_WINDOW_PRESETS
    assert "soft tissue / abdomen" in _section("preprocessing")
    assert "soft tissue / abdomen" in _entry("CT window")
    question = next(q for q in learn.QUIZ if q.key == "ct-window")
    assert "soft tissue / abdomen" in question.question


def test_topics_outside_the_textbook_are_labelled_so():
    beyond = {q.key for q in learn.QUIZ if q.chapter == "beyond"}
    assert beyond == {"tversky", "generalized-dice", "checkerboard", "ct-window", "leakage",
                      "domain-shift"}


def test_facts_the_quiz_needs_are_on_the_page():
    """Quiz items about the textbook's worked examples must be answerable from the app."""
    pages = "\n".join(_student_texts()[:len(learn.SECTIONS)] +
                      [e.definition for e in learn.GLOSSARY])
    for fact in ("1,861,697", "31 million", "16x16 with 1024", "bilinear", "0.5",
                 "BraTS", "UpSampling2D", "he_normal", "high memory use", "MONAI",
                 "Hausdorff distance", "original, unchanged mask", "smoothing constant"):
        assert fact in pages, fact
